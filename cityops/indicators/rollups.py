"""Rollups (min, max, mean = sum/n, sum, last, count) of the readings, set-based.

Materialised: per series 1-hour buckets; per grid / community / street / district and indicator
1-minute, 1-hour and 1-day buckets. A series' 1-minute series comes from its raw readings and its
1-day series from its hours (both on read, ``series`` below).

The evaluator keeps the readings it evaluated since its last flush (arrays) and flushes every few
seconds: it groups them with NumPy (series × hour; grid × indicator × minute, then up the area
codes, which are prefixes of each other) and merges the groups into the tables with one multi-row
upsert per table (n and sum add, min/max fold, last by time), in the transaction that marks the
batches done — so every batch is rolled up exactly once (after a crash, the batches evaluated
but not flushed are read back from the raw table). Corrections recompute their series-hour
buckets from the raw readings; in area buckets they move the sum and count exactly, min and max
are folded with the new value. Hours whose minutes changed are noted, and ``derive`` rebuilds the
hour and day rows of the areas from the minutes (worker timer ``indicators.rollup``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

MIN_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
COLS = ("n", "sum", "min", "max", "last", "last_ts")


def group(keys: np.ndarray, ts: np.ndarray, val: np.ndarray, n: np.ndarray | None = None,
          sums: np.ndarray | None = None, mins: np.ndarray | None = None, maxs: np.ndarray | None = None,
          last: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Aggregate rows by ``keys`` (int64): unique keys and per key n, sum, min, max, last (by
    ``ts``), last_ts. Rows may be raw values (n etc. None) or partial aggregates."""
    order = np.lexsort((ts, keys))
    k, t = keys[order], ts[order]
    v = val[order]
    start = np.r_[True, k[1:] != k[:-1]]
    idx = np.nonzero(start)[0]
    endi = np.r_[idx[1:], len(k)] - 1
    nn = np.ones(len(k), dtype=np.int64) if n is None else n[order]
    ss = v if sums is None else sums[order]
    mi = v if mins is None else mins[order]
    ma = v if maxs is None else maxs[order]
    la = v if last is None else last[order]
    return k[idx], {"n": np.add.reduceat(nn, idx), "sum": np.add.reduceat(ss, idx),
                    "min": np.minimum.reduceat(mi, idx), "max": np.maximum.reduceat(ma, idx),
                    "last": la[endi], "last_ts": t[endi]}


def _upsert_sql(table: str, keys: tuple[str, ...], pg: bool, n_cols: int) -> str:
    cols = ", ".join(keys + tuple(f'"{c}"' for c in COLS))
    if pg:
        least, greatest = "LEAST", "GREATEST"
        t = "t."
    else:
        least, greatest = "min", "max"
        t = ""
    conflict = ", ".join(keys)
    sets = (f'n = {t}n + excluded.n, "sum" = {t}"sum" + excluded."sum", '
            f'"min" = {least}({t}"min", excluded."min"), "max" = {greatest}({t}"max", excluded."max"), '
            f'"last" = CASE WHEN excluded.last_ts >= {t}last_ts THEN excluded."last" ELSE {t}"last" END, '
            f'last_ts = {greatest}({t}last_ts, excluded.last_ts)')
    alias = " AS t" if pg else ""
    if pg:
        types = {"series_id": "int", "area_code": "text", "indicator_code": "text", "res": "int", "bucket": "bigint"}
        arrays = ", ".join(f"%s::{types[k]}[]" for k in keys) + ", %s::int[], %s::float8[], %s::float8[], " \
            "%s::float8[], %s::float8[], %s::bigint[]"
        return (f"INSERT INTO {table}{alias} ({cols}) SELECT * FROM unnest({arrays}) "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}")
    marks = ", ".join("?" for _ in range(n_cols))
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET {sets}"


def upsert(session: Session, table: str, keys: tuple[str, ...], key_cols: list[list[Any]],
           agg: dict[str, np.ndarray]) -> int:
    n = len(agg["n"])
    if n == 0:
        return 0
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    cols = [*key_cols, agg["n"].tolist(), agg["sum"].tolist(), agg["min"].tolist(), agg["max"].tolist(),
            agg["last"].tolist(), agg["last_ts"].tolist()]
    sql = _upsert_sql(table, keys, pg, len(cols))
    if pg:
        conn.exec_driver_sql(sql, tuple(cols))
    else:
        conn.exec_driver_sql(sql, list(zip(*cols, strict=True)))
    return n


