"""A dispatcher escalates a case of the closed loop to an incident: the case is read through
``cityops.cases.service`` (in the dispatcher's scope: 404 outside it), the incident opened through
the one intake, and the link written both ways (the incident's intake row holds the case id; the
case's timeline gets a ``link`` row naming the incident)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cityops.emergency import incidents
from cityops.emergency.schemas_command import FromCaseIn
from cityops.security.principal import Principal


def escalate_case(session: Session, principal: Principal, body: FromCaseIn) -> dict[str, Any]:
    from cityops.cases import service as cases

    c = cases.case_detail(session, principal, body.case_id)
    res = incidents.open_incident(
        session, principal, "case", c["id"], body.category, body.severity, title=body.title or c["title"],
        description="\n".join(x for x in (c.get("description"), body.note) if x) or None, subtype=body.subtype,
        lon=c["lon"], lat=c["lat"], reported_at=c["reported_at"], address=c.get("address"))
    if not res.duplicate_source:
        cases.link_external(session, principal, body.case_id, kind="incident", ref=res.code,
                            note=f"升级为突发事件 {res.code} escalated to incident {res.code}")
    return {**res.as_dict(), "case_id": body.case_id}
