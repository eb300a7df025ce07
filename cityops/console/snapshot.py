"""An in-memory column snapshot of the cases the console aggregates, kept current from the outbox.

The district console asks the same few questions many times a second (KPIs, map clusters,
choropleth, to-do counts) over every open case. Scanning 100,000 wide ``case_file`` rows for each
costs hundreds of milliseconds on SQLite; the same answers from a dozen NumPy columns cost a few.
So each process keeps, per database, the columns the console needs of:

* every open case, and every case reported or closed in the last ``WINDOW_DAYS`` days.

It stays current without polling the whole table: before answering, ``current(session)`` reads
the outbox (``cityops.jobs.service.events_since`` — every ``case*`` event once, never one whose
transaction has not committed) and reloads exactly the cases those events name, plus any case
with an id above the highest seen (rows written without an event, e.g. bulk imports). SLA colours
are not stored: they are computed at question time from due / yellow times. A full reload every
``FULL_RELOAD_S`` seconds bounds anything else (deletes, edits outside the case engine).
Replacement is copy-on-write: readers keep the snapshot they started with.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.cases import reference as case_ref
from cityops.cases.models import Case
from cityops.db import database_key
from cityops.jobs import service as jobs_service

WINDOW_DAYS = 95
FULL_RELOAD_S = 300.0
MAX_EVENTS = 20_000  # more changed cases than this since the last look: reload everything

def _select_sql(dialect: str) -> str:
    """The snapshot's columns, times as seconds since 1970 computed by the database."""
    if dialect == "postgresql":
        def ep(c: str) -> str:
            return f"extract(epoch from {c})::float8"
    else:
        def ep(c: str) -> str:
            return f"(julianday({c}) - 2440587.5) * 86400.0"
    return (f"SELECT id, lon, lat, street_code, community_code, grid_code, state, {ep('due_at')}, {ep('yellow_at')}, "
            f"{ep('reported_at')}, {ep('closed_at')}, category_code, source, lead_department_code, overdue_count, "
            f"acknowledged_at IS NOT NULL FROM {Case.__tablename__}")


def _fetch(session: Session, where: str, params: list[Any]) -> list[Any]:
    """Rows through the DBAPI cursor: building 100,000 ORM rows would cost several times the query."""
    dialect = session.get_bind().dialect.name
    sql = f"{_select_sql(dialect)} WHERE {where}"
    if dialect == "postgresql":
        sql = sql.replace("?", "%s")
    dbapi = session.connection().connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _time_param(session: Session, at: dt.datetime) -> Any:
    """A time as the database stores it (SQLite: naive UTC text, as ``UTCDateTime`` writes it)."""
    if session.get_bind().dialect.name == "postgresql":
        return at
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class Codes:
    """A growing string <-> int code book (index 0 is None)."""

    def __init__(self) -> None:
        self.values: list[str | None] = [None]
        self.index: dict[str | None, int] = {None: 0}

    def get(self, v: str | None) -> int:
        i = self.index.get(v)
        if i is None:
            i = len(self.values)
            self.values.append(v)
            self.index[v] = i
        return i

    def find(self, v: str | None) -> int:
        """The index of ``v``, or -1 when never seen (matches nothing)."""
        return self.index.get(v, -1)

    def copy(self) -> Codes:
        c = Codes()
        c.values = list(self.values)
        c.index = dict(self.index)
        return c


@dataclass
class Snapshot:
    loaded_at: float
    max_case_id: int
    cursor: int
    id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    street: np.ndarray
    community: np.ndarray
    grid: np.ndarray
    state: np.ndarray
    due: np.ndarray
    yellow: np.ndarray
    reported: np.ndarray
    closed: np.ndarray
    category: np.ndarray
    source: np.ndarray
    dept: np.ndarray
    overdue_count: np.ndarray
    acknowledged: np.ndarray
    codes: Codes = field(default_factory=Codes)
    pos: dict[int, int] = field(default_factory=dict)
    open_states: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    ARRAYS = ("id", "lon", "lat", "street", "community", "grid", "state", "due", "yellow", "reported", "closed",
              "category", "source", "dept", "overdue_count", "acknowledged")

    def __len__(self) -> int:
        return int(self.id.shape[0])

    def is_open(self) -> np.ndarray:
        out: np.ndarray = self.open_states[self.state]
        return out


