"""Readings in: parse (JSON array, NDJSON, CSV), validate the whole batch, store it.

A reading is ``{device, indicator, ts, value}`` with ``ts`` ISO 8601 with an offset. One bad
row refuses the batch (422 naming every bad row, field and reason; nothing stored) unless
``partial``: then the good rows are stored and the bad ones listed. (device, indicator, ts) is
idempotent: the same value again is a duplicate, a different value a correction (both kept,
``rev`` 1, 2 ...). The batch is one transaction: one log row, the readings in multi-row INSERTs
(``ON CONFLICT DO NOTHING`` on the key; only when some key already existed is the batch probed
to tell duplicates from corrections).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cityops.db import database_key
from cityops.errors import InvalidInput, Problem
from cityops.indicators.models import Batch, Device, Series
from cityops.indicators.settings import get_indicator_settings
from cityops.security.principal import Principal

BATCHES: Any = Batch.__table__
FIELDS = ("device", "indicator", "ts", "value")


@dataclass
class Rejected:
    row: int
    field: str
    reason: str

    def out(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass
class Parsed:
    """The valid readings as arrays (``row``: 1-based position in the batch) and the bad rows."""

    row: np.ndarray
    sid: np.ndarray
    ts: np.ndarray
    val: np.ndarray
    rejected: list[Rejected]


@dataclass
class Stored:
    batch_id: int | None
    accepted: int
    duplicates: int
    corrections: int
    # the effective new readings for the rules (old: the value a correction replaced, else NaN)
    sid: np.ndarray
    ts: np.ndarray
    val: np.ndarray
    old: np.ndarray

    def answer(self, rejected: list[Rejected]) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "corrections": self.corrections,
                "rejected": [r.out() for r in rejected], "batch_id": self.batch_id}


# ------------------------------------------------------------------------------------ registry

class Registry:
    """(device code, indicator) -> series id, and device status, cached per database."""

    def __init__(self, stamp: tuple[Any, ...], series: dict[tuple[str, str], int], retired: set[str],
                 devices: set[str]) -> None:
        self.stamp, self.series, self.retired, self.devices = stamp, series, retired, devices
        self.checked = time.monotonic()


_registries: dict[str, Registry] = {}
_reg_lock = threading.Lock()
_generation = [0]


def invalidate() -> None:
    """Devices changed in this process: the next batch reloads the registry."""
    _generation[0] += 1
    _registries.clear()


def _stamp(session: Session) -> tuple[Any, ...]:
    row = session.execute(select(func.count(Device.id), func.max(Device.updated_at))).one()
    return (int(row[0]), row[1], _generation[0])


def registry(session: Session, max_age_s: float = 1.0) -> Registry:
    key = database_key(session)
    reg = _registries.get(key)
    if reg is not None and time.monotonic() - reg.checked < max_age_s and reg.stamp[2] == _generation[0]:
        return reg
    stamp = _stamp(session)
    if reg is not None and reg.stamp == stamp:
        reg.checked = time.monotonic()
        return reg
    with _reg_lock:
        rows = session.execute(select(Device.code, Series.indicator_code, Series.id).join(
            Series, Series.device_id == Device.id)).all()
        retired = set(session.scalars(select(Device.code).where(Device.status == "retired")))
        devices = set(session.scalars(select(Device.code)))
        reg = Registry(stamp, {(d, i): s for d, i, s in rows}, retired, devices)
        _registries[key] = reg
        return reg


# ------------------------------------------------------------------------------------ parsing

def parse_body(body: bytes, content_type: str | None) -> list[tuple[int, Any]]:
    """(row number, item) pairs. JSON array (or one object), NDJSON (row = line number) or CSV
    with a header (row = data row). An unreadable document is a 422 naming where."""
    ctype = (content_type or "application/json").split(";")[0].strip().lower()
    if ctype in ("application/x-ndjson", "application/ndjson", "application/jsonlines", "application/jsonl"):
        return parse_ndjson(body)
    if ctype in ("text/csv", "application/csv"):
        return parse_csv(body)
    try:
        doc = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([Problem(f"JSON 无法解析 the body is not JSON: {exc}", ["body"], "json_invalid")])
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise InvalidInput([Problem("须为读数数组 the body must be a JSON array of readings", ["body"], "type")])
    return list(enumerate(doc, start=1))


def parse_ndjson(body: bytes) -> list[tuple[int, Any]]:
    lines = body.split(b"\n")
    nums = [i for i, ln in enumerate(lines, start=1) if ln.strip()]
    try:  # fast path: the whole document as one array
        items = orjson.loads(b"[" + b",".join(lines[i - 1] for i in nums) + b"]")
        if len(items) == len(nums):
            return list(zip(nums, items, strict=True))
    except orjson.JSONDecodeError:
        pass
    out: list[tuple[int, Any]] = []
    for i in nums:
        try:
            out.append((i, orjson.loads(lines[i - 1])))
        except orjson.JSONDecodeError as exc:
            out.append((i, _Bad(f"该行不是JSON this line is not JSON: {exc}")))
    return out


def parse_csv(body: bytes) -> list[tuple[int, Any]]:
    try:
        text_ = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(f"CSV 须为 UTF-8 CSV must be UTF-8: {exc}", ["body"], "encoding")])
    reader = csv.reader(io.StringIO(text_))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        raise InvalidInput([Problem(f"CSV 无法读取 unreadable CSV: {exc}", ["body", "header"], "csv")])
    missing = [f for f in FIELDS if f not in header]
    if missing:
        raise InvalidInput([Problem(f"CSV 表头缺少 the header lacks {', '.join(missing)} (device,indicator,ts,value)",
                                    ["body", "header"], "missing")])
    pos = {f: header.index(f) for f in FIELDS}
    out: list[tuple[int, Any]] = []
    n = 0
    try:
        for rec in reader:
            if not any(x.strip() for x in rec):
                continue
            n += 1
            if len(rec) < len(header):
                out.append((n, _Bad(f"列数不足 {len(rec)} < {len(header)} too few columns")))
                continue
            out.append((n, {f: rec[p] for f, p in pos.items()} | {"_csv": True}))
    except csv.Error as exc:
        out.append((n + 1, _Bad(f"CSV 无法读取 unreadable CSV: {exc}")))
    return out


class _Bad:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _ts_ms(s: Any, cache: dict[str, int | str]) -> int | str:
    """Epoch ms of an ISO 8601 time with an offset, or the reason it is not one."""
    if not isinstance(s, str):
        return "须为带时区的 ISO 8601 字符串 must be an ISO 8601 string with an offset"
    hit = cache.get(s)
    if hit is not None:
        return hit
    try:
        t = dt.datetime.fromisoformat(s.strip())
    except ValueError:
        out: int | str = f"不是 ISO 8601 时间 not an ISO 8601 time: {s[:40]!r}"
    else:
        if t.tzinfo is None or t.utcoffset() is None:
            out = "须带时区偏移（如 +08:00） needs an offset (e.g. +08:00)"
        else:
            out = int(round(t.timestamp() * 1000))
    cache[s] = out
    return out


def validate(session: Session, items: list[tuple[int, Any]], now: dt.datetime | None = None) -> Parsed:
    """Check every item; the valid ones become arrays, the others ``Rejected`` rows."""
    settings = get_indicator_settings()
    reg = registry(session)
    series, retired, devices = reg.series, reg.retired, reg.devices
    now_ms = int((now or dt.datetime.now(dt.UTC)).timestamp() * 1000)
    lo = now_ms - settings.raw_retention_days * 86_400_000
    hi = now_ms + settings.future_tolerance_s * 1000
    rejected: list[Rejected] = []
    rows: list[int] = []
    sids: list[int] = []
    tss: list[int] = []
    vals: list[float] = []
    cache: dict[str, int | str] = {}
    for row, it in items:
        if type(it) is dict:
            dev, ind, ts, v = it.get("device"), it.get("indicator"), it.get("ts"), it.get("value")
            tv = type(v)
            # fast path: a well-formed reading of a known series (str codes, cached time, finite number)
            if type(dev) is str and type(ind) is str and (tv is float or tv is int):
                sid = series.get((dev, ind))
                t = cache.get(ts) if type(ts) is str else None
                if t is None and type(ts) is str:
                    t = _ts_ms(ts, cache)
                if sid is not None and type(t) is int and lo <= t <= hi and math.isfinite(v) and dev not in retired:  # type: ignore[arg-type]
                    rows.append(row)
                    sids.append(sid)
                    tss.append(t)
                    vals.append(float(v))  # type: ignore[arg-type]
                    continue
        bad = _check_row(it, series, retired, devices, cache, lo, hi, settings.raw_retention_days)
        if bad is None:  # a CSV row (strings) that is fine
            sid, t, fv = _csv_ok(it, series, cache)
            rows.append(row)
            sids.append(sid)
            tss.append(t)
            vals.append(fv)
            continue
        rejected.append(Rejected(row, bad[0], bad[1]))
    return Parsed(np.asarray(rows, dtype=np.int64), np.asarray(sids, dtype=np.int64), np.asarray(tss, dtype=np.int64),
                  np.asarray(vals, dtype=np.float64), rejected)


def _check_row(it: Any, series: dict[tuple[str, str], int], retired: set[str], devices: set[str],
               cache: dict[str, int | str], lo: int, hi: int, keep_days: int) -> tuple[str, str] | None:
    """Why a reading is refused (field, reason), or None (valid; only CSV rows get here valid)."""
    if isinstance(it, _Bad):
        return ("row", it.reason)
    if not isinstance(it, dict):
        return ("row", "读数须为对象 a reading is an object {device, indicator, ts, value}")
    dev, ind, ts, v = it.get("device"), it.get("indicator"), it.get("ts"), it.get("value")
    if not isinstance(dev, str) or not dev:
        return ("device", "缺少设备编码 device code missing")
    if not isinstance(ind, str) or not ind:
        return ("indicator", "缺少指标代码 indicator code missing")
    sid = series.get((dev, ind))
    if sid is None:
        if dev not in devices:
            return ("device", f"未知设备 unknown device {dev[:60]!r}")
        return ("indicator", f"设备 {dev[:60]} 未配置指标 the device does not measure {ind[:40]!r}")
    if dev in retired:
        return ("device", f"设备 {dev[:60]} 已停用 the device is retired")
    t = _ts_ms(ts, cache)
    if isinstance(t, str):
        return ("ts", t)
    if t < lo:
        return ("ts", f"早于保留期（{keep_days}天） older than the retention period")
    if t > hi:
        return ("ts", "时间在未来 the time is in the future")
    if it.get("_csv") and isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            v = None
    if isinstance(v, bool) or not isinstance(v, _NUM) or not math.isfinite(v):
        return ("value", "须为有限数值 must be a finite number")
    return None


def _csv_ok(it: dict[str, Any], series: dict[tuple[str, str], int], cache: dict[str, int | str]) -> tuple[int, int, float]:
    v = it.get("value")
    t = cache[it["ts"]]
    assert isinstance(t, int)
    return series[(it["device"], it["indicator"])], t, float(v)  # type: ignore[arg-type]


_NUM = (int, float)


def check(parsed: Parsed, partial: bool) -> None:
    if parsed.rejected and not partial:
        raise InvalidInput([Problem(r.reason, ["body", r.row, r.field], "value_error", {"row": r.row, "field": r.field})
                            for r in parsed.rejected[:1000]])


# ------------------------------------------------------------------------------------ storing

def _sql_insert(pg: bool) -> str:
    if pg:
        return ("INSERT INTO indicator_reading (ts, series_id, rev, value, batch_id) SELECT * FROM "
                "unnest(%s::bigint[], %s::int[], %s::smallint[], %s::float8[], %s::bigint[]) ON CONFLICT DO NOTHING")
    return ("INSERT INTO indicator_reading (ts, series_id, rev, value, batch_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING")


def _insert(session: Session, ts: np.ndarray, sid: np.ndarray, rev: np.ndarray, val: np.ndarray, bid: int) -> int:
    if not len(ts):
        return 0
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    if pg:
        res = conn.exec_driver_sql(_sql_insert(True), (ts.tolist(), sid.tolist(), rev.tolist(), val.tolist(),
                                                       [bid] * len(ts)))
        return int(res.rowcount)
    rows = list(zip(ts.tolist(), sid.tolist(), rev.tolist(), val.tolist(), [bid] * len(ts), strict=True))
    res = conn.exec_driver_sql(_sql_insert(False), rows)
    return int(res.rowcount)


def _probe(session: Session, ts: np.ndarray, sid: np.ndarray) -> dict[tuple[int, int], list[tuple[int, float, int]]]:
    """Existing rows (rev, value, batch id) of the keys (ts, series)."""
    conn = session.connection()
    out: dict[tuple[int, int], list[tuple[int, float, int]]] = {}
    pg = conn.dialect.name == "postgresql"
    keys = list(zip(ts.tolist(), sid.tolist(), strict=True))
    step = 5000 if pg else 400
    for i in range(0, len(keys), step):
        chunk = keys[i:i + step]
        if pg:
            res = conn.exec_driver_sql(
                "SELECT r.ts, r.series_id, r.rev, r.value, r.batch_id FROM indicator_reading r JOIN "
                "unnest(%s::bigint[], %s::int[]) AS k(ts, sid) ON r.ts = k.ts AND r.series_id = k.sid",
                ([k[0] for k in chunk], [k[1] for k in chunk]))
        else:
            values = ",".join("(?, ?)" for _ in chunk)
            res = conn.exec_driver_sql(
                f"WITH k(ts, sid) AS (VALUES {values}) SELECT r.ts, r.series_id, r.rev, r.value, r.batch_id "
                "FROM k JOIN indicator_reading r ON r.ts = k.ts AND r.series_id = k.sid",
                tuple(x for k in chunk for x in k))
        for t, s, rev, v, b in res:
            out.setdefault((int(t), int(s)), []).append((int(rev), float(v), int(b)))
    return out


def store(session: Session, principal: Principal, parsed: Parsed, source: str) -> Stored:
    """Store the valid readings of ``parsed`` as one batch (caller's transaction)."""
    n = len(parsed.sid)
    empty = np.zeros(0)
    if n == 0:
        return Stored(None, 0, 0, 0, empty.astype(np.int64), empty.astype(np.int64), empty, empty)
    order = np.lexsort((parsed.row, parsed.ts, parsed.sid))
    sid, ts, val = parsed.sid[order], parsed.ts[order], parsed.val[order]
    bid = int(session.execute(insert(BATCHES).values(
        source=source[:20], actor=principal.username[:120], n=n, ts_min=int(ts.min()), ts_max=int(ts.max()),
        corrections=0, status="stored", received_at=dt.datetime.now(dt.UTC)).returning(BATCHES.c.id)).scalar_one())
    first = np.r_[True, (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])]
    simple = bool(first.all())
    if simple:  # no key twice in the batch: one INSERT, conflicts only with earlier batches
        got = _insert(session, ts, sid, np.zeros(n, dtype=np.int64), val, bid)
        if got == n:
            return Stored(bid, n, 0, 0, sid, ts, val, np.full(n, np.nan))
    # general path: keys repeated in the batch and/or already stored
    heads = np.nonzero(first)[0]
    if not simple:
        _insert(session, ts[heads], sid[heads], np.zeros(len(heads), dtype=np.int64), val[heads], bid)
    existing = _probe(session, ts[heads], sid[heads])
    ends = np.r_[heads[1:], n]
    out_sid: list[int] = []
    out_ts: list[int] = []
    out_val: list[float] = []
    out_old: list[float] = []
    extra: list[tuple[int, int, int, float]] = []
    dups = corr = acc = 0
    for h, e in zip(heads.tolist(), ends.tolist(), strict=True):
        key = (int(ts[h]), int(sid[h]))
        rows_db = existing.get(key, [])
        mine = [r for r in rows_db if r[2] == bid]
        before = [r for r in rows_db if r[2] != bid]
        values = val[h:e].tolist()
        if before:  # the key was stored earlier: the first value is judged against it too
            top = max(before)
            cur_rev, cur_val, prior = top[0], top[1], top[1]
            seq = values
        else:
            assert mine, key
            cur_rev, cur_val, prior = 0, values[0], float("nan")
            acc += 1
            seq = values[1:]
        for v in seq:
            if v == cur_val:
                dups += 1
                continue
            cur_rev += 1
            cur_val = v
            extra.append((key[0], key[1], cur_rev, v))
            corr += 1
            acc += 1
        if cur_val == cur_val and (not before or cur_val != prior):
            out_sid.append(key[1])
            out_ts.append(key[0])
            out_val.append(cur_val)
            out_old.append(prior)
    if extra:
        a = np.array(extra, dtype=object)
        _insert(session, a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64),
                a[:, 3].astype(np.float64), bid)
    if corr:
        session.execute(BATCHES.update().where(BATCHES.c.id == bid).values(corrections=corr))
    return Stored(bid, acc, dups, corr, np.asarray(out_sid, dtype=np.int64), np.asarray(out_ts, dtype=np.int64),
                  np.asarray(out_val, dtype=np.float64), np.asarray(out_old, dtype=np.float64))
