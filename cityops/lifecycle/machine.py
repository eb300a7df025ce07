"""One small mechanism for every lifecycle: a transition table (data) checked against a machine.

A ``Machine`` names a lifecycle's states and actions and the functions its tables may refer to:
guards (may this transition happen to this object now?), requirements (does the request carry
what the transition needs?) and effects (what else changes). A ``Table`` is a list of rows
(from state x action -> to state, roles, permission, required, guard, effects, plus columns the
machine declares), validated when it is loaded: a row naming an unknown state, action, guard,
requirement or effect is refused naming it (``InvalidInput``, HTTP 422), so a table can never
make a transition silently impossible or an effect silently ignored.

``Table.check`` decides one action for one object and principal:

* unknown action -> 404; no row for (state, action) -> 409 naming the state and the actions the
  principal may take now; the principal lacks the row's permission or roles -> 403;
* the machine's actor check (e.g. "only the lead department") -> 403;
* a guard that does not hold -> 409 with the guard's text; missing requirements -> 422.

``Table.apply`` runs the row's effects in order (each a function of the ``Context``), sets the
state and lets the machine write its timeline row. ``cityops.lifecycle.service.perform`` adds the
audit row and the outbox event for lifecycles that need nothing more.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.security.principal import Principal

PREVIOUS = "@previous"


@dataclass
class Context:
    """What guards, requirements and effects see: the object, who acts, the request body, the time,
    and ``data`` — what the effects record for the timeline row."""

    session: Session
    principal: Principal
    obj: Any
    body: Any = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    transition: Transition | None = None
    data: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


Guard = Callable[[Context], bool]
Requirement = Callable[[Context], list[Problem]]
Effect = Callable[[Context], None]
ActorCheck = Callable[[Context], "str | None"]
TimelineWriter = Callable[[Context, str, str], None]


@dataclass(frozen=True)
class Transition:
    from_state: str
    action: str
    to_state: str | None  # None: the state does not change; PREVIOUS: back to the state saved by an effect
    roles: frozenset[str]  # empty: any role holding ``permission``
    permission: str
    required: tuple[str, ...] = ()
    guard: str | None = None
    effects: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def out(self, machine: Machine) -> dict[str, Any]:
        label = machine.actions.get(self.action, {})
        return {"from": self.from_state, "action": self.action, "to": self.to_state, "roles": sorted(self.roles),
                "permission": self.permission, "required": list(self.required), "guard": self.guard,
                "effects": list(self.effects), **dict(self.extra),
                "label": label.get("zh", self.action), "label_en": label.get("en", self.action)}


@dataclass(frozen=True)
class Guarded:
    fn: Guard
    text: str  # shown when the guard does not hold (zh first, then en)


@dataclass
class Machine:
    """A lifecycle: its states and actions (code -> {"zh", "en", ...}) and the named functions a
    table may use. ``extra_columns`` maps further row columns to a validator returning a problem
    text or None; ``actor_check`` returns why this principal may not take this row's action on
    this object (or None); ``timeline`` writes the row every change leaves (None: the generic
    ``timeline_entry`` row, written by ``cityops.lifecycle.service.perform``)."""

    name: str
    states: dict[str, dict[str, Any]]
    actions: dict[str, dict[str, str]]
    default_permission: str
    guards: dict[str, Guarded] = field(default_factory=dict)
    requirements: dict[str, Requirement] = field(default_factory=dict)
    effects: dict[str, Effect] = field(default_factory=dict)
    extra_columns: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)
    actor_check: ActorCheck | None = None
    timeline: TimelineWriter | None = None
    state_attr: str = "state"
    previous_attr: str | None = None
    allow_previous: bool = False

    # ------------------------------------------------------------------ loading

    def table(self, rows: Any, *, loc: Iterable[str | int] = ("body",), version: str | None = None) -> Table:
        """Validate ``rows`` (a list of objects) and build the table; every problem is named."""
        base = list(loc)
        probs: list[Problem] = []
        if not isinstance(rows, list):
            raise InvalidInput([Problem("转换表须为列表 a transition table is a list of rows", base, "type")])
        out: dict[tuple[str, str], Transition] = {}
        known = {"from", "action", "to", "roles", "permission", "required", "guard", "effects", "label", "label_en",
                 *self.extra_columns}
        for i, r in enumerate(rows):
            at: list[str | int] = [*base, i]
            if not isinstance(r, dict):
                probs.append(Problem("每行须为对象 a transition is an object", at, "type"))
                continue
            for k in sorted(set(r) - known):
                probs.append(Problem(f"未知列 unknown column {k!r}", [*at, k], "unknown_column"))
            frm, action, to = r.get("from"), r.get("action"), r.get("to")
            if not isinstance(frm, str) or frm not in self.states:
                probs.append(Problem(f"未知状态 unknown state {frm!r}; states: {', '.join(self.states)}",
                                     [*at, "from"], "unknown_state"))
            if not isinstance(action, str) or action not in self.actions:
                probs.append(Problem(f"未知动作 unknown action {action!r}; actions: {', '.join(self.actions)}",
                                     [*at, "action"], "unknown_action"))
            if to is not None and not (isinstance(to, str) and (to in self.states or (
                    to == PREVIOUS and self.allow_previous))):
                probs.append(Problem(f"未知状态 unknown state {to!r}", [*at, "to"], "unknown_state"))
            roles = r.get("roles", [])
            if not isinstance(roles, list) or not all(isinstance(x, str) and x for x in roles):
                probs.append(Problem("roles 须为角色代码列表 roles must be a list of role codes", [*at, "roles"], "type"))
                roles = []
            perm = r.get("permission") or self.default_permission
            if not isinstance(perm, str):
                probs.append(Problem("permission 须为字符串 permission must be a string", [*at, "permission"], "type"))
                perm = self.default_permission
            lists: dict[str, list[str]] = {}
            for k, registry, kind in (("required", self.requirements, "requirement"),
                                      ("effects", self.effects, "effect")):
                v = r.get(k) or []
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    probs.append(Problem(f"{k} 须为名称列表 {k} must be a list of names", [*at, k], "type"))
                    v = []
                for j, name in enumerate(v):
                    if name not in registry:
                        probs.append(Problem(f"未知{'要件' if kind == 'requirement' else '效果'} unknown {kind} {name!r}; "
                                             f"known: {', '.join(sorted(registry)) or 'none'}", [*at, k, j],
                                             f"unknown_{kind}"))
                lists[k] = v
            guard = r.get("guard")
            if guard is not None and (not isinstance(guard, str) or guard not in self.guards):
                probs.append(Problem(f"未知条件 unknown guard {guard!r}; known: {', '.join(sorted(self.guards)) or 'none'}",
                                     [*at, "guard"], "unknown_guard"))
            extra: dict[str, Any] = {}
            for k, check in self.extra_columns.items():
                if k in r:
                    msg = check(r[k])
                    if msg:
                        probs.append(Problem(msg, [*at, k], "value_error"))
                    extra[k] = r[k]
            pair = (str(frm), str(action))
            if pair in out:
                probs.append(Problem(f"重复的 (状态, 动作) duplicate (from, action) {pair}", at, "duplicate"))
            out[pair] = Transition(str(frm), str(action), to, frozenset(roles), perm, tuple(lists["required"]),
                                   guard, tuple(lists["effects"]), extra)
        if probs:
            raise InvalidInput(probs)
        return Table(self, out, version)

    def load_file(self, path: Path | str, key: str = "transitions") -> Table:
        """A table shipped as data (JSON: ``{"version": ..., "transitions": [...]}``)."""
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return self.table(doc[key], loc=[Path(path).name, key], version=doc.get("version"))

    # ------------------------------------------------------------------ labels

    def state_label(self, state: str | None) -> str:
        return str(self.states.get(state or "", {}).get("zh", state or ""))

    def action_label(self, action: str) -> str:
        return self.actions.get(action, {}).get("zh", action)


@dataclass(frozen=True)
class Table:
    machine: Machine
    transitions: dict[tuple[str, str], Transition]
    version: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        return [t.out(self.machine) for t in self.transitions.values()]

    def state_of(self, obj: Any) -> str:
        return str(getattr(obj, self.machine.state_attr))

    # ------------------------------------------------------------------ deciding

    @staticmethod
    def role_ok(principal: Principal, t: Transition) -> bool:
        if principal.kind == "system":
            return True
        return principal.can(t.permission) and (not t.roles or bool(principal.roles & t.roles))

    def _guard_ok(self, ctx: Context, t: Transition) -> bool:
        return t.guard is None or bool(self.machine.guards[t.guard].fn(ctx))

    def _actor_problem(self, ctx: Context, t: Transition) -> str | None:
        if ctx.principal.kind == "system" or self.machine.actor_check is None:
            return None
        ctx.transition = t
        return self.machine.actor_check(ctx)

    def allowed(self, ctx: Context) -> list[Transition]:
        """The rows ``ctx.principal`` may take on ``ctx.obj`` now (role, actor and guard checked)."""
        state = self.state_of(ctx.obj)
        out = []
        for (frm, _action), t in self.transitions.items():
            if frm != state or not self.role_ok(ctx.principal, t):
                continue
            if self._actor_problem(ctx, t) is None and self._guard_ok(ctx, t):
                out.append(t)
        ctx.transition = None
        return out

    def allowed_out(self, ctx: Context) -> list[dict[str, Any]]:
        prev = getattr(ctx.obj, self.machine.previous_attr, None) if self.machine.previous_attr else None
        out = []
        for t in self.allowed(ctx):
            d = t.out(self.machine)
            d["to_state"] = prev if t.to_state == PREVIOUS else (t.to_state or t.from_state)
            out.append(d)
        return out

    def illegal(self, ctx: Context, action: str) -> Conflict:
        state = self.state_of(ctx.obj)
        names = [t.action for t in self.allowed(ctx)]
        m = self.machine
        msg = (f"当前状态为「{m.state_label(state)}」({state})，不能执行「{m.action_label(action)}」({action})；"
               f"当前可执行: {', '.join(names) or '无'}. Action {action} is not allowed in state {state}; "
               f"allowed now: {', '.join(names) or 'none'}")
        return Conflict([Problem(msg, ["path", "action"], "illegal_transition",
                                 {"state": state, "allowed_actions": names})], state=state, allowed_actions=names)

    def check(self, ctx: Context, action: str) -> Transition:
        """The row for ``action`` on ``ctx.obj`` by ``ctx.principal``, or the error that says why not."""
        m = self.machine
        if action not in m.actions:
            raise NotFound([Problem(f"未知动作 unknown action {action!r}; actions: {', '.join(m.actions)}",
                                    ["path", "action"], "not_found")])
        t = self.transitions.get((self.state_of(ctx.obj), action))
        if t is None:
            raise self.illegal(ctx, action)
        if not self.role_ok(ctx.principal, t):
            need = ", ".join(sorted(t.roles)) or t.permission
            raise Forbidden([Problem(f"「{m.action_label(action)}」须由以下角色执行 {action} needs one of: {need}",
                                     ["principal", "roles"], "forbidden")])
        why = self._actor_problem(ctx, t)
        if why:
            raise Forbidden([Problem(why, ["principal"], "forbidden")])
        ctx.transition = t
        if not self._guard_ok(ctx, t):
            names = [a.action for a in self.allowed(ctx)]
            ctx.transition = t
            raise Conflict([Problem(f"{action}: {m.guards[t.guard or ''].text}", ["path", "action"], "guard",
                                    {"state": self.state_of(ctx.obj), "allowed_actions": names})],
                           state=self.state_of(ctx.obj), allowed_actions=names)
        probs: list[Problem] = []
        for name in t.required:
            probs += m.requirements[name](ctx)
        if probs:
            raise InvalidInput(probs)
        return t

    def apply(self, ctx: Context, t: Transition) -> tuple[str, str]:
        """Run ``t``'s effects in order, set the new state, write the timeline row. No commit."""
        m = self.machine
        ctx.transition = t
        from_state = self.state_of(ctx.obj)
        for name in t.effects:
            m.effects[name](ctx)
        if t.to_state == PREVIOUS:
            to_state = ctx.data.pop("_previous", None) or (
                getattr(ctx.obj, m.previous_attr) if m.previous_attr else None)
            if not to_state:
                raise Conflict([Problem("没有可恢复的状态 nothing to resume to", ["path", "action"], "conflict")])
        else:
            to_state = t.to_state or from_state
        setattr(ctx.obj, m.state_attr, to_state)
        if m.timeline is not None:
            m.timeline(ctx, from_state, str(to_state))
        return from_state, str(to_state)


def requirement_field(name: str, msg: str) -> Requirement:
    """A requirement that the request body carries a non-empty ``name``."""

    def check(ctx: Context) -> list[Problem]:
        body = ctx.body
        v = body.get(name) if isinstance(body, dict) else getattr(body, name, None)
        if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, list | dict) and not v):
            return [Problem(msg, ["body", name], "missing")]
        return []

    return check


__all__ = ["Context", "Machine", "Table", "Transition", "Guarded", "PREVIOUS", "requirement_field"]
