"""The case workflow as a lifecycle machine (``cityops.lifecycle``): the guards, requirements and
effects that rows of the transition table (``data/workflow.json`` or the ``case_transition``
rows) may name. A table naming anything else is refused at load, naming it.

Effects run in the order the row lists them, before the state changes; an effect that must see
the new state (notifications, the escalation of an urgent dispatch, moving a merged case's
reports) schedules itself with ``_later`` and runs after the state change, in the same
transaction (``cityops.cases.workflow.perform``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from cityops.cases import reference as ref
from cityops.cases import sla
from cityops.cases.models import Case, CaseDepartment, CaseEvent, CaseReport, RoutingDecision, case_no, table
from cityops.cases.queries import active_departments, get_case
from cityops.errors import InvalidInput, Problem
from cityops.jobs import service as jobs
from cityops.lifecycle import Context, Machine
from cityops.lifecycle.machine import Guarded, Requirement

STEP_NAMES = (*ref.STEPS, "*")


def _later(ctx: Context, fn: Callable[[Context], None]) -> None:
    ctx.extra.setdefault("after", []).append(fn)


# ---------------------------------------------------------------------------------------------- guards


def _trusted(ctx: Context) -> bool:
    return bool(ctx.obj.source in ref.policy(ctx.session).get("trusted_sources", []))


GUARDS = {
    "at_intake": Guarded(lambda c: bool(c.extra.get("intake")), "只能在上报时自行处置 only when the report is made"),
    "trusted_source": Guarded(_trusted, "公众/热线上报须先核实 public and hotline reports must be verified on site "
                                        "first (request_verification)"),
    "verified_valid": Guarded(lambda c: c.obj.verification_result == "valid",
                              "核实结果为无效，不能立案 the verification found the report invalid"),
    "inspection_passed": Guarded(lambda c: c.obj.inspection_result == "pass",
                                 "核查未通过，只能返工 the inspection failed: rework"),
    "inspection_failed": Guarded(lambda c: c.obj.inspection_result == "fail",
                                 "核查已通过，应结案 the inspection passed: close"),
    "extension_pending": Guarded(lambda c: c.obj.extension_pending is not None,
                                 "没有待审批的延期申请 no extension request is pending"),
    "no_extension_pending": Guarded(lambda c: c.obj.extension_pending is None,
                                    "已有待审批的延期申请 an extension request is already pending"),
}


# ---------------------------------------------------------------------------------------------- requirements


def _text(v: str | None) -> bool:
    return bool(v and v.strip())


def _need(check: Callable[[Any], bool], msg: str, loc: str) -> Requirement:
    def req(ctx: Context) -> list[Problem]:
        return [] if check(ctx.body) else [Problem(f"{ctx.transition.action if ctx.transition else ''} {msg}",
                                                   ["body", loc], "missing")]
    return req


def _result(ctx: Context) -> list[Problem]:
    assert ctx.transition is not None
    want = ("valid", "invalid") if ctx.transition.action == "verify" else ("pass", "fail")
    if ctx.body.result not in want:
        return [Problem(f"{ctx.transition.action} 需填写结果 needs result {' or '.join(want)}", ["body", "result"],
                        "missing")]
    return []


REQUIREMENTS: dict[str, Requirement] = {
    "reason": _need(lambda b: _text(b.reason), "需填写原因 needs a reason", "reason"),
    "note": _need(lambda b: _text(b.note) or _text(b.reason), "需填写意见 needs a note", "note"),
    "photos": _need(lambda b: bool(b.photos), "需上传现场照片 needs photos (media ids)", "photos"),
    "department_code": _need(lambda b: bool(b.department_code), "需指定主办部门 needs department_code",
                             "department_code"),
    "result": _result,
    "satisfaction": _need(lambda b: b.satisfaction is not None,
                          "需填写满意度 needs satisfaction (satisfied / basically_satisfied / unsatisfied)",
                          "satisfaction"),
    "extension": _need(lambda b: b.extension is not None, "需填写延期 needs extension {value, unit}", "extension"),
    "target_case": _need(lambda b: bool(b.target_case), "需指定合并目标 needs target_case", "target_case"),
}


# ---------------------------------------------------------------------------------------------- effects


def _proposal(ctx: Context) -> ref.RouteProposal:
    case = ctx.obj
    return ref.propose_route(ctx.session, ref.category_by_id(ctx.session, case.category_id), case.grid_code,
                             case.street_code)


def _record_verification(ctx: Context) -> None:
    ctx.obj.verification_result = ctx.data["result"] = ctx.body.result


def _record_inspection(ctx: Context) -> None:
    ctx.obj.inspection_result = ctx.data["result"] = ctx.body.result


def _record_satisfaction(ctx: Context) -> None:
    ctx.obj.satisfaction = ctx.data["satisfaction"] = ctx.body.satisfaction


def _merge(ctx: Context) -> None:
    case = ctx.obj
    target = get_case(ctx.session, ctx.principal, ctx.body.target_case or "")
    if target.id == case.id:
        raise InvalidInput([Problem("不能合并到自身 a case cannot be merged into itself", ["body", "target_case"])])
    if target.state not in ref.OPEN_STATES:
        raise InvalidInput([Problem(f"目标案件已办结 case {target.case_no} is not open ({target.state})",
                                    ["body", "target_case"])])
    case.duplicate_of_id = target.id
    ctx.data["merged_into"] = target.id

    def move(c: Context) -> None:
        rt = table(CaseReport)
        moved = c.session.execute(update(rt).where(rt.c.case_id == case.id)
                                  .values(case_id=target.id, is_primary=False)).rowcount  # type: ignore[attr-defined]
        target.reporter_count += case.reporter_count
        p = c.principal
        c.session.add(CaseEvent(case_id=target.id, at=c.at, actor=p.username, actor_account_id=p.account_id,
                                actor_roles=p.role_label()[:200], action="merge_in", from_state=target.state,
                                to_state=target.state, note=c.body.note, reason=c.body.reason,
                                data={"merged_case": case.id, "merged_case_no": case_no(case.id, case.reported_at),
                                      "reports": moved}, attachments=[]))

    _later(ctx, move)


def _propose_route(ctx: Context) -> None:
    p = _proposal(ctx)
    ctx.obj.proposed_department_code = p.department_code
    ctx.session.add(RoutingDecision(case_id=ctx.obj.id, at=ctx.at, action="register", rule=p.rule,
                                    explanation=p.explanation[:300], proposed_department_code=p.department_code,
                                    proposed_co_codes=list(p.co_department_codes), actor=ctx.principal.username))
    ctx.data["proposed_department_code"] = p.department_code
    ctx.data["proposed_co_department_codes"] = list(p.co_department_codes)


def _release(ctx: Context) -> None:
    case = ctx.obj
    for d in active_departments(ctx.session, case.id):
        d.released_at = ctx.at
    ctx.data["department_code"] = case.lead_department_code
    case.lead_department_code = None
    case.sendback_count += 1


def _release_all(ctx: Context) -> None:
    """Voided, not registered, merged: no department handles the case any more."""
    for d in active_departments(ctx.session, ctx.obj.id):
        d.released_at = ctx.at


def _assign(ctx: Context) -> None:
    case, body, at, principal = ctx.obj, ctx.body, ctx.at, ctx.principal
    for d in active_departments(ctx.session, case.id):
        d.released_at = at
    lead = body.department_code
    assert lead is not None
    ctx.session.add(CaseDepartment(case_id=case.id, department_code=lead, role="lead", assigned_at=at,
                                   assigned_by=principal.username, case_reported_at=case.reported_at))
    for c in body.co_department_codes:
        ctx.session.add(CaseDepartment(case_id=case.id, department_code=c, role="co", assigned_at=at,
                                       assigned_by=principal.username, case_reported_at=case.reported_at))
    proposal = _proposal(ctx)
    overridden = (lead != proposal.department_code) or (
        sorted(body.co_department_codes) != sorted(proposal.co_department_codes))
    assert ctx.transition is not None
    ctx.session.add(RoutingDecision(
        case_id=case.id, at=at, action=ctx.transition.action, rule=proposal.rule,
        explanation=proposal.explanation[:300], proposed_department_code=proposal.department_code,
        proposed_co_codes=list(proposal.co_department_codes), chosen_department_code=lead,
        chosen_co_codes=list(body.co_department_codes), overridden=overridden, actor=principal.username,
        note=body.reason or body.note))
    case.lead_department_code = lead
    ctx.data["department_code"] = lead
    ctx.data["co_department_codes"] = list(body.co_department_codes)


def _stamp_dispatched(ctx: Context) -> None:
    ctx.obj.dispatched_at = ctx.at


def _rework(ctx: Context) -> None:
    ctx.obj.rework_count += 1
    ctx.obj.inspection_result = None
    ctx.data["department_code"] = ctx.obj.lead_department_code


def _reopen(ctx: Context) -> None:
    case = ctx.obj
    case.reopen_count += 1
    case.reopened_at = ctx.at
    case.closed_at = case.evaluated_at = case.inspection_result = None
    _release_all(ctx)
    case.lead_department_code = None


def _extension_request(ctx: Context) -> None:
    b = ctx.body
    assert b.extension is not None
    ctx.obj.extension_pending = {"value": b.extension.value, "unit": b.extension.unit, "reason": b.reason,
                                 "by": ctx.principal.username, "at": ctx.at.isoformat()}
    ctx.data["extension"] = ctx.obj.extension_pending


def _extension_approve(ctx: Context) -> None:
    case = ctx.obj
    ext = dict(case.extension_pending or {})
    s = sla.extend_step(ctx.session, case.id, "handle", float(ext["value"]), str(ext["unit"]))
    case.extension_pending = None
    case.extension_count += 1
    ctx.data["extension"] = ext | {"new_due_at": s.due_at.isoformat() if s else None}


def _extension_reject(ctx: Context) -> None:
    ctx.data["extension"] = ctx.obj.extension_pending
    ctx.obj.extension_pending = None


def _co_feedback(ctx: Context) -> None:
    for d in active_departments(ctx.session, ctx.obj.id):
        if d.department_code == ctx.principal.department_code and d.role == "co":
            d.feedback_at = ctx.at


def _count_oversight(ctx: Context) -> None:
    ctx.obj.oversee_count += 1


def _pause(ctx: Context) -> None:
    ctx.obj.prev_state = ctx.obj.state
    sla.pause_steps(ctx.session, ctx.obj.id, ctx.at)


def _resume(ctx: Context) -> None:
    sla.resume_steps(ctx.session, ctx.obj.id, ctx.at)
    ctx.data["_previous"] = ctx.obj.prev_state
    ctx.obj.prev_state = None


# ---- effects after the state change: notifications and escalations


def _state_label(s: str | None) -> str:
    return str(ref.STATES.get(s or "", {}).get("zh", s or ""))


def _notify_dept(ctx: Context, dept: str | None, role: str, title: str, body: str, severity: str = "info") -> None:
    case = ctx.obj
    if dept:
        jobs.notify(ctx.session, role=role, department_code=dept, title=title[:200], body=body,
                    link=f"/cases/{case.id}", severity=severity)
    else:
        jobs.notify(ctx.session, role="shift_lead", area_code=case.street_code, title=title[:200], body=body,
                    link=f"/cases/{case.id}", severity=severity)


def _notify_assigned(ctx: Context) -> None:
    def run(c: Context) -> None:
        case, t = c.obj, c.transition
        assert t is not None
        cat = ref.category_by_id(c.session, case.category_id)
        no = case_no(case.id, case.reported_at)
        sev = "urgent" if case.urgency != "normal" else "info"
        verb = {"dispatch": "新派遣", "reassign": "改派", "rework": "返工"}.get(t.action, "派遣")
        _notify_dept(c, case.lead_department_code, "dept_handler", f"{verb}案件 {no}：{case.title}",
                     f"{cat.name_zh}｜{case.address or ''}", sev)
        for code in c.body.co_department_codes:
            _notify_dept(c, code, "dept_handler", f"协办案件 {no}：{case.title}", cat.name_zh, sev)
    _later(ctx, run)


def _urgent_dispatched(ctx: Context) -> None:
    """An urgent or critical case dispatched: the escalation rules of ``urgent_dispatched`` fire."""
    def run(c: Context) -> None:
        case = c.obj
        if case.urgency not in ("urgent", "critical"):
            return
        sla.escalate(c.session, {"id": case.id, "case_no": case_no(case.id, case.reported_at), "title": case.title,
                                 "urgency": case.urgency, "state": case.state,
                                 "lead_department_code": case.lead_department_code, "street_code": case.street_code,
                                 "community_code": case.community_code, "grid_code": case.grid_code},
                     "urgent_dispatched", c.at, key_suffix=case.lead_department_code)
    _later(ctx, run)


def _notify_sent_back(ctx: Context) -> None:
    def run(c: Context) -> None:
        case = c.obj
        jobs.notify(c.session, role="dispatcher", area_code=case.street_code,
                    title=f"退单待改派 {case_no(case.id, case.reported_at)}：{case.title}"[:200],
                    body=c.body.reason or "", link=f"/cases/{case.id}", severity="warning")
    _later(ctx, run)


def _notify_oversight(ctx: Context) -> None:
    def run(c: Context) -> None:
        case, t = c.obj, c.transition
        assert t is not None
        oversee = t.action == "oversee"
        _notify_dept(c, case.lead_department_code, "dept_leader" if oversee else "dept_handler",
                     f"{'督办' if oversee else '催办'}：案件 {case_no(case.id, case.reported_at)}（{_state_label(case.state)}）",
                     c.body.note or c.body.reason or case.title, "urgent" if oversee else "warning")
    _later(ctx, run)


def _notify_extension(ctx: Context) -> None:
    def run(c: Context) -> None:
        case = c.obj
        jobs.notify(c.session, role="shift_lead", area_code=case.street_code,
                    title=f"延期申请 {case_no(case.id, case.reported_at)}"[:200], body=c.body.reason or "",
                    link=f"/cases/{case.id}", severity="warning")
    _later(ctx, run)


EFFECTS: dict[str, Callable[[Context], None]] = {
    "record_verification": _record_verification, "record_inspection": _record_inspection,
    "record_satisfaction": _record_satisfaction, "merge": _merge, "propose_route": _propose_route,
    "release": _release, "release_all": _release_all, "assign": _assign, "stamp_dispatched": _stamp_dispatched,
    "rework": _rework, "reopen": _reopen, "extension_request": _extension_request,
    "extension_approve": _extension_approve, "extension_reject": _extension_reject, "co_feedback": _co_feedback,
    "oversee": _count_oversight, "chase": _count_oversight, "pause": _pause, "resume": _resume,
    "notify_assigned": _notify_assigned, "urgent_dispatched": _urgent_dispatched,
    "notify_sent_back": _notify_sent_back, "notify_oversight": _notify_oversight,
    "notify_extension": _notify_extension,
}


# ---------------------------------------------------------------------------------------------- who may act


def _actor_check(ctx: Context) -> str | None:
    """``department``: lead = only the lead department; co = only a co-handling department."""
    t = ctx.transition
    need = t.extra.get("department") if t is not None else None
    if need is None:
        return None
    dept = ctx.principal.department_code
    who = "主办部门 the lead department" if need == "lead" else "协办部门 a co-handling department"
    msg = f"{t.action if t else ''} 只能由{who}执行 can only be taken by {who}"
    if not dept:
        return msg
    if need == "lead":
        return None if ctx.obj.lead_department_code == dept else msg
    ok = any(d.department_code == dept and d.role == "co" for d in active_departments(ctx.session, ctx.obj.id))
    return None if ok else msg


def _steps_column(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(s, str) and s in STEP_NAMES for s in v):
        return f"须为环节名列表 must list steps ({', '.join(ref.STEPS)}) or '*'"
    return None


CASE_MACHINE = Machine(
    name="case", states=ref.STATES, actions=ref.ACTIONS, default_permission="case.act", guards=GUARDS,
    requirements=REQUIREMENTS, effects=EFFECTS,
    extra_columns={"department": lambda v: None if v in (None, "lead", "co") else "department 须为 lead 或 co",
                   "start_steps": _steps_column, "finish_steps": _steps_column, "cancel_steps": _steps_column},
    actor_check=_actor_check, previous_attr="prev_state", allow_previous=True)


def steps(t: Any, column: str) -> tuple[str, ...]:
    """A row's ``start_steps`` / ``finish_steps`` / ``cancel_steps``."""
    return tuple(t.extra.get(column) or ())


def after_effects(ctx: Context) -> None:
    for fn in ctx.extra.pop("after", []):
        fn(ctx)


def case_of(ctx: Context) -> Case:
    return ctx.obj  # type: ignore[no-any-return]


__all__ = ["CASE_MACHINE", "steps", "after_effects"]
