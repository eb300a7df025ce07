"""The case engine's service layer: what routes, the console, Open311, evaluation and the demo
feed call. Plain functions taking a Session and a Principal; the ones named ``*_commit`` or
documented as committing end the transaction themselves (intake with idempotency needs to).

Modules behind it:
  reference  — departments, catalogue, calendars, transition table, escalation rules, policy
  workcal    — pure working-time arithmetic (add_working_time, elapsed_fraction ...)
  intake     — reports, 12345 import, signals, media, idempotency
  workflow   — actions against the transition table
  sla        — steps, deadlines, timers, escalation
  queries    — scoped reads, lists, map, aggregates, export
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from cityops.cases import consultation, inbox, queries, reference, schemas, sla, transitions, workflow
from cityops.cases import intake as _intake
from cityops.cases.crossref import case_reach, link_external
from cityops.cases.models import Case
from cityops.cases.queries import (
    CASE_SCOPE,
    CaseFilter,
    aggregate,
    count_cases,
    export_csv,
    geojson,
    get_case,
    handled_case_ids,
    list_cases,
    parse_filter,
    readable_statement,
)
from cityops.cases.reference import (
    active_calendar,
    department_name,
    departments,
    propose_route,
    resolve_category,
    upsert_departments,
)
from cityops.cases.workcal import add_working_time, elapsed_fraction
from cityops.errors import CityOpsError, Problem
from cityops.security.principal import Principal
from cityops.security.ratelimit import check_rate

REPORTER = Principal(username="reporter", kind="system", roles=frozenset({"reporter"}))


def now() -> dt.datetime:
    return sla.now()


# ---------------------------------------------------------------- intake


def submit_report(session: Session, principal: Principal, body: schemas.ReportCreate,
                  idempotency_key: str | None = None, *, channel: str = "app") -> tuple[int, dict[str, Any], bool]:
    """A report by a signed-in principal; commits. Returns (HTTP status, IntakeResult dict, replayed)."""
    return submit_one(session, _intake.ReportRequest(principal, body, body.source, channel, idempotency_key))


def public_request(session: Session, body: schemas.PublicReportCreate, *, source_ip: str | None,
                   idempotency_key: str | None = None, channel: str = "web") -> _intake.ReportRequest:
    """A citizen's report as a ReportRequest, after the rate limit per source address."""
    per_minute = float(reference.policy(session).get("public_rate_per_minute", 30))
    check_rate(f"case-public:{source_ip or '-'}", per_minute, what="reports")
    anon = Principal(username="public", kind="anonymous", source_ip=source_ip)
    return _intake.ReportRequest(anon, body, "public", channel, idempotency_key)


def submit_public_report(session: Session, body: schemas.PublicReportCreate, *, source_ip: str | None,
                         idempotency_key: str | None = None, channel: str = "web") -> tuple[int, dict[str, Any], bool]:
    """A citizen's report (rate-limited per source address); commits."""
    return submit_one(session, public_request(session, body, source_ip=source_ip, idempotency_key=idempotency_key,
                                              channel=channel))


def submit_one(session: Session, request: _intake.ReportRequest) -> tuple[int, dict[str, Any], bool]:
    """One report in its own transaction (the group-commit writer's side, ``cityops.cases.flows``:
    commits; rolls back and raises on an error)."""
    try:
        got = _intake.submit_reports(session, [request])[0]
    except BaseException:
        session.rollback()
        raise
    if isinstance(got, CityOpsError):
        session.rollback()
        raise got
    session.commit()
    return got


def import_hotline(session: Session, principal: Principal, rows: list[Any], *, skip_existing: bool = False) -> dict[str, Any]:
    """12345 orders, all or nothing."""
    out = _intake.import_hotline(session, principal, rows, skip_existing=skip_existing)
    return out


def ingest_signal(session: Session, principal: Principal, body: schemas.SignalIn,
                  idempotency_key: str | None = None) -> tuple[int, dict[str, Any], bool]:
    return _intake.run_idempotent(session, principal, idempotency_key, body.model_dump(mode="json"),
                                  lambda: _intake.ingest_signal(session, principal, body))


def upload_media(session: Session, principal: Principal, files: list[tuple[str | None, bytes]]) -> list[dict[str, Any]]:
    out = _intake.save_media(session, principal, files)
    return out


# ---------------------------------------------------------------- workflow


