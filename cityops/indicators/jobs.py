"""Worker timers of vital signs: ``indicators.maintain`` (every minute: hour/day rollups of the
areas from their minutes, partitions ahead, retention) and ``indicators.baseline`` (every hour:
the seasonal-baseline rules on the last complete hour). Both re-arm themselves."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cityops.indicators import catalogue as catalog
from cityops.indicators import rollups
from cityops.indicators import rules as R
from cityops.indicators.engine import Change
from cityops.indicators.models import OPEN_STATES, EarlyWarning
from cityops.indicators.partitions import drop_expired, ensure_partitions
from cityops.indicators.settings import get_indicator_settings
from cityops.indicators.warnings import Warnings
from cityops.jobs import service as jobs
from cityops.jobs.registry import handler

MAINTAIN = "indicators.maintain"
BASELINE = "indicators.baseline"


def arm(session: Session) -> None:
    """Arm both timers (idempotent: one timer per kind)."""
    now = jobs.now()
    jobs.schedule_timer(session, MAINTAIN, "indicators", "maintain", now + dt.timedelta(seconds=60))
    nxt = (now + dt.timedelta(hours=1)).replace(minute=2, second=0, microsecond=0)
    jobs.schedule_timer(session, BASELINE, "indicators", "baseline", nxt)


def retention(session: Session, now_ms: int | None = None) -> dict[str, Any]:
    """Raw readings older than the retention period go: partitions dropped (PostgreSQL) or the
    key range deleted (SQLite, in chunks)."""
    now_ms = now_ms or int(time.time() * 1000)
    cutoff = now_ms - get_indicator_settings().raw_retention_days * 86_400_000
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        made = ensure_partitions(conn)
        return {"dropped": drop_expired(conn, cutoff), "created": made}
    n = 0
    while True:
        res = conn.exec_driver_sql(
            "DELETE FROM indicator_reading WHERE ts IN (SELECT ts FROM indicator_reading WHERE ts < ? "
            "ORDER BY ts LIMIT 50000)", (cutoff,))
        n += int(res.rowcount or 0)
        if not res.rowcount:
            break
    return {"deleted": n}


@handler(MAINTAIN)
def maintain(session: Session, payload: dict[str, Any]) -> None:
    rollups.derive(session)
    retention(session)
    jobs.schedule_timer(session, MAINTAIN, "indicators", "maintain", jobs.now() + dt.timedelta(seconds=60))


def run_baselines(session: Session, now: dt.datetime | None = None) -> int:
    """Evaluate the baseline rules on the last complete hour (area minute rollups): the score
    against the same hour of the week in the past K weeks; raise, change or lift the warnings.
    Stateless between runs: the open warnings are the state. Returns the warnings changed."""
    cat = catalog.active(session)
    now = now or jobs.now()
    hour = int(now.timestamp() * 1000) // 3_600_000 * 3_600_000 - 3_600_000
    changed = 0
    for rule in cat.rules.values():
        if rule.kind != "baseline" or not rule.indicator:
            continue
        width = catalog.AREA_LEVELS[rule.area_level]

        def means(start: int, indicator: str = rule.indicator, width: int = width) -> dict[str, float]:
            rows = session.execute(text(
                'SELECT area_code, sum("sum"), sum(n) FROM indicator_rollup_area WHERE res = 60 AND indicator_code = :i '
                "AND bucket >= :a AND bucket < :b AND length(area_code) = :w GROUP BY area_code"),
                {"i": indicator, "a": start, "b": start + 3_600_000, "w": width}).all()
            return {r[0]: float(r[1]) / float(r[2]) for r in rows if r[2]}

        cur = means(hour)
        past = [means(h) for h in R.same_hour_past_weeks(hour, rule.weeks)]
        areas = sorted(set(cur) | {a for p in past for a in p})
        opens = {w.area_code: w for w in session.scalars(select(EarlyWarning).where(
            EarlyWarning.rule_code == rule.code, EarlyWarning.state.in_(OPEN_STATES)))}
        if not areas and not opens:
            continue
        areas = sorted(set(areas) | set(opens))
        x = np.array([cur.get(a, np.nan) for a in areas])
        hist = np.array([[p.get(a, np.nan) for p in past] for a in areas]).reshape(len(areas), len(past))
        exp, sd = R.baseline(hist, rule.min_sd)
        z = R.anomaly_score(x, exp, sd)
        if rule.direction == "below":
            z = -z
        elif rule.direction == "both":
            z = np.abs(z)
        levels = R.score_levels(z, rule.score_bands)
        w = Warnings()
        w.open = {(rule.code, a): (o.id, o.level_rank) for a, o in opens.items()}
        decided = {}
        for a, lv, zz, xv in zip(areas, levels.tolist(), z.tolist(), x.tolist(), strict=True):
            old = opens[a].level_rank if a in opens else R.NONE
            if np.isnan(zz) and a in opens:
                continue  # no data this hour: keep what is open
            if lv != old:
                c = Change(rule.code, f"area:{a}", a, hour + 3_600_000, old, lv, None if np.isnan(zz) else float(zz),
                           [(hour + 3_600_000, float(xv))] if not np.isnan(xv) else [])
                decided[(rule.code, a)] = (lv, c)
        if decided:
            w.reconcile(session, cat, decided, lambda r, a, d=decided: {f"area:{a}": d[(r, a)][0]}
                        if d.get((r, a), (R.NONE,))[0] >= 0 else {})
            changed += len(decided)
    return changed


@handler(BASELINE)
def baseline(session: Session, payload: dict[str, Any]) -> None:
    run_baselines(session)
    nxt = (jobs.now() + dt.timedelta(hours=1)).replace(minute=2, second=0, microsecond=0)
    jobs.schedule_timer(session, BASELINE, "indicators", "baseline", nxt)
