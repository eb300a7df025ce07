"""Timer and outbox handlers of outbreak command (run by ``cityops worker``): zone downgrades, the
daily follow-up notice, printing the daily report."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from cityops.jobs.registry import handler
from cityops.outbreak import followup, report, zones
from cityops.outbreak.days import FOLLOWUP_TIMER


@handler(zones.DOWNGRADE_TIMER)
def zone_downgrade_due(session: Session, payload: dict[str, Any]) -> None:
    zones.fire_downgrade(session, payload)


@handler(FOLLOWUP_TIMER)
def followup_due(session: Session, payload: dict[str, Any]) -> None:
    followup.fire_followup(session, payload)


@handler(report.GENERATE_TOPIC)
def generate_report(session: Session, payload: dict[str, Any]) -> None:
    from cityops.security.service import principal_for_username

    principal = principal_for_username(session, str(payload["username"]))
    report.generate(session, principal, int(payload["outbreak_id"]), dt.date.fromisoformat(payload["day"]),
                    str(payload.get("lang", "zh")))
