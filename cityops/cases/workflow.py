"""The case state machine: an action is decided by the transition table (data, validated by
``workflow_rules.CASE_MACHINE``) and applied as a dispatch over the row's effects, with its SLA
steps, one timeline row, an outbox event and an audit row, in the caller's transaction.

An action that the table does not allow in the current state is HTTP 409 naming the state and the
actions the principal may take now; a role that may not take it is 403 (also the department rule:
lead / co); a guard that does not hold is 409 with the guard's text; missing fields (reason,
photos, department ...) are 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from cityops.cases import reference as ref
from cityops.cases import schemas, sla
from cityops.cases.intake import check_media
from cityops.cases.models import Case, CaseEvent, CaseStep, Media, case_no, parse_case_no, table
from cityops.cases.queries import active_departments
from cityops.cases.transitions import transitions
from cityops.cases.workflow_rules import after_effects, steps
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.lifecycle import Context, Transition
from cityops.security import audit
from cityops.security.principal import Principal

STAMPS = {
    "accepted": "accepted_at", "verifying": "verifying_at", "verified": "verified_at", "registered": "registered_at",
    "not_registered": "not_registered_at", "dispatched": "dispatched_at", "acknowledged": "acknowledged_at",
    "sent_back": "sent_back_at", "handled": "handled_at", "inspecting": "inspecting_at", "inspected": "inspected_at",
    "closed": "closed_at", "evaluated": "evaluated_at", "suspended": "suspended_at", "voided": "voided_at",
}


def case_scope_ok(principal: Principal) -> bool:
    return principal.kind == "system" or principal.area_code is not None or principal.department_code is not None


def _context(session: Session, principal: Principal, case: Case, body: schemas.ActionIn | None = None,
             at: dt.datetime | None = None) -> Context:
    return Context(session, principal, case, body if body is not None else schemas.ActionIn(), at or sla.now(),
                   extra={"machine": "case"})


def allowed_actions(session: Session, principal: Principal, case: Case) -> list[dict[str, Any]]:
    """The actions ``principal`` may take on ``case`` now (role, department and guard checked)."""
    return [{"action": d["action"], "label": d["label"], "label_en": d["label_en"], "to_state": d["to_state"],
             "required": d["required"], "guard": d["guard"]}
            for d in transitions(session).allowed_out(_context(session, principal, case))]


def _check_body(session: Session, body: schemas.ActionIn) -> None:
    """Media and departments named in the request exist (every problem named)."""
    probs: list[Problem] = check_media(session, body.photos, ["body", "photos"])
    if body.department_code or body.co_department_codes:
        depts = ref.departments(session)
        if body.department_code and (body.department_code not in depts or not depts[body.department_code].active):
            probs.append(Problem(f"未知或已停用的部门 unknown or inactive department {body.department_code!r}",
                                 ["body", "department_code"]))
        for i, c in enumerate(body.co_department_codes):
            if c not in depts or not depts[c].active:
                probs.append(Problem(f"未知或已停用的部门 unknown or inactive department {c!r}",
                                     ["body", "co_department_codes", i]))
            elif c == body.department_code:
                probs.append(Problem("协办部门不能同时为主办 a co-handler cannot also be the lead department",
                                     ["body", "co_department_codes", i]))
        if len(set(body.co_department_codes)) != len(body.co_department_codes):
            probs.append(Problem("协办部门重复 co-handling departments repeat", ["body", "co_department_codes"]))
    if probs:
        raise InvalidInput(probs)


def _start(session: Session, case: Case, cat: ref.CategoryInfo, names: tuple[str, ...], at: dt.datetime) -> None:
    for step in names:
        n = session.scalar(select(CaseStep.id).where(CaseStep.case_id == case.id, CaseStep.step == step)
                           .order_by(CaseStep.id.desc()).limit(1))
        rnd = 1 if n is None else int(session.scalar(select(CaseStep.round).where(CaseStep.id == n)) or 0) + 1
        dept = case.lead_department_code if step in ("acknowledge", "handle") else None
        sla.start_step(session, case.id, cat, step, case.urgency, at, department_code=dept, round_=rnd)


def _steps_and_stamps(session: Session, case: Case, t: Transition, from_state: str, to_state: str,
                      at: dt.datetime) -> None:
    """The SLA steps the row finishes, cancels and starts, and the time stamp of the new state."""
    if steps(t, "cancel_steps"):
        sla.close_steps(session, case.id, steps(t, "cancel_steps"), at, status="cancelled")
    if steps(t, "finish_steps"):
        sla.close_steps(session, case.id, steps(t, "finish_steps"), at, status="done")
    if to_state in STAMPS and to_state != from_state:
        setattr(case, STAMPS[to_state], at)
    case.updated_at = at
    session.flush()
    if steps(t, "start_steps"):
        _start(session, case, ref.category_by_id(session, case.category_id), steps(t, "start_steps"), at)
    case.sla_step, case.due_at, case.yellow_at = sla.refresh_case_sla_values(session, case.id)


def perform(session: Session, principal: Principal, case: Case, action: str, body: schemas.ActionIn,
            at: dt.datetime | None = None) -> Case:
    """Apply ``action`` to ``case`` (already scoped for ``principal``). Does not commit."""
    if body.expected_version is not None and body.expected_version != case.version:
        raise Conflict([Problem(f"案件已被他人修改 the case changed (version {case.version}, you saw "
                                f"{body.expected_version}); reload and retry", ["body", "expected_version"], "stale")])
    tt = transitions(session)
    ctx = _context(session, principal, case, body, at)
    t = tt.check(ctx, action)  # 404 / 409 / 403 / 422, every problem named
    _check_body(session, body)
    from_state, to_state = tt.apply(ctx, t)  # the row's effects, in order, then the state
    _steps_and_stamps(session, case, t, from_state, to_state, ctx.at)
    after_effects(ctx)  # effects that needed the new state: notifications, escalations, merged reports
    data = ctx.data
    if body.co_department_codes and "co_department_codes" not in data:
        data["co_department_codes"] = list(body.co_department_codes)
    session.add(CaseEvent(case_id=case.id, at=ctx.at, actor=principal.username, actor_account_id=principal.account_id,
                          actor_roles=principal.role_label()[:200], department_code=principal.department_code,
                          action=action, from_state=from_state, to_state=to_state, note=body.note, reason=body.reason,
                          data=data, attachments=list(body.photos)))
    if body.photos:
        mt = table(Media)
        session.execute(update(mt).where(mt.c.id.in_(body.photos), mt.c.case_id.is_(None)).values(case_id=case.id))
    jobs.enqueue(session, "case.transition", {
        "case_id": case.id, "case_no": case_no(case.id, case.reported_at), "action": action, "from_state": from_state,
        "to_state": to_state, "actor": principal.username, "at": ctx.at, "street_code": case.street_code,
        "grid_code": case.grid_code, "lead_department_code": case.lead_department_code,
        "category_code": case.category_code})
    audit.record(session, principal, f"case.{action}", "case", case.id,
                 detail={"from": from_state, "to": to_state, **({"department": data["department_code"]}
                                                                if data.get("department_code") else {})})
    try:
        session.flush()
    except StaleDataError:
        raise Conflict([Problem("案件已被他人同时修改 the case was changed concurrently; reload and retry", ["path", "case"],
                                "stale")])
    session.refresh(case)
    return case


def case_ref_id(value: str) -> int:
    cid = parse_case_no(value)
    if cid is None:
        raise NotFound([Problem(f"no case {value}", ["path", "case"], "not_found")])
    return cid


def steps_of(session: Session, case_id: int) -> list[CaseStep]:
    return list(session.scalars(select(CaseStep).where(CaseStep.case_id == case_id).order_by(CaseStep.id)))


__all__ = ["perform", "allowed_actions", "active_departments", "steps_of"]
