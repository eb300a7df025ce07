"""Evaluation benchmark: the evaluation page's data (绩效评价: the rankings of departments, streets
and the four posts, and its charts, for the last 30 days) at the demo's size and at 1,000,000
cases, p95, while a console load runs against the same server; and, side by side in the same run,
the same figures read from the history (the old path) in this process.

    python -m bench evaluation [--cases 1000000] [--days 1000] [--requests 20] [--demo full|small]

1. A fresh SQLite database with the demo district (``--demo full``: the 3,000-case demo).
   The daily facts are built by the worker's own function (``evaluation_jobs.refresh_all``).
2. A real uvicorn server on 127.0.0.1: ``GET /evaluation`` ``--requests`` times (p95) while two
   threads load the console (KPIs, map, inbox, overdue list); the slowest console request during
   the evaluation run is reported (p99 and max).
3. ``--cases`` synthetic cases added with bulk INSERTs, spread over ``--days`` days (a history,
   not a month), each with its timeline (上报, 派遣, 结案 for the closed ones), its 处置 step and its
   lead department; the facts of the evaluated days rebuilt (``evaluation_jobs.refresh``, newest
   days first, as the worker does), then step 2 again.

Last line JSON: ``evaluation_p95_ms``, ``evaluation_1m_p95_ms``, ``console_p99_during_ms`` (the
worse of the two runs), and the details.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit
from cityops import devserver

PORTS = range(8270, 8280)
CONSOLE = ["/api/v1/console/kpis", "/api/v1/console/map?bbox=121.0,30.85,121.45,31.2&zoom=11", "/api/v1/inbox",
           "/api/v1/console/overdue"]


def prepare(url: str, demo: str) -> tuple[str, str]:
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.db import make_engine, reset_engine, session_scope
    from cityops.demo.seed import seed_demo
    from cityops.models import load_all
    from cityops.security import service as sec
    from cityops.security.principal import SYSTEM

    reset_engine()
    engine = make_engine(url)
    load_all().metadata.create_all(engine)
    engine.dispose()
    with session_scope() as s:
        seed_demo(s, small=demo == "small")
    with session_scope() as s:
        sec.ensure_catalog(s)
        pw = "Bench#Eval2026x"
        sec.create_account(s, SYSTEM, "bench_eval", pw, roles=["shift_lead"], area_code="310117")
    return "bench_eval", pw


def build_facts(url: str, limit: int | None = None) -> dict[str, Any]:
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.cases import evaluation_jobs
    from cityops.db import reset_engine, session_scope

    reset_engine()
    t0 = time.perf_counter()
    with session_scope() as s:
        if limit is None:
            r = evaluation_jobs.refresh_all(s)
        else:
            r = evaluation_jobs.refresh(s, limit=limit)
    return {**r, "seconds": round(time.perf_counter() - t0, 2)}


def history_side_by_side(url: str, rounds: int = 1) -> dict[str, Any]:
    """The evaluation page's rankings from the facts and from the history, in this process."""
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.cases import evaluation
    from cityops.db import get_sessionmaker, reset_engine
    from cityops.security.principal import SYSTEM

    reset_engine()
    s = get_sessionmaker()()
    today = dt.datetime.now(evaluation.TZ).date()
    kw = {"date_from": today - dt.timedelta(days=29), "date_to": today}
    out: dict[str, Any] = {}
    for name, hist in (("facts_ms", False), ("history_ms", True)):
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for subject in ("department", "street", *evaluation.POSTS):
                evaluation.evaluate(s, SYSTEM, subject, history=hist, **kw)
            s.rollback()
            best = min(best, (time.perf_counter() - t0) * 1000)
        out[name] = round(best, 1)
    s.close()
    return out


