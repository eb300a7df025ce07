"""``python -m bench load``: mixed reads and writes stepped up in rate, SQLite and PostgreSQL side by
side.

The mix (``mixed_requests``): intake (``POST /api/v1/cases``, 30 %), case lists (20 %) and case
details (15 %), the console's panels (KPIs, to-do, map: 20 %), the evaluation (5 %) and case
actions (accept, 10 %). Open loop: request i is due at t0 + i / rate whatever happened before, and
its latency is measured from that due time (no coordinated omission); at most 64 in flight.

Steps of ``--step-s`` seconds from ``--start`` to ``--stop`` requests/s by ``--step``; the highest
rate with no 5xx and p99 < 100 ms is ``<backend>_max_rps``. Then ``--overload-s`` seconds at twice
the first failing rate (or twice the highest), and the seconds until a 1-second probe window at
20 req/s again has no 5xx and p99 < 100 ms: ``recover_s``. The load generator shares the 2 cores
with the server: figures are lower bounds of the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, machine


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def mixed_requests(ctx: dict[str, Any], n: int, seed: int = 1, case_ids: list[int] | None = None,
                   tag: str = "ld") -> list[tuple[str, str, Any]]:
    """``n`` (method, path, JSON body or None) of the mix described in the module doc."""
    rng = random.Random(seed)
    ids = case_ids or list(range(1, 50))
    street = "310117001"
    out: list[tuple[str, str, Any]] = []
    for i in range(n):
        x = rng.random()
        if x < 0.30:
            lon, lat = ctx["points"][rng.randrange(len(ctx["points"]))]
            out.append(("POST", "/api/v1/cases", {"category_code": rng.choice(ctx["codes"]), "lon": lon, "lat": lat,
                                                  "source": "supervisor", "description": f"负载 {tag} {i}"}))
        elif x < 0.50:
            out.append(("GET", rng.choice(["/api/v1/cases?page_size=20", "/api/v1/cases?open=true&page_size=50",
                                           f"/api/v1/cases?area={street}&page_size=20"]), None))
        elif x < 0.65:
            out.append(("GET", f"/api/v1/cases/{rng.choice(ids)}", None))
        elif x < 0.85:
            out.append(("GET", rng.choice(["/api/v1/console/kpis", "/api/v1/console/todo",
                                           "/api/v1/console/map?bbox=121.1,30.9,121.4,31.1"]), None))
        elif x < 0.90:
            out.append(("GET", "/api/v1/evaluation/street", None))
        else:
            out.append(("POST", f"/api/v1/cases/{rng.choice(ids)}/actions/accept", {}))
    return out


def _raw(host: str, port: int, token: str, req: tuple[str, str, Any]) -> bytes:
    method, path, body = req
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    data = json.dumps(body, ensure_ascii=False).encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


async def _paced(host: str, port: int, raws: list[bytes], rate: float) -> dict[str, Any]:
    from bench._intake_load import _Conn, _send

    lat: list[float] = []
    statuses: dict[str, int] = {}
    pool: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(_Conn(host, port))
    t0 = time.perf_counter() + 0.1

    async def one(i: int, raw: bytes) -> None:
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()
        try:
            st = await asyncio.wait_for(_send(conn, raw), timeout=30)
        except TimeoutError:
            conn.close()
            st = 598
        finally:
            pool.put_nowait(conn)
        lat.append((time.perf_counter() - due) * 1000)
        statuses[str(st)] = statuses.get(str(st), 0) + 1

    await asyncio.gather(*[one(i, r) for i, r in enumerate(raws)])
    while not pool.empty():
        pool.get_nowait().close()
    return {"latencies_ms": lat, "statuses": statuses}


def pct(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] if s else 0.0


def step(host: str, port: int, token: str, ctx: dict[str, Any], rate: float, seconds: float, seed: int,
         ids: list[int]) -> dict[str, Any]:
    reqs = mixed_requests(ctx, max(1, int(rate * seconds)), seed=seed, case_ids=ids, tag=f"r{int(rate)}s{seed}")
    res = asyncio.run(_paced(host, port, [_raw(host, port, token, r) for r in reqs], rate))
    five = sum(n for s, n in res["statuses"].items() if int(s) >= 500)
    return {"rate": rate, "n": len(reqs), "p50_ms": round(pct(res["latencies_ms"], 50), 1),
            "p99_ms": round(pct(res["latencies_ms"], 99), 1), "5xx": five, "statuses": res["statuses"]}


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import httpx

    from bench.common import use_database
    from bench.crash import _token, prepare
    from cityops import devserver
    from cityops.db import make_engine
    from cityops.models import load_all

    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'bench-load.db'}"
    else:
        from cityops.db import create_postgis_database

        url = create_postgis_database(args.pg_url, args.pg_db, replace=True)
    engine = make_engine(url)
    load_all().metadata.create_all(engine)
    engine.dispose()
    use_database(url)
    ctx = prepare(small=True)
    port = devserver.free_ports(1, range(8260, 8280))[0]
    proc = devserver.start_api(url, port, workers=args.workers, logfile=tmp / f"server-{backend}.log")
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"backend": backend, "workers": args.workers, "steps": []}
    try:
        token = _token(base, ctx)
        ids: list[int] = []
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            for m, p, b in mixed_requests(ctx, 400, seed=99, tag="warm"):
                if m == "POST" and p == "/api/v1/cases":
                    r = c.post(base + p, json=b)
                    if r.status_code in (200, 201):
                        ids.append(int(r.json()["case_id"]))
        # every kind of request once at a low rate (first console / evaluation answers fill caches)
        step("127.0.0.1", port, token, ctx, 20, 5, 77, ids)
        log(f"== {backend}: warmed up, {len(ids)} cases")
        best, failing = 0.0, None
        rate = float(args.start)
        seed = 1
        while rate <= args.stop:
            s = step("127.0.0.1", port, token, ctx, rate, args.step_s, seed, ids)
            seed += 1
            out["steps"].append(s)
            ok = s["5xx"] == 0 and s["p99_ms"] < 100
            log(f"   {rate:5.0f} req/s: p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms 5xx {s['5xx']} "
                f"{'ok' if ok else 'MISSED'} {s['statuses']}")
            if ok:
                best = rate
            else:
                failing = rate
                break
            rate += args.step
        out["max_rps"] = best
        over = 2 * (failing or best or args.start)
        log(f"== {backend}: overload {over:.0f} req/s for {args.overload_s} s")
        s = step("127.0.0.1", port, token, ctx, over, args.overload_s, 500, ids)
        out["overload"] = s
        t0 = time.perf_counter()
        recovered = None
        while time.perf_counter() - t0 < args.recover_max_s:
            probe = step("127.0.0.1", port, token, ctx, 20, 1.0, 900 + int(time.perf_counter()), ids)
            if probe["5xx"] == 0 and probe["p99_ms"] < 100:
                recovered = round(time.perf_counter() - t0, 1)
                break
        out["recover_s"] = recovered
        log(f"   recovered in {recovered} s")
    finally:
        devserver.stop(proc, timeout=20)
        if backend == "pg":
            from cityops.db import drop_database

            drop_database(args.pg_url, args.pg_db)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench load")
    p.add_argument("--start", type=float, default=50)
    p.add_argument("--stop", type=float, default=500)
    p.add_argument("--step", type=float, default=50)
    p.add_argument("--step-s", type=float, default=60)
    p.add_argument("--overload-s", type=float, default=20)
    p.add_argument("--recover-max-s", type=float, default=120)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--backends", default="sqlite,pg")
    p.add_argument("--pg-url", default="")
    p.add_argument("--pg-db", default="bench_load")
    args = p.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b and (b != "pg" or args.pg_url)]
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as d:
        for b in backends:
            res[b] = run_backend(b, args, Path(d))
    rec = [r["recover_s"] for r in res.values() if r.get("recover_s") is not None]
    emit({"bench": "load", "machine": machine(), "step_s": args.step_s, "backends": res,
          "sqlite_max_rps": res.get("sqlite", {}).get("max_rps"), "pg_max_rps": res.get("pg", {}).get("max_rps"),
          "recover_s": max(rec) if len(rec) == len(res) and rec else None,
          "targets": {"sqlite_max_rps": 300, "p99_ms": 100, "recover_s": 10}})
    return 0
