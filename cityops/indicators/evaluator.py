"""The evaluator: one per database at a time (a lease), in whichever process ingests.

Ingest commits a batch (status ``stored``) and hands its arrays to this process's pipeline; the
lease holder evaluates the rules on them (``engine``), writes the warnings (``warnings``), keeps
the rollup buffer, and marks the batches ``evaluated`` — in one transaction per cycle. Every few
seconds the rollups are flushed in the transaction that marks the batches ``done``. Batches stored
by processes that do not hold the lease (several ``cityops ingest mqtt`` splitting one stream)
are read back from the raw table by the holder. The database is the truth on (re)start: the
holder rebuilds its rings from the raw readings of batches already evaluated, restores the
levels of the open warnings' subjects, and reads back the batches evaluated but not rolled up.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cityops.indicators import catalogue as catalog
from cityops.indicators import rollups
from cityops.indicators.engine import Change, Engine, SeriesInfo
from cityops.indicators.models import Batch, CatalogueVersion, Device, EarlyWarning, Lease, Series
from cityops.indicators.rules import NONE, composite_holds
from cityops.indicators.settings import get_indicator_settings
from cityops.indicators.warnings import Warnings, open_case
from cityops.logging import log
from cityops.security.principal import SYSTEM

LEASE = "rules"
FLUSH_S = 15.0  # rollups are flushed this often (and at drain/stop): fewer series-hour upserts
SILENCE_S = 30.0


@dataclass
class Handoff:
    batch_id: int
    sid: np.ndarray
    ts: np.ndarray
    val: np.ndarray
    old: np.ndarray
    t_committed: float


class Pipeline:
    """This process's evaluator for one database."""

    def __init__(self, maker: sessionmaker[Session], read_maker: sessionmaker[Session] | None = None) -> None:
        self.maker = maker
        self.read_maker = read_maker or maker
        self.lease_renew_at = 0.0
        self.cycle_lock = threading.RLock()  # one cycle at a time (the thread, drain, stop)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.queue: deque[Handoff] = deque()
        self.cond = threading.Condition()
        self.engine: Engine | None = None
        self.cat: catalog.Catalogue | None = None
        self.warnings = Warnings()
        self.buffer = rollups.Buffer()
        self.areas = rollups.Areas()
        self.last_flush = time.monotonic()
        self.last_silence = 0.0
        self.last_poll = 0.0
        self.thread: threading.Thread | None = None
        self.stop_event = threading.Event()
        self.busy = False
        self.holding = False
        self.stats: dict[str, Any] = {"cycles": 0, "batches": 0, "readings": 0, "changes": 0, "errors": 0,
                                      "last_error": None, "latency": deque(maxlen=50_000)}
        self.on_warning: list[Any] = []  # callbacks(warning ids raised/changed, commit time) — bench

    # ------------------------------------------------------------------ handing over

    def submit(self, h: Handoff) -> None:
        with self.cond:
            self.queue.append(h)
            self.cond.notify()
        self.ensure_thread()

    def ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.stop_event.clear()
            self.thread = threading.Thread(target=self._loop, name="cityops-rules", daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        try:
            self.cycle(flush=True)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.warning("rules: final flush failed: %s", exc)
        self._release()

    def _loop(self) -> None:
        poll = get_indicator_settings().poll_seconds
        while not self.stop_event.is_set():
            with self.cond:
                if not self.queue:
                    self.cond.wait(poll)
            try:
                self.cycle()
            except Exception as exc:  # noqa: BLE001 - the loop survives; the state is rebuilt
                self.stats["errors"] += 1
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
                log.warning("rules cycle failed (state rebuilt from the database): %s", self.stats["last_error"])
                self.engine = None
                time.sleep(0.2)

    def drain(self, timeout: float = 30.0, flush: bool = True) -> bool:
        """Wait until every batch handed over or stored is evaluated (and flushed); tests."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.cond:
                pending = bool(self.queue) or self.busy
            if not pending:
                with self.maker() as s:
                    left = s.scalar(select(Batch.id).where(Batch.status == "stored").limit(1))
                if left is None:
                    if flush:
                        self.cycle(flush=True)
                    return True
                self.cycle()
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ lease

    def _lease(self, s: Session) -> bool:
        now = dt.datetime.now(dt.UTC)
        until = now + dt.timedelta(seconds=get_indicator_settings().lease_seconds)
        res = s.execute(update(Lease).where(Lease.name == LEASE, (Lease.holder == self.holder) | (Lease.until < now))
                        .values(holder=self.holder, until=until))
        if res.rowcount == 0:  # type: ignore[attr-defined]
            if s.get(Lease, LEASE) is None:
                s.add(Lease(name=LEASE, holder=self.holder, until=until, epoch=0))
                try:
                    s.flush()
                except Exception:  # noqa: BLE001 - another process created it first
                    s.rollback()
                    return False
                return True
            return False
        return True

    def _release(self) -> None:
        try:
            with self.maker() as s:
                s.execute(update(Lease).where(Lease.name == LEASE, Lease.holder == self.holder)
                          .values(until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
                s.commit()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ start

    def _start(self, s: Session) -> None:
        cat = catalog.ensure_default(s, SYSTEM)
        eng = Engine(cat)
        self.cat, self.engine = cat, eng
        self.areas = rollups.Areas()
        self._load_series(s, None)
        # rings from the raw readings already evaluated (the batches still stored are evaluated next)
        span_ms = max((t.ring.size * t.ind.interval_ms for t in eng.tracks.values()), default=0)
        silence_ms = max((n * max(cat.indicators[i].interval_ms for i in r.indicators)
                          for r in cat.rules.values() if r.kind == "silence" for _rank, n in r.silence_bands), default=0)
        now_ms = int(time.time() * 1000)
        lo = now_ms - max(span_ms, silence_ms)
        rows = s.execute(text(
            "SELECT r.series_id, r.ts, r.value FROM indicator_reading r JOIN indicator_batch b ON b.id = r.batch_id "
            "WHERE r.ts > :lo AND b.status <> 'stored' ORDER BY r.series_id, r.ts, r.rev"), {"lo": lo}).all()
        if rows:
            a = np.array([(r[0], r[1]) for r in rows], dtype=np.int64)
            v = np.array([r[2] for r in rows], dtype=np.float64)
            last = np.r_[(a[1:, 0] != a[:-1, 0]) | (a[1:, 1] != a[:-1, 1]), True]  # the highest rev per key
            eng.load(a[last, 0], a[last, 1], v[last])
        for w in self.warnings.load(s):
            eng.restore(w.rule_code, w.area_code, {k: int(x) for k, x in (w.subjects or {}).items()})
        # batches evaluated but not rolled up before a stop: read back into the buffer
        pend = list(s.execute(select(Batch.id, Batch.ts_min, Batch.ts_max).where(Batch.status == "evaluated")))
        if pend:
            sid, ts, val, old = self._read_back(s, pend)
            self.buffer.add(sid, ts, val, old, [p[0] for p in pend])
        log.info("rules: evaluator %s holds the lease (%d series, %d open warnings)", self.holder,
                 len(eng.where), len(self.warnings.open))

    def _load_series(self, s: Session, only: list[int] | None) -> None:
        assert self.engine is not None
        q = select(Series.id, Series.indicator_code, Device.code, Device.grid_code, Device.lon, Device.lat,
                   Device.params, Device.updated_at, Device.status).join(Device, Device.id == Series.device_id)
        if only is not None:
            q = q.where(Series.id.in_(only))
        infos = []
        for r in s.execute(q):
            infos.append(SeriesInfo(r[0], r[2], r[1], r[3], r[4], r[5], dict(r[6] or {}),
                                    int(r[7].timestamp() * 1000) if r[7] else 0, r[8] == "active"))
            self.areas.add(r[0], r[3], r[1])
        self.engine.add_series(infos)

    def refresh_device(self, s: Session, device_id: int) -> None:
        """A device changed (place, parameters, status): the engine follows (same process)."""
        if self.engine is None:
            return
        q = select(Series.id, Series.indicator_code, Device.code, Device.grid_code, Device.lon, Device.lat,
                   Device.params, Device.updated_at, Device.status).join(Device, Device.id == Series.device_id) \
            .where(Device.id == device_id)
        for r in s.execute(q):
            self.engine.update_series(SeriesInfo(r[0], r[2], r[1], r[3], r[4], r[5], dict(r[6] or {}),
                                                 int(r[7].timestamp() * 1000) if r[7] else 0, r[8] == "active"))
            self.areas.add(r[0], r[3], r[1])

    def _read_back(self, s: Session, batches: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sids, tss, vals, olds = [], [], [], []
        for bid, lo, hi in batches:
            rows = s.execute(text(
                "SELECT r.series_id, r.ts, r.value, r.rev, (SELECT p.value FROM indicator_reading p WHERE p.ts = r.ts "
                "AND p.series_id = r.series_id AND p.rev = r.rev - 1) FROM indicator_reading r "
                "WHERE r.batch_id = :b AND r.ts >= :lo AND r.ts <= :hi ORDER BY r.series_id, r.ts, r.rev"),
                {"b": bid, "lo": lo, "hi": hi}).all()
            # one effective value per key: the highest rev of this batch, replacing what came before it
            keep: dict[tuple[int, int], tuple[float, float]] = {}
            first_old: dict[tuple[int, int], float] = {}
            for sid, ts, v, rev, prev in rows:
                key = (int(sid), int(ts))
                if key not in first_old:
                    first_old[key] = float(prev) if rev > 0 and prev is not None else float("nan")
                keep[key] = (float(v), first_old[key])
            for (sid, ts), (v, o) in keep.items():
                sids.append(sid)
                tss.append(ts)
                vals.append(v)
                olds.append(o)
        return (np.asarray(sids, dtype=np.int64), np.asarray(tss, dtype=np.int64), np.asarray(vals, dtype=np.float64),
                np.asarray(olds, dtype=np.float64))

    # ------------------------------------------------------------------ one cycle

    def cycle(self, flush: bool = False) -> int:
        """Evaluate what is waiting; returns the number of batches evaluated."""
        with self.cycle_lock:
            with self.cond:
                self.busy = True
                items = list(self.queue)
                self.queue.clear()
            try:
                return self._cycle(items, flush)
            except BaseException:
                self.engine = None  # the database is the truth: rebuild from it next time
                self.holding = False
                with self.cond:  # not evaluated: they are still stored; read back after the rebuild
                    pass
                raise
            finally:
                with self.cond:
                    self.busy = False

    def _ensure_lease(self) -> bool:
        """Hold the lease, renewing it (a short write transaction) when half of it has run out."""
        now = time.monotonic()
        if self.holding and self.engine is not None and now < self.lease_renew_at:
            return True
        with self.maker() as s:
            ok = self._lease(s)
            s.commit()
        if not ok:
            self.holding = False
            self.engine = None  # another process evaluates; our batches stay stored for it
            return False
        self.lease_renew_at = now + get_indicator_settings().lease_seconds / 2
        if self.engine is None or not self.holding:
            with self.maker() as s:
                self._start(s)
                s.commit()
            self.holding = True
        return True

    def _cycle(self, items: list[Handoff], flush: bool) -> int:
        """Read (no lock), compute in memory, then write in one short transaction: on SQLite the
        write lock is held only while the results are written, not while the rules run."""
        if not self._ensure_lease():
            return 0
        eng, cat = self.engine, self.cat
        assert eng is not None and cat is not None
        with self.read_maker() as r:
            cur = r.scalar(select(CatalogueVersion.id).where(CatalogueVersion.active.is_(True)))
            if cur != cat.id:  # a new catalogue version: start again
                self.engine = None
                self.holding = False
                with self.cond:
                    self.queue.extendleft(reversed(items))
                return 0
            ids = [h.batch_id for h in items]
            status = dict(r.execute(select(Batch.id, Batch.status).where(Batch.id.in_(ids))).all()) if ids else {}
            items = [h for h in items if status.get(h.batch_id) == "stored"]
            now = time.monotonic()
            foreign: list[Any] = []
            if now - self.last_poll >= get_indicator_settings().poll_seconds or flush:
                self.last_poll = now
                mine = {h.batch_id for h in items}
                foreign = [row for row in r.execute(select(Batch.id, Batch.ts_min, Batch.ts_max).where(
                    Batch.status == "stored").order_by(Batch.id).limit(200)) if row[0] not in mine]
            parts = [(h.sid, h.ts, h.val, h.old) for h in items]
            if foreign:
                parts.append(self._read_back(r, foreign))
            batch_ids = [h.batch_id for h in items] + [row[0] for row in foreign]
            changes: list[Change] = []
            if parts:
                sid = np.concatenate([p[0] for p in parts])
                ts = np.concatenate([p[1] for p in parts])
                val = np.concatenate([p[2] for p in parts])
                old = np.concatenate([p[3] for p in parts])
                unknown = sorted({int(x) for x in np.unique(sid).tolist() if not eng.known(int(x))})
                if unknown:
                    self._load_series(r, unknown)
            lifted = self.warnings.lifted_by_people(r)
        for rule, area in lifted:
            eng.reset_area(rule, area)
        if parts:
            changes = eng.process(sid, ts, val, old)
            self.buffer.add(sid, ts, val, old, batch_ids)
            self.stats["readings"] += len(sid)
        if time.monotonic() - self.last_silence >= SILENCE_S or flush:
            self.last_silence = time.monotonic()
            changes += eng.silence(int(time.time() * 1000))
        decided = eng.apply(changes)
        due = flush or time.monotonic() - self.last_flush >= FLUSH_S or self.buffer.count > 500_000
        if not decided and not batch_ids and not due:
            return 0
        with self.maker() as s:
            want = self.warnings.reconcile(s, cat, decided, lambda r_, a: eng.subjects.get(r_, {}).get(a, {}))
            want += self._composites(s, cat, decided)
            for wid in want:
                open_case(s, cat, wid)
            if batch_ids:
                s.execute(update(Batch).where(Batch.id.in_(batch_ids)).values(status="evaluated",
                                                                               evaluated_at=dt.datetime.now(dt.UTC)))
            if due:
                sid2, ts2, val2, old2, flushed = self.buffer.take()
                rollups.flush(s, self.areas, sid2, ts2, val2, old2)
                if flush:
                    rollups.derive(s)
                if flushed:
                    s.execute(update(Batch).where(Batch.id.in_(flushed)).values(status="done"))
                self.last_flush = time.monotonic()
            s.commit()
        t_commit = time.monotonic()
        for h in items:
            self.stats["latency"].append(t_commit - h.t_committed)
        if decided and self.on_warning:
            for cb in self.on_warning:
                cb(decided, t_commit)
        self.stats["cycles"] += 1
        self.stats["batches"] += len(batch_ids)
        self.stats["changes"] += len(changes)
        return len(batch_ids)

    def _composites(self, s: Session, cat: catalog.Catalogue, decided: list[Any]) -> list[int]:
        """Composite rules over the open levels of their components, for the areas touched."""
        comps = [r for r in cat.rules.values() if r.kind == "composite"]
        if not comps or not decided:
            return []
        eng = self.engine
        assert eng is not None
        levels: dict[str, dict[str, int]] = {}
        for (rule, area), (_lid, level) in self.warnings.open.items():
            levels.setdefault(rule, {})[area] = level
        out: dict[tuple[str, str], tuple[int, Change]] = {}
        for r in comps:
            width = catalog.AREA_LEVELS[r.area_level]
            names = {c for c, _m in r.components}
            areas = sorted({a[:width] for (rule, a), _v in decided if rule in names and len(a) >= width})
            if not areas:
                continue
            comp_levels = []
            for code, _m in r.components:
                lv = levels.get(code, {})
                comp_levels.append(np.array([max([x for a2, x in lv.items() if a2.startswith(a) or a.startswith(a2)]
                                                 or [NONE]) for a in areas]))
            holds = composite_holds(comp_levels, [m for _c, m in r.components])
            now_ms = int(time.time() * 1000)
            for a, h in zip(areas, holds.tolist(), strict=True):
                cur = eng.area_level(r.code, a)
                new = r.composite_level if h else NONE
                if new != cur:
                    c = Change(r.code, f"composite:{a}", a, now_ms, cur, new)
                    dev = eng.subjects.setdefault(r.code, {})
                    if new >= 0:
                        dev[a] = {c.device: new}
                    else:
                        dev.pop(a, None)
                    out[(r.code, a)] = (new, c)
        if not out:
            return []
        return self.warnings.reconcile(s, cat, out, lambda rr, aa: eng.subjects.get(rr, {}).get(aa, {}))


_pipelines: dict[str, Pipeline] = {}
_lock = threading.Lock()


def pipeline(session_or_none: Session | None = None) -> Pipeline:
    """This process's pipeline for the current database."""
    from cityops.db import get_engine, get_sessionmaker

    key = str(get_engine().url)
    p = _pipelines.get(key)
    if p is None:
        with _lock:
            p = _pipelines.get(key)
            if p is None:
                p = _pipelines[key] = Pipeline(get_sessionmaker(), get_sessionmaker(False))
    return p


def stop_all() -> None:
    for p in list(_pipelines.values()):
        p.stop()
    _pipelines.clear()


def open_warning_ids(s: Session) -> list[int]:
    return list(s.scalars(select(EarlyWarning.id).where(EarlyWarning.state != "lifted")))
