"""Console benchmark: with N open cases (default 100,000) in a fresh database, the time from
navigation to the district map showing cases in headless Chromium, and the p95 latency of the
console's data endpoints (meta, KPIs, map, choropleth, to-do, feed).

    python -m bench console [--cases 100000] [--runs 5] [--requests 40] [--keep DIR]

Cases are written with bulk inserts through the cases models (``bulk_cases``), located into
real demo grids, spread over 30 days, in every open state, some due soon and some overdue.
The server is a real uvicorn process on 127.0.0.1 (port 8150-8159). Last line: JSON with
``map_ready_s`` (median of the runs) and ``data_p95_ms``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit
from cityops import devserver

OPEN_STATES = ("reported", "accepted", "verifying", "registered", "dispatched", "acknowledged", "handled", "inspecting",
               "sent_back")
SOURCES = ("supervisor", "public", "hotline", "video_ai", "iot", "referral")
PORTS = range(8150, 8160)


def bulk_cases(session: Any, n: int, *, seed: int = 7, now: dt.datetime | None = None, open_only: bool = True,
               area_prefix: str | None = None, chunk: int = 20_000) -> int:
    """Insert ``n`` synthetic cases with bulk INSERTs through the ``Case`` model: points inside the
    demo grids (located with the geo index), categories of the active catalogue, open states,
    reported over the last 30 days, with due / yellow times so that some are overdue."""
    import shapely
    from sqlalchemy import insert, select

    from cityops.cases.models import Case, Category
    from cityops.cases.reference import active_version_id
    from cityops.geo.models import Area
    from cityops.geo.service import grid_indices_for

    rng = np.random.default_rng(seed)
    now = now or dt.datetime.now(dt.UTC)
    vid = active_version_id(session)
    cats = session.execute(select(Category.id, Category.code, Category.kind, Category.name_zh, Category.default_department_code)
                           .where(Category.version_id == vid, Category.enabled.is_(True))).all()
    if not cats:
        raise RuntimeError("no catalogue: seed the demo district (cases) first")
    stmt = select(Area.code, Area.geom).where(Area.level == "grid", Area.valid_to.is_(None))
    if area_prefix:
        stmt = stmt.where(Area.code.startswith(area_prefix))
    grids = session.execute(stmt).all()
    bounds = np.array([shapely.bounds(g.geom) for g in grids])
    # sample points: pick a grid (weighted by size), then a point in its bbox; keep those that land inside
    areas = (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])
    weights = areas / areas.sum()
    lons: list[float] = []
    lats: list[float] = []
    codes: list[str] = []
    while len(codes) < n:
        k = (n - len(codes)) * 2 + 100
        gi = rng.choice(len(grids), size=k, p=weights)
        lon = bounds[gi, 0] + rng.random(k) * (bounds[gi, 2] - bounds[gi, 0])
        lat = bounds[gi, 1] + rng.random(k) * (bounds[gi, 3] - bounds[gi, 1])
        got = grid_indices_for(session, lon, lat)
        for x, y, c in zip(lon, lat, got, strict=True):
            if c is not None and (area_prefix is None or str(c).startswith(area_prefix)):
                lons.append(float(x))
                lats.append(float(y))
                codes.append(str(c))
                if len(codes) >= n:
                    break
    parents = dict(session.execute(select(Area.code, Area.parent_code).where(Area.valid_to.is_(None))).all())
    lin = {g: (parents.get(g), parents.get(parents.get(g))) for g in set(codes)}
    states = OPEN_STATES if open_only else (*OPEN_STATES, "closed")
    written = 0
    for start in range(0, n, chunk):
        rows = []
        m = min(chunk, n - start)
        ci = rng.integers(0, len(cats), m)
        si = rng.integers(0, len(states), m)
        so = rng.integers(0, len(SOURCES), m)
        age = rng.random(m) * 30 * 86400
        limit = rng.choice([4 * 3600, 24 * 3600, 3 * 86400, 5 * 86400, 15 * 86400], m)
        for j in range(m):
            i = start + j
            g = codes[i]
            comm, street = lin[g]
            cat = cats[ci[j]]
            reported = now - dt.timedelta(seconds=float(age[j]))
            # the open step's clock: most cases in time, ~1 in 6 due soon, ~1 in 8 overdue
            due = now + dt.timedelta(seconds=float(limit[j]) * float(rng.uniform(-0.12, 1.0)))
            state = states[si[j]]
            closed = state == "closed"
            rows.append({
                "source": SOURCES[so[j]], "channel": "import", "category_id": cat.id, "category_code": cat.code,
                "kind": cat.kind, "title": cat.name_zh, "description": f"{cat.name_zh}（合成数据）",
                "lon": lons[i], "lat": lats[i], "grid_code": g, "community_code": comm, "street_code": street,
                "layer_codes": {}, "urgency": "normal", "state": state, "reporter_count": 1,
                "lead_department_code": cat.default_department_code if state not in ("reported", "accepted", "verifying", "registered") else None,
                "reported_at": reported, "sla_step": None if closed else "handle",
                "due_at": None if closed else due,
                "yellow_at": None if closed else due - dt.timedelta(seconds=float(limit[j]) * 0.2),
                "closed_at": now - dt.timedelta(seconds=float(age[j]) * 0.5) if closed else None,
                "overdue_count": 1 if ((not closed and due < now) or (closed and rng.random() < 0.08)) else 0,
                "created_by": "bench", "updated_at": now, "version": 1,
            })
        session.execute(insert(Case.__table__), rows)  # Core executemany: no ORM unit of work
        session.commit()
        written += m
    return written


DEPT_USER, DEPT_PW = "bench_dept", "Bench#Console-Dept-2026x"


def prepare(url: str, n: int) -> tuple[str, str]:
    """Schema + demo district + ``n`` cases (their lead departments recorded as handling them) + a
    district dispatcher and a department handler (the department with most cases); returns the
    dispatcher's (user, password)."""
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.db import make_engine, reset_engine, session_scope
    from cityops.demo.seed import seed_demo
    from cityops.models import load_all
    from cityops.security import service as sec
    from cityops.security.principal import SYSTEM

    reset_engine()
    eng = make_engine(url)
    load_all().metadata.create_all(eng)
    eng.dispose()
    with session_scope() as s:
        seed_demo(s, small=False)
    with session_scope() as s:
        t0 = time.perf_counter()
        bulk_cases(s, n)
        # who handles them: the lead department of every dispatched or later case (a department
        # account's scope is the cases its department handles)
        from sqlalchemy import text
        s.execute(text("INSERT INTO case_department (case_id, department_code, role, assigned_at, assigned_by, "
                       "case_reported_at) "
                       "SELECT id, lead_department_code, 'lead', reported_at, 'bench', reported_at FROM case_file "
                       "WHERE lead_department_code IS NOT NULL AND created_by = 'bench'"))
        print(f"inserted {n} cases in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    user, pw = "bench_dispatcher", "Bench#Console-2026x"
    with session_scope() as s:
        sec.ensure_catalog(s)
        from sqlalchemy import func, select

        from cityops.cases.models import Case
        from cityops.security.models import Account
        if s.scalar(select(Account.id).where(Account.username == user)) is None:
            sec.create_account(s, SYSTEM, user, pw, roles=["dispatcher"], area_code="310117")
        dept = s.execute(select(Case.lead_department_code, func.count()).where(Case.lead_department_code.is_not(None))
                         .group_by(Case.lead_department_code).order_by(func.count().desc()).limit(1)).first()
        if dept and s.scalar(select(Account.id).where(Account.username == DEPT_USER)) is None:
            sec.create_account(s, SYSTEM, DEPT_USER, DEPT_PW, roles=["dept_handler"], area_code="310117",
                               department_code=dept[0])
            print(f"department account: {dept[0]} ({dept[1]} cases)", file=sys.stderr)
    return user, pw


WHERE: list[Any] = []  # the last navigation's slowest requests (filled by measure_map)


def measure_map(base: str, user: str, pw: str, runs: int, shots: Path | None) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        ctx = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
        page = ctx.new_page()
        page.goto(base + "/login")
        page.fill("#username", user)
        page.fill("#password", pw)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
        for _ in range(runs):
            t0 = time.perf_counter()
            page.goto(base + "/")
            page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
            times.append(time.perf_counter() - t0)
            # where the time went: the requests of this navigation (start, end in ms from its start)
            WHERE[:] = page.evaluate("""() => {
              const nav = performance.getEntriesByType('navigation')[0];
              const rows = performance.getEntriesByType('resource').map((e) =>
                [e.name.replace(location.origin, ''), Math.round(e.startTime), Math.round(e.responseEnd)]);
              rows.sort((a, b) => b[2] - a[2]);
              return [['document', 0, Math.round(nav.responseEnd)],
                      ['map ready (in the page)', 0, Number(document.getElementById('map').dataset.readyMs)],
                      ['DOMContentLoaded', 0, Math.round(nav.domContentLoadedEventEnd)], ...rows.slice(0, 10)];
            }""")
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "bench-console.png"))
        browser.close()
    return times


