"""The console's aggregates answered from the in-memory snapshot (``snapshot.py``) with NumPy.

Each function returns the same raw figures as its SQL twin in ``service.py`` (the tests compare
them on the same data); ``service`` formats both the same way. Scope and filters mirror
``cityops.security.scope`` (rendered as a mask) / ``service.where_clauses`` exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cityops.cases import queries as case_queries
from cityops.config import get_settings
from cityops.console import i18n
from cityops.console.snapshot import Snapshot
from cityops.security import scope
from cityops.security.principal import Principal


def _eq(snap: Snapshot, column: str, value: str | None) -> np.ndarray:
    out: np.ndarray = getattr(snap, column) == snap.codes.find(value)
    return out


def _prefix(snap: Snapshot, column: str, prefix: str) -> np.ndarray:
    book = np.array([v is not None and v.startswith(prefix) for v in snap.codes.values], dtype=bool)
    out: np.ndarray = book[getattr(snap, column)]
    return out


def area_mask(snap: Snapshot, code: str) -> np.ndarray:
    """``cityops.cases.queries.area_filter`` over the snapshot."""
    if len(code) == 6 and code == get_settings().district_code:
        return np.ones(len(snap), dtype=bool)
    if len(code) == 9:
        return _eq(snap, "street", code)
    if len(code) == 12:
        return _eq(snap, "community", code)
    if len(code) == 15:
        return _eq(snap, "grid", code)
    return _prefix(snap, "grid", code)


def scope_mask(session: Session, snap: Snapshot, principal: Principal) -> np.ndarray:
    """The one scope rule (``cityops.security.scope``, the case engine's kind) over the snapshot."""
    def handled_by(dept: str) -> np.ndarray:
        ids = case_queries.handled_case_ids(session, dept)
        return np.isin(snap.id, np.asarray(ids, dtype=np.int64)) if ids else np.zeros(len(snap), dtype=bool)

    return scope.mask(principal, case_queries.CASE_SCOPE, len(snap), within=lambda a: area_mask(snap, a),
                      handled_by=handled_by)


def sla_colours(snap: Snapshot, now: dt.datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(red, yellow, green, none) masks at ``now`` (``cityops.cases.sla.sla_expr``)."""
    t = now.timestamp()
    with np.errstate(invalid="ignore"):
        none = np.isnan(snap.due)
        red = snap.due <= t
        yellow = ~red & (snap.yellow <= t) & ~none
    green = ~none & ~red & ~yellow
    return red, yellow, green, none


def filter_mask(session: Session, snap: Snapshot, principal: Principal, f: Any, now: dt.datetime,
                *, with_period: bool = True) -> np.ndarray:
    m = scope_mask(session, snap, principal)
    if f.area and len(f.area) > 6:
        m &= area_mask(snap, f.area)
    for col, v in (("street", f.street), ("community", f.community), ("category", f.category), ("state", f.state),
                   ("source", f.source), ("dept", f.department)):
        if v:
            m &= _eq(snap, col, v)
    if f.sla:
        red, yellow, green, none = sla_colours(snap, now)
        m &= snap.is_open() & {"red": red, "yellow": yellow, "green": green, "none": none}[f.sla]
    if with_period:
        if f.period == "open":
            m &= snap.is_open()
        elif f.period != "all":
            with np.errstate(invalid="ignore"):
                m &= snap.reported >= i18n.period_start(f.period, now).timestamp()
    return m


def _between(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (a >= lo) & (a < hi)


def raw_kpis(session: Session, snap: Snapshot, principal: Principal, f: Any, now: dt.datetime
             ) -> tuple[tuple[int, int, int, int, int], list[tuple[str, int, int]]]:
    base = filter_mask(session, snap, principal, f, now, with_period=False)
    day0, day1 = i18n.local_day_bounds(now.astimezone(i18n.TZ).date())
    d0, d1 = day0.timestamp(), day1.timestamp()
    op = base & snap.is_open()
    t = now.timestamp()
    with np.errstate(invalid="ignore"):
        overdue = op & (snap.due <= t)
        yellow = op & (snap.due > t) & (snap.yellow <= t)
        closed_recent = base & (snap.closed >= (now - dt.timedelta(days=30)).timestamp())
    row = (int((base & _between(snap.reported, d0, d1)).sum()), int((base & _between(snap.closed, d0, d1)).sum()),
           int(op.sum()), int(overdue.sum()), int(yellow.sum()))
    streets = snap.street[closed_recent]
    n = len(snap.codes.values)
    closed = np.bincount(streets, minlength=n)
    ontime = np.bincount(streets, weights=(snap.overdue_count[closed_recent] == 0).astype(np.float64), minlength=n)
    by = [(str(snap.codes.values[i]), int(closed[i]), int(ontime[i])) for i in np.nonzero(closed)[0]]
    return row, by


def raw_map(session: Session, snap: Snapshot, principal: Principal, f: Any, bbox: tuple[float, float, float, float] | None,
            zoom: int, now: dt.datetime, point_limit: int) -> tuple[int, list[tuple[Any, ...]] | None, list[tuple[Any, ...]] | None]:
    """(total, points or None, clusters or None) — points: (id, lon, lat, sla, state, category);
    clusters: (code, n, red, yellow, green, mean lon, mean lat)."""
    m = filter_mask(session, snap, principal, f, now)
    if bbox is not None:
        m &= (snap.lon >= bbox[0]) & (snap.lon <= bbox[2]) & (snap.lat >= bbox[1]) & (snap.lat <= bbox[3])
    idx = np.nonzero(m)[0]
    total = int(idx.shape[0])
    red, yellow, green, _none = sla_colours(snap, now)
    vals = snap.codes.values
    if total <= point_limit:
        order = idx[np.argsort(-snap.id[idx], kind="stable")][:point_limit]
        colour = np.where(red[order], "red", np.where(yellow[order], "yellow", np.where(green[order], "green", "none")))
        pts = [(int(snap.id[k]), float(snap.lon[k]), float(snap.lat[k]), str(c), vals[snap.state[k]], vals[snap.category[k]])
               for k, c in zip(order, colour, strict=True)]
        return total, pts, None
    col = snap.street if zoom <= 11 else snap.community if zoom <= 13 else snap.grid
    g = col[idx]
    n = len(vals)
    cnt = np.bincount(g, minlength=n)
    r = np.bincount(g, weights=red[idx].astype(np.float64), minlength=n)
    y = np.bincount(g, weights=yellow[idx].astype(np.float64), minlength=n)
    gr = np.bincount(g, weights=green[idx].astype(np.float64), minlength=n)
    slon = np.bincount(g, weights=snap.lon[idx], minlength=n)
    slat = np.bincount(g, weights=snap.lat[idx], minlength=n)
    clusters = [(vals[i], int(cnt[i]), int(r[i]), int(y[i]), int(gr[i]), float(slon[i] / cnt[i]), float(slat[i] / cnt[i]))
                for i in np.nonzero(cnt)[0]]
    return total, None, clusters


def raw_choropleth(session: Session, snap: Snapshot, principal: Principal, f: Any, level: str, metric: str,
                   now: dt.datetime) -> list[tuple[str, float]]:
    m = filter_mask(session, snap, principal, f, now)
    col = {"street": snap.street, "community": snap.community, "grid": snap.grid}[level]
    g = col[m]
    n = len(snap.codes.values)
    cnt = np.bincount(g, minlength=n)
    if metric == "overdue":
        red = sla_colours(snap, now)[0] & snap.is_open()
        vals = np.bincount(g, weights=red[m].astype(np.float64), minlength=n)
    else:
        vals = cnt.astype(np.float64)
    return [(str(snap.codes.values[i]), float(vals[i])) for i in np.nonzero(cnt)[0]]


def raw_todo(session: Session, snap: Snapshot, principal: Principal, area: str | None, now: dt.datetime,
             limit: int) -> dict[str, tuple[int, list[int]]]:
    base = scope_mask(session, snap, principal)
    if area and len(area) > 6:
        base &= area_mask(snap, area)
    red = sla_colours(snap, now)[0]
    kinds = {
        "to_verify": _eq(snap, "state", "verifying"),
        "to_check": _eq(snap, "state", "inspecting"),
        "overdue": snap.is_open() & red,
        "to_sign": _eq(snap, "state", "dispatched") & ~snap.acknowledged,
    }
    out = {}
    for key, cond in kinds.items():
        idx = np.nonzero(base & cond)[0]
        due = np.where(np.isnan(snap.due[idx]), np.inf, snap.due[idx])
        order = idx[np.lexsort((snap.id[idx], due))][:limit]
        out[key] = (int(idx.shape[0]), [int(snap.id[k]) for k in order])
    return out
