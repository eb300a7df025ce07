"""Load generator of ``bench intake`` (run as a separate process: ``python -m bench._intake_load``).

Reads a JSON job on stdin, prints one JSON result on stdout:

* ``{"mode": "burst", "url", "token", "bodies", "concurrency"}`` — send every body as fast as
  ``concurrency`` connections allow; the cases/s and the status counts;
* ``{"mode": "paced", "url", "token", "bodies", "rate"}`` — open loop: body i is due at
  t0 + i / rate whatever happened before; latency is measured from that due time (no coordinated
  omission), so a server that falls behind shows it in the tail;
* ``{"mode": "gets", "urls", "token"}`` — GETs one after another; each latency.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx


class _Conn:
    """A minimal HTTP/1.1 keep-alive client connection (a few tens of microseconds of CPU per
    request: httpx's AsyncClient costs ~2.5 ms per request here, which would make the load
    generator, not the server, the bottleneck on a 2-core machine)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
        assert self.r is not None
        self.w.write(raw)
        line = await self.r.readline()
        if not line:
            raise ConnectionError("closed")
        status = int(line.split()[1])
        length, chunked, close = 0, False, False
        while True:
            h = await self.r.readline()
            if h in (b"\r\n", b""):
                break
            k, _, v = h.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
            elif k == b"connection" and b"close" in v.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.r.readline()).strip(), 16)
                await self.r.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.r.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


def _raw_posts(url: str, token: str, bodies: list[dict[str, Any]]) -> tuple[str, int, list[bytes]]:
    u = urlsplit(url)
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\n")
    raws = []
    for b in bodies:
        data = json.dumps(b, ensure_ascii=False).encode()
        raws.append(head.encode() + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return u.hostname or "127.0.0.1", int(u.port or 80), raws


async def _send(conn: _Conn, raw: bytes) -> int:
    try:
        return await conn.request(raw)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        conn.close()
        return 599


async def burst(job: dict[str, Any]) -> dict[str, Any]:
    conc = int(job.get("concurrency", 32))
    host, port, raws = _raw_posts(job["url"], job["token"], job["bodies"])
    statuses: dict[str, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for raw in raws:
        queue.put_nowait(raw)

    async def worker() -> None:
        conn = _Conn(host, port)
        while True:
            try:
                raw = queue.get_nowait()
            except asyncio.QueueEmpty:
                conn.close()
                return
            st = await _send(conn, raw)
            statuses[str(st)] = statuses.get(str(st), 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    wall = time.perf_counter() - t0
    ok = statuses.get("201", 0) + statuses.get("200", 0)
    return {"n": len(raws), "ok": ok, "wall_s": wall, "per_s": ok / wall if wall else 0.0, "statuses": statuses}


async def paced(job: dict[str, Any]) -> dict[str, Any]:
    rate = float(job["rate"])
    host, port, raws = _raw_posts(job["url"], job["token"], job["bodies"])
    lat: list[float] = []
    statuses: dict[str, int] = {}
    # at most 64 requests in flight (a sane client pool); the rest wait for a connection, and that
    # wait counts in their latency (measured from the due time)
    pool: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(_Conn(host, port))
    t0 = time.perf_counter() + 0.2

    async def one(i: int, raw: bytes) -> None:
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()
        try:
            st = await _send(conn, raw)
        finally:
            pool.put_nowait(conn)
        lat.append((time.perf_counter() - due) * 1000)
        statuses[str(st)] = statuses.get(str(st), 0) + 1

    await asyncio.gather(*[one(i, raw) for i, raw in enumerate(raws)])
    wall = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    return {"n": len(raws), "latencies_ms": lat, "statuses": statuses, "wall_s": wall,
            "achieved_rps": len(raws) / wall if wall else 0.0}


def gets(job: dict[str, Any]) -> dict[str, Any]:
    out = []
    with httpx.Client(headers={"Authorization": f"Bearer {job['token']}"}, timeout=120) as client:
        for u in job["urls"]:
            t = time.perf_counter()
            r = client.get(u)
            out.append({"url": u, "ms": (time.perf_counter() - t) * 1000, "status": r.status_code,
                        "total": (r.json().get("total") if r.status_code == 200 else None)})
    return {"results": out}


def main() -> int:
    job = json.loads(sys.stdin.read())
    if job["mode"] == "burst":
        res = asyncio.run(burst(job))
    elif job["mode"] == "paced":
        res = asyncio.run(paced(job))
    else:
        res = gets(job)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
