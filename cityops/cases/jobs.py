"""Worker handlers of the case engine (imported by the worker via
``cityops.jobs.registry.HANDLER_MODULES``).

``case.sla`` — one timer per SLA step. At ``yellow_at`` (80 % of the time limit used) it warns per
the escalation rules and re-arms itself for ``due_at``; at ``due_at`` the step is marked overdue
(counted once) and the flat escalation fires (district command + the lead department's leader,
once: the escalation row's key is unique). A worker that was down fires what is due at its next
pass; if both moments passed meanwhile, both happen in that one pass.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cityops.cases import sla
from cityops.jobs.service import handler


@handler(sla.TIMER)
def on_sla_timer(session: Session, payload: dict[str, Any]) -> None:
    sla.fire_timer(session, payload)
