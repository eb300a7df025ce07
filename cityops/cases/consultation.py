"""会商 (consultation): the departments involved and the command centre discuss a case in its own
thread; every message is a timeline row and notifies the other departments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.cases import sla
from cityops.cases.intake import attach_media, check_media
from cityops.cases.models import Case, CaseEvent, ConsultationMessage, case_no
from cityops.cases.queries import active_departments
from cityops.errors import Forbidden, InvalidInput, Problem
from cityops.jobs import service as jobs
from cityops.security import audit
from cityops.security.principal import Principal


def _involved(session: Session, principal: Principal, case: Case) -> bool:
    if principal.kind == "system" or not principal.department_code:
        return principal.kind == "system" or principal.area_code is not None
    return any(d.department_code == principal.department_code for d in active_departments(session, case.id))


def post_consultation(session: Session, principal: Principal, case: Case, body: str, attachments: list[str]) -> dict[str, Any]:
    if not _involved(session, principal, case):
        raise Forbidden([Problem("only the departments involved and the command centre take part in 会商", ["principal"],
                                 "forbidden")])
    probs = check_media(session, attachments, ["body", "attachments"])
    if probs:
        raise InvalidInput(probs)
    attach_media(session, attachments, case.id)
    at = sla.now()
    m = ConsultationMessage(case_id=case.id, at=at, author=principal.username, author_roles=principal.role_label()[:200],
                            department_code=principal.department_code, body=body, attachments=attachments)
    session.add(m)
    session.add(CaseEvent(case_id=case.id, at=at, actor=principal.username, actor_account_id=principal.account_id,
                          actor_roles=principal.role_label()[:200], department_code=principal.department_code,
                          action="consult", from_state=case.state, to_state=case.state, note=body[:2000], data={},
                          attachments=attachments))
    for d in active_departments(session, case.id):
        if d.department_code != principal.department_code:
            jobs.notify(session, role="dept_handler", department_code=d.department_code,
                        title=f"会商消息：案件 {case_no(case.id, case.reported_at)}", body=body[:500], link=f"/cases/{case.id}")
    session.flush()
    audit.record(session, principal, "case.consult", "case", case.id)
    return consultation_out(m)


def consultation_out(m: ConsultationMessage) -> dict[str, Any]:
    return {"id": m.id, "at": m.at, "author": m.author, "author_roles": m.author_roles,
            "department_code": m.department_code, "body": m.body, "attachments": m.attachments}


def list_consultations(session: Session, case: Case) -> list[dict[str, Any]]:
    return [consultation_out(m) for m in session.scalars(select(ConsultationMessage).where(
        ConsultationMessage.case_id == case.id).order_by(ConsultationMessage.id))]


