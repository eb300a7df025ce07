"""The inbox (我的待办) of every role, generated from the transition table in force.

A bucket of ``workflow.json`` ``inbox`` names one action (and optionally the states it is taken
from). A case is in the bucket for a principal when the table lets that principal take the action
on it now: a row ``(state, action)`` exists, the principal's roles and permission fit the row, the
row's department rule holds (``lead``: the principal's department leads the case; ``co``: it
co-handles it), and the row's guard holds. Everything is read within the principal's case scope
(``CASE_SCOPE``). The same decision made one case at a time by ``Table.allowed`` (the case page's
actions) is what tests/test_inbox.py compares against.

Guards are rendered as SQL here (``GUARD_SQL``, one per guard of ``workflow_rules.GUARDS``); a
guard without an SQL rendering is checked one case at a time with the guard itself.

Also here: why an action the principal could take elsewhere in the table is missing on a case now
(``missing_actions``: "立案 needs 核实 first", the guard's text, the department rule).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, and_, cast, false, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cityops.cases import places, sla
from cityops.cases import reference as ref
from cityops.cases.models import Case, CaseDepartment
from cityops.cases.queries import CASE_SCOPE, area_filter
from cityops.cases.transitions import transitions
from cityops.cases.workflow_rules import CASE_MACHINE
from cityops.errors import InvalidInput, Problem
from cityops.lifecycle import Context, Transition
from cityops.security import scope
from cityops.security.principal import Principal

BUCKETS: list[dict[str, Any]] = list(ref.WORKFLOW.get("inbox", []))
BUCKET_KEYS = tuple(b["key"] for b in BUCKETS)


def _json_set(col: Any) -> ColumnElement[bool]:
    # a JSON column set to None by the ORM holds JSON 'null', not SQL NULL
    return and_(col.is_not(None), func.coalesce(cast(col, String), "null") != "null")


def _trusted_sql(session: Session) -> ColumnElement[bool]:
    return Case.source.in_(list(ref.policy(session).get("trusted_sources", [])) or ["-"])


GUARD_SQL: dict[str, Callable[[Session], ColumnElement[bool]]] = {
    "at_intake": lambda s: false(),
    "trusted_source": _trusted_sql,
    "verified_valid": lambda s: Case.verification_result == "valid",
    "inspection_passed": lambda s: Case.inspection_result == "pass",
    "inspection_failed": lambda s: Case.inspection_result == "fail",
    "extension_pending": lambda s: _json_set(Case.extension_pending),
    "no_extension_pending": lambda s: ~_json_set(Case.extension_pending),
}


def _department_sql(t: Transition, principal: Principal) -> ColumnElement[bool]:
    need = t.extra.get("department")
    if need is None or principal.kind == "system":
        return true()
    dept = principal.department_code
    if not dept:
        return false()
    if need == "lead":
        return Case.lead_department_code == dept
    return Case.id.in_(select(CaseDepartment.case_id).where(CaseDepartment.department_code == dept,
                                                            CaseDepartment.role == "co",
                                                            CaseDepartment.released_at.is_(None)))


def _row_sql(session: Session, principal: Principal, t: Transition) -> tuple[ColumnElement[bool], bool]:
    """(SQL for the cases this row applies to for ``principal``, whether the guard is left to Python)."""
    conds = [Case.state == t.from_state, _department_sql(t, principal)]
    python_guard = False
    if t.guard is not None:
        if t.guard in GUARD_SQL:
            conds.append(GUARD_SQL[t.guard](session))
        else:
            python_guard = True
    return and_(*conds), python_guard


def bucket_rows(session: Session, principal: Principal, bucket: dict[str, Any]) -> list[Transition]:
    """The rows of the table in force behind ``bucket`` that the principal's roles may take."""
    table = transitions(session)
    states = set(bucket.get("states") or [])
    return [t for (frm, action), t in table.transitions.items()
            if action == bucket["action"] and (not states or frm in states) and table.role_ok(principal, t)]


def _python_ok(session: Session, principal: Principal, t: Transition, case: Case) -> bool:
    ctx = Context(session, principal, case, None, sla.now(), extra={"machine": "case"})
    ctx.transition = t
    return bool(CASE_MACHINE.guards[t.guard or ""].fn(ctx))


