"""Claiming and running due work: timers, outbox items, webhook deliveries.

Each kind of row goes through the same three steps:

1. **claim** (one short transaction, committed): pick due pending rows whose lease is free or has run
   out — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the database write lock (``BEGIN IMMEDIATE``) on
   SQLite — and stamp them with a claim token, ``lease_until`` and ``attempts + 1``;
2. **run**: timers and outbox items run their handlers in a transaction that first locks the row and
   checks the token is still ours, and that marks the row done before committing — so a handler that
   only writes to the database runs exactly once. Webhook deliveries POST outside any transaction and
   then record the outcome (at least once; the ``webhook-id`` header lets receivers drop repeats);
3. **on failure**: the error text is stored and the row comes back after an exponential backoff with
   jitter, or goes to the dead-letter state after ``max_attempts``.

A worker that dies mid-item leaves its claim behind; once the lease has run out another worker claims
the row again (at-least-once). ``run_due`` does one pass (tests call it with an injected ``now``);
``Worker`` runs passes in threads until SIGTERM/SIGINT.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import signal
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, literal_column, or_, select, update
from sqlalchemy.orm import Session

from cityops import clock
from cityops.jobs.models import DEAD, DONE, FIRED, PENDING, OutboxItem, Timer, WebhookDelivery
from cityops.jobs.registry import handlers_for, load_handlers
from cityops.jobs.settings import get_job_settings
from cityops.jobs.webhooks import active_subscriptions, backoff, deliver_claimed, fan_out, load_claimed
from cityops.logging import log

SessionFactory = Callable[[], Session]

OUTBOX: Table = OutboxItem.__table__  # type: ignore[assignment]
TIMERS: Table = Timer.__table__  # type: ignore[assignment]
DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[assignment]
KINDS = ("timers", "outbox", "deliveries")
_TABLE = {"timers": TIMERS, "outbox": OUTBOX, "deliveries": DELIVERIES}


@dataclass
class RunStats:
    """What one pass (or a worker's lifetime) did."""

    timers: int = 0
    outbox: int = 0
    deliveries: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0  # claims taken over by another worker after our lease ran out
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.timers + self.outbox + self.deliveries

    def __bool__(self) -> bool:
        return self.total > 0

    def __int__(self) -> int:
        return self.total

    def add(self, other: RunStats) -> None:
        self.timers += other.timers
        self.outbox += other.outbox
        self.deliveries += other.deliveries
        self.failed += other.failed
        self.dead += other.dead
        self.lost += other.lost
        self.errors = (self.errors + other.errors)[-20:]

    def as_dict(self) -> dict[str, Any]:
        return {"timers": self.timers, "outbox": self.outbox, "deliveries": self.deliveries,
                "failed": self.failed, "dead": self.dead, "lost": self.lost, "total": self.total}


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def _is_pg(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


# ---------------------------------------------------------------------------------------------
# claim / release


def claim(session_factory: SessionFactory, table: Table, now: dt.datetime, limit: int, token: str) -> list[int]:
    """Claim up to ``limit`` due rows of ``table`` for ``token`` (committed before returning)."""
    c = table.c
    lease = now + dt.timedelta(seconds=get_job_settings().lease_seconds)
    s = session_factory()
    try:
        pg = _is_pg(s)
        # a claim whose lease ran out on the last allowed attempt: give up (dead-letter)
        expired_last = (select(c.id).where(c.status == PENDING, c.lease_until < now, c.attempts >= c.max_attempts)
                        .limit(100))
        if pg:
            expired_last = expired_last.with_for_update(skip_locked=True)
        s.execute(update(table).where(c.id.in_(expired_last.scalar_subquery())).values(
            status=DEAD, claimed_by=None, lease_until=None,
            last_error="lease expired during the last attempt (worker stopped or too slow)"))
        # the status as a literal, so that the planner can use the partial index "WHERE status = 'pending'"
        due = (select(c.id).where(c.status == literal_column(f"'{PENDING}'"), c.run_at <= now,
                                  or_(c.lease_until.is_(None), c.lease_until < now),
                                  c.attempts < c.max_attempts)
               .order_by(c.run_at, c.id).limit(limit))
        values = {"claimed_by": token, "lease_until": lease, "attempts": c.attempts + 1}
        if pg:
            # a CTE with FOR UPDATE is materialised once: exactly the rows locked are updated
            cte = due.with_for_update(skip_locked=True).cte("due")
            stmt = update(table).where(c.id == cte.c.id).values(**values).returning(c.id)
        else:
            stmt = update(table).where(c.id.in_(due.scalar_subquery())).values(**values).returning(c.id)
        ids = sorted(s.execute(stmt).scalars().all())
        s.commit()
        return ids
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


def release(session_factory: SessionFactory, table: Table, ids: list[int], token: str) -> None:
    """Give back claimed rows we will not run (graceful stop): claimable at once, attempt not counted."""
    if not ids:
        return
    c = table.c
    s = session_factory()
    try:
        s.execute(update(table).where(c.id.in_(ids), c.claimed_by == token, c.status == PENDING)
                  .values(claimed_by=None, lease_until=None, attempts=c.attempts - 1))
        s.commit()
    finally:
        s.close()


def _record_failure(session_factory: SessionFactory, table: Table, row_id: int, token: str, now: dt.datetime,
                    error: str) -> str:
    st = get_job_settings()
    c = table.c
    s = session_factory()
    try:
        row = s.execute(select(c.attempts, c.max_attempts).where(c.id == row_id, c.claimed_by == token)).first()
        if row is None:
            s.rollback()
            return "lost"
        values: dict[str, Any] = {"claimed_by": None, "lease_until": None, "last_error": error[:4000]}
        if row.attempts >= row.max_attempts:
            values["status"] = DEAD
        else:
            delay = backoff(row.attempts, st.backoff_base_seconds, st.backoff_cap_seconds)
            values["run_at"] = now + dt.timedelta(seconds=delay)
        s.execute(update(table).where(c.id == row_id, c.claimed_by == token).values(**values))
        s.commit()
        return str(values.get("status", "retry"))
    finally:
        s.close()


def _error_text(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=6)
    return f"{type(exc).__name__}: {exc}\n" + "".join(tb[-4:])


# ---------------------------------------------------------------------------------------------
# run one claimed row


def run_outbox_item(session_factory: SessionFactory, item_id: int, token: str, now: dt.datetime) -> str:
    """Run the handlers of one claimed outbox item and fan it out to webhooks; mark it done in the
    same transaction. Returns "done", "retry", "dead" or "lost"."""
    c = OUTBOX.c
    s = session_factory()
    try:
        q = select(c.topic, c.payload, c.status, c.claimed_by).where(c.id == item_id)
        row = s.execute(q.with_for_update() if _is_pg(s) else q).first()
        if row is None or row.status != PENDING or row.claimed_by != token:
            s.rollback()
            return "lost"
        payload = dict(row.payload or {})
        try:
            with clock.pinned(now):
                for fn in handlers_for(row.topic):
                    fn(s, copy.deepcopy(payload))
                fan_out(s, item_id, row.topic, payload, now)
            s.execute(update(OUTBOX).where(c.id == item_id, c.claimed_by == token, c.status == PENDING)
                      .values(status=DONE, done_at=now, claimed_by=None, lease_until=None, last_error=None))
            s.commit()
            return DONE
        except Exception as exc:
            s.rollback()
            log.warning("jobs.outbox_failed", id=item_id, topic=row.topic, error=str(exc)[:200])
            return _record_failure(session_factory, OUTBOX, item_id, token, now, _error_text(exc))
    finally:
        s.close()


def run_outbox_batch(session_factory: SessionFactory, ids: list[int], token: str, now: dt.datetime) -> set[int]:
    """Finish, in ONE transaction, the claimed items whose topic has no handler (pure events: only the
    webhook fan-out to do). Returns their ids; on any error nothing is done here and the caller runs
    every item on its own."""
    if not ids:
        return set()
    c = OUTBOX.c
    s = session_factory()
    try:
        q = select(c.id, c.topic, c.payload).where(c.id.in_(ids), c.claimed_by == token, c.status == PENDING)
        rows = [r for r in s.execute(q.order_by(c.id).with_for_update() if _is_pg(s) else q.order_by(c.id))
                if not handlers_for(r.topic)]
        if not rows:
            s.rollback()
            return set()
        subs = active_subscriptions(s)
        for r in rows:
            fan_out(s, r.id, r.topic, dict(r.payload or {}), now, subs)
        done = [r.id for r in rows]
        s.execute(update(OUTBOX).where(c.id.in_(done), c.claimed_by == token, c.status == PENDING)
                  .values(status=DONE, done_at=now, claimed_by=None, lease_until=None, last_error=None))
        s.commit()
        return set(done)
    except Exception as exc:
        s.rollback()
        log.warning("jobs.outbox_batch_failed", error=str(exc)[:200])
        return set()
    finally:
        s.close()


def timer_payload(row: Any) -> dict[str, Any]:
    out = dict(row.payload or {})
    out.update(kind=row.kind, ref_type=row.ref_type, ref_id=int(row.ref_id) if row.ref_is_int else row.ref_id,
               due_at=row.due_at.isoformat(), timer_id=row.id)
    return out


def run_timer(session_factory: SessionFactory, timer_id: int, token: str, now: dt.datetime) -> str:
    """Fire one claimed timer: its handlers and the ``fired`` mark commit together (exactly once).

    A handler may schedule the same timer again (it then stays pending with the new due time)."""
    c = TIMERS.c
    s = session_factory()
    try:
        q = select(TIMERS).where(c.id == timer_id)
        row = s.execute(q.with_for_update() if _is_pg(s) else q).first()
        if row is None or row.status != PENDING or row.claimed_by != token:
            s.rollback()
            return "lost"
        try:
            fns = handlers_for(row.kind)
            if not fns:
                raise LookupError(f"no handler registered for timer kind {row.kind!r} "
                                  f"(modules: cityops.jobs.registry.HANDLER_MODULES)")
            with clock.pinned(now):
                for fn in fns:
                    fn(s, timer_payload(row))
            s.execute(update(TIMERS).where(c.id == timer_id, c.claimed_by == token, c.status == PENDING)
                      .values(status=FIRED, fired_at=now, claimed_by=None, lease_until=None, last_error=None))
            s.commit()
            return FIRED
        except Exception as exc:
            s.rollback()
            log.warning("jobs.timer_failed", id=timer_id, kind=row.kind, error=str(exc)[:200])
            return _record_failure(session_factory, TIMERS, timer_id, token, now, _error_text(exc))
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# one pass


def run_due(session_factory: SessionFactory | None = None, now: dt.datetime | None = None,
            limit: int | None = None, *, worker_id: str | None = None, kinds: tuple[str, ...] = KINDS,
            stop: threading.Event | None = None, client: Any = None) -> RunStats:
    """Claim and run what is due at ``now``: timers, then outbox items (whose fan-out creates webhook
    deliveries), then deliveries — up to ``limit`` of each. ``now`` defaults to the jobs clock; when
    given, it is also what handlers see through ``cityops.jobs.service.now()``."""
    if session_factory is None:
        from cityops.db import get_sessionmaker

        session_factory = get_sessionmaker()
    load_handlers()
    limit = limit or get_job_settings().batch
    base = worker_id or default_worker_id()
    stats = RunStats()

    def tick() -> dt.datetime:
        return clock.aware(now, "now") if now is not None else clock.now()

    for kind in kinds:
        if stop is not None and stop.is_set():
            return stats
        table = _TABLE[kind]
        token = f"{base}/{uuid.uuid4().hex[:12]}"
        ids = claim(session_factory, table, tick(), limit, token)
        loaded: dict[int, Any] = {}
        if kind == "outbox" and ids:
            batch = run_outbox_batch(session_factory, ids, token, tick())
            stats.outbox += len(batch)
            ids = [i for i in ids if i not in batch]
        elif kind == "deliveries" and ids:
            loaded = load_claimed(session_factory, ids, token)
        for i, row_id in enumerate(ids):
            if stop is not None and stop.is_set():
                release(session_factory, table, ids[i:], token)
                return stats
            at = tick()
            if kind == "timers":
                result = run_timer(session_factory, row_id, token, at)
            elif kind == "outbox":
                result = run_outbox_item(session_factory, row_id, token, at)
            elif row_id not in loaded:
                result = "lost"
            else:
                result = deliver_claimed(session_factory, row_id, token, at, client, loaded[row_id])
            if result in (DONE, FIRED, "delivered", "skipped"):
                setattr(stats, kind, getattr(stats, kind) + 1)
            elif result == "lost":
                stats.lost += 1
            else:
                stats.failed += 1
                if result == DEAD:
                    stats.dead += 1
    return stats


# ---------------------------------------------------------------------------------------------
# the long-running worker


class Worker:
    """``concurrency`` threads, each running ``run_due`` passes until stopped; idle threads sleep
    ``poll_seconds`` between passes. SIGTERM / SIGINT stop it gracefully: the item in hand is finished,
    the rest of the claimed batch is released."""

    def __init__(self, session_factory: SessionFactory | None = None, *, concurrency: int = 1,
                 poll_seconds: float | None = None, batch: int | None = None, name: str | None = None) -> None:
        st = get_job_settings()
        self.session_factory = session_factory
        self.concurrency = max(1, concurrency)
        self.poll_seconds = st.poll_seconds if poll_seconds is None else poll_seconds
        self.batch = batch or st.batch
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.totals = RunStats()
        self._lock = threading.Lock()

    def stop(self, *_args: Any) -> None:
        self.stopping.set()

    def _loop(self, n: int, once: bool) -> None:
        wid = f"{self.name}:{n}"
        idle_backoff = self.poll_seconds
        while not self.stopping.is_set():
            try:
                st = run_due(self.session_factory, limit=self.batch, worker_id=wid, stop=self.stopping)
                idle_backoff = self.poll_seconds
            except Exception as exc:  # database away, etc.: keep going
                log.error("jobs.worker_pass_failed", worker=wid, error=str(exc)[:300])
                idle_backoff = min(30.0, max(idle_backoff, 0.5) * 2)
                self.stopping.wait(idle_backoff)
                continue
            with self._lock:
                self.totals.add(st)
            if st.total == 0 and st.failed == 0 and st.lost == 0:
                if once:
                    return
                self.stopping.wait(idle_backoff)

    def run(self, once: bool = False) -> RunStats:
        if self.session_factory is None:
            from cityops.db import get_sessionmaker

            self.session_factory = get_sessionmaker()
        load_handlers()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self.stop)
        threads = [threading.Thread(target=self._loop, args=(n, once), name=f"cityops-worker-{n}", daemon=True)
                   for n in range(self.concurrency)]
        log.info("jobs.worker_started", worker=self.name, concurrency=self.concurrency)
        try:
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        finally:
            self.stopping.set()
            for t in threads:
                t.join()
            for sig, h in previous.items():
                signal.signal(sig, h)
        log.info("jobs.worker_stopped", worker=self.name, **self.totals.as_dict())
        return self.totals


def start_background_worker(concurrency: int = 1) -> Worker:
    """Run a worker in daemon threads of this process (``cityops demo``: one process serves the app and
    runs the jobs). Production runs ``cityops worker`` processes instead."""
    w = Worker(concurrency=concurrency, name=f"{socket.gethostname()}:{os.getpid()}:bg")
    threading.Thread(target=w.run, name="cityops-background-worker", daemon=True).start()
    return w


def pending_counts(session: Session) -> dict[str, int]:
    """Due-or-not pending rows per kind (cheap: partial indexes)."""
    from sqlalchemy import func

    out = {}
    for kind, table in _TABLE.items():
        out[kind] = session.scalar(select(func.count()).select_from(table).where(table.c.status == PENDING)) or 0
    return out


__all__ = ["RunStats", "Worker", "run_due", "start_background_worker", "claim", "release", "run_outbox_item", "run_timer"]
