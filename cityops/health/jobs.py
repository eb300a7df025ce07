"""Timer handlers of public-health surveillance (run by ``cityops worker``): the verification deadline of a
signal (escalates once) and the daily detection run (06:00 Asia/Shanghai, for the day before)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from cityops import clock
from cityops.health import runs, signals
from cityops.jobs import service as jobs
from cityops.jobs.registry import handler

DAILY_TIMER = "health.daily_run"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def next_run(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(SHANGHAI)
    at = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if at <= local:
        at += dt.timedelta(days=1)
    return at.astimezone(dt.UTC)


def arm(session: Session) -> None:
    """Arm the daily run (idempotent: one timer)."""
    jobs.schedule_timer(session, DAILY_TIMER, "health", "daily", next_run(clock.now()))


@handler(signals.VERIFY_TIMER)
def verify_due(session: Session, payload: dict[str, Any]) -> None:
    signals.fire_verify_due(session, payload)


@handler(DAILY_TIMER)
def daily(session: Session, payload: dict[str, Any]) -> None:
    now = clock.now()
    runs.daily_run(session, now.astimezone(SHANGHAI).date() - dt.timedelta(days=1))
    jobs.schedule_timer(session, DAILY_TIMER, "health", "daily", next_run(now))