def _where(session: Session, principal: Principal, rows: list[Transition]) -> tuple[ColumnElement[bool], list[Transition]]:
    parts, py = [], []
    for t in rows:
        cond, python_guard = _row_sql(session, principal, t)
        if python_guard:
            py.append(t)
        else:
            parts.append(cond)
    return (or_(*parts) if parts else false()), py


def inbox(session: Session, principal: Principal, *, bucket: str | None = None, area: str | None = None,
          limit: int = 50, lang: str = "zh", now: dt.datetime | None = None, case_id: int | None = None
          ) -> dict[str, Any]:
    """The principal's buckets with their counts (every bucket the roles allow, also empty ones), and
    the cases of ``bucket`` (or of the bucket that holds ``case_id``, or of the first non-empty
    bucket), oldest report first."""
    if bucket is not None and bucket not in BUCKET_KEYS:
        raise InvalidInput([Problem(f"未知待办箱 unknown bucket {bucket!r}; buckets: {', '.join(BUCKET_KEYS)}",
                                    ["query", "bucket"])])
    if area is not None and (not area.isdigit() or len(area) not in (6, 9, 12, 15)):
        raise InvalidInput([Problem("area 应为 6/9/12/15 位区划代码 must be an area code", ["query", "area"])])
    now = now or sla.now()
    base = [scope.clause(principal, CASE_SCOPE)]
    if area and len(area) > 6:
        base.append(area_filter(area))
    out: list[dict[str, Any]] = []
    wheres: dict[str, tuple[ColumnElement[bool], list[Transition]]] = {}
    for b in BUCKETS:
        rows = bucket_rows(session, principal, b)
        if not rows:
            continue
        where, py = _where(session, principal, rows)
        wheres[b["key"]] = (where, py)
        n = int(session.scalar(select(func.count()).select_from(Case).where(*base, where)) or 0)
        red = int(session.scalar(select(func.count()).select_from(Case).where(*base, where, Case.due_at <= now)) or 0)
        for t in py:  # guards without SQL: one case at a time
            cond, _ = _row_sql(session, principal, t)
            for c in session.scalars(select(Case).where(*base, cond)):
                if _python_ok(session, principal, t, c):
                    n += 1
                    red += 1 if c.due_at is not None and c.due_at <= now else 0
        out.append({"key": b["key"], "action": b["action"], "label": b["en"] if lang == "en" else b["zh"],
                    "action_label": CASE_MACHINE.actions.get(b["action"], {}).get("en" if lang == "en" else "zh",
                                                                                  b["action"]),
                    "count": n, "overdue": red})
    if bucket is None and case_id is not None:  # where the case one just acted on waits for this account now
        bucket = next((k for k, (where, _py) in wheres.items() if session.scalar(
            select(func.count()).select_from(Case).where(*base, where, Case.id == case_id))), None)
    chosen = bucket or next((b["key"] for b in out if b["count"]), out[0]["key"] if out else None)
    items: list[dict[str, Any]] = []
    if chosen in wheres:
        where, py = wheres[chosen]
        cases = list(session.scalars(select(Case).where(*base, where)
                                     .order_by(Case.reported_at.asc(), Case.id.asc()).limit(limit)))
        for t in py:
            cond, _ = _row_sql(session, principal, t)
            cases += [c for c in session.scalars(select(Case).where(*base, cond).limit(limit))
                      if _python_ok(session, principal, t, c)]
            cases.sort(key=lambda c: (c.reported_at, c.id))
            cases = cases[:limit]
        items = [item(session, c, now, lang) for c in cases]
    action = next((b["action"] for b in out if b["key"] == chosen), None)
    spec = next((b for b in BUCKETS if b["key"] == chosen), {})
    also = [{"action": a, "label": CASE_MACHINE.actions.get(a, {}).get("en" if lang == "en" else "zh", a)}
            for a in spec.get("also", []) if a in CASE_MACHINE.actions]
    return {"buckets": out, "bucket": chosen, "action": action, "also": also, "items": items, "focus": case_id,
            "total": sum(b["count"] for b in out), "at": now.isoformat()}