def _codes(col: tuple[Any, ...], codes: Codes) -> np.ndarray:
    mapping = {v: codes.get(v) for v in set(col)}
    return np.fromiter(map(mapping.__getitem__, col), dtype=np.int32, count=len(col))


def _columns(rows: list[Any], codes: Codes) -> dict[str, np.ndarray]:
    if not rows:
        cols: list[tuple[Any, ...]] = [() for _ in range(16)]
    else:
        cols = list(zip(*rows, strict=True))

    def num(k: int, dtype: Any) -> np.ndarray:
        return np.array(cols[k], dtype=dtype) if cols[k] else np.zeros(0, dtype=dtype)

    return {
        "id": num(0, np.int64), "lon": num(1, np.float64), "lat": num(2, np.float64),
        "street": _codes(cols[3], codes), "community": _codes(cols[4], codes), "grid": _codes(cols[5], codes),
        "state": _codes(cols[6], codes),
        # None -> NaN
        "due": num(7, np.float64), "yellow": num(8, np.float64), "reported": num(9, np.float64),
        "closed": num(10, np.float64),
        "category": _codes(cols[11], codes), "source": _codes(cols[12], codes), "dept": _codes(cols[13], codes),
        "overdue_count": np.array([v or 0 for v in cols[14]], dtype=np.int32),
        "acknowledged": np.array([bool(v) for v in cols[15]], dtype=bool),
    }


def _open_states(codes: Codes) -> np.ndarray:
    return np.array([v is not None and case_ref.STATES.get(v, {}).get("open", False) for v in codes.values], dtype=bool)




def _latest_event(session: Session) -> int:
    """The cursor a fresh snapshot starts from: the latest settled event (``jobs.start_cursor``: an
    event whose transaction is still open below the latest id is not skipped)."""
    return jobs_service.start_cursor(session)


def load(session: Session, now: dt.datetime | None = None) -> Snapshot:
    """A full snapshot (one scan of the case table)."""
    now = now or dt.datetime.now(dt.UTC)
    cursor = _latest_event(session)  # read first: anything after it is applied by the next refresh
    max_id = int(session.scalar(select(func.max(Case.id))) or 0)
    since = _time_param(session, now - dt.timedelta(days=WINDOW_DAYS))
    states = list(case_ref.OPEN_STATES)
    rows = _fetch(session, f"(state IN ({', '.join('?' * len(states))}) OR reported_at >= ? OR closed_at >= ?) AND id <= ?",
                  [*states, since, since, max_id])
    codes = Codes()
    cols = _columns(list(rows), codes)
    snap = Snapshot(loaded_at=time.monotonic(), max_case_id=max_id, cursor=cursor, codes=codes, **cols)  # type: ignore[arg-type]
    snap.pos = {int(i): k for k, i in enumerate(snap.id)}
    snap.open_states = _open_states(codes)
    return snap


def _apply(old: Snapshot, rows: list[Any], max_id: int, cursor: int) -> Snapshot:
    """A new snapshot: ``old`` with ``rows`` replacing / adding cases (copy-on-write)."""
    rows = list({r[0]: r for r in rows}.values())  # a case named by an event AND new by id: once
    codes = old.codes.copy()
    cols = _columns(rows, codes)
    arrays = {name: getattr(old, name).copy() for name in Snapshot.ARRAYS}
    pos = dict(old.pos)
    new_idx = []
    for k, cid in enumerate(cols["id"]):
        p = pos.get(int(cid))
        if p is None:
            new_idx.append(k)
        else:
            for name in Snapshot.ARRAYS:
                arrays[name][p] = cols[name][k]
    if new_idx:
        sel = np.asarray(new_idx, dtype=np.int64)
        start = len(arrays["id"])
        for name in Snapshot.ARRAYS:
            arrays[name] = np.concatenate([arrays[name], cols[name][sel]])
        for j, k in enumerate(new_idx):
            pos[int(cols["id"][k])] = start + j
    snap = Snapshot(loaded_at=old.loaded_at, max_case_id=max(max_id, old.max_case_id), cursor=cursor, codes=codes,
                    pos=pos, **arrays)
    snap.open_states = _open_states(codes)
    return snap