def measure(base: str, user: str, pw: str, n: int) -> dict[str, Any]:
    import httpx

    def client() -> httpx.Client:
        c = httpx.Client(base_url=base, timeout=60)
        r = c.post("/api/v1/auth/token", data={"username": user, "password": pw})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return c

    ev = client()
    ev.get("/evaluation").raise_for_status()  # warm-up
    for p in CONSOLE:
        ev.get(p).raise_for_status()
    stop = threading.Event()
    lat: list[float] = []
    errors: list[str] = []

    def load() -> None:
        c = client()
        i = 0
        while not stop.is_set():
            p = CONSOLE[i % len(CONSOLE)]
            t0 = time.perf_counter()
            r = c.get(p)
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors.append(f"{p} {r.status_code}")
            i += 1
            time.sleep(0.05)
        c.close()

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = ev.get("/evaluation")
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        assert "绩效" in r.text or "Evaluation" in r.text
    stop.set()
    for t in threads:
        t.join()
    ev.close()
    return {"p95_ms": round(float(np.percentile(times, 95)), 1), "p50_ms": round(float(np.percentile(times, 50)), 1),
            "console_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat else None,
            "console_max_ms": round(max(lat), 1) if lat else None, "console_requests": len(lat),
            "console_errors": errors[:5]}


def add_history(url: str, n: int, days: int, seed: int = 11, chunk: int = 50_000) -> dict[str, Any]:
    """``n`` synthetic cases over ``days`` days with their events, handle steps and lead departments."""
    os.environ["CITYOPS_DATABASE_URL"] = url
    from sqlalchemy import func, insert, select

    from cityops.cases.models import Case, CaseDepartment, CaseEvent, CaseStep, Category
    from cityops.cases.reference import active_version_id
    from cityops.db import get_sessionmaker, reset_engine
    from cityops.geo.models import Area

    reset_engine()
    s = get_sessionmaker()()
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC)
    vid = active_version_id(s)
    cats = s.execute(select(Category.id, Category.code, Category.kind, Category.name_zh,
                            Category.default_department_code)
                     .where(Category.version_id == vid, Category.enabled.is_(True))).all()
    grids = s.execute(select(Area.code, Area.parent_code, Area.geom).where(Area.level == "grid",
                                                                            Area.valid_to.is_(None))).all()
    parents = dict(s.execute(select(Area.code, Area.parent_code).where(Area.valid_to.is_(None))).all())
    pts = [(g.code, g.parent_code, parents.get(g.parent_code), g.geom.representative_point()) for g in grids]
    depts = [c.default_department_code or "cgzf" for c in cats]
    first = int(s.scalar(select(func.max(Case.id))) or 0) + 1
    sources = ("supervisor", "public", "hotline", "video_ai")
    t0 = time.perf_counter()
    written = events = 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        age = np.sort(rng.random(m))[::-1] * days * 86400  # oldest first: ids grow with time
        gi = rng.integers(0, len(pts), m)
        ci = rng.integers(0, len(cats), m)
        so = rng.integers(0, len(sources), m)
        limit_s = rng.choice([24 * 3600, 3 * 86400, 5 * 86400], m)
        took = limit_s * rng.uniform(0.2, 1.3, m)
        cases, evs, steps, cds = [], [], [], []
        for j in range(m):
            cid = first + start + j
            g, comm, street, p = pts[gi[j]]
            cat = cats[ci[j]]
            rep = now - dt.timedelta(seconds=float(age[j]))
            disp = rep + dt.timedelta(hours=1)
            due = disp + dt.timedelta(seconds=float(limit_s[j]))
            fin = disp + dt.timedelta(seconds=float(took[j]))
            closed = fin < now
            state = "closed" if closed else "acknowledged"
            dept = depts[ci[j]]
            cases.append({"id": cid, "source": sources[so[j]], "channel": "import", "category_id": cat.id,
                          "category_code": cat.code, "kind": cat.kind, "title": cat.name_zh,
                          "description": "合成历史", "lon": p.x, "lat": p.y, "grid_code": g, "community_code": comm,
                          "street_code": street, "layer_codes": {}, "urgency": "normal", "state": state,
                          "reporter_count": 1, "lead_department_code": dept, "reported_at": rep,
                          "registered_at": rep, "dispatched_at": disp, "closed_at": fin if closed else None,
                          "sla_step": None if closed else "handle", "due_at": None if closed else due,
                          "yellow_at": None if closed else due - dt.timedelta(seconds=float(limit_s[j]) * 0.2),
                          "overdue_count": int(fin > due), "created_by": "bench", "updated_at": now, "version": 1})
            base = {"case_id": cid, "actor_account_id": None, "department_code": None, "note": None, "reason": None,
                    "data": {}, "attachments": []}
            evs.append({**base, "at": rep, "actor": "bench_sup", "actor_roles": "supervisor", "action": "report",
                        "from_state": None, "to_state": "reported"})
            evs.append({**base, "at": disp, "actor": "bench_disp", "actor_roles": "dispatcher", "action": "dispatch",
                        "from_state": "registered", "to_state": "dispatched", "data": {"department_code": dept}})
            if closed:
                evs.append({**base, "at": fin + dt.timedelta(hours=2), "actor": "bench_lead",
                            "actor_roles": "shift_lead", "action": "close", "from_state": "inspected",
                            "to_state": "closed"})
            steps.append({"case_id": cid, "step": "handle", "round": 1, "status": "done" if closed else "open",
                          "started_at": disp, "due_at": due, "yellow_at": due - dt.timedelta(hours=2),
                          "finished_at": fin if closed else None, "on_time": (fin <= due) if closed else None,
                          "overdue_at": due if fin > due else None, "department_code": dept, "limit_value": 1.0,
                          "limit_unit": "natural_day"})
            cds.append({"case_id": cid, "department_code": dept, "role": "lead", "assigned_at": disp,
                        "assigned_by": "bench_disp", "case_reported_at": rep})
        s.execute(insert(Case.__table__), cases)
        s.execute(insert(CaseEvent.__table__), evs)
        s.execute(insert(CaseStep.__table__), _fill(CaseStep, steps))
        s.execute(insert(CaseDepartment.__table__), cds)
        s.commit()
        written += m
        events += len(evs)
    s.close()
    return {"cases": written, "events": events, "seconds": round(time.perf_counter() - t0, 1)}