def item(session: Session, c: Case, now: dt.datetime, lang: str = "zh") -> dict[str, Any]:
    """A case as a line of an inbox or an overdue list: number, what, where, SLA, owner."""
    depts = ref.departments(session)
    names = places.area_names(session)
    cat = ref.category_by_id(session, c.category_id)
    owner = c.lead_department_code
    due = c.due_at
    return {
        "id": c.id, "case_no": c.case_no, "title": c.title, "address": c.address,
        "category": (cat.name_en or cat.name_zh) if lang == "en" else cat.name_zh,
        "state": c.state, "state_label": CASE_MACHINE.state_label(c.state) if lang != "en"
        else str(ref.STATES.get(c.state, {}).get("en", c.state)),
        "sla": sla.sla_of(due, c.yellow_at, now) if c.state in ref.OPEN_STATES else "none",
        "sla_step": c.sla_step, "due_at": due.isoformat() if due else None,
        "overdue_min": int((now - due).total_seconds() // 60) if due is not None and due <= now else None,
        "remaining_min": int((due - now).total_seconds() // 60) if due is not None and due > now else None,
        "reported_at": c.reported_at.isoformat() if c.reported_at else None,
        "owner_code": owner,
        "owner": ((depts[owner].name_en or depts[owner].name) if lang == "en" else depts[owner].name)
        if owner and owner in depts else None,
        "street_code": c.street_code, "street_name": names.get(c.street_code, c.street_code),
        "community_name": names.get(c.community_code, c.community_code), "urgency": c.urgency,
    }


def missing_actions(session: Session, principal: Principal, case: Case, lang: str = "zh") -> list[dict[str, Any]]:
    """The actions the principal's roles may take somewhere in the table but not on ``case`` now, each
    with why: another state first (naming the states it is taken from), the guard's text, or the
    department rule. Oversight actions (督办/催办) and housekeeping (作废, 合并, 挂账) are left out."""
    table = transitions(session)
    ctx = Context(session, principal, case, None, sla.now(), extra={"machine": "case"})
    allowed = {t.action for t in table.allowed(ctx)}
    mine: dict[str, list[Transition]] = {}
    for (_frm, action), t in table.transitions.items():
        if table.role_ok(principal, t):
            mine.setdefault(action, []).append(t)
    wanted = [b["action"] for b in BUCKETS]
    # states a few steps ahead of the case (hints about earlier steps or far-off ones are noise)
    ahead, frontier = {case.state}, {case.state}
    for _ in range(2):
        frontier = {t.to_state for (frm, _a), t in table.transitions.items()
                    if frm in frontier and t.to_state and t.to_state != "@previous"} - ahead
        ahead |= frontier
    out = []
    en = lang == "en"
    for action in wanted:
        if action in allowed or action not in mine:
            continue
        label = CASE_MACHINE.actions.get(action, {}).get("en" if en else "zh", action)
        here = next((t for t in mine[action] if t.from_state == case.state), None)
        if here is None:
            if not any(t.from_state in ahead for t in mine[action]):
                continue
            states = [CASE_MACHINE.state_label(t.from_state) if not en else
                      str(ref.STATES.get(t.from_state, {}).get("en", t.from_state)) for t in mine[action]]
            why = (f"{label} is taken from: {', '.join(states)}" if en else
                   f"「{label}」须在以下状态执行：{'、'.join(states)}（当前：{CASE_MACHINE.state_label(case.state)}）")
            if action == "register" and case.state in ("accepted", "verifying"):
                why = ("public and hotline reports must be verified on site first" if en
                       else "公众/热线上报须先核实（派发核实 → 核实）再立案")
        else:
            ctx.transition = here
            who = table.machine.actor_check(ctx) if table.machine.actor_check and principal.kind != "system" else None
            if who:
                why = who
            elif here.guard is not None and not table.machine.guards[here.guard].fn(ctx):
                why = table.machine.guards[here.guard].text
            else:
                continue
        out.append({"action": action, "label": label, "why": why})
    return out


__all__ = ["BUCKETS", "inbox", "item", "missing_actions", "bucket_rows"]
