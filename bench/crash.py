"""``python -m bench crash``: kill -9 cycles of the API server under intake load, on SQLite and
PostgreSQL side by side.

Clients post reports (``POST /api/v1/cases``) each with its own Idempotency-Key and external id;
a request that gets no answer (the server is dead) is sent again with the same key until it is
acknowledged. The server is killed with SIGKILL when 1/(N+1), 2/(N+1), ... of the reports have been
acknowledged, and restarted at once. Afterwards the database is checked: every acknowledged report
stored exactly once with the case and report its acknowledgement named.

Last line: ``{"acked", "lost", "duplicated", "recovery_s", ...}`` (recovery_s = the slowest time
from the kill to the restarted server answering /healthz). Targets: lost 0, duplicated 0,
recovery < 5 s. ``tests/test_crash_and_load.py`` runs a small version of the same cycle.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import emit, machine

PASSWORD = "Crash#7q2Wz9xQ"
CATEGORIES = ("暴露垃圾", "乱堆物堆料", "道路不洁", "非法小广告", "绿地脏乱")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare(small: bool = True) -> dict[str, Any]:
    """On the current database (``CITYOPS_DATABASE_URL``, migrated and empty): the demo district's
    grids, the security catalogue, the case reference data and a grid worker. Returns the account
    and points inside unit grids."""
    from sqlalchemy import select

    from cityops.cases import reference as ref
    from cityops.db import session_scope
    from cityops.geo import demo
    from cityops.geo.models import Area
    from cityops.geo.seed import seed_geo
    from cityops.security import service as security
    from cityops.security.principal import SYSTEM

    with session_scope() as s:
        seed_geo(s, demo.generate(seed=20210220, small=small), lambda _n: None)
        security.ensure_catalog(s)
        ref.seed_reference(s, SYSTEM)
        security.create_account(s, SYSTEM, "crash_grid", PASSWORD, roles=["supervisor", "district_commander"],
                                area_code="310117",
                                expiry_exempt=True)
    with session_scope() as s:
        cat = ref.catalogue(s)
        codes = [c.code for c in cat.by_version[cat.active_id or -1].values() if c.name_zh in CATEGORIES]
        grids = s.execute(select(Area.geom).where(Area.level == "grid", Area.valid_to.is_(None))
                          .order_by(Area.code)).scalars().all()
        pts = [(p.x, p.y) for p in (g.representative_point() for g in grids)]
        depts = sorted(ref.departments(s))
    return {"user": "crash_grid", "password": PASSWORD, "codes": codes, "points": pts, "depts": depts}


def _token(base: str, ctx: dict[str, Any]) -> str:
    r = httpx.post(f"{base}/api/v1/auth/token", data={"username": ctx["user"], "password": ctx["password"]},
                   timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def run_cycles(url: str, port: int, ctx: dict[str, Any], *, cycles: int, clients: int, per_client: int,
               kill_after_s: float = 0.0, logfile: Path | None = None, tag: str = "cr") -> dict[str, Any]:
    """Intake by ``clients`` threads of ``per_client`` reports each, the server killed ``cycles``
    times (see the module doc). Returns the acknowledgements, kills and recovery times."""
    from cityops import devserver

    total = clients * per_client
    logical = []
    for i in range(total):
        lon, lat = ctx["points"][i % len(ctx["points"])]
        logical.append({"key": f"{tag}-{i:06d}", "body": {
            "category_code": ctx["codes"][i % len(ctx["codes"])], "lon": lon, "lat": lat, "source": "supervisor",
            "description": f"断电测试 crash test {i}", "external_id": f"{tag}-{i:06d}"}})
    base = f"http://127.0.0.1:{port}"
    holder: dict[str, Any] = {"proc": devserver.start_api(url, port, logfile=logfile, timeout=120)}
    token = _token(base, ctx)
    acked: dict[str, tuple[int, int]] = {}
    errors: list[str] = []
    sends = [0]
    lock = threading.Lock()
    done = threading.Event()

    def client(items: list[dict[str, Any]]) -> None:
        with httpx.Client(timeout=15, headers={"Authorization": f"Bearer {token}"}) as c:
            for it in items:
                for _attempt in range(2000):
                    with lock:
                        sends[0] += 1
                    try:
                        r = c.post(f"{base}/api/v1/cases", json=it["body"], headers={"Idempotency-Key": it["key"]})
                    except httpx.HTTPError:
                        time.sleep(0.05)  # no answer: the server is down; send again with the same key
                        continue
                    if r.status_code in (200, 201):
                        b = r.json()
                        with lock:
                            acked[it["key"]] = (int(b["case_id"]), int(b["report_id"]))
                        break
                    if r.status_code == 503:
                        time.sleep(0.1)
                        continue
                    with lock:
                        errors.append(f"{it['key']}: {r.status_code} {r.text[:200]}")
                    break

    threads = [threading.Thread(target=client, args=(logical[k::clients],), daemon=True) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    recovery: list[float] = []
    kills = 0
    try:
        for c in range(cycles):
            want = (c + 1) * total // (cycles + 1)
            while len(acked) < want and any(t.is_alive() for t in threads):
                time.sleep(0.01)
            if kill_after_s:
                time.sleep(min(kill_after_s, 0.2))
            if not any(t.is_alive() for t in threads):
                break
            holder["proc"].kill()  # SIGKILL: no shutdown, no flush
            holder["proc"].wait()
            kills += 1
            k0 = time.perf_counter()
            holder["proc"] = devserver.start_api(url, port, logfile=logfile, timeout=120)
            recovery.append(round(time.perf_counter() - k0, 2))
            log(f"   kill {kills}: {len(acked)}/{total} acknowledged, back in {recovery[-1]} s")
        for t in threads:
            t.join(timeout=600)
        done.set()
    finally:
        devserver.stop(holder["proc"], timeout=20)
    wall = time.perf_counter() - t0
    return {"logical": [x["key"] for x in logical], "acked": acked, "errors": errors, "kills": kills,
            "recovery_s": recovery or [0.0], "sends": sends[0], "wall_s": round(wall, 2)}


def verify(ctx: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """Acknowledged, lost (acknowledged, not stored), duplicated (stored more than once), mismatched
    (stored under another case or report than acknowledged), never acknowledged."""
    from sqlalchemy import select

    from cityops.cases.models import CaseReport
    from cityops.db import get_sessionmaker

    keys = set(out["logical"])
    s = get_sessionmaker()()
    try:
        rows = s.execute(select(CaseReport.external_id, CaseReport.id, CaseReport.case_id)
                         .where(CaseReport.external_id.in_(sorted(keys)))).all()
    finally:
        s.close()
    stored: dict[str, list[tuple[int, int]]] = {}
    for ext, rid, cid in rows:
        stored.setdefault(ext, []).append((cid, rid))
    acked = out["acked"]
    lost = [k for k in acked if k not in stored]
    duplicated = sum(len(v) - 1 for v in stored.values())
    mismatched = [k for k, (cid, rid) in acked.items() if k in stored and (cid, rid) not in stored[k]]
    return {"logical": len(keys), "acked": len(acked), "lost": len(lost), "duplicated": duplicated,
            "mismatched": len(mismatched), "never_acked": len(keys - set(acked)), "errors": out["errors"][:5]}


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from bench.common import use_database
    from cityops import devserver
    from cityops.db import make_engine
    from cityops.models import load_all

    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'bench-crash.db'}"
    else:
        from cityops.db import create_postgis_database

        url = create_postgis_database(args.pg_url, args.pg_db, replace=True)
    engine = make_engine(url)
    load_all().metadata.create_all(engine)
    engine.dispose()
    use_database(url)
    ctx = prepare(small=True)
    port = devserver.free_ports(1, range(8240, 8260))[0]
    log(f"== {backend}: {args.cycles} kill -9 cycles, {args.clients} clients x {args.per_client} reports")
    out = run_cycles(url, port, ctx, cycles=args.cycles, clients=args.clients, per_client=args.per_client,
                     logfile=tmp / f"server-{backend}.log", tag=f"b{backend[:2]}")
    res = verify(ctx, out)
    res.update({"backend": backend, "kills": out["kills"], "recovery_s": max(out["recovery_s"]),
                "recovery_all_s": out["recovery_s"], "sends": out["sends"], "wall_s": out["wall_s"]})
    log(f"   {json.dumps(res, ensure_ascii=False)}")
    if backend == "pg":
        from cityops.db import drop_database

        drop_database(args.pg_url, args.pg_db)
    return res


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench crash")
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--per-client", type=int, default=150)
    p.add_argument("--backends", default="sqlite,pg")
    p.add_argument("--pg-url", default="")
    p.add_argument("--pg-db", default="bench_crash")
    args = p.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b and (b != "pg" or args.pg_url)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as d:
        for b in backends:
            results[b] = run_backend(b, args, Path(d))
    rs = list(results.values())
    emit({"bench": "crash", "machine": machine(), "backends": results,
          "acked": sum(r["acked"] for r in rs), "lost": sum(r["lost"] for r in rs),
          "duplicated": sum(r["duplicated"] for r in rs), "recovery_s": max(r["recovery_s"] for r in rs),
          "targets": {"lost": 0, "duplicated": 0, "recovery_s": 5}})
    return 0