def _fill(model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Columns the rows leave out that the table needs: their defaults, else None."""
    cols = model.__table__.columns
    out = []
    for r in rows:
        d = dict(r)
        for c in cols:
            if c.name not in d and not c.primary_key:
                dv = c.default.arg if c.default is not None and not callable(c.default.arg) else None
                d[c.name] = dv
        out.append(d)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench evaluation")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--demo", choices=("full", "small"), default="full")
    ap.add_argument("--keep", type=Path, default=None, help="keep the database in this folder")
    ap.add_argument("--reuse", action="store_true", help="reuse the kept database's demo (skip seeding)")
    ap.add_argument("--history-1m", action="store_true", help="also time the history path at 1M (slow)")
    a = ap.parse_args(argv)
    folder = a.keep or Path(tempfile.mkdtemp(prefix="bench-eval-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'eval.db'}"
    t0 = time.perf_counter()
    if a.reuse and (folder / "eval.db").exists():  # a kept database with the demo already seeded
        user, pw = "bench_eval", "Bench#Eval2026x"
    else:
        user, pw = prepare(url, a.demo)
    seed_s = time.perf_counter() - t0
    facts_demo = build_facts(url)
    side_demo = history_side_by_side(url, rounds=1)
    port = devserver.free_ports(1, PORTS)[0]
    with devserver.api_server(url, port, timeout=120) as base:
        demo = measure(base, user, pw, a.requests)
    print(f"demo: {demo} facts {facts_demo} side-by-side {side_demo}", flush=True)
    hist = add_history(url, a.cases, a.days)
    print(f"history: {hist}", flush=True)
    facts_1m = build_facts(url, limit=40)  # the days the 30-day evaluation reads, newest first
    side_1m = history_side_by_side(url, rounds=1) if a.history_1m else {"history_ms": None, "note": "not run"}
    with devserver.api_server(url, port, timeout=120) as base:
        big = measure(base, user, pw, a.requests)
    print(f"1m: {big} facts {facts_1m} side-by-side {side_1m}", flush=True)
    emit({"bench": "evaluation", "evaluation_p95_ms": demo["p95_ms"], "evaluation_1m_p95_ms": big["p95_ms"],
          "console_p99_during_ms": max(demo["console_p99_ms"] or 0, big["console_p99_ms"] or 0),
          "demo": demo, "one_million": big, "facts_build_demo": facts_demo, "facts_build_1m": facts_1m,
          "history_load": hist, "side_by_side_demo": side_demo, "side_by_side_1m": side_1m,
          "demo_seed_s": round(seed_s, 1), "cases": a.cases, "days": a.days,
          "targets_ms": {"evaluation_p95_ms": 1000, "evaluation_1m_p95_ms": 1000, "console_p99_during_ms": 1000}})
    return 0
