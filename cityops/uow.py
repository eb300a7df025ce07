"""One unit of work per request.

Routes take ``session: Session = UnitOfWork``: the session is opened for the request and
committed ONCE when the route returns, before the response is sent (FastAPI dependency scope
"function"), so an answer is never sent for work that is not committed, and a route or read
module never commits. An error rolls the work back — unless the error says the work done so far
must be kept (``CityOpsError(..., persist=True)``: a failed sign-in's counter, the audit row of a
refused safe-room run).

Transactions on SQLite (WAL): a unit of work of a GET/HEAD is a plain deferred transaction, which
never takes the write lock and is never blocked by writers; other methods take the write lock at
their first statement (``BEGIN IMMEDIATE``), inside the route only, and give it up at the commit
before the response is sent. A read unit of work that does write (an audited read) may find the
database changed under its snapshot (SQLITE_BUSY): ``RetryBusy`` then runs the request again as a
write unit of work. Nothing had been committed or sent, so a retry is safe; after the last retry
the answer is 503 with Retry-After, never a 500 "database is locked".

Exceptions (documented): the group-commit writer of reports (``cityops.cases.flows``) and bulk
jobs that commit in chunks; routes that only hand work to them take ``ReadOnlyUnitOfWork``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from cityops.config import get_settings
from cityops.db import get_sessionmaker
from cityops.errors import CityOpsError

log = logging.getLogger("cityops.uow")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_FLAG = "cityops.write"
RETRIES = 4


def _statement_timeout(_session: Session, _transaction: Any, connection: Any) -> None:
    ms = get_settings().pg_statement_timeout_ms
    if ms > 0 and connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(ms)}")


def _open(write: bool) -> Session:
    """A request's session; on PostgreSQL its transactions carry the interactive statement timeout
    (a runaway query of a page answers 503 instead of holding a connection)."""
    session = get_sessionmaker(write)()
    event.listen(session, "after_begin", _statement_timeout)
    return session


def unit_of_work(request: Request) -> Iterator[Session]:
    """The request's session (see the module docstring)."""
    write = request.method not in READ_METHODS or bool(request.scope.get(WRITE_FLAG))
    yield from _run(_open(write))


def read_only_unit_of_work() -> Iterator[Session]:
    """A deferred (read) transaction whatever the method, for routes whose writes are done
    elsewhere (the group-commit writer); committed like any other unit of work."""
    yield from _run(_open(False))


def _run(session: Session) -> Iterator[Session]:
    try:
        yield session
    except BaseException as exc:
        if isinstance(exc, CityOpsError) and exc.persist:
            session.commit()
        else:
            session.rollback()
        raise
    else:
        session.commit()
    finally:
        session.close()


UnitOfWork: Any = Depends(unit_of_work, scope="function")
ReadOnlyUnitOfWork: Any = Depends(read_only_unit_of_work, scope="function")
# A session that outlives the route for a streaming answer (CSV export): reads only.
StreamingReads: Any = Depends(read_only_unit_of_work)


def retryable(exc: BaseException) -> bool:
    """A transaction that lost a race and may simply run again (SQLite busy/locked, PostgreSQL
    serialization failure or deadlock), or a statement cut off by the interactive timeout."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.DBAPIError):
        orig = getattr(exc, "orig", None)
        text = str(orig or exc).lower()
        if "database is locked" in text or "database table is locked" in text or "busy" in text:
            return True
        code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
        return code in ("40001", "40P01", "55P03", "57014")
    return False


class RetryBusy:
    """ASGI middleware: a request whose unit of work lost a race is run again (its body is kept);
    after ``RETRIES`` attempts the answer is 503 with Retry-After."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        complete = False  # the whole body has been read (and can be replayed)
        started = False

        def receiver(replay: bool) -> Any:
            pending = replay

            async def _receive() -> dict[str, Any]:
                nonlocal pending, complete
                if pending:
                    pending = False
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                msg: dict[str, Any] = await receive()
                if msg["type"] == "http.request":
                    chunks.append(msg.get("body", b""))
                    complete = not msg.get("more_body")
                return msg

            return _receive

        async def watch(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        for attempt in range(RETRIES + 1):
            try:
                await self.app(scope if attempt == 0 else {**scope, WRITE_FLAG: True}, receiver(complete), watch)
                return
            except Exception as exc:
                if isinstance(exc, sa_exc.TimeoutError) and not started:
                    # every pooled connection is taken (a burst waiting on one row's lock): another
                    # attempt would wait as long again; the client is told to come back
                    log.warning("connection pool exhausted: 503 with Retry-After")
                    await _busy(send)
                    return
                if started or not retryable(exc) or (chunks and not complete):
                    raise
                log.info("unit of work lost a race (%s); attempt %d", type(exc).__name__, attempt + 1)
                await asyncio.sleep(random.uniform(0.005, 0.03) * (attempt + 1))
        await _busy(send)


async def _busy(send: Any) -> None:
    payload = json.dumps({"detail": [{"loc": ["server"], "type": "busy", "msg":
                                      "系统繁忙，请稍后重试 the database is busy; retry in a moment"}]},
                         ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


__all__ = ["UnitOfWork", "ReadOnlyUnitOfWork", "StreamingReads", "RetryBusy", "retryable", "unit_of_work"]
