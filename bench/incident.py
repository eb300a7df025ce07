"""Benchmark of emergency command: ``python -m bench incident [--tasks 500] [--departments 40]
[--repeat 5] [--requests 1000] [--concurrency 50] [--backends sqlite,pg] [--pg-url URL]``.

Per backend, a fresh database (schema from the models, the small demo district's grids, the
departments, the security catalogue) and a synthetic plan with ``--tasks`` tasks at level II spread
over ``--departments`` departments:

* *activation*: ``incidents.act(..., "respond", {"level": "II", "plans": [...]})`` + commit for a new
  incident — the tasks (multi-row INSERT), their deadline timers, one to-do notification per
  department, the mobilisation call-ups and their notifications, the timeline / audit / outbox rows;
  ``--repeat`` incidents, the median is reported. The peer, side by side: the same outcome written
  row by row the obvious way (ORM ``session.add`` per task, ``jobs.schedule_timer`` per task,
  ``jobs.notify`` per department);
* *CAP export*: ``--requests`` GETs of ``/api/v1/emergency/warnings/{id}.cap`` against a real uvicorn
  server (``cityops.devserver``), ``--concurrency`` in flight at a time (httpx.AsyncClient), over 20
  published warnings; p50/p95/p99 latency and throughput. The peer: building and validating the
  message against the OASIS XSD on every request (what serving the stored message avoids), timed
  in-process; and the server's floor on this machine, ``GET /healthz`` under the same load.

Last line: one JSON object with ``activate_s`` and ``cap_p95_ms`` (the worst backend) and the
per-backend figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, use_database

DEFAULT_PG = "postgresql+psycopg://cityops@127.0.0.1:54329/cityops"
PG_DB = "bench_incident"
STREETS = ["310117001", "310117002", "310117003", "310117004", "310117005", "310117006", "310117102",
           "310117103", "310117104", "310117105", "310117106", "310117107"]


def log(msg: str) -> None:
    print(msg, flush=True)


def synthetic_plan(n_tasks: int, depts: list[str]) -> dict[str, Any]:
    tasks = [{"key": f"t{i:04d}", "department": depts[i % len(depts)], "title": f"基准任务 {i}",
              "deadline_minutes": 15 + (i % 12) * 15} for i in range(n_tasks)]
    return {"format": "cityops-plan/1", "code": "B-500", "name": "基准预案", "type": "special", "edition": "bench",
            "issued_by": "bench", "owner_department": "yj",
            "scope": {"categories": ["natural"], "subtypes": ["geological"]},
            "levels": {"IV": {"tasks": tasks[: n_tasks // 10]}, "II": {"tasks": tasks}}}


def setup(url: str) -> list[str]:
    """Schema from the models, the small demo district's grids, the security catalogue, the case
    engine's and the emergency departments, the demo plans; returns the department codes."""
    from sqlalchemy import select

    from cityops.cases import reference as ref
    from cityops.cases.models import Department
    from cityops.db import make_engine, session_scope
    from cityops.emergency.seed_command import ensure_departments, seed_plans
    from cityops.geo import demo
    from cityops.geo.seed import seed_geo
    from cityops.models import load_all
    from cityops.security import service as security
    from cityops.security.principal import SYSTEM

    eng = make_engine(url)
    load_all().metadata.create_all(eng)
    eng.dispose()
    use_database(url)
    with session_scope() as s:
        seed_geo(s, demo.generate(small=True), lambda _n: None)
        security.ensure_catalog(s)
        ref.seed_departments(s, SYSTEM)
        ensure_departments(s)
        seed_plans(s)
    with session_scope() as s:
        return sorted(s.scalars(select(Department.code)), key=lambda c: (c.startswith("jz"), c))


def activate(n: int, plan_code: str, street: str) -> float:
    from cityops.db import session_scope
    from cityops.emergency import incidents
    from cityops.security.principal import SYSTEM

    with session_scope() as s:
        res = incidents.open_incident(s, SYSTEM, "phone", None, "natural", "II", area=street, subtype="geological",
                                      title=f"基准：地质灾害 {n}")
    with session_scope() as s:
        t0 = time.perf_counter()
        incidents.act(s, SYSTEM, res.incident_id, "respond", {"level": "II", "plans": [plan_code]})
        s.commit()
        return time.perf_counter() - t0