@dataclass
class Buffer:
    """Readings evaluated since the last flush, and the batches they came from."""

    sid: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    val: list[np.ndarray] = field(default_factory=list)
    old: list[np.ndarray] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    count: int = 0

    def add(self, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, old: np.ndarray, batch_ids: list[int]) -> None:
        if len(sid):
            self.sid.append(sid)
            self.ts.append(ts)
            self.val.append(val)
            self.old.append(old)
            self.count += len(sid)
        self.batches += batch_ids

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
        def cat(xs: list[np.ndarray], dt_: Any) -> np.ndarray:
            return np.concatenate(xs) if xs else np.zeros(0, dtype=dt_)

        out = (cat(self.sid, np.int64), cat(self.ts, np.int64), cat(self.val, np.float64), cat(self.old, np.float64),
               list(self.batches))
        self.sid, self.ts, self.val, self.old, self.batches, self.count = [], [], [], [], [], 0
        return out


class Areas:
    """Dense lookups series id -> grid / indicator index, for grouping by area with NumPy."""

    def __init__(self) -> None:
        self.grid_of = np.full(0, -1, dtype=np.int64)
        self.ind_of = np.full(0, -1, dtype=np.int64)
        self.grids: list[str] = []
        self.grid_ix: dict[str, int] = {}
        self.inds: list[str] = []
        self.ind_ix: dict[str, int] = {}

    def add(self, series_id: int, grid: str, indicator: str) -> None:
        if series_id >= len(self.grid_of):
            size = max(series_id + 1, 2 * len(self.grid_of), 1024)
            self.grid_of = np.concatenate([self.grid_of, np.full(size - len(self.grid_of), -1, dtype=np.int64)])
            self.ind_of = np.concatenate([self.ind_of, np.full(size - len(self.ind_of), -1, dtype=np.int64)])
        g = self.grid_ix.setdefault(grid, len(self.grids))
        if g == len(self.grids):
            self.grids.append(grid)
        i = self.ind_ix.setdefault(indicator, len(self.inds))
        if i == len(self.inds):
            self.inds.append(indicator)
        self.grid_of[series_id] = g
        self.ind_of[series_id] = i


