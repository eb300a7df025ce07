"""Crash-proof, shown by test (issue 16.6/16.7), on the test backend (SQLite, or PostgreSQL in the
PostgreSQL half of ``make test``):

* **crash**: the real API server as a process, clients posting reports with Idempotency-Keys;
  the server is killed with SIGKILL mid-stream several times and restarted. A client retries a
  request that got no answer with the same key (at-least-once sending, idempotent receiver).
  Afterwards every acknowledged report is stored exactly once, with the case and report the
  acknowledgement named, and every logical report was eventually acknowledged.
* **mixed load**: the evaluation page, the console's data and intake at once against one
  server, bounded in count and time: no 5xx.

The shared helpers are in ``bench/crash.py`` (the benchmark runs the same cycle, more of it)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cityops import devserver

PORTS = range(8180, 8195)


def _prepare(_tmp_path: Path) -> dict[str, Any]:
    from bench.crash import prepare

    return prepare()


@pytest.mark.slow
def test_kill_9_under_intake_loses_and_doubles_nothing(fresh_url, tmp_path):
    from bench.crash import run_cycles, verify

    ctx = _prepare(tmp_path)
    try:
        port = devserver.free_ports(1, PORTS)[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    out = run_cycles(fresh_url, port, ctx, cycles=3, clients=6, per_client=40, kill_after_s=1.5,
                     logfile=tmp_path / "server.log")
    res = verify(ctx, out)
    assert res["acked"] == res["logical"] == 240, res
    assert res["lost"] == 0 and res["duplicated"] == 0 and res["mismatched"] == 0, res
    assert out["kills"] >= 2, out


@pytest.mark.slow
def test_mixed_load_no_5xx(fresh_url, tmp_path):
    """Intake, case lists and details, the console's panels and the evaluation page at once."""
    ctx = _prepare(tmp_path)
    from bench.load import mixed_requests

    try:
        port = devserver.free_ports(1, PORTS)[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    log = tmp_path / "server.log"
    proc = devserver.start_api(fresh_url, port, logfile=log, timeout=60)
    base = f"http://127.0.0.1:{port}"
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    try:
        token = httpx.post(f"{base}/api/v1/auth/token", data={"username": ctx["user"], "password": ctx["password"]},
                           timeout=30).json()["access_token"]
        jobs = mixed_requests(ctx, 600, seed=3)
        deadline = time.monotonic() + 60

        def worker(chunk: list[tuple[str, str, Any]]) -> None:
            with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
                for method, url, body in chunk:
                    if time.monotonic() > deadline:
                        return
                    r = c.request(method, url, json=body) if body is not None else c.request(method, url)
                    with lock:
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(worker, [jobs[i::8] for i in range(8)]))
    finally:
        devserver.stop(proc, timeout=20)
    assert sum(statuses.values()) >= 200, statuses
    assert not [s for s in statuses if s >= 500], statuses
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
    from cityops.cases.models import Case
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        assert (s.scalar(select(func.count()).select_from(Case)) or 0) > 0
    finally:
        s.close()
