"""The transition table of the case workflow, as data: the shipped table (``data/workflow.json``)
unless a 目录管理员 replaced it (rows of ``case_transition``). Either is validated by the workflow's
machine (``workflow_rules.CASE_MACHINE``): a row naming an unknown state, action, guard,
requirement, effect or step is refused naming it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cityops.cases import reference as ref
from cityops.cases.models import Transition
from cityops.cases.workflow_rules import CASE_MACHINE, steps
from cityops.lifecycle import Table
from cityops.lifecycle import Transition as Row
from cityops.security import audit
from cityops.security.principal import Principal

DEFAULT_TABLE = CASE_MACHINE.table(ref.WORKFLOW["transitions"], loc=["workflow.json", "transitions"],
                                   version=ref.WORKFLOW.get("version"))
COLUMNS = ("department", "start_steps", "finish_steps", "cancel_steps")


def _row_dict(r: Transition) -> dict[str, Any]:
    return {"from": r.from_state, "action": r.action, "to": r.to_state, "roles": r.roles, "permission": r.permission,
            "required": r.required, "guard": r.guard, "department": r.department, "start_steps": r.start_steps,
            "finish_steps": r.finish_steps, "cancel_steps": r.cancel_steps, "effects": r.effects}


def transitions(session: Session) -> Table:
    """The table in force (cached for a few seconds per process, dropped at once on replace)."""
    def load() -> Table:
        rows = list(session.scalars(select(Transition).order_by(Transition.sort, Transition.id)))
        if not rows:
            return DEFAULT_TABLE
        return CASE_MACHINE.table([_row_dict(r) for r in rows], loc=["case_transition"])

    table: Table = ref.CACHE.get(session, "transitions", load)
    return table


def transition_out(t: Row) -> dict[str, Any]:
    out = t.out(CASE_MACHINE)
    for k in COLUMNS:
        out[k] = t.extra.get(k) if k == "department" else list(steps(t, k))
    return out


def replace_transitions(session: Session, principal: Principal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the table (all or nothing; every problem named)."""
    table = CASE_MACHINE.table(rows, loc=["body"])
    session.execute(delete(Transition))
    for i, t in enumerate(table.transitions.values()):
        session.add(Transition(from_state=t.from_state, action=t.action, to_state=t.to_state, roles=sorted(t.roles),
                               permission=t.permission, required=list(t.required), guard=t.guard,
                               department=t.extra.get("department"), start_steps=list(steps(t, "start_steps")),
                               finish_steps=list(steps(t, "finish_steps")),
                               cancel_steps=list(steps(t, "cancel_steps")), effects=list(t.effects), sort=i))
    session.flush()
    audit.record(session, principal, "transition.replace", "case_transition", None, detail={"rows": len(rows)})
    ref.CACHE.drop(session, "transitions")
    return [transition_out(t) for t in transitions(session).transitions.values()]


def self_handle_allowed(session: Session, principal: Principal) -> str | None:
    """Why ``principal`` may not record a report as fixed on the spot (自行处置), or None: the table's
    ``reported -> self_handle`` row decides, like every other action."""
    t = transitions(session).transitions.get(("reported", "self_handle"))
    if t is None:
        return "转换表不允许自行处置 the transition table has no self_handle"
    if principal.kind != "system" and not (principal.can(t.permission) and (not t.roles or principal.roles & t.roles)):
        return f"自行处置须由以下角色执行 self_handle needs one of: {', '.join(sorted(t.roles)) or t.permission}"
    return None


__all__ = ["self_handle_allowed", "DEFAULT_TABLE", "transitions", "transition_out", "replace_transitions"]
