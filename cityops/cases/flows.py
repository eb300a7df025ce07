"""Group commit of reports (发现上报): one writer thread per process and database takes the reports
of all concurrent requests and writes them in one transaction (``intake.submit_reports``: one
dedupe join, multi-row INSERTs, one step of the audit chain, one commit), then answers each
request. A request is answered only after the commit that holds its case, so nothing acknowledged
is lost; a batch that fails as a whole is retried one report per transaction, so one report's
failure is never another's. Turned off with ``CITYOPS_GROUP_COMMIT=0`` (then each request writes
its own transaction).

Why: SQLite has one writer and each commit is a WAL append; PostgreSQL's audit chain serialises
the end of every writing transaction. Per report, a transaction costs more than the report's own
rows, so concurrent reports share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: there SQLite's busy handler does the waiting
    fcntl = None  # type: ignore[assignment]

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityops.cases import intake as _intake
from cityops.cases import service
from cityops.db import get_engine
from cityops.errors import CityOpsError

log = logging.getLogger("cityops.cases.flows")
MAX_BATCH = 256
IDLE_EXIT_S = 30.0
WAIT_S = 120.0


def enabled() -> bool:
    return os.environ.get("CITYOPS_GROUP_COMMIT", "1").lower() not in ("0", "false", "no", "off")


class Writer:
    """The writer of one engine in this process (a daemon thread that exits when idle)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cond = threading.Condition()
        self.queue: list[tuple[_intake.ReportRequest, Future[Any]]] = []
        self.thread: threading.Thread | None = None
        db = engine.url.database if engine.dialect.name == "sqlite" else None
        self.lock_path = f"{db}.writer-lock" if db and db != ":memory:" and fcntl is not None else None

    def submit(self, request: _intake.ReportRequest) -> Future[Any]:
        fut: Future[Any] = Future()
        with self.cond:
            self.queue.append((request, fut))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="cityops-intake-writer", daemon=True)
                self.thread.start()
            self.cond.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self.cond:
                if not self.queue:
                    self.cond.wait(IDLE_EXIT_S)
                if not self.queue:
                    self.thread = None
                    return
                batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            self._write(batch)

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """SQLite file: the writers of all processes take turns through an exclusive file lock, so
        a writer waiting for another wakes the moment it is done (SQLite's own busy handler sleeps
        in steps of up to 100 ms, which would stall several API processes behind each other)."""
        path = self.lock_path
        if path is None:
            yield
            return
        with open(path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write(self, batch: list[tuple[_intake.ReportRequest, Future[Any]]]) -> None:
        try:
            with self._turn(), Session(self.engine, expire_on_commit=False) as session:
                outcomes = _intake.submit_reports(session, [rq for rq, _f in batch])
                session.commit()
        except Exception:  # the batch as a whole failed: one transaction per report
            log.exception("group commit of %d reports failed; writing them one by one", len(batch))
            for rq, fut in batch:
                try:
                    with Session(self.engine, expire_on_commit=False) as session:
                        fut.set_result(service.submit_one(session, rq))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                    fut.set_exception(exc)
            return
        for (_rq, fut), got in zip(batch, outcomes, strict=True):
            if isinstance(got, CityOpsError):
                fut.set_exception(got)
            else:
                fut.set_result(got)


_writers: dict[int, Writer] = {}
_writers_lock = threading.Lock()


def writer_for(engine: Engine) -> Writer:
    with _writers_lock:
        w = _writers.get(id(engine))
        if w is None or w.engine is not engine:
            w = _writers[id(engine)] = Writer(engine)
        return w


async def submit_async(request: _intake.ReportRequest) -> tuple[int, dict[str, Any], bool]:
    """``submit`` for async routes: no thread waits for the answer and no session is opened by
    the route (the writer has its own), so a report costs the event loop a parse and a future."""
    engine = get_engine()
    if not enabled():
        def one() -> tuple[int, dict[str, Any], bool]:
            with Session(engine, expire_on_commit=False) as session:
                return service.submit_one(session, request)

        return await run_in_threadpool(one)
    fut = writer_for(engine).submit(request)
    return await asyncio.wait_for(asyncio.wrap_future(fut), WAIT_S)


def submit(session: Session, request: _intake.ReportRequest) -> tuple[int, dict[str, Any], bool]:
    """Submit a report through the group commit of the session's database and wait for its
    answer. The caller's session must hold no writes of its own: its transaction is ended first
    (on SQLite an open transaction would hold the write lock the writer needs)."""
    engine = session.get_bind()
    if not enabled() or not isinstance(engine, Engine):
        return service.submit_one(session, request)
    session.commit()
    return writer_for(engine).submit(request).result(timeout=WAIT_S)  # type: ignore[no-any-return]
