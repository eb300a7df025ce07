"""The worker keeps the evaluation's daily facts (``cityops.cases.evaluation_facts``): every minute
it marks the days that recent changes made stale and rebuilds stale and missing days (a bounded
number per run, newest first), each in one statement per subject over that day alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from cityops.cases import evaluation, evaluation_facts
from cityops.cases.evaluation import SPLIT, SUBJECTS, Ctx, period, raw_counts, scheme_for
from cityops.jobs.registry import handler
from cityops.security.principal import SYSTEM

DAYS_PER_RUN = 60


def build_day(session: Session, day: dt.date, now: dt.datetime) -> int:
    """Recompute and store the facts of one past day; returns the number of rows."""
    _f, _t, start, end = period(day, day, now)
    scheme = scheme_for(session, end)
    ctx = Ctx(session, SYSTEM, start, end, now, None, scheme)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    token = SPLIT.set(True)
    try:
        for subject in SUBJECTS:
            rows[subject] = raw_counts(ctx, subject)
    finally:
        SPLIT.reset(token)
    return evaluation_facts.write_day(session, day, rows, now)


def refresh(session: Session, now: dt.datetime | None = None, limit: int = DAYS_PER_RUN) -> dict[str, int]:
    """Mark stale days, then build up to ``limit`` stale or missing days. No commit."""
    from cityops.jobs.service import now as clock_now

    now = now or clock_now()
    today = evaluation_facts.local_day(now)
    marked = evaluation_facts.mark_changes(session, today)
    days = evaluation_facts.days_to_build(session, today, limit)
    rows = sum(build_day(session, d, now) for d in days)
    return {"marked": marked, "built": len(days), "rows": rows}


def refresh_all(session: Session, now: dt.datetime | None = None) -> dict[str, int]:
    """Build every stale or missing day (``cityops`` CLI, tests, the benchmark). No commit."""
    total = {"marked": 0, "built": 0, "rows": 0}
    while True:
        r = refresh(session, now, limit=365)
        for k in total:
            total[k] += r[k]
        if r["built"] == 0:
            return total


@handler(evaluation_facts.KIND)
def on_facts_timer(session: Session, payload: dict[str, Any]) -> None:
    from cityops.jobs.service import now

    t = now()
    refresh(session, t)
    evaluation_facts.arm(session, t + dt.timedelta(seconds=evaluation_facts.EVERY_S))


__all__ = ["build_day", "refresh", "refresh_all", "evaluation"]
