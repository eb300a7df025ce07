"""The daily detection run: the configured (method x syndrome x area level) on the daily counts, every alarm
on the last day a signal; plus the school ILI cluster rules (>= 10 ILI cases in 7 days in one school or
kindergarten: report; >= 30: a public-health event to report within 2 hours)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.health import detection, signals
from cityops.health.models import DailyCount, SentinelSite

DISTRICT = "310117"
HISTORY_DAYS = 70
# data: what the daily run computes (method, syndrome, area level, R-named control)
RUNS: list[dict[str, Any]] = [
    {"method": "earsC2", "syndrome": "ili", "level": "district", "control": {}},
    {"method": "earsC2", "syndrome": "ili", "level": "street", "control": {"minSigma": 1}},
    {"method": "earsC3", "syndrome": "diarrhoea", "level": "district", "control": {}},
    {"method": "earsC1", "syndrome": "fever", "level": "district", "control": {}},
    {"method": "earsC1", "syndrome": "rash", "level": "street", "control": {"minSigma": 1}},
]


def _series(session: Session, syndrome: str, level: str, day: dt.date, days: int) -> tuple[list[str], np.ndarray]:
    first = day - dt.timedelta(days=days - 1)
    key = DailyCount.street_code if level == "street" else func.substr(DailyCount.street_code, 1, 6)
    q = (select(key, DailyCount.day, func.sum(DailyCount.count))
         .where(DailyCount.syndrome == syndrome, DailyCount.day >= first, DailyCount.day <= day)
         .group_by(key, DailyCount.day))
    rows = [(a or DISTRICT, d, int(n)) for a, d, n in session.execute(q)]
    areas = sorted({a for a, _, _ in rows})
    idx = {a: i for i, a in enumerate(areas)}
    y = np.zeros((len(areas), days))
    for a, d, n in rows:
        y[idx[a], (d - first).days] = n
    return areas, y


def daily_run(session: Session, day: dt.date, runs: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """Run every configured detection for ``day`` (local date) and the school rules; returns counts."""
    made = 0
    for spec in runs or RUNS:
        areas, y = _series(session, spec["syndrome"], spec["level"], day, HISTORY_DAYS)
        if not areas:
            continue
        ctl = dict(spec.get("control", {}))
        r = detection.run(spec["method"], y, freq=365, **ctl)
        last = r.alarm[:, -1]
        for i in np.flatnonzero(last == 1):
            s = signals.raise_signal(session, method=spec["method"], syndrome=spec["syndrome"], area_code=areas[i],
                                     area_level=spec["level"], period_end=day, observed=float(y[i, -1]),
                                     threshold=float(r.upperbound[i, -1]), params=ctl)
            made += s is not None
    made_school = school_rules(session, day)
    return {"signals": made, "school_signals": made_school}


def school_rules(session: Session, day: dt.date) -> int:
    first = day - dt.timedelta(days=6)
    q = (select(SentinelSite.id, SentinelSite.code, SentinelSite.grid_code, func.sum(DailyCount.count))
         .join(DailyCount, DailyCount.site_id == SentinelSite.id)
         .where(SentinelSite.kind.in_(("school", "kindergarten")), DailyCount.syndrome == "ili",
                DailyCount.day >= first, DailyCount.day <= day)
         .group_by(SentinelSite.id, SentinelSite.code, SentinelSite.grid_code))
    made = 0
    for sid, _code, grid, n in session.execute(q):
        for limit, rule, hours in signals.SCHOOL_RULES:
            if int(n) >= limit:
                s = signals.raise_signal(session, method=rule, syndrome="ili", area_code=grid, area_level="site",
                                         site_id=sid, period_end=day, observed=float(n), threshold=float(limit),
                                         params={"window_days": 7}, rule=rule, verify_hours=hours)
                made += s is not None
                break
    return made