def measure_data(base: str, user: str, pw: str, n_requests: int) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/api/v1/auth/token", data={"username": user, "password": pw})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        district = "121.0,30.85,121.45,31.2"
        endpoints = {
            "meta": "/api/v1/console/meta",
            "kpis": "/api/v1/console/kpis",
            "map_district": f"/api/v1/console/map?bbox={district}&zoom=11",
            "map_street": "/api/v1/console/map?street=310117001&bbox=121.18,30.96,121.28,31.04&zoom=13",
            "map_zoomed": "/api/v1/console/map?bbox=121.22,31.00,121.235,31.01&zoom=16",
            "map_overdue": f"/api/v1/console/map?sla=red&bbox={district}&zoom=11",
            "choropleth_street": "/api/v1/console/choropleth?level=street&metric=density",
            "choropleth_grid": "/api/v1/console/choropleth?level=grid&metric=overdue",
            "todo": "/api/v1/console/todo?area=310117001",
            "feed": "/api/v1/console/feed?limit=20",
        }
        per: dict[str, list[float]] = {k: [] for k in endpoints}
        for path in endpoints.values():  # one warm-up each
            c.get(path).raise_for_status()
        for _ in range(n_requests):
            for k, path in endpoints.items():
                t0 = time.perf_counter()
                r = c.get(path)
                per[k].append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
    allv = [v for vs in per.values() for v in vs]
    return {"p95_ms": float(np.percentile(allv, 95)), "p50_ms": float(np.percentile(allv, 50)),
            "per_endpoint_p95_ms": {k: round(float(np.percentile(v, 95)), 1) for k, v in per.items()}}


