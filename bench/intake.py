"""Case intake and list benchmark: ``python -m bench intake [--quick] [--cases-1m N] [--pg URL]``.

Figures (SQLite unless --pg):
* ``http_cases_per_s``  — POST /api/v1/cases through a real uvicorn server (one process), 32
  concurrent clients, each intake doing the whole job (validate, locate, dedupe, route proposal
  data, persist, timeline, SLA step + timers, audit, outbox);
* ``p50_ms`` / ``p99_ms`` — single reports at a fixed 100 requests/s (open loop);
* ``batch_cases_per_s``  — POST /api/v1/cases/import/hotline with 5,000 orders in one request;
* ``list_p95_ms``        — p95 of list/filter queries (area, state, category, overdue; page of 50
  with the total count) over a table of ``--cases-1m`` synthetic cases (default 1,000,000).

The load generator runs on the same 2 cores as the server (as the targets assume).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit

PORT = 8131


def _setup(url: str) -> tuple[str, list[tuple[float, float]], list[str]]:
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.db import make_engine, reset_engine, session_scope
    from cityops.models import load_all

    reset_engine()
    eng = make_engine(url)
    load_all().metadata.create_all(eng)
    eng.dispose()
    from cityops.demo.seed import seed_demo

    with session_scope() as s:
        seed_demo(s, small=True)
    from sqlalchemy import select

    from cityops.cases import reference as ref
    from cityops.geo.models import Area
    from cityops.security.principal import SYSTEM
    from cityops.security.service import create_api_key

    with session_scope() as s:
        _row, key = create_api_key(s, SYSTEM, "bench-intake", ["case.report", "hotline.import", "case.read"], commit=False)
        geoms = [g for (g,) in s.execute(select(Area.geom).where(Area.level == "grid"))]
        cat = ref.catalogue(s)
        codes = [c.code for c in cat.by_version[cat.active_id].values()]
    rng = np.random.default_rng(7)
    pts = []
    for g in geoms:
        minx, miny, maxx, maxy = g.bounds
        from shapely.geometry import Point

        for _ in range(40):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if g.contains(Point(x, y)):
                pts.append((float(x), float(y)))
    return key, pts, codes


def _server(url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CITYOPS_DATABASE_URL=url, CITYOPS_LOG_LEVEL="WARNING")
    p = subprocess.Popen([sys.executable, "-m", "uvicorn", "cityops.app:create_app", "--factory", "--host", "127.0.0.1",
                          "--port", str(PORT), "--log-level", "warning", "--no-access-log"], env=env)
    import httpx

    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("server did not start")


async def _throughput(key: str, pts: list[tuple[float, float]], codes: list[str], n: int, conc: int) -> float:
    import httpx

    rng = np.random.default_rng(11)
    bodies = []
    for i in range(n):
        lon, lat = pts[int(rng.integers(0, len(pts)))]
        bodies.append({"category_code": codes[int(rng.integers(0, len(codes)))], "lat": lat, "lon": lon,
                       "description": f"bench {i}"})
    q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        q.put_nowait(b)
    bad = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal bad
        while not q.empty():
            b = q.get_nowait()
            r = await client.post("/api/v1/cases", json=b, headers={"X-API-Key": key})
            if r.status_code not in (200, 201):
                bad += 1

    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(client) for _ in range(conc)])
        el = time.perf_counter() - t0
    if bad:
        print(f"warning: {bad} failed requests", file=sys.stderr)
    return n / el


async def _latency(key: str, pts: list[tuple[float, float]], codes: list[str], rate: int, seconds: float) -> list[float]:
    import httpx

    rng = np.random.default_rng(13)
    lat_ms: list[float] = []

    async def one(client: httpx.AsyncClient, b: dict[str, Any]) -> None:
        t = time.perf_counter()
        await client.post("/api/v1/cases", json=b, headers={"X-API-Key": key})
        lat_ms.append((time.perf_counter() - t) * 1000)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
        tasks = []
        t0 = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            lon, lat = pts[int(rng.integers(0, len(pts)))]
            tasks.append(asyncio.create_task(one(client, {"category_code": codes[int(rng.integers(0, len(codes)))],
                                                          "lat": lat, "lon": lon})))
        await asyncio.gather(*tasks)
    return lat_ms


def _batch(key: str, pts: list[tuple[float, float]], codes: list[str], n: int) -> float:
    import httpx

    rng = np.random.default_rng(17)
    base = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    rows = []
    for i in range(n):
        lon, lat = pts[int(rng.integers(0, len(pts)))]
        rows.append({"order_id": f"B{i:07d}", "received_at": (base + dt.timedelta(seconds=i)).isoformat(),
                     "category_code": codes[int(rng.integers(0, len(codes)))], "lat": lat, "lon": lon,
                     "content": "批量导入"})
    t0 = time.perf_counter()
    r = httpx.post(f"http://127.0.0.1:{PORT}/api/v1/cases/import/hotline", json=rows, headers={"X-API-Key": key},
                   timeout=600)
    el = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"batch import failed: {r.status_code} {r.text[:300]}")
    return n / el


def _fill(url: str, n: int) -> None:
    """Synthetic cases straight into the table (multi-row inserts), spread over streets, states,
    categories and a year of report times."""
    from sqlalchemy import insert, select

    from cityops.cases import reference as ref
    from cityops.cases.models import Case, table
    from cityops.db import session_scope
    from cityops.geo.models import Area

    with session_scope() as s:
        grids = [g for (g,) in s.execute(select(Area.code).where(Area.level == "grid"))]
        cat = ref.catalogue(s)
        cats = list(cat.by_version[cat.active_id].values())
    rng = np.random.default_rng(19)
    states = list(ref.STATES)
    now = dt.datetime.now(dt.UTC)
    chunk = 20_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        gi = rng.integers(0, len(grids), m)
        ci = rng.integers(0, len(cats), m)
        si = rng.integers(0, len(states), m)
        age = rng.uniform(0, 365 * 86400, m)
        due = rng.uniform(-5 * 86400, 5 * 86400, m)
        rows = []
        for k in range(m):
            g = grids[int(gi[k])]
            c = cats[int(ci[k])]
            st = states[int(si[k])]
            op = ref.STATES[st]["open"] and st != "suspended"
            rep = now - dt.timedelta(seconds=float(age[k]))
            d = now + dt.timedelta(seconds=float(due[k])) if op else None
            rows.append({"source": "supervisor", "channel": "app", "category_id": c.id, "category_code": c.code,
                         "kind": c.kind, "title": c.name_zh, "lon": 121.2, "lat": 31.0, "grid_code": g,
                         "community_code": g[:12], "street_code": g[:9], "layer_codes": {}, "urgency": "normal",
                         "state": st, "reporter_count": 1, "reported_at": rep, "updated_at": rep, "version": 1,
                         "due_at": d, "yellow_at": (d - dt.timedelta(hours=1)) if d else None, "overdue_count": 0})
        with session_scope() as s:
            s.execute(insert(table(Case)), rows)
    from cityops.db import get_engine

    with get_engine().connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE case_file")
        conn.commit()


def _list_p95(reps: int) -> dict[str, float]:
    from sqlalchemy import select

    from cityops.cases import queries
    from cityops.cases import reference as ref
    from cityops.cases.models import Case
    from cityops.db import get_sessionmaker
    from cityops.security.principal import SYSTEM, Principal

    s = get_sessionmaker()()
    streets = [r for (r,) in s.execute(select(Case.street_code).distinct().limit(20))]
    cat = ref.catalogue(s)
    codes = [c.code for c in cat.by_version[cat.active_id].values()]
    rng = np.random.default_rng(23)
    kinds: dict[str, list[float]] = {"area": [], "state": [], "category": [], "overdue": [], "street_user": []}
    for i in range(reps):
        street = streets[i % len(streets)]
        filters = {
            "area": queries.CaseFilter(area=street),
            "state": queries.CaseFilter(state=[str(rng.choice(["dispatched", "closed", "registered"]))]),
            "category": queries.CaseFilter(category=[codes[int(rng.integers(0, len(codes)))]]),
            "overdue": queries.CaseFilter(overdue=True, area=street),
        }
        for name, f in filters.items():
            t = time.perf_counter()
            queries.list_cases(s, SYSTEM, f, page=1, page_size=50)
            kinds[name].append((time.perf_counter() - t) * 1000)
            s.rollback()
        p = Principal(username="b", roles=frozenset({"street_operator"}), permissions=frozenset({"case.read"}),
                      area_code=street)
        t = time.perf_counter()
        queries.list_cases(s, p, queries.CaseFilter(state=["dispatched", "acknowledged"]), page=1, page_size=50)
        kinds["street_user"].append((time.perf_counter() - t) * 1000)
        s.rollback()
    s.close()
    out = {k: float(np.percentile(v, 95)) for k, v in kinds.items()}
    out["all"] = float(np.percentile([x for v in kinds.values() for x in v], 95))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench intake")
    ap.add_argument("--quick", action="store_true", help="small numbers (smoke run)")
    ap.add_argument("--cases-1m", type=int, default=1_000_000, help="table size for the list benchmark")
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (a fresh database is created in it)")
    args = ap.parse_args(argv)
    n_http = 600 if args.quick else 5000
    n_batch = 500 if args.quick else 5000
    n_list = 20_000 if args.quick else args.cases_1m
    tmp = tempfile.mkdtemp(prefix="cityops-bench-intake-")
    if args.pg:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"bench_intake_{int(time.time())}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
        eng = create_engine(url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        eng.dispose()
    else:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
    os.environ["CITYOPS_MEDIA_DIR"] = str(Path(tmp) / "media")
    t0 = time.perf_counter()
    key, pts, codes = _setup(url)
    print(f"setup {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    server = _server(url)
    try:
        asyncio.run(_throughput(key, pts, codes, 200, 16))  # warm-up
        http_rate = asyncio.run(_throughput(key, pts, codes, n_http, 32))
        print(f"http {http_rate:.0f} cases/s", file=sys.stderr)
        lat = asyncio.run(_latency(key, pts, codes, 100, 5 if args.quick else 15))
        p50, p99 = statistics.median(lat), float(np.percentile(lat, 99))
        print(f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms", file=sys.stderr)
        batch_rate = _batch(key, pts, codes, n_batch)
        print(f"batch {batch_rate:.0f} cases/s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
    t0 = time.perf_counter()
    _fill(url, n_list)
    print(f"filled {n_list} cases in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    lists = _list_p95(20 if args.quick else 40)
    print(f"list p95 {lists}", file=sys.stderr)
    emit({"benchmark": "intake", "backend": "postgresql" if args.pg else "sqlite",
          "http_cases_per_s": round(http_rate, 1), "batch_cases_per_s": round(batch_rate, 1),
          "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "list_p95_ms": round(lists["all"], 2),
          "list_p95_by_filter_ms": {k: round(v, 2) for k, v in lists.items()}, "list_table_cases": n_list,
          "http_requests": n_http, "batch_orders": n_batch})
    return 0