def refresh(session: Session, old: Snapshot) -> Snapshot:
    """Apply what changed since ``old``: cases named by newer outbox events and new ids."""
    from cityops.jobs.service import events_since

    changed: set[int] = set()
    cursor = old.cursor
    while True:
        page = events_since(session, cursor, topics=["case*"], limit=1000)
        for ev in page:
            cid = ev.payload.get("case_id")
            if isinstance(cid, int):
                changed.add(cid)
        moved = page.cursor != cursor
        cursor = page.cursor
        if len(changed) > MAX_EVENTS:
            return load(session)
        if not moved:  # a page can be empty of case events yet move the cursor past others
            break
    max_id = int(session.scalar(select(func.max(Case.id))) or 0)
    if not changed and max_id <= old.max_case_id:
        if cursor == old.cursor:
            return old
        snap = _apply(old, [], max_id, cursor)
        return snap
    rows: list[Any] = []
    ids = sorted(changed)
    for k in range(0, len(ids), 500):
        chunk = ids[k:k + 500]
        rows.extend(_fetch(session, f"id IN ({', '.join('?' * len(chunk))})", chunk))
    if max_id > old.max_case_id:
        rows.extend(_fetch(session, "id > ? AND id <= ?", [old.max_case_id, max_id]))
    return _apply(old, rows, max_id, cursor)


@contextmanager
def reading(session: Session) -> Iterator[Session]:
    """A read-only session on the same database that does not hold SQLite's write lock (the
    app's sessions begin IMMEDIATE): a long read (a full snapshot, a briefing) must not block
    intake. On PostgreSQL it is simply another session."""
    engine = session.get_bind().engine
    with engine.connect() as conn:
        conn.info["write"] = False
        try:
            with Session(bind=conn) as s:
                yield s
                s.rollback()
        finally:
            conn.info.pop("write", None)


_snaps: dict[str, Snapshot] = {}
_reloading: set[str] = set()
_lock = threading.Lock()


def _background_reload(key: str, engine: Any) -> None:
    """A fresh full snapshot made off the request path, caught up, then swapped in. It reads
    without the write lock and takes the module lock only for the swap (so no request that holds
    the database can wait on it)."""
    from sqlalchemy.orm import Session as _Session

    try:
        with _Session(bind=engine) as s0, reading(s0) as s:
            fresh = refresh(s, load(s))
        with _lock:
            have = _snaps.get(key)
            if have is None or fresh.cursor >= have.cursor:
                _snaps[key] = fresh
    except Exception:  # noqa: BLE001 - keep serving the old snapshot; the next stale look retries
        from cityops.logging import log

        log.exception("console.snapshot_reload_failed")
    finally:
        with _lock:
            _reloading.discard(key)


def current(session: Session) -> Snapshot:
    """The snapshot of this session's database, brought up to date. The first look loads it
    (one scan); afterwards a look applies the outbox since the last one, and every
    ``FULL_RELOAD_S`` a background thread rebuilds it from scratch. Reads go through a separate
    read-only connection (never SQLite's write lock), and no lock is held while reading: the module
    lock only guards the swap, and a newer snapshot (by cursor) is never replaced by an older one."""
    engine = session.get_bind().engine
    key = database_key(session)
    with _lock:
        snap = _snaps.get(key)
    with reading(session) as rs:
        fresh = refresh(rs, load(rs)) if snap is None else refresh(rs, snap)
    with _lock:
        have = _snaps.get(key)
        if have is None or fresh.cursor >= have.cursor:
            _snaps[key] = fresh
        else:
            fresh = have
        stale = time.monotonic() - fresh.loaded_at > FULL_RELOAD_S and key not in _reloading
        if stale:
            _reloading.add(key)
    if stale:
        threading.Thread(target=_background_reload, args=(key, engine), daemon=True,
                         name="console-snapshot-reload").start()
    return fresh


def forget(url: str | None = None) -> None:
    """Drop cached snapshots (tests that rebuild a database)."""
    with _lock:
        if url is None:
            _snaps.clear()
        else:
            _snaps.pop(url, None)
