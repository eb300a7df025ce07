"""The scoped kinds of emergency command (``cityops.security.scope``): every read filters with
``scope.clause(principal, KIND)``; an object out of scope is 404.

* incidents: by place (street / community / grid columns); a department sees the incidents it has
  tasks in or was notified of (within its area when that is below the district);
* tasks: by place; a department sees the tasks it owns;
* public warnings: by the smallest area holding the warned areas;
* mobilisation call-ups: by place; a department sees the call-ups addressed to it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cityops.emergency.models_command import (
    EmergencyTask,
    Incident,
    IncidentNotice,
    MobilisationCallup,
    PublicWarning,
)
from cityops.errors import NotFound, Problem
from cityops.security import scope
from cityops.security.principal import Principal
from cityops.security.scope import Located, ScopedKind


def _incident_handled_by(dept: str) -> Any:
    return or_(Incident.id.in_(select(EmergencyTask.incident_id).where(EmergencyTask.owner_department_code == dept)),
               Incident.id.in_(select(IncidentNotice.incident_id).where(IncidentNotice.kind == "department",
                                                                         IncidentNotice.recipient_code == dept)))


INCIDENT_SCOPE = ScopedKind("incident", Located(street=Incident.street_code, community=Incident.community_code,
                                                grid=Incident.grid_code), handled_by=_incident_handled_by)
TASK_SCOPE = ScopedKind("emergency_task", Located(code=EmergencyTask.area_code),
                        handled_by=lambda dept: EmergencyTask.owner_department_code == dept)
WARNING_SCOPE = ScopedKind("public_warning", Located(code=PublicWarning.area_code))
MOBILISATION_SCOPE = ScopedKind("mobilisation", Located(code=MobilisationCallup.area_code),
                                handled_by=lambda dept: MobilisationCallup.department_code == dept)


# ---------------------------------------------------------------- scoped reads of incidents


def readable_incidents(principal: Principal) -> Any:
    return select(Incident).where(scope.clause(principal, INCIDENT_SCOPE))


def get_incident(session: Session, principal: Principal, ref: str | int, *, for_update: bool = False) -> Incident:
    """An incident by id or code, in the principal's scope (else 404)."""
    s = str(ref).strip()
    cond = Incident.id == int(s) if s.isdigit() and len(s) <= 12 else Incident.code == s
    stmt = readable_incidents(principal).where(cond)
    if for_update:
        stmt = stmt.with_for_update()
    inc: Incident | None = session.scalar(stmt)
    if inc is None:
        raise NotFound([Problem(f"未找到事件 incident {s} not found", ["path", "incident"], "not_found")])
    return inc
