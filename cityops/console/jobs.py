"""Scheduled work of the console, run by ``cityops worker`` (cityops.jobs).

``console.briefing`` (a timer): generates yesterday's district 城运日报 (HTML + PDF) at 06:00
Asia/Shanghai and re-arms itself for the next morning. ``arm_daily_briefing`` arms it the first
time (``cityops console schedule-briefing``; the full demo district does it when seeded).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from cityops.jobs.registry import handler

KIND = "console.briefing"
REF_TYPE = "briefing"
REF_ID = "district-daily"


def arm_daily_briefing(session: Session, now: dt.datetime | None = None) -> dt.datetime:
    """Arm (or move) the daily briefing timer to the next 06:00 in Shanghai; returns that time (UTC)."""
    from cityops.console.briefing import next_run
    from cityops.jobs.service import schedule_timer

    at = next_run(now)
    schedule_timer(session, KIND, REF_TYPE, REF_ID, at, {"what": "district daily briefing"})
    return at


@handler(KIND)
def run_daily_briefing(session: Session, payload: dict[str, Any]) -> None:
    from cityops.console.briefing import scheduled_run
    from cityops.jobs.service import now

    t = now()
    row = scheduled_run(session, t)
    if row.pdf is None:
        # keep the HTML; the PDF can be made on demand. Re-arm anyway: tomorrow is another day.
        from cityops.logging import log

        log.warning("console.briefing_pdf_failed", day=str(row.day), error=(row.pdf_error or "")[:200])
    arm_daily_briefing(session, t)


@handler("console.briefing.generate")
def generate_requested(session: Session, payload: dict[str, Any]) -> None:
    """A briefing a user asked to (re)print: generated for that user's area, stored."""
    from cityops.console.briefing import generate
    from cityops.security.service import principal_for_username

    principal = principal_for_username(session, str(payload["username"]))
    generate(session, principal, dt.date.fromisoformat(str(payload["day"])), str(payload.get("lang") or "zh"),
             by=principal.username)