def measure_engines(url: str, user: str, rounds: int) -> dict[str, Any]:
    """Side by side in this process on the same database: the console's aggregates answered by SQL
    and by the in-memory snapshot (after its first load, which is timed separately)."""
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.console import service, snapshot
    from cityops.db import get_sessionmaker, reset_engine
    from cityops.security.service import principal_for_username

    reset_engine()
    s = get_sessionmaker()()
    p = principal_for_username(s, user)
    s.commit()
    snapshot.forget()
    t0 = time.perf_counter()
    snapshot.current(s)
    s.commit()
    load_s = time.perf_counter() - t0
    f = service.Filters()
    district = (121.0, 30.85, 121.45, 31.2)
    calls = {
        "kpis": lambda e: service.kpis(s, p, f, engine=e),
        "map_district": lambda e: service.map_data(s, p, f, district, 11, engine=e),
        "map_street": lambda e: service.map_data(s, p, service.Filters(street="310117001"), None, 13, engine=e),
        "choropleth_grid": lambda e: service.choropleth(s, p, f, "grid", "overdue", engine=e),
        "todo": lambda e: service.todo(s, p, "310117001", engine=e),
    }
    out: dict[str, Any] = {"snapshot_load_s": round(load_s, 3)}
    for engine in ("sql", "snapshot"):
        times = []
        for _ in range(rounds):
            for fn in calls.values():
                t = time.perf_counter()
                fn(engine)
                times.append((time.perf_counter() - t) * 1000)
                s.commit()
        out[f"{engine}_p95_ms"] = round(float(np.percentile(times, 95)), 1)
        out[f"{engine}_p50_ms"] = round(float(np.percentile(times, 50)), 1)
    s.close()
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench console")
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--keep", help="keep the database and screenshots in this folder")
    ap.add_argument("--database-url", help="use this (empty) database instead of a temporary SQLite file")
    args = ap.parse_args(argv)
    if not Path("/usr/bin/chromium").exists():
        print("bench console: /usr/bin/chromium missing (scripts/browser.sh installs it)", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cityops-bench-console-"))
    work.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{work / 'console.db'}"
    t0 = time.perf_counter()
    user, pw = prepare(url, args.cases)
    prep_s = time.perf_counter() - t0
    port = devserver.free_ports(1, PORTS)[0]
    base = f"http://127.0.0.1:{port}"
    proc = devserver.start_api(url, port, env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"})
    try:
        data = measure_data(base, user, pw, args.requests)
        times = measure_map(base, user, pw, args.runs, work if args.keep else None)
        where = list(WHERE)
        engines = measure_engines(url, user, max(3, args.requests // 8))
        dept_data = measure_data(base, DEPT_USER, DEPT_PW, args.requests)
        dept_times = measure_map(base, DEPT_USER, DEPT_PW, args.runs, None)
        dept_engines = measure_engines(url, DEPT_USER, max(3, args.requests // 8))
    finally:
        devserver.stop(proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "bench": "console", "cases": args.cases, "database": url.split(":", 1)[0],
        "map_ready_s": round(statistics.median(times), 3), "map_ready_runs_s": [round(x, 3) for x in times],
        "map_ready_where_ms": where,
        "data_p95_ms": round(data["p95_ms"], 1), "data_p50_ms": round(data["p50_ms"], 1),
        "per_endpoint_p95_ms": data["per_endpoint_p95_ms"], "prepare_s": round(prep_s, 1),
        "aggregates_in_process": engines,
        "dept_map_ready_s": round(statistics.median(dept_times), 3),
        "dept_data_p95_ms": round(dept_data["p95_ms"], 1), "dept_data_p50_ms": round(dept_data["p50_ms"], 1),
        "dept_per_endpoint_p95_ms": dept_data["per_endpoint_p95_ms"], "dept_aggregates_in_process": dept_engines,
        "targets": {"map_ready_s": 1.5, "data_p95_ms": 100},
    }
    print(json.dumps(result, ensure_ascii=False, indent=1), file=sys.stderr)
    emit(result)
    return 0