def peer_activate(n_tasks: int, depts: list[str], street: str) -> float:
    """The same rows written one at a time (the reference the set-based path is measured against)."""
    import datetime as dt

    from cityops.db import session_scope
    from cityops.emergency import incidents
    from cityops.emergency.models_command import EmergencyTask, PlanActivation
    from cityops.jobs import service as jobs
    from cityops.lifecycle import service as lifecycle
    from cityops.security import audit
    from cityops.security.principal import SYSTEM

    with session_scope() as s:
        res = incidents.open_incident(s, SYSTEM, "phone", None, "natural", "II", area=street, subtype="geological",
                                      title="基准：逐行对照")
    with session_scope() as s:
        from cityops.emergency import plans

        t0 = time.perf_counter()
        plan, v = plans.get_version(s, "B-500")
        inc = incidents.get_incident(s, SYSTEM, res.incident_id)
        at = jobs.now()
        a = PlanActivation(incident_id=inc.id, plan_id=plan.id, plan_version_id=v.id, level="II", active=True,
                           activated_at=at, activated_by="bench")
        s.add(a)
        s.flush()
        for key, t in plans.tasks_for(plans.doc_of(v), "II").items():
            due = at + dt.timedelta(minutes=t.deadline_minutes)
            task = EmergencyTask(incident_id=inc.id, activation_id=a.id, task_key=key, level="II", title=t.title,
                                 owner_department_code=t.department, area_code=inc.area_code, state="open",
                                 created_at=at, due_at=due, yellow_at=at + (due - at) * 0.8)
            s.add(task)
            s.flush()
            jobs.schedule_timer(s, "emergency.task_due", "em_task", task.id, due, {"incident_id": inc.id})
        for d in sorted({t.department for t in plans.tasks_for(plans.doc_of(v), "II").values()}):
            jobs.notify(s, department_code=d, title="应急响应：基准", body="任务", link="/emergency/tasks")
        inc.state, inc.response_level = "responding", "II"
        lifecycle.add_entry(s, SYSTEM, "incident", inc.id, "respond", at=at)
        audit.record(s, SYSTEM, "incident.respond", "incident", inc.id)
        s.commit()
        return time.perf_counter() - t0


def publish_warnings(n: int) -> list[int]:
    from cityops.db import session_scope
    from cityops.emergency import alerts
    from cityops.emergency.seed_command import APPROVER, DRAFTER

    ids = []
    for i in range(n):
        with session_scope() as s:
            w = alerts.draft(s, DRAFTER, alerts.WarningIn(
                level=["blue", "yellow", "orange", "red"][i % 4], event="暴雨", headline=f"基准预警 {i}",
                description="预计未来6小时降雨量将达50毫米以上。", instruction="注意防范。",
                headline_en=f"Bench warning {i}", area_codes=[STREETS[i % len(STREETS)]]))
            alerts.act(s, APPROVER, w["id"], "approve", {})
            alerts.act(s, DRAFTER, w["id"], "publish", {})
            ids.append(w["id"])
    return ids


def peer_build_ms(wid: int, n: int = 50) -> float:
    from cityops.db import session_scope
    from cityops.emergency import alerts
    from cityops.emergency.models_command import PublicWarning

    with session_scope() as s:
        w = s.get(PublicWarning, wid)
        alerts.build(s, w, msg_type="Alert", status="Actual", identifier="BENCH-1", sent=alerts.now(), references=None)
        t0 = time.perf_counter()
        for _ in range(n):
            alerts.build(s, w, msg_type="Alert", status="Actual", identifier="BENCH-1", sent=alerts.now(),
                         references=None)
        return (time.perf_counter() - t0) / n * 1000


