"""The case state machine: actions checked against the transition table (data), applied with
their effects (assignment, routing record, SLA steps, extension, suspension, merge ...), one
timeline row each, an outbox event and an audit row, in one transaction.

An action that the table does not allow in the current state is HTTP 409 naming the state and
the actions the principal may take now; a role that may not take it is 403; missing fields
(reason, photos, department ...) are 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from cityops.cases import reference as ref
from cityops.cases import schemas, sla
from cityops.cases.intake import check_media
from cityops.cases.models import (
    Case,
    CaseDepartment,
    CaseEvent,
    CaseReport,
    CaseStep,
    Media,
    RoutingDecision,
    case_no,
    parse_case_no,
    table,
)
from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.security import audit
from cityops.security.principal import Principal

STAMPS = {
    "accepted": "accepted_at", "verifying": "verifying_at", "verified": "verified_at", "registered": "registered_at",
    "not_registered": "not_registered_at", "dispatched": "dispatched_at", "acknowledged": "acknowledged_at",
    "sent_back": "sent_back_at", "handled": "handled_at", "inspecting": "inspecting_at", "inspected": "inspected_at",
    "closed": "closed_at", "evaluated": "evaluated_at", "suspended": "suspended_at", "voided": "voided_at",
}
GUARD_TEXT = {
    "trusted_source": "公众/热线上报须先核实 public and hotline reports must be verified on site first (request_verification)",
    "verified_valid": "核实结果为无效，不能立案 the verification found the report invalid",
    "inspection_passed": "核查未通过，只能返工 the inspection failed: rework",
    "inspection_failed": "核查已通过，应结案 the inspection passed: close",
    "extension_pending": "没有待审批的延期申请 no extension request is pending",
    "no_extension_pending": "已有待审批的延期申请 an extension request is already pending",
}


def case_scope_ok(principal: Principal) -> bool:
    return principal.kind == "system" or principal.area_code is not None or principal.department_code is not None


def active_departments(session: Session, case_id: int) -> list[CaseDepartment]:
    return list(session.scalars(select(CaseDepartment).where(CaseDepartment.case_id == case_id,
                                                             CaseDepartment.released_at.is_(None))
                                .order_by(CaseDepartment.role.desc(), CaseDepartment.id)))


def _guard_ok(session: Session, guard: str | None, case: Case) -> bool:
    if guard is None:
        return True
    if guard == "trusted_source":
        return case.source in ref.policy(session).get("trusted_sources", [])
    if guard == "verified_valid":
        return case.verification_result == "valid"
    if guard == "inspection_passed":
        return case.inspection_result == "pass"
    if guard == "inspection_failed":
        return case.inspection_result == "fail"
    if guard == "extension_pending":
        return case.extension_pending is not None
    if guard == "no_extension_pending":
        return case.extension_pending is None
    return False


def _role_ok(principal: Principal, t: ref.TransitionInfo) -> bool:
    if principal.kind == "system":
        return True
    return principal.can(t.permission) and bool(principal.roles & t.roles)


def _dept_ok(session: Session, principal: Principal, t: ref.TransitionInfo, case: Case) -> bool:
    if principal.kind == "system" or t.department is None:
        return True
    if not principal.department_code:
        return False
    if t.department == "lead":
        return case.lead_department_code == principal.department_code
    return any(d.department_code == principal.department_code and d.role == "co"
               for d in active_departments(session, case.id))


def allowed_actions(session: Session, principal: Principal, case: Case) -> list[dict[str, Any]]:
    """The actions ``principal`` may take on ``case`` now (role, department and guard checked)."""
    out = []
    for (frm, action), t in ref.transitions(session).items():
        if frm != case.state:
            continue
        if _role_ok(principal, t) and _dept_ok(session, principal, t, case) and _guard_ok(session, t.guard, case):
            label = ref.ACTIONS.get(action, {})
            out.append({"action": action, "label": label.get("zh", action), "label_en": label.get("en", action),
                        "to_state": case.prev_state if t.to_state == "@previous" else (t.to_state or case.state),
                        "required": list(t.required), "guard": t.guard})
    return out


def _require(session: Session, t: ref.TransitionInfo, case: Case, body: schemas.ActionIn) -> None:
    probs: list[Problem] = []
    for f in t.required:
        if f == "reason" and not (body.reason and body.reason.strip()):
            probs.append(Problem(f"{t.action} 需填写原因 needs a reason", ["body", "reason"]))
        elif f == "note" and not ((body.note and body.note.strip()) or (body.reason and body.reason.strip())):
            probs.append(Problem(f"{t.action} 需填写意见 needs a note", ["body", "note"]))
        elif f == "photos" and not body.photos:
            probs.append(Problem(f"{t.action} 需上传现场照片 needs photos (media ids)", ["body", "photos"]))
        elif f == "department_code" and not body.department_code:
            probs.append(Problem(f"{t.action} 需指定主办部门 needs department_code", ["body", "department_code"]))
        elif f == "result":
            want = ("valid", "invalid") if t.action == "verify" else ("pass", "fail")
            if body.result not in want:
                probs.append(Problem(f"{t.action} needs result {' or '.join(want)}", ["body", "result"]))
        elif f == "satisfaction" and body.satisfaction is None:
            probs.append(Problem("evaluate needs satisfaction (satisfied / basically_satisfied / unsatisfied)",
                                 ["body", "satisfaction"]))
        elif f == "extension" and body.extension is None:
            probs.append(Problem("request_extension needs extension {value, unit}", ["body", "extension"]))
        elif f == "target_case" and not body.target_case:
            probs.append(Problem("merge needs target_case", ["body", "target_case"]))
    probs += check_media(session, body.photos, ["body", "photos"])
    if body.department_code or body.co_department_codes:
        depts = ref.departments(session)
        if body.department_code and (body.department_code not in depts or not depts[body.department_code].active):
            probs.append(Problem(f"unknown or inactive department {body.department_code!r}", ["body", "department_code"]))
        for i, c in enumerate(body.co_department_codes):
            if c not in depts or not depts[c].active:
                probs.append(Problem(f"unknown or inactive department {c!r}", ["body", "co_department_codes", i]))
            elif c == body.department_code:
                probs.append(Problem("a co-handler cannot also be the lead department", ["body", "co_department_codes", i]))
        if len(set(body.co_department_codes)) != len(body.co_department_codes):
            probs.append(Problem("co-handling departments repeat", ["body", "co_department_codes"]))
    if probs:
        raise InvalidInput(probs)


def _state_label(s: str | None) -> str:
    return ref.STATES.get(s or "", {}).get("zh", s or "")


def illegal(case: Case, action: str, allowed: list[dict[str, Any]]) -> Conflict:
    names = [a["action"] for a in allowed]
    msg = (f"案件当前状态为「{_state_label(case.state)}」({case.state})，不能执行「{ref.ACTIONS.get(action, {}).get('zh', action)}」"
           f"({action})；当前可执行: {', '.join(names) or '无'}. Action {action} is not allowed in state {case.state}; "
           f"allowed now: {', '.join(names) or 'none'}")
    return Conflict([Problem(msg, ["path", "action"], "illegal_transition",
                             {"state": case.state, "allowed_actions": names})],
                    state=case.state, allowed_actions=names)


def _start(session: Session, case: Case, cat: ref.CategoryInfo, steps: tuple[str, ...], at: dt.datetime) -> None:
    for step in steps:
        n = session.scalar(select(CaseStep.id).where(CaseStep.case_id == case.id, CaseStep.step == step)
                           .order_by(CaseStep.id.desc()).limit(1))
        rnd = 1 if n is None else int(session.scalar(select(CaseStep.round).where(CaseStep.id == n)) or 0) + 1
        dept = case.lead_department_code if step in ("acknowledge", "handle") else None
        sla.start_step(session, case.id, cat, step, case.urgency, at, department_code=dept, round_=rnd)


def _assign(session: Session, principal: Principal, case: Case, body: schemas.ActionIn, at: dt.datetime,
            action: str) -> None:
    for d in active_departments(session, case.id):
        d.released_at = at
    lead = body.department_code
    assert lead is not None
    session.add(CaseDepartment(case_id=case.id, department_code=lead, role="lead", assigned_at=at,
                               assigned_by=principal.username))
    for c in body.co_department_codes:
        session.add(CaseDepartment(case_id=case.id, department_code=c, role="co", assigned_at=at,
                                   assigned_by=principal.username))
    proposal = _proposal(session, case)
    overridden = (lead != proposal.department_code) or (sorted(body.co_department_codes) != sorted(proposal.co_department_codes))
    session.add(RoutingDecision(case_id=case.id, at=at, action=action, rule=proposal.rule,
                                explanation=proposal.explanation[:300], proposed_department_code=proposal.department_code,
                                proposed_co_codes=list(proposal.co_department_codes), chosen_department_code=lead,
                                chosen_co_codes=list(body.co_department_codes), overridden=overridden,
                                actor=principal.username, note=body.reason or body.note))
    case.lead_department_code = lead


def _proposal(session: Session, case: Case) -> ref.RouteProposal:
    cat = ref.category_by_id(session, case.category_id)
    return ref.propose_route(session, cat, case.grid_code, case.street_code)


def _resolve_target(session: Session, principal: Principal, case: Case, ref_: str) -> Case:
    from cityops.cases.queries import get_case

    target = get_case(session, principal, ref_)
    if target.id == case.id:
        raise InvalidInput([Problem("a case cannot be merged into itself", ["body", "target_case"])])
    if target.state not in ref.OPEN_STATES:
        raise InvalidInput([Problem(f"case {target.case_no} is not open ({target.state})", ["body", "target_case"])])
    return target


def _notify_dept(session: Session, case: Case, dept: str | None, role: str, title: str, body: str,
                 severity: str = "info") -> None:
    if dept:
        jobs.notify(session, role=role, department_code=dept, title=title[:200], body=body, link=f"/cases/{case.id}",
                    severity=severity)
    else:
        jobs.notify(session, role="shift_lead", area_code=case.street_code, title=title[:200], body=body,
                    link=f"/cases/{case.id}", severity=severity)


def perform(session: Session, principal: Principal, case: Case, action: str, body: schemas.ActionIn,
            at: dt.datetime | None = None) -> Case:
    """Apply ``action`` to ``case`` (already scoped for ``principal``). Does not commit."""
    at = at or sla.now()
    if action not in ref.ACTIONS:
        raise NotFound([Problem(f"unknown action {action!r}; actions: {', '.join(ref.ACTIONS)}", ["path", "action"],
                                "not_found")])
    if body.expected_version is not None and body.expected_version != case.version:
        raise Conflict([Problem(f"案件已被他人修改 the case changed (version {case.version}, you saw "
                                f"{body.expected_version}); reload and retry", ["body", "expected_version"], "stale")])
    t = ref.transitions(session).get((case.state, action))
    if t is None:
        raise illegal(case, action, allowed_actions(session, principal, case))
    if not _role_ok(principal, t):
        raise Forbidden([Problem(f"「{ref.ACTIONS[action]['zh']}」须由以下角色执行 {action} needs one of the roles: "
                                 f"{', '.join(sorted(t.roles))}", ["principal", "roles"], "forbidden")])
    if not _dept_ok(session, principal, t, case):
        who = "主办部门 the lead department" if t.department == "lead" else "协办部门 a co-handling department"
        raise Forbidden([Problem(f"{action} 只能由{who}执行 can only be taken by {who}", ["principal", "department_code"],
                                 "forbidden")])
    if not _guard_ok(session, t.guard, case):
        allowed = allowed_actions(session, principal, case)
        raise Conflict([Problem(f"{action}: {GUARD_TEXT.get(t.guard or '', t.guard)}", ["path", "action"], "guard",
                                {"state": case.state, "allowed_actions": [a["action"] for a in allowed]})],
                       state=case.state, allowed_actions=[a["action"] for a in allowed])
    _require(session, t, case, body)
    cat = ref.category_by_id(session, case.category_id)
    from_state = case.state
    to_state = case.prev_state if t.to_state == "@previous" else (t.to_state or case.state)
    data: dict[str, Any] = {}
    effects = set(t.effects)
    target: Case | None = None

    # ---- effects before the state change
    if action == "verify":
        case.verification_result = body.result
        data["result"] = body.result
    if action == "inspect":
        case.inspection_result = body.result
        data["result"] = body.result
    if action == "evaluate":
        case.satisfaction = body.satisfaction
        data["satisfaction"] = body.satisfaction
    if "merge" in effects:
        target = _resolve_target(session, principal, case, body.target_case or "")
        case.duplicate_of_id = target.id
        data["merged_into"] = target.id
    if "propose_route" in effects:
        p = _proposal(session, case)
        case.proposed_department_code = p.department_code
        session.add(RoutingDecision(case_id=case.id, at=at, action="register", rule=p.rule, explanation=p.explanation[:300],
                                    proposed_department_code=p.department_code, proposed_co_codes=list(p.co_department_codes),
                                    actor=principal.username))
        data["proposed_department_code"] = p.department_code
        data["proposed_co_department_codes"] = list(p.co_department_codes)
    if "release" in effects:
        for d in active_departments(session, case.id):
            d.released_at = at
        data["department_code"] = case.lead_department_code
        case.lead_department_code = None
        case.sendback_count += 1
    if "assign" in effects:
        _assign(session, principal, case, body, at, action)
        data["department_code"] = body.department_code
        data["co_department_codes"] = list(body.co_department_codes)
    if "rework" in effects:
        case.rework_count += 1
        case.inspection_result = None
        data["department_code"] = case.lead_department_code
    if "reopen" in effects:
        case.reopen_count += 1
        case.reopened_at = at
        case.closed_at = None
        case.evaluated_at = None
        case.inspection_result = None
        for d in active_departments(session, case.id):
            d.released_at = at
        case.lead_department_code = None
    if "extension_request" in effects:
        assert body.extension is not None
        case.extension_pending = {"value": body.extension.value, "unit": body.extension.unit, "reason": body.reason,
                                  "by": principal.username, "at": at.isoformat()}
        data["extension"] = case.extension_pending
    if "extension_approve" in effects:
        ext = dict(case.extension_pending or {})
        s = sla.extend_step(session, case.id, "handle", float(ext["value"]), str(ext["unit"]))
        case.extension_pending = None
        case.extension_count += 1
        data["extension"] = ext | {"new_due_at": s.due_at.isoformat() if s else None}
    if "extension_reject" in effects:
        data["extension"] = case.extension_pending
        case.extension_pending = None
    if "co_feedback" in effects:
        for d in active_departments(session, case.id):
            if d.department_code == principal.department_code and d.role == "co":
                d.feedback_at = at
    if "oversee" in effects or "chase" in effects:
        case.oversee_count += 1
    if "pause" in effects:
        case.prev_state = case.state
        sla.pause_steps(session, case.id, at)
    if "resume" in effects:
        sla.resume_steps(session, case.id, at)
        case.prev_state = None
    if not to_state:
        raise Conflict([Problem("nothing to resume to", ["path", "action"], "conflict")])

    # ---- steps
    if t.cancel_steps:
        sla.close_steps(session, case.id, t.cancel_steps, at, status="cancelled")
    if t.finish_steps:
        sla.close_steps(session, case.id, t.finish_steps, at, status="done")
    case.state = to_state
    if to_state in STAMPS and to_state != from_state:
        setattr(case, STAMPS[to_state], at)
    if action == "reassign" and to_state == "dispatched":
        case.dispatched_at = at
    if action == "rework":
        case.dispatched_at = at
    if to_state in ("voided", "not_registered") and from_state != to_state:
        for d in active_departments(session, case.id):
            d.released_at = at
    case.updated_at = at
    session.flush()
    if t.start_steps:
        _start(session, case, cat, t.start_steps, at)
    got = sla.refresh_case_sla_values(session, case.id)
    case.sla_step, case.due_at, case.yellow_at = got

    # ---- timeline, side effects, audit
    if body.co_department_codes and "assign" not in effects:
        data["co_department_codes"] = list(body.co_department_codes)
    session.add(CaseEvent(case_id=case.id, at=at, actor=principal.username, actor_account_id=principal.account_id,
                          actor_roles=principal.role_label()[:200], department_code=principal.department_code,
                          action=action, from_state=from_state, to_state=to_state, note=body.note, reason=body.reason,
                          data=data, attachments=list(body.photos)))
    if body.photos:
        session.execute(update(table(Media)).where(table(Media).c.id.in_(body.photos),
                                                      table(Media).c.case_id.is_(None)).values(case_id=case.id))
    no = case_no(case.id, case.reported_at)
    if target is not None:
        moved = session.execute(update(table(CaseReport)).where(table(CaseReport).c.case_id == case.id)
                                .values(case_id=target.id, is_primary=False)).rowcount  # type: ignore[attr-defined]
        target.reporter_count += case.reporter_count
        session.add(CaseEvent(case_id=target.id, at=at, actor=principal.username, actor_account_id=principal.account_id,
                              actor_roles=principal.role_label()[:200], action="merge_in", from_state=target.state,
                              to_state=target.state, note=body.note, reason=body.reason,
                              data={"merged_case": case.id, "merged_case_no": no, "reports": moved}, attachments=[]))
    if action in ("dispatch", "reassign", "rework"):
        sev = "urgent" if case.urgency != "normal" else "info"
        verb = {"dispatch": "新派遣", "reassign": "改派", "rework": "返工"}[action]
        _notify_dept(session, case, case.lead_department_code, "dept_handler", f"{verb}案件 {no}：{case.title}",
                     f"{cat.name_zh}｜{case.address or ''}", sev)
        for c in body.co_department_codes:
            _notify_dept(session, case, c, "dept_handler", f"协办案件 {no}：{case.title}", cat.name_zh, sev)
        if case.urgency in ("urgent", "critical") and action in ("dispatch", "reassign"):
            sla.escalate(session, {"id": case.id, "case_no": no, "title": case.title, "urgency": case.urgency,
                                   "state": case.state, "lead_department_code": case.lead_department_code,
                                   "street_code": case.street_code, "community_code": case.community_code,
                                   "grid_code": case.grid_code}, "urgent_dispatched", at,
                         key_suffix=case.lead_department_code)
    elif action == "send_back":
        jobs.notify(session, role="dispatcher", area_code=case.street_code, title=f"退单待改派 {no}：{case.title}"[:200],
                    body=body.reason or "", link=f"/cases/{case.id}", severity="warning")
    elif action in ("oversee", "chase"):
        verb = "督办" if action == "oversee" else "催办"
        _notify_dept(session, case, case.lead_department_code, "dept_leader" if action == "oversee" else "dept_handler",
                     f"{verb}：案件 {no}（{_state_label(case.state)}）", body.note or body.reason or case.title,
                     "urgent" if action == "oversee" else "warning")
    elif action == "request_extension":
        jobs.notify(session, role="shift_lead", area_code=case.street_code, title=f"延期申请 {no}"[:200],
                    body=body.reason or "", link=f"/cases/{case.id}", severity="warning")
    jobs.enqueue(session, "case.transition", {
        "case_id": case.id, "case_no": no, "action": action, "from_state": from_state, "to_state": to_state,
        "actor": principal.username, "at": at, "street_code": case.street_code, "grid_code": case.grid_code,
        "lead_department_code": case.lead_department_code, "category_code": case.category_code})
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


__all__ = ["perform", "allowed_actions", "active_departments", "steps_of", "insert"]