def act(session: Session, principal: Principal, case_ref: str | int, action: str, body: schemas.ActionIn) -> dict[str, Any]:
    """Take ``action`` on a case in the principal's scope; returns the case detail."""
    case = get_case(session, principal, case_ref, for_update=True)
    workflow.perform(session, principal, case, action, body)
    return case_detail(session, principal, case)


def actions_for(session: Session, principal: Principal, case_ref: str | int) -> dict[str, Any]:
    case = get_case(session, principal, case_ref)
    return {"case_id": case.id, "state": case.state, "version": case.version,
            "actions": workflow.allowed_actions(session, principal, case),
            "missing_actions": inbox.missing_actions(session, principal, case)}


def case_detail(session: Session, principal: Principal, case_ref: str | int | Case) -> dict[str, Any]:
    """The case detail with the actions the principal may take on it now."""
    case = case_ref if isinstance(case_ref, Case) else get_case(session, principal, case_ref)
    return queries.detail(session, principal, case) | {
        "allowed_actions": workflow.allowed_actions(session, principal, case),
        "missing_actions": inbox.missing_actions(session, principal, case)}


def my_inbox(session: Session, principal: Principal, bucket: str | None = None, area: str | None = None,
             limit: int = 50, lang: str = "zh", case_id: int | None = None) -> dict[str, Any]:
    """The principal's inbox (待办), from the transition table in force (``cityops.cases.inbox``)."""
    return inbox.inbox(session, principal, bucket=bucket, area=area, limit=limit, lang=lang, case_id=case_id)


def case_timeline(session: Session, principal: Principal, case_ref: str | int) -> list[dict[str, Any]]:
    return queries.timeline(session, get_case(session, principal, case_ref).id)


def consult(session: Session, principal: Principal, case_ref: str | int, body: schemas.ConsultationIn) -> dict[str, Any]:
    case = get_case(session, principal, case_ref)
    out = consultation.post_consultation(session, principal, case, body.body, body.attachments)
    return out


def consultations(session: Session, principal: Principal, case_ref: str | int) -> list[dict[str, Any]]:
    return consultation.list_consultations(session, get_case(session, principal, case_ref))


def public_status(session: Session, token: str) -> dict[str, Any]:
    return queries.public_status(session, token)


def public_evaluate(session: Session, token: str, body: schemas.EvaluationIn) -> dict[str, Any]:
    """The reporter's own satisfaction (评价) with the tracking token."""
    case = queries.case_for_token(session, token)
    workflow.perform(session, REPORTER, case, "evaluate",
                     schemas.ActionIn(satisfaction=body.satisfaction, note=body.note))
    return queries.public_status(session, token)


