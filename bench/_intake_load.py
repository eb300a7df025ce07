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

import httpx


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> int:
    try:
        r = await client.post(url, json=body)
        return r.status_code
    except httpx.HTTPError:
        return 599


async def burst(job: dict[str, Any]) -> dict[str, Any]:
    bodies = job["bodies"]
    conc = int(job.get("concurrency", 32))
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {job['token']}"}, timeout=120,
                                 limits=limits) as client:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for b in bodies:
            queue.put_nowait(b)

        async def worker() -> None:
            while True:
                try:
                    b = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                st = await _post(client, job["url"], b)
                statuses[str(st)] = statuses.get(str(st), 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        wall = time.perf_counter() - t0
    ok = statuses.get("201", 0) + statuses.get("200", 0)
    return {"n": len(bodies), "ok": ok, "wall_s": wall, "per_s": ok / wall if wall else 0.0, "statuses": statuses}


async def paced(job: dict[str, Any]) -> dict[str, Any]:
    bodies = job["bodies"]
    rate = float(job["rate"])
    lat: list[float] = []
    statuses: dict[str, int] = {}
    # at most 64 requests in flight (a sane client pool); the rest wait for a connection, and that
    # wait counts in their latency (measured from the due time)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    timeout = httpx.Timeout(float(job.get("timeout", 60.0)), pool=None)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {job['token']}"}, timeout=timeout,
                                 limits=limits) as client:
        t0 = time.perf_counter() + 0.2

        async def one(i: int, b: dict[str, Any]) -> None:
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            st = await _post(client, job["url"], b)
            lat.append((time.perf_counter() - due) * 1000)
            statuses[str(st)] = statuses.get(str(st), 0) + 1

        await asyncio.gather(*[one(i, b) for i, b in enumerate(bodies)])
        wall = time.perf_counter() - t0
    return {"n": len(bodies), "latencies_ms": lat, "statuses": statuses, "wall_s": wall,
            "achieved_rps": len(bodies) / wall if wall else 0.0}


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
