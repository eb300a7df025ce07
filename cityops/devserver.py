"""A real API server in a subprocess, for the tests and the benchmarks (one helper, not a copy
each): free ports in an assigned range, start uvicorn on 127.0.0.1 against a database URL, wait
for ``/healthz``, stop it.

    ports = free_ports(2, range(8160, 8170))
    with api_server(url, ports[0], logfile=tmp / "api.log") as base:
        httpx.get(base + "/healthz")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cityops.config import ROOT


class ServerError(RuntimeError):
    pass


def free_ports(n: int, candidates: Iterable[int] | None = None) -> list[int]:
    """``n`` ports free on 127.0.0.1: from ``candidates`` (an assigned range) or any the OS gives."""
    got: list[int] = []
    if candidates is None:
        for _ in range(n):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                got.append(int(s.getsockname()[1]))
        return got
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        got.append(port)
        if len(got) == n:
            return got
    raise ServerError(f"fewer than {n} free ports in {candidates!r}")


def start_api(url: str, port: int, *, workers: int = 1, logfile: Path | None = None,
              env: dict[str, str] | None = None, timeout: float = 120.0) -> subprocess.Popen[bytes]:
    """Start ``uvicorn cityops.app:create_app`` on 127.0.0.1:``port`` against ``url``; return once
    ``/healthz`` answers. The server's log goes to ``logfile`` (a file, never a pipe: a pipe nobody
    reads fills up and blocks the server)."""
    import httpx

    full_env = {**os.environ, "CITYOPS_DATABASE_URL": url, "CITYOPS_LOG_LEVEL": "WARNING", **(env or {})}
    cmd = [sys.executable, "-m", "uvicorn", "cityops.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
           "--timeout-graceful-shutdown", "2"]
    err = open(logfile, "ab") if logfile is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        if logfile is not None:
            err.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:] if logfile is not None else ""
            raise ServerError(f"the API server on port {port} exited: {tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise ServerError(f"the API server on port {port} did not start within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def api_server(url: str, port: int, **kw: object) -> Iterator[str]:
    """``start_api`` as a context manager yielding the base URL; stopped on exit."""
    proc = start_api(url, port, **kw)  # type: ignore[arg-type]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