def replace_workflow(session: Session, principal: Principal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return transitions.replace_transitions(session, principal, rows)


def workflow_table(session: Session) -> dict[str, Any]:
    return {"states": reference.STATES, "actions": reference.ACTIONS,
            "transitions": [transitions.transition_out(t)
                            for t in transitions.transitions(session).transitions.values()],
            "steps": {k: {"zh": v[0], "en": v[1]} for k, v in reference.STEP_LABELS.items()}}


def problem(msg: str, loc: list[str | int]) -> Problem:
    return Problem(msg, loc)


# ---------------------------------------------------------------- smart dispatch (cityops.ai) needs


def case_text(session: Session, principal: Principal, case_ref: int | str) -> dict[str, Any]:
    """What the classifier reads of a case (title + description) and where it is; scoped like
    ``get_case`` (404 outside the principal's area)."""
    c = get_case(session, principal, str(case_ref))
    text = " ".join(x for x in (c.title, c.description) if x)
    return {"case_id": c.id, "text": text, "channel": c.source, "category_code": c.category_code,
            "street_code": c.street_code, "community_code": c.community_code, "grid_code": c.grid_code}


def change_category(session: Session, principal: Principal, case_id: int, category_code: str, *,
                    reason: str | None = None) -> dict[str, Any]:
    """Re-categorise an open case (a dispatcher correcting the proposed category): category, kind
    and the routing proposal follow; a timeline event and an audit row record it. Does not commit."""
    from cityops.cases.models import CaseEvent
    from cityops.errors import InvalidInput as _Invalid

    c = get_case(session, principal, str(case_id))
    if c.state not in reference.OPEN_STATES:
        raise _Invalid([Problem(f"case {c.case_no} is not open ({c.state}): its category stays", ["body", "category_code"])])
    cat = reference.resolve_category(session, category_code, ["body", "category_code"])
    old = c.category_code
    if cat.code == old:
        return {"case_id": c.id, "category_code": old, "changed": False}
    c.category_id, c.category_code, c.kind = cat.id, cat.code, cat.kind
    c.proposed_department_code = reference.propose_route(session, cat, c.grid_code, c.street_code).department_code
    at = sla.now()
    c.updated_at = at
    session.add(CaseEvent(case_id=c.id, at=at, actor=principal.username, actor_account_id=principal.account_id,
                          actor_roles=principal.role_label()[:200], department_code=principal.department_code,
                          action="recategorise", from_state=c.state, to_state=c.state, note=reason,
                          data={"from": old, "to": cat.code}, attachments=[]))
    from cityops.security import audit

    audit.record(session, principal, "case.recategorise", "case", str(c.id), detail={"from": old, "to": cat.code})
    session.flush()
    return {"case_id": c.id, "category_code": cat.code, "changed": True}


def routing_overrides(session: Session) -> list[dict[str, Any]]:
    """Dispatches where the dispatcher chose another department than the proposal (training data
    of smart dispatch): routing decision id, the case's text, category, place and the chosen unit."""
    from sqlalchemy import select as _select

    from cityops.cases.models import Case, RoutingDecision

    rows = session.execute(_select(RoutingDecision.id, RoutingDecision.case_id, RoutingDecision.chosen_department_code,
                                   RoutingDecision.actor, Case.title, Case.description, Case.source, Case.category_code,
                                   Case.street_code, Case.community_code, Case.grid_code)
                           .join(Case, Case.id == RoutingDecision.case_id)
                           .where(RoutingDecision.overridden.is_(True)).order_by(RoutingDecision.id)).all()
    return [{"routing_decision_id": r.id, "case_id": r.case_id, "department_code": r.chosen_department_code,
             "actor": r.actor, "text": " ".join(x for x in (r.title, r.description) if x), "channel": r.source,
             "category_code": r.category_code, "street_code": r.street_code, "community_code": r.community_code,
             "grid_code": r.grid_code} for r in rows]


# the read API and reference lookups that other domains and the routes use through this module
__all__ = ["CASE_SCOPE", "CaseFilter", "aggregate", "count_cases", "export_csv", "geojson", "get_case",
           "handled_case_ids", "list_cases", "parse_filter", "readable_statement", "active_calendar",
           "propose_route", "resolve_category", "add_working_time", "elapsed_fraction", "case_reach",
           "link_external", "department_name", "departments", "upsert_departments"]


# ---------------------------------------------------------------- cases opened by other domains


def open_domain_case(session: Session, principal: Principal, *, category_code: str, lon: float, lat: float,
                     title: str, description: str, department_code: str | None, note: str,
                     external_id: str | None = None, urgency: str | None = None) -> dict[str, Any]:
    """A case another domain opens for a department (outbreak supplies ...), in the caller's
    transaction (does not commit): a referral through the one intake path (never linked to a
    nearby case: each request is its own), accepted, registered and — with ``department_code`` —
    dispatched by the system. Returns {"case_id", "case_no", "state"}."""
    from cityops.security.principal import SYSTEM

    cat = reference.resolve_category(session, category_code, ["category_code"])
    where = _intake._locate_one(session, lon, lat, ["lon"])
    res = _intake.intake(session, principal, _intake.IntakeItem(
        source="referral", channel="api", cat=cat, lon=lon, lat=lat, where=where, at=now(), title=title[:200],
        description=description[:4000], urgency=urgency or cat.urgency_default, external_id=external_id,
        dedupe=False))
    cid = int(res["case_id"])
    act(session, SYSTEM, cid, "accept", schemas.ActionIn(note=note[:2000]))
    act(session, SYSTEM, cid, "register", schemas.ActionIn(note=note[:2000]))
    if department_code:
        out = act(session, SYSTEM, cid, "dispatch", schemas.ActionIn(department_code=department_code, note=note[:2000]))
    else:
        out = case_detail(session, SYSTEM, cid)
    return {"case_id": cid, "case_no": res["case_no"], "state": out.get("state")}


def case_states(session: Session, case_ids: list[int]) -> dict[int, str]:
    """The workflow state of each case (for domains tracking the cases they opened)."""
    from sqlalchemy import select

    if not case_ids:
        return {}
    return {int(i): str(s) for i, s in session.execute(select(Case.id, Case.state).where(Case.id.in_(case_ids)))}
