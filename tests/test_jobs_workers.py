"""Several `cityops worker` processes share one queue: every item is delivered to a real HTTP receiver
exactly once, none is lost, and SIGTERM stops each worker cleanly.

PostgreSQL: 3 processes x 2 threads, 2,000 items (claims with FOR UPDATE SKIP LOCKED). SQLite: the
same with 2 processes and 300 items (claims serialised by BEGIN IMMEDIATE)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import insert

from cityops.jobs import service as jobs
from cityops.jobs.models import OutboxItem
from cityops.security.principal import SYSTEM
from tests.conftest import BACKEND
from tests.jobs_helpers import Receiver, own_database

ROOT = Path(__file__).resolve().parent.parent
N_ITEMS, N_WORKERS = (2000, 3) if BACKEND == "postgresql" else (300, 2)


@pytest.fixture()
def workers_db(tmp_root):
    from tests.conftest import use_database

    url, prev = own_database(tmp_root, "workers")
    yield url
    if prev:
        use_database(prev)


def _start_worker(url: str, n: int) -> subprocess.Popen:
    env = dict(os.environ, CITYOPS_DATABASE_URL=url, CITYOPS_JOBS_POLL_SECONDS="0.05", CITYOPS_LOG_LEVEL="INFO")
    return subprocess.Popen([sys.executable, "-m", "cityops.cli", "worker", "--concurrency", "2", "--batch", "25",
                             "--name", f"w{n}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_started(p: subprocess.Popen, timeout: float) -> None:
    """Read the worker's log (stdout) until it says it has started."""
    assert p.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sel.select(timeout=0.1):
            line = p.stdout.readline()
            if "jobs.worker_started" in line:
                return
            assert line or p.poll() is None, p.stderr.read() if p.stderr else ""
    raise AssertionError("worker did not start")


def test_several_worker_processes_deliver_each_item_exactly_once(workers_db):
    from cityops.db import get_sessionmaker
    from cityops.jobs import webhooks

    rec = Receiver()
    procs: list[subprocess.Popen] = []
    try:
        sf = get_sessionmaker()
        with sf() as s:
            sub = webhooks.create_subscription(s, SYSTEM, url=rec.url, topics=["load.*"])
            s.commit()
        rec.secret = sub["secret"]
        # the workers start first and wait on an empty queue, so they all compete for the items
        procs = [_start_worker(workers_db, n) for n in range(N_WORKERS)]
        for p in procs:
            _wait_started(p, timeout=30)
        now = jobs.now()
        with sf() as s:
            s.execute(insert(OutboxItem), [
                {"topic": "load.item", "payload": {"n": n}, "status": "pending", "run_at": now, "attempts": 0,
                 "max_attempts": 10, "created_at": now} for n in range(N_ITEMS)])
            s.commit()
        t_start = time.monotonic()
        assert rec.wait_for(N_ITEMS, timeout=90), f"only {rec.ok} of {N_ITEMS} delivered"
        print(f"{N_ITEMS} items delivered by {N_WORKERS} workers in {time.monotonic() - t_start:.2f} s")
        # give duplicates (if any) a moment to show up, then check the queue is empty
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sf() as s:
                st = jobs.stats(s)
            if st["outbox"] == {"done": N_ITEMS} and st["deliveries"] == {"delivered": N_ITEMS}:
                break
            time.sleep(0.05)
        assert st["outbox"] == {"done": N_ITEMS} and st["deliveries"] == {"delivered": N_ITEMS}, st
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=30) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
        totals = [json.loads(out.strip().splitlines()[-1]) for out, _err in outs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        rec.close()

    events = Counter(r["body"]["data"]["n"] for r in rec.requests)
    uids = Counter(r["headers"]["webhook-id"] for r in rec.requests)
    assert len(rec.requests) == N_ITEMS  # no second delivery of anything
    assert sorted(events) == list(range(N_ITEMS)) and set(events.values()) == {1}
    assert len(uids) == N_ITEMS and rec.bad_signatures == 0
    # every process did part of the work, and the parts add up
    assert sum(t["deliveries"] for t in totals) == N_ITEMS and sum(t["outbox"] for t in totals) == N_ITEMS
    assert all(t["deliveries"] > 0 for t in totals), totals
