"""What other domains need of cases beyond the closed loop itself (read through
``cityops.cases.service``): how fast a case's first report reached the responsible department and
the command centre, read from the case timeline; and a link from a case to what it became
elsewhere (an emergency incident), written as a timeline row of the case.

Reach of a case (flat-reporting measure of emergency command, docs/emergency.md):

* department: the first ``dispatch`` / ``reassign`` row of the timeline (the case reached a
  handling department);
* command: the command level that must know — the district command centre for urgent and critical
  cases (reached at the first ``escalate`` row whose targets include ``district_commander``), the
  street/district centre that accepts the case for the others (reached at the first ``accept`` or
  ``register`` row).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.cases.models import Case, CaseEvent
from cityops.cases.queries import CASE_SCOPE, get_case
from cityops.security import audit, scope
from cityops.security.principal import Principal

DEPARTMENT_ACTIONS = ("dispatch", "reassign")
ACCEPT_ACTIONS = ("accept", "register")
URGENT = ("urgent", "critical")
DISTRICT_ROLE = "district_commander"


def case_reach(session: Session, principal: Principal, start: dt.datetime, end: dt.datetime,
               *, limit: int = 200_000) -> list[dict[str, Any]]:
    """For every case in the principal's scope first reported in [start, end): its channel
    (source), urgency, first report, when it reached a department and the command level."""
    cases = session.execute(select(Case.id, Case.source, Case.urgency, Case.reported_at, Case.street_code)
                            .where(scope.clause(principal, CASE_SCOPE), Case.reported_at >= start,
                                   Case.reported_at < end, Case.duplicate_of_id.is_(None))
                            .order_by(Case.reported_at).limit(limit)).all()
    if not cases:
        return []
    ids = [c.id for c in cases]
    dept: dict[int, tuple[dt.datetime, str | None]] = {}
    accept: dict[int, dt.datetime] = {}
    district: dict[int, dt.datetime] = {}
    for chunk in range(0, len(ids), 5000):
        part = ids[chunk:chunk + 5000]
        rows = session.execute(select(CaseEvent.case_id, CaseEvent.at, CaseEvent.action, CaseEvent.data)
                               .where(CaseEvent.case_id.in_(part),
                                      CaseEvent.action.in_((*DEPARTMENT_ACTIONS, *ACCEPT_ACTIONS, "escalate")))
                               .order_by(CaseEvent.case_id, CaseEvent.at, CaseEvent.id)).all()
        for r in rows:
            if r.action in DEPARTMENT_ACTIONS:
                if r.case_id not in dept:
                    dept[r.case_id] = (r.at, (r.data or {}).get("department_code"))
            elif r.action in ACCEPT_ACTIONS:
                accept.setdefault(r.case_id, r.at)
            elif r.case_id not in district and any(
                    isinstance(t, dict) and t.get("role") == DISTRICT_ROLE for t in (r.data or {}).get("targets", [])):
                district[r.case_id] = r.at
    out = []
    for c in cases:
        level = "district" if c.urgency in URGENT else "centre"
        d = dept.get(c.id)
        out.append({"case_id": c.id, "channel": c.source, "urgency": c.urgency, "street_code": c.street_code,
                    "reported_at": c.reported_at, "department_at": d[0] if d else None,
                    "department_code": d[1] if d else None, "command_level": level,
                    "command_at": district.get(c.id) if level == "district" else accept.get(c.id)})
    return out


def link_external(session: Session, principal: Principal, case_id: int, *, kind: str, ref: str, note: str,
                  at: dt.datetime | None = None) -> None:
    """Record on a case (in the principal's scope) that it became ``kind`` ``ref`` elsewhere (e.g. an
    emergency incident): one timeline row and an audit row; the case's own state does not change."""
    c = get_case(session, principal, case_id)
    at = at or dt.datetime.now(dt.UTC)
    session.add(CaseEvent(case_id=c.id, at=at, actor=principal.username[:80], actor_account_id=principal.account_id,
                          actor_roles=principal.role_label()[:200], department_code=principal.department_code,
                          action="link", from_state=c.state, to_state=c.state, note=note[:2000],
                          data={"kind": kind, "ref": ref}, attachments=[]))
    audit.record(session, principal, "case.link", "case", c.id, detail={"kind": kind, "ref": ref})
