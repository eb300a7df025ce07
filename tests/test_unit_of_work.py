"""One unit of work per request (cityops.uow): routes and read modules never commit; a GET never
takes SQLite's write lock; an error rolls back unless it asks to persist; a unit of work that lost a
race runs again, and answers 503 (never 500) when it keeps losing."""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1] / "cityops"
# modules that hold routes or only read: none of them may end a transaction
READ_MODULES = ("queries.py", "views.py", "fast.py", "charts.py", "snapshot.py", "live.py", "scope.py")


def _route_or_read_modules() -> list[Path]:
    out = []
    for p in ROOT.rglob("*.py"):
        if "migrations" in p.parts:
            continue
        text_ = p.read_text(encoding="utf-8")
        is_routes = "APIRouter(" in text_ or p.name.startswith("api") or p.name.endswith("_api.py")
        if is_routes or p.name in READ_MODULES:
            out.append(p)
    return out


def test_no_route_or_read_module_commits():
    offenders = []
    modules = _route_or_read_modules()
    assert len(modules) >= 10, modules  # the scan finds the route modules
    for p in modules:
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
                offenders.append(f"{p.relative_to(ROOT.parent)}:{node.lineno}")
    assert offenders == [], f"routes and read modules must leave the commit to the unit of work: {offenders}"


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's write lock")
def test_reads_do_not_wait_for_the_write_lock(client, db_url):
    """Another connection holds the write lock: a GET still answers at once (deferred read)."""
    import sqlite3

    from cityops.db import get_sessionmaker
    from tests.helpers import auth_headers, make_user

    with get_sessionmaker()() as s:
        user, pw = make_user(s, "t_uow_reader", ["dispatcher"], area_code="310117")
    h = auth_headers(client, user, pw)
    path = db_url.split("///", 1)[1]
    holder = sqlite3.connect(path, isolation_level=None, timeout=1)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for url in ("/api/v1/cases?page_size=5", "/api/v1/cases/counts", "/api/v1/areas?level=street"):
            r = client.get(url, headers=h)
            assert r.status_code == 200, (url, r.status_code, r.text)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_error_rolls_back_and_persist_keeps(db_url):
    """``_run`` (the dependency's body): a plain error rolls back; ``persist=True`` commits."""
    from cityops.db import get_sessionmaker
    from cityops.errors import InvalidInput
    from cityops.uow import _run

    with get_sessionmaker()() as s:
        s.execute(text("CREATE TABLE IF NOT EXISTS t_uow_probe (v INTEGER)"))
        s.execute(text("DELETE FROM t_uow_probe"))
        s.commit()

    def attempt(exc: BaseException) -> None:
        gen = _run(get_sessionmaker()())
        s = next(gen)
        s.execute(text("INSERT INTO t_uow_probe VALUES (1)"))
        with pytest.raises(type(exc)):
            gen.throw(exc)

    attempt(InvalidInput("no"))
    attempt(RuntimeError("boom"))
    attempt(InvalidInput("kept", persist=True))
    gen = _run(get_sessionmaker()())
    s = next(gen)
    s.execute(text("INSERT INTO t_uow_probe VALUES (2)"))
    with pytest.raises(StopIteration):
        next(gen)
    with get_sessionmaker()() as s:
        assert sorted(v for (v,) in s.execute(text("SELECT v FROM t_uow_probe"))) == [1, 2]


def _busy_error() -> Exception:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    return OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))


def test_a_unit_of_work_that_lost_a_race_runs_again_with_its_body():
    from cityops.uow import WRITE_FLAG, RetryBusy

    seen: list[tuple[bytes, bool]] = []

    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": b"hel", "more_body": True},
              {"type": "http.request", "body": b"lo", "more_body": False}]

    async def receive():
        return chunks.pop(0)

    async def send(m):
        sent.append(m)

    async def app2(scope, receive, send):  # reads the whole body in two chunks
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        seen.append((body, bool(scope.get(WRITE_FLAG))))
        if len(seen) < 3:
            raise _busy_error()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    asyncio.run(RetryBusy(app2)({"type": "http", "method": "POST", "path": "/x"}, receive, send))
    assert seen == [(b"hello", False), (b"hello", True), (b"hello", True)]
    assert sent[0]["status"] == 200


def test_a_unit_of_work_that_keeps_losing_answers_503_with_retry_after():
    from cityops.uow import RetryBusy

    async def app(scope, receive, send):
        await receive()
        raise _busy_error()

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m):
        sent.append(m)

    asyncio.run(RetryBusy(app)({"type": "http", "method": "GET", "path": "/x"}, receive, send))
    start = sent[0]
    assert start["status"] == 503 and (b"retry-after", b"1") in start["headers"]


def test_an_exhausted_connection_pool_answers_503_at_once():
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from cityops.uow import RetryBusy

    calls = []

    async def app(scope, receive, send):
        calls.append(1)
        raise PoolTimeout("QueuePool limit of size 10 overflow 20 reached")

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m):
        sent.append(m)

    asyncio.run(RetryBusy(app)({"type": "http", "method": "POST", "path": "/x"}, receive, send))
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert calls == [1]  # not run again: another attempt would wait as long for a connection


def test_other_errors_are_not_retried():
    from cityops.uow import RetryBusy

    calls = []

    async def app(scope, receive, send):
        calls.append(1)
        raise KeyError("x")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m):
        pass

    with pytest.raises(KeyError):
        asyncio.run(RetryBusy(app)({"type": "http", "method": "GET", "path": "/x"}, receive, send))
    assert calls == [1]


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's write lock")
def test_concurrent_audited_reads_and_writes_never_500(client, db_url):
    """Person reads are audited (a GET that writes) while writers hold the lock in turn: every
    answer is 200, none is a 500 'database is locked'."""
    from cityops.db import get_sessionmaker
    from tests.helpers import auth_headers, make_user

    with get_sessionmaker()() as s:
        user, pw = make_user(s, "t_uow_mixed", ["district_commander"], area_code="310117")
    h = auth_headers(client, user, pw)
    statuses: list[int] = []
    lock = threading.Lock()

    def reader():
        for _ in range(8):
            r = client.get("/api/v1/registry/persons?page_size=3", headers=h)
            with lock:
                statuses.append(r.status_code)

    def writer():
        for i in range(8):
            r = client.post("/api/v1/notifications/read-all", headers=h)
            with lock:
                statuses.append(r.status_code if r.status_code != 404 else 200)
            _ = i

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses and all(s < 500 for s in statuses), statuses