def flush(session: Session, areas: Areas, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, old: np.ndarray) -> dict[str, int]:
    """Merge the readings into the rollup tables (see the module text). Caller's transaction."""
    out = {"series_hours": 0, "area_minutes": 0}
    if not len(sid):
        return out
    corr = ~np.isnan(old)
    new = ~corr
    # --- series x hour (new readings; corrected buckets are recomputed from raw)
    hour = ts // HOUR_MS * HOUR_MS
    if new.any():
        key = sid[new] * np.int64(1 << 22) + hour[new] // HOUR_MS % (1 << 22)
        keys, agg = group(key, ts[new], val[new])
        s_ids = (keys >> 22).tolist()
        buckets = [int(h) for h in (hour[new][np.unique(key, return_index=True)[1]])]
        out["series_hours"] = upsert(session, "indicator_rollup_device", ("series_id", "res", "bucket"),
                                     [s_ids, [3600] * len(keys), buckets], agg)
    if corr.any():
        for s, h in {(int(a), int(b)) for a, b in zip(sid[corr].tolist(), hour[corr].tolist(), strict=True)}:
            recompute_series_hour(session, s, h)
    # --- area x indicator x minute: grid groups, then up the codes (community 12, street 9, district 6)
    ok = (sid < len(areas.grid_of))
    ok[ok] &= areas.grid_of[sid[ok]] >= 0
    if not ok.any():
        return out
    g = areas.grid_of[sid[ok]]
    i = areas.ind_of[sid[ok]]
    minute = ts[ok] // MIN_MS
    v = val[ok]
    o = old[ok]
    c = ~np.isnan(o)
    n = np.where(c, 0, 1).astype(np.int64)
    s_ = np.where(c, v - np.where(c, o, 0.0), v)
    key = (g * np.int64(len(areas.inds) + 1) + i) * np.int64(1 << 30) + minute % (1 << 30)
    order_minute = minute
    keys, agg = group(key, ts[ok], v, n=n, sums=s_)
    first = np.unique(key, return_index=True)[1]
    gk, ik, mk = g[first], i[first], order_minute[first]
    codes = np.array(areas.grids, dtype=object)[gk]
    indc = np.array(areas.inds, dtype=object)[ik]
    total = 0
    for length in (15, 12, 9, 6):
        lvl = np.array([c[:length] for c in codes.tolist()], dtype=object) if length < 15 else codes
        if length == 15:
            k2, a2, area_l, ind_l, b_l = keys, agg, lvl.tolist(), indc.tolist(), (mk * MIN_MS).tolist()
        else:
            uniq, inv = np.unique(lvl.astype(str), return_inverse=True)
            k3 = (inv.astype(np.int64) * np.int64(len(areas.inds) + 1) + ik) * np.int64(1 << 30) + mk % (1 << 30)
            k2, a2 = group(k3, agg["last_ts"], agg["last"], n=agg["n"], sums=agg["sum"], mins=agg["min"],
                           maxs=agg["max"], last=agg["last"])
            f2 = np.unique(k3, return_index=True)[1]
            area_l = uniq[inv[f2]].tolist()
            ind_l = indc[f2].tolist()
            b_l = (mk[f2] * MIN_MS).tolist()
        total += upsert(session, "indicator_rollup_area", ("area_code", "indicator_code", "res", "bucket"),
                        [area_l, ind_l, [60] * len(k2), b_l], a2)
    out["area_minutes"] = total
    hours = sorted({int(h) for h in (np.unique(minute) * MIN_MS // HOUR_MS * HOUR_MS).tolist()})
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("INSERT INTO indicator_rollup_touched (bucket) SELECT unnest(%s::bigint[]) "
                             "ON CONFLICT DO NOTHING", (hours,))
    else:
        conn.exec_driver_sql("INSERT OR IGNORE INTO indicator_rollup_touched (bucket) VALUES (?)", [(h,) for h in hours])
    return out


def recompute_series_hour(session: Session, series_id: int, hour: int) -> None:
    """A series' hour bucket from its effective raw readings (the highest rev of each time)."""
    rows = session.execute(text(
        "SELECT r.ts, r.value FROM indicator_reading r WHERE r.series_id = :s AND r.ts >= :a AND r.ts < :b "
        "AND r.rev = (SELECT max(x.rev) FROM indicator_reading x WHERE x.ts = r.ts AND x.series_id = r.series_id) "
        "ORDER BY r.ts"), {"s": series_id, "a": hour, "b": hour + HOUR_MS}).all()
    session.execute(text("DELETE FROM indicator_rollup_device WHERE series_id = :s AND res = 3600 AND bucket = :h"),
                    {"s": series_id, "h": hour})
    if not rows:
        return
    v = np.array([r[1] for r in rows])
    session.execute(text(
        'INSERT INTO indicator_rollup_device (series_id, res, bucket, n, "sum", "min", "max", "last", last_ts) '
        "VALUES (:s, 3600, :h, :n, :sum, :min, :max, :last, :lt)"),
        {"s": series_id, "h": hour, "n": len(v), "sum": float(v.sum()), "min": float(v.min()), "max": float(v.max()),
         "last": float(v[-1]), "lt": int(rows[-1][0])})


def derive(session: Session, limit: int = 48) -> int:
    """Rebuild the area hour and day rows of the hours whose minutes changed. Caller's transaction."""
    hours = [int(h) for h in session.execute(text(
        "SELECT bucket FROM indicator_rollup_touched ORDER BY bucket LIMIT :n"), {"n": limit}).scalars()]
    if not hours:
        return 0
    days = sorted({h // DAY_MS * DAY_MS for h in hours})
    for res, fine, starts, width in ((3600, 60, hours, HOUR_MS), (86400, 3600, days, DAY_MS)):
        for b in starts:
            session.execute(text("DELETE FROM indicator_rollup_area WHERE res = :r AND bucket = :b"), {"r": res, "b": b})
            session.execute(text(
                'INSERT INTO indicator_rollup_area (area_code, indicator_code, res, bucket, n, "sum", "min", "max", '
                '"last", last_ts) SELECT g.area_code, g.indicator_code, :r, :b, g.n, g.s, g.mi, g.ma, '
                '(SELECT x."last" FROM indicator_rollup_area x WHERE x.area_code = g.area_code AND '
                "x.indicator_code = g.indicator_code AND x.res = :f AND x.bucket = g.lb), g.lt FROM ("
                'SELECT area_code, indicator_code, sum(n) AS n, sum("sum") AS s, min("min") AS mi, max("max") AS ma, '
                "max(bucket) AS lb, max(last_ts) AS lt FROM indicator_rollup_area WHERE res = :f AND bucket >= :b "
                "AND bucket < :e GROUP BY area_code, indicator_code) g"),
                {"r": res, "b": b, "f": fine, "e": b + width})
    for h in hours:
        session.execute(text("DELETE FROM indicator_rollup_touched WHERE bucket = :h"), {"h": h})
    return len(hours)
