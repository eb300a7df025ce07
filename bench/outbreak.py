"""``python -m bench outbreak [--cases 5000] [--exposures 200000] [--zones 50] [--backends sqlite,pg]``:
outbreak command over the full demo district (grid base and base data: 20,000 households).

* an outbreak of ``--cases`` cases (onsets over 30 days) and ``--exposures`` exposures: 60 % from a case
  to a new person (密接 candidates, some before the case's infectious window), 40 % from those persons
  to further people (次密接 candidates), written with bulk INSERTs through the outbreak models;
* ``recategorise_s``: one new case (a tracked 密接 turns positive, through ``tracing.report_case``), then
  every person's category and end dates recomputed from the whole graph (``tracing.recategorise``: the
  graph from its in-memory copy — valid while the outbreak's exposure / person tokens are unchanged —
  the cases read, the NumPy rule, the rows that changed written) — the recomputation alone, median;
  ``recategorise_cold_s`` without the copy (the graph read column-wise from the database);
  ``report_case_s`` is the whole report (zones touched, recomputation, outbox);
* ``zone_population_s``: households, residents and elderly living alone in 50 zones (a grid and its
  neighbours each) from the registry's buildings as of the zones' day (``zones.populations``), median
  of the repeats (the day's occupancy kept while the base data does not change);
  ``zone_population_cold_s`` the first count, reading the base data;
* ``daily_report_s``: the day's report figures and its HTML (``report.report_data`` + ``render_html``);
  ``daily_report_pdf_s`` apart (headless Chromium, when present).

Peers in the same run, on the same data: the category rule written as a plain Python loop over the
edges (``peer_recategorise_python_s``, results checked equal), zone counts by a per-zone shapely
``contains_xy`` (``peer_zone_population_loop_s``, checked equal).
Last line: JSON with ``recategorise_s``, ``zone_population_s``, ``daily_report_s``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, peak_rss_mb, seed_district

DEFAULT_PG = "postgresql+psycopg://cityops@127.0.0.1:54329/postgres"
PG_DB = "bench_outbreak"
TARGETS = {"recategorise_s": 1.0, "zone_population_s": 1.0, "daily_report_s": 5.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _seed(url: str, seed: int) -> None:
    from cityops.db import session_scope
    from cityops.geo import demo
    from cityops.registry import seed as registry_seed

    seed_district(url, seed)
    with session_scope() as s:
        registry_seed.seed_demo(s, demo.generate(seed=seed, small=False), small=False, rng_seed=seed)


def _outbreak(n_cases: int, n_exp: int, seed: int) -> dict[str, Any]:
    """Bulk-write one outbreak; returns its id and the day the report is for."""
    from sqlalchemy import select

    from cityops.db import bulk_insert, session_scope
    from cityops.geo.models import Area
    from cityops.outbreak import service
    from cityops.outbreak.models import Exposure, OutbreakCase, TrackedPerson
    from cityops.outbreak.schemas import OutbreakIn
    from cityops.security.principal import SYSTEM

    rng = np.random.default_rng(seed)
    with session_scope() as s:
        ob = service.open_outbreak(s, SYSTEM, OutbreakIn(disease="covid19", area_code="310117", reason="bench"))
        grids = s.execute(select(Area.code, Area.parent_code, Area.geom).where(Area.level == "grid",
                                                                               Area.valid_to.is_(None))).all()
        parents = dict(s.execute(select(Area.code, Area.parent_code).where(Area.level == "community")).tuples().all())
    n_first = int(n_exp * 0.6)
    n_second = n_exp - n_first
    n_people = n_cases + n_first + n_second // 2
    gi = rng.integers(0, len(grids), n_people)
    pts = [grids[i].geom.representative_point() for i in range(len(grids))]
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    now = dt.datetime.now(dt.UTC)
    persons = []
    for k in range(n_people):
        g = grids[gi[k]]
        p = pts[gi[k]]
        persons.append({"outbreak_id": ob["id"], "id_number": f"9{k:017d}", "name": f"人员{k}", "phone": "13800000000",
                        "lon": p.x + rng.normal(0, 2e-4), "lat": p.y + rng.normal(0, 2e-4), "grid_code": g.code,
                        "community_code": g.parent_code, "street_code": parents.get(g.parent_code),
                        "created_at": now})
    with session_scope() as s:
        bulk_insert(s, TrackedPerson.__table__, persons)
        ids = np.array(s.scalars(select(TrackedPerson.id).where(TrackedPerson.outbreak_id == ob["id"])
                                 .order_by(TrackedPerson.id)).all())
    onset = rng.integers(0, 30, n_cases)
    cases = [{"code": f"{ob['code']}-C{k + 1:05d}", "outbreak_id": ob["id"], "person_id": int(ids[k]),
              "classification": "confirmed" if k % 5 else "asymptomatic",
              "onset_on": (t0 + dt.timedelta(days=int(onset[k]))).date() if k % 5 else None,
              "sampled_on": None if k % 5 else (t0 + dt.timedelta(days=int(onset[k]))).date(),
              "reported_at": t0 + dt.timedelta(days=int(onset[k]) + 1), "found_in": "community",
              "lon": persons[k]["lon"], "lat": persons[k]["lat"], "grid_code": persons[k]["grid_code"],
              "community_code": persons[k]["community_code"], "street_code": persons[k]["street_code"],
              "places": [], "reported_by": "bench"} for k in range(n_cases)]
    src1 = rng.integers(0, n_cases, n_first)
    per1 = n_cases + np.arange(n_first)
    s_day1 = onset[src1] + rng.integers(-8, 3, n_first)
    src2 = n_cases + rng.integers(0, n_first, n_second)
    per2 = n_cases + n_first + rng.integers(0, n_second // 2, n_second)
    s_day2 = s_day1[src2 - n_cases] + rng.integers(-3, 4, n_second)
    src = np.concatenate([src1, src2])
    per = np.concatenate([per1, per2])
    sday = np.concatenate([s_day1, s_day2])
    dur = rng.integers(0, 3, n_exp)
    rows = []
    for k in range(n_exp):
        st = t0 + dt.timedelta(days=int(sday[k]), hours=9)
        en = st + dt.timedelta(days=int(dur[k]), hours=2)
        rows.append({"outbreak_id": ob["id"], "person_id": int(ids[per[k]]), "source_id": int(ids[src[k]]),
                     "kind": "other", "start_at": st, "end_at": en, "start_day": service.local_day(st).toordinal(),
                     "end_day": service.local_day(en).toordinal(), "recorded_by": "bench"})
    with session_scope() as s:
        bulk_insert(s, OutbreakCase.__table__, cases)
        for lo in range(0, len(rows), 50_000):
            bulk_insert(s, Exposure.__table__, rows[lo:lo + 50_000])
    return {"id": ob["id"], "persons": n_people, "day": (t0 + dt.timedelta(days=30)).date()}


def _peer_python(session: Any, ob_id: int) -> tuple[float, dict[int, tuple[str | None, int]]]:
    """The same rule as a plain Python loop over the edges (dicts), on the same rows."""
    from sqlalchemy import select

    from cityops.outbreak import rules
    from cityops.outbreak.models import Exposure, OutbreakCase

    rs = rules.get("covid19-v9")
    t = time.perf_counter()
    src_start: dict[int, int] = {}
    cases: set[int] = set()
    for pid, cl, on, sa in session.execute(select(OutbreakCase.person_id, OutbreakCase.classification,
                                                  OutbreakCase.onset_on, OutbreakCase.sampled_on)
                                           .where(OutbreakCase.outbreak_id == ob_id)):
        cases.add(pid)
        base = on or sa
        if cl in rs.source_classes() and base is not None:
            src_start[pid] = base.toordinal() - rs.lookback_days
    edges = session.execute(select(Exposure.person_id, Exposure.source_id, Exposure.start_day, Exposure.end_day)
                            .where(Exposure.outbreak_id == ob_id)).all()
    close_last: dict[int, int] = {}
    close_first: dict[int, int] = {}
    for p, sid, sd, ed in edges:
        if sid in src_start and p not in src_start and ed >= src_start[sid]:
            close_last[p] = max(close_last.get(p, -1), ed)
            close_first[p] = min(close_first.get(p, 1 << 40), sd)
    sec_last: dict[int, int] = {}
    for p, sid, _sd, ed in edges:
        if sid in close_last and p not in src_start and p not in close_last and ed >= close_first[sid]:
            sec_last[p] = max(sec_last.get(p, -1), ed)
    out: dict[int, tuple[str | None, int]] = {}
    for p, last in close_last.items():
        if p not in cases:
            out[p] = ("close", last + rs.close.quarantine_days + rs.close.monitoring_days)
    for p, last in sec_last.items():
        if p not in cases:
            out[p] = ("secondary", last + rs.secondary.quarantine_days + rs.secondary.monitoring_days)
    return time.perf_counter() - t, out


def run_backend(backend: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select

    from cityops.db import get_sessionmaker, session_scope
    from cityops.outbreak import report, rules, tracing, zones
    from cityops.outbreak.models import Outbreak, TrackedPerson, Zone
    from cityops.outbreak.schemas import CaseIn, ZoneIn
    from cityops.security.principal import SYSTEM

    out: dict[str, Any] = {}
    t = time.perf_counter()
    _seed(url, args.seed)
    out["seed_district_s"] = round(time.perf_counter() - t, 2)
    log(f"[{backend}] district + base data: {out['seed_district_s']} s")
    t = time.perf_counter()
    ob = _outbreak(args.cases, args.exposures, args.seed)
    out["write_outbreak_s"] = round(time.perf_counter() - t, 2)
    out["persons"] = ob["persons"]
    rs = rules.get("covid19-v9")
    with session_scope() as s:
        t = time.perf_counter()
        first = tracing.recategorise(s, s.get(Outbreak, ob["id"]))
        out["first_recategorise_s"] = round(time.perf_counter() - t, 3)
    out["categories"] = first["categories"]
    log(f"[{backend}] outbreak written ({out['write_outbreak_s']} s); first categorisation "
        f"{out['first_recategorise_s']} s: {first}")
    # one new case: a tracked 密接 turns positive
    with session_scope() as s:
        pid = s.scalar(select(TrackedPerson.id).where(TrackedPerson.outbreak_id == ob["id"],
                                                      TrackedPerson.category == "close").order_by(TrackedPerson.id))
        t = time.perf_counter()
        tracing.report_case(s, SYSTEM, ob["id"], CaseIn(person_id=pid, classification="confirmed",
                                                        onset_on=ob["day"], found_in="quarantine"))
        out["report_case_s"] = round(time.perf_counter() - t, 3)
    times = []
    changed = []
    for _ in range(args.repeat):
        with session_scope() as s:
            t = time.perf_counter()
            r = tracing.recategorise(s, s.get(Outbreak, ob["id"]))
            times.append(time.perf_counter() - t)
            changed.append(r["changed"])
    out["recategorise_s"] = round(float(np.median(times)), 3)
    with session_scope() as s:  # without the in-memory copy of the graph (after a process restart)
        tracing._graph_cache.clear()
        t = time.perf_counter()
        tracing.recategorise(s, s.get(Outbreak, ob["id"]))
        out["recategorise_cold_s"] = round(time.perf_counter() - t, 3)
    with get_sessionmaker()() as s:
        t = time.perf_counter()
        ids, g = tracing.load_graph(s, s.get(Outbreak, ob["id"]), rs)
        out["recategorise_read_s"] = round(time.perf_counter() - t, 3)
        from cityops.outbreak import categorise as cat

        t = time.perf_counter()
        res = cat.categorise(g, rs)
        out["recategorise_rule_s"] = round(time.perf_counter() - t, 4)
        peer_s, peer = _peer_python(s, ob["id"])
        out["peer_recategorise_python_s"] = round(peer_s, 3)
        codes = {1: "secondary", 2: "close"}
        ours = {int(ids[k]): (codes[int(res.category[k])], int(res.monitoring_end[k]))
                for k in np.flatnonzero((res.category == 1) | (res.category == 2))}
        assert ours == peer, "the Python peer disagrees with the NumPy rule"
    log(f"[{backend}] recategorise after one case: {out['recategorise_s']} s (read {out['recategorise_read_s']}, "
        f"rule {out['recategorise_rule_s']}); python peer {out['peer_recategorise_python_s']} s; report_case "
        f"{out['report_case_s']} s")
    # 50 zones: a grid and its neighbours each
    from cityops.geo import service as geo

    with session_scope() as s:
        gx = geo.indexes(s).grids
        rng = np.random.default_rng(args.seed)
        for code in rng.choice(gx.codes, args.zones, replace=False):
            zones.create_zone(s, SYSTEM, ob["id"], ZoneIn(level="sealed", grid_codes=zones._neighbours(s, str(code)),
                                                          start_on=ob["day"]))
    with get_sessionmaker()() as s:
        zs = list(s.scalars(select(Zone).where(Zone.outbreak_id == ob["id"])))
        from cityops.registry import occupancy

        occupancy._cache.clear()  # the first count reads the base data
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            pops = zones.populations(s, zs, rs)
            times.append(time.perf_counter() - t)
        out["zone_population_s"] = round(float(np.median(times)), 3)
        out["zone_population_cold_s"] = round(times[0], 3)  # the first count of the day (no cached occupancy)
        out["zone_households"] = int(sum(p["households"] for p in pops))
        import shapely

        from cityops.registry import occupancy

        t = time.perf_counter()
        occ = occupancy.building_occupancy(s, zones.as_of_instant(ob["day"]))
        peer_h = []
        for z in zs:
            m = shapely.contains_xy(z.geom, occ.lon, occ.lat) | shapely.touches(z.geom, shapely.points(occ.lon, occ.lat))
            peer_h.append(int(occ.households[m].sum()))
        out["peer_zone_population_loop_s"] = round(time.perf_counter() - t, 3)
        assert peer_h == [p["households"] for p in pops], "zone counts disagree with the per-zone peer"
        from cityops.outbreak.models import Outbreak as _Ob

        t = time.perf_counter()
        zones.people_inside(s, SYSTEM, zs, s.get(_Ob, ob["id"]))
        out["zone_people_s"] = round(time.perf_counter() - t, 3)
    log(f"[{backend}] zone population x{len(zs)}: {out['zone_population_s']} s ({out['zone_households']} households); "
        f"per-zone peer {out['peer_zone_population_loop_s']} s")
    with get_sessionmaker()() as s:
        times = []
        for _ in range(max(1, args.repeat // 2)):
            t = time.perf_counter()
            data = report.report_data(s, SYSTEM, ob["id"], ob["day"])
            html = report.render_html(data)
            times.append(time.perf_counter() - t)
            s.rollback()
        out["daily_report_s"] = round(float(np.median(times)), 3)
        out["daily_report_html_kb"] = round(len(html) / 1024, 1)
        from cityops.console import briefing

        if Path(briefing.CHROMIUM).exists():
            t = time.perf_counter()
            pdf = briefing.html_to_pdf(html)
            out["daily_report_pdf_s"] = round(time.perf_counter() - t, 2)
            out["daily_report_pdf_kb"] = round(len(pdf) / 1024, 1)
    log(f"[{backend}] daily report: {out['daily_report_s']} s (+ PDF {out.get('daily_report_pdf_s')} s)")
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench outbreak")
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--exposures", type=int, default=200_000)
    ap.add_argument("--zones", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20210220)
    ap.add_argument("--backends", default="sqlite")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbreak-"))
    res: dict[str, Any] = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'outbreak.db'}"
        else:
            from cityops.db import create_postgis_database

            url = create_postgis_database(args.pg_url, PG_DB, replace=True)
        try:
            res[backend] = run_backend(backend, url, args)
        finally:
            if backend == "pg":
                from cityops.db import drop_database, reset_engine

                reset_engine()
                drop_database(args.pg_url, PG_DB)
    keys = ("recategorise_s", "zone_population_s", "daily_report_s")
    emit({"bench": "outbreak", **{k: max(r[k] for r in res.values()) for k in keys}, "cases": args.cases,
          "exposures": args.exposures, "zones": args.zones, **res, "targets": TARGETS})
    return 0