async def _load(base: str, ids: list[int], n: int, concurrency: int, path: str = "/api/v1/emergency/warnings/{}.cap"
                ) -> tuple[list[float], float]:
    import httpx

    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as c:
        for wid in ids:  # warm
            (await c.get(path.format(wid))).raise_for_status()

        async def one(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await c.get(path.format(ids[i % len(ids)]))
                lat.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()

        t_all = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return lat, time.perf_counter() - t_all


def run_backend(backend: str, url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from cityops.db import session_scope
    from cityops.devserver import api_server, free_ports
    from cityops.emergency import plans
    from cityops.security.principal import SYSTEM

    log(f"== {backend}: schema, grids, departments, plans")
    depts = setup(url)[: args.departments]
    if len(depts) < args.departments:
        raise SystemExit(f"only {len(depts)} departments")
    with session_scope() as s:
        plans.import_plan(s, SYSTEM, synthetic_plan(args.tasks, depts))
    act = [activate(i, "B-500", STREETS[i % len(STREETS)]) for i in range(args.repeat)]
    peer = [peer_activate(args.tasks, depts, STREETS[(i + 5) % len(STREETS)]) for i in range(max(1, args.repeat // 2))]
    from sqlalchemy import func, select

    from cityops.emergency.models_command import EmergencyTask
    from cityops.jobs.models import Notification

    with session_scope() as s:
        per_incident = s.scalar(select(func.count()).select_from(EmergencyTask)) // (args.repeat + len(peer))
        notes = s.scalar(select(func.count()).select_from(Notification))
    log(f"   activation of {args.tasks} tasks / {len(depts)} departments: median {statistics.median(act):.3f} s "
        f"(runs {', '.join(f'{x:.3f}' for x in act)}); row by row {statistics.median(peer):.3f} s")
    ids = publish_warnings(20)
    build_ms = peer_build_ms(ids[0])
    port = free_ports(1)[0]
    out: dict[str, Any] = {"activate_s": round(statistics.median(act), 4), "activate_runs_s": [round(x, 4) for x in act],
                           "tasks_per_incident": per_incident, "departments": len(depts),
                           "notifications_total": notes, "peer_row_by_row_activate_s": round(statistics.median(peer), 4),
                           "peer_build_and_validate_cap_ms": round(build_ms, 2), "cap": {}}
    with api_server(url, port, logfile=tmp / f"server-{backend}.log", workers=args.server_workers) as base:
        for conc in sorted({*(int(x) for x in args.levels.split(",")), args.concurrency}):
            lat, wall = asyncio.run(_load(base, ids, args.requests, conc))
            a = np.array(lat)
            out["cap"][str(conc)] = {"p50_ms": round(float(np.percentile(a, 50)), 2),
                                     "p95_ms": round(float(np.percentile(a, 95)), 2),
                                     "p99_ms": round(float(np.percentile(a, 99)), 2),
                                     "per_s": round(args.requests / wall, 1)}
            log(f"   CAP x{args.requests}, {conc} in flight: {out['cap'][str(conc)]}")
            lat, wall = asyncio.run(_load(base, ids, args.requests, conc, "/healthz?w={}"))
            a = np.array(lat)
            out.setdefault("healthz_floor", {})[str(conc)] = {
                "p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
                "per_s": round(args.requests / wall, 1)}
            log(f"   floor: GET /healthz x{args.requests}, {conc} in flight: {out['healthz_floor'][str(conc)]}")
    out["cap_p95_ms"] = out["cap"][str(args.concurrency)]["p95_ms"]
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench incident")
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--departments", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--server-workers", type=int, default=1, help="uvicorn worker processes of the test server")
    ap.add_argument("--levels", default="1,10,50,100", help="requests in flight, measured in turn")
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-incident-"))
    res: dict[str, Any] = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'incident.db'}"
        else:
            from cityops.db import create_postgis_database

            url = create_postgis_database(args.pg_url, PG_DB, replace=True)
        try:
            res[backend] = run_backend(backend, url, args, tmp)
        finally:
            if backend == "pg":
                from cityops.db import drop_database, reset_engine

                reset_engine()
                drop_database(args.pg_url, PG_DB)
    emit({"bench": "incident", "activate_s": max(r["activate_s"] for r in res.values()),
          "cap_p95_ms": max(r["cap_p95_ms"] for r in res.values()), "concurrency": args.concurrency,
          "requests": args.requests, "tasks": args.tasks, **res,
          "targets": {"activate_s": 0.5, "cap_p95_ms": 50}})
    return 0
