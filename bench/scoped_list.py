"""Benchmark: the cost of area scoping on list pages and counts (issue 3), and the case list's
filters at scale (issue 4), through the service functions the API calls.

Per backend (SQLite, and PostgreSQL + PostGIS with ``--backends sqlite,pg``), side by side in one
run: a fresh database built from the models (all indexes as declared), the full demo district's
areas (3,055 unit grids), the security catalogue and the case engine's reference data, then

* ``--rows`` base-data persons (default 1,000,000 current versions, plus 5 % closed past
  versions) in real grids, spread over the 17 streets/towns with the weights of
  ``cityops.geo.demo.STREETS`` (岳阳街道 holds ~24 %);
* ``--cases`` cases (default 1,000,000) in real grids, same street weights, a year of reports,
  realistic states / categories / deadlines (some overdue).

Timed (p50/p95 over ``--repeat`` runs after warm-up, a new session per request like the API):

* registry list request = ``cityops.registry.service.list_records(session, principal, "persons",
  page=1..5)`` (count + page of 50 + masking + audit row + commit) for a 岳阳街道 street operator
  (scoped), a community operator and the system principal (unscoped);
* registry count = ``cityops.registry.service.counts(session, principal)`` (all six kinds);
* the same list request with the kind filter ``registered`` (户籍人口, 55 % of persons);
* case list = ``cityops.cases.queries.list_cases(session, principal, filter, page_size=50)`` (page 1
  with the total) for the street operator and the district (system principal), with area / state /
  category / overdue filters and combinations.

The SQL each registry call issued is captured and EXPLAINed, so the plans in the result are the
real ones. Usage::

    python -m bench scoped_list [--rows N] [--cases N] [--repeat R] [--backends sqlite,pg]
                                [--pg-url URL] [--dir DIR (keep / reuse the SQLite file)]

Last line: JSON with ``scoped_p95_ms`` / ``unscoped_p95_ms`` (registry list request, SQLite),
``scoped_count_p95_ms`` / ``unscoped_count_p95_ms``, ``cases_list_p95_ms`` and per-filter figures;
PostgreSQL figures carry a ``pg_`` prefix.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bench.common import emit, peak_rss_mb, seed_district, use_database

STREET = "310117001"  # 岳阳街道
PAGE = 50
DEFAULT_PG = "postgresql+psycopg://cityops@127.0.0.1:54329/cityops"
PG_DB = "cityops_bench_scoped"
GEO_SEED = 20210220
HOT = {"暴露垃圾": 6, "机动车乱停放": 6, "非机动车乱停放": 5, "占道经营": 5, "乱堆物堆料": 5, "店外经营": 4,
       "道路不洁": 4, "非法小广告": 4, "垃圾站（箱）满溢": 3, "积存垃圾渣土": 3, "私搭乱建": 3, "道路破损": 2}
OPEN = ("reported", "accepted", "verifying", "registered", "dispatched", "acknowledged", "handled", "inspecting",
        "sent_back", "suspended")
SLA_STEP = {"reported": "accept", "accepted": "register", "verifying": "verify", "registered": "dispatch",
            "dispatched": "acknowledge", "acknowledged": "handle", "handled": "inspect", "inspecting": "inspect",
            "sent_back": "dispatch", "suspended": None}
DISPATCHED = ("dispatched", "acknowledged", "handled", "inspecting", "sent_back", "suspended", "closed", "evaluated")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(xs), q)) * 1000.0, 2) if xs else -1.0


# ---------------------------------------------------------------- databases


def _pg_database(pg_url: str, name: str, create: bool, reuse: bool = False) -> tuple[str, bool]:
    """(url, fresh): a new database (dropped first), or the kept one when ``reuse`` and it exists."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from cityops.db import create_postgis_database, drop_database

    admin = create_engine(make_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None
    admin.dispose()
    if reuse and exists:
        return make_url(pg_url).set(database=name).render_as_string(hide_password=False), False
    if create:
        return create_postgis_database(pg_url, name, replace=True), True
    drop_database(pg_url, name)
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False), False


def _setup(url: str) -> None:
    seed_district(url, GEO_SEED)


def _grids() -> tuple[list[tuple[str, str, str, float, float]], np.ndarray]:
    """(grid, community, street, lon, lat) of every current unit grid, and each grid's weight
    (its street's weight from STREETS shared evenly by the street's grids)."""
    import shapely
    from sqlalchemy import select

    from cityops.db import session_scope
    from cityops.geo.demo import STREETS
    from cityops.geo.models import Area

    with session_scope() as s:
        rows = s.execute(select(Area.code, Area.parent_code, Area.geom).where(Area.level == "grid",
                                                                              Area.valid_to.is_(None))).all()
        parents = dict(s.execute(select(Area.code, Area.parent_code).where(Area.level == "community",
                                                                           Area.valid_to.is_(None))).tuples().all())
    out = []
    for code, comm, geom in sorted(rows, key=lambda r: r[0]):
        street = parents[comm]
        # the claim every located table relies on: codes are prefixes of the grid code
        assert code.startswith(comm) and comm.startswith(street), (code, comm, street)
        p = shapely.point_on_surface(geom)
        out.append((code, comm, street, float(p.x), float(p.y)))
    sw = {c: float(n * d) for c, _n, _k, _ll, n, d in STREETS}
    per_street: dict[str, int] = {}
    for g in out:
        per_street[g[2]] = per_street.get(g[2], 0) + 1
    w = np.array([sw.get(g[2], 0.0) / per_street[g[2]] for g in out])
    return out, w / w.sum()


def _copy_rows(url: str, table: str, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    from cityops.db import make_engine

    eng = make_engine(url)
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:  # type: ignore[attr-defined]
            for r in rows:
                cp.write_row(r)
        raw.commit()
    finally:
        raw.close()
        eng.dispose()


def _insert(url: str, table: Any, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    if url.startswith("postgresql"):
        _copy_rows(url, table.name, cols, rows)
        return
    from sqlalchemy import insert

    from cityops.db import make_engine

    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(insert(table), [dict(zip(cols, r, strict=True)) for r in rows])
    eng.dispose()


def _analyze(url: str, sqlite_stats: bool) -> None:
    """PostgreSQL: VACUUM ANALYZE (what autovacuum does after a bulk load; index-only scans need
    the visibility map). SQLite: ANALYZE only with ``--sqlite-analyze``: the application never runs
    it, so by default the planner works without statistics, as in production."""
    from cityops.db import make_engine

    eng = make_engine(url)
    if url.startswith("postgresql"):
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("registry_person", "case_file"):
                for _attempt in range(3):  # pages are marked all-visible only past every open snapshot
                    conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
                    if _all_visible(conn, table) >= 99.0:
                        break
                    time.sleep(2)
    elif sqlite_stats:
        with eng.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    eng.dispose()


def _all_visible(conn: Any, table: str) -> float:
    """PostgreSQL: % of the table's pages marked all-visible (index-only scans skip those)."""
    row = conn.exec_driver_sql(f"SELECT relallvisible, relpages FROM pg_class WHERE relname = '{table}'").first()
    return round(100.0 * row[0] / row[1], 1) if row and row[1] else 100.0


def build_persons(url: str, grids: list[Any], w: np.ndarray, n: int, seed: int) -> float:
    """``n`` current persons plus 5 % closed past versions; returns seconds."""
    from cityops.registry.models import Person

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    old_from = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    valid_from = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cols = ["id", "entity_id", "valid_from", "valid_to", "source", "synthetic", "grid_code", "community_code",
            "street_code", "id_number", "name", "gender", "birth_date", "phone", "household_code", "relation",
            "address", "registered", "resident"]
    batch = 100_000
    next_id = n + 1
    for start in range(0, n, batch):
        m = min(batch, n - start)
        gi = rng.choice(len(grids), size=m, p=w)
        years = rng.integers(1930, 2020, size=m)
        reg = rng.random(m) < 0.55
        past = rng.random(m) < 0.05
        rows: list[tuple[Any, ...]] = []
        for i in range(m):
            pid = start + i + 1
            g = grids[gi[i]]
            y = int(years[i])
            gender = "male" if pid % 2 else "female"
            idn = f"310117{pid:011d}X"  # unique (not a valid check digit: the bench writes straight to the table)
            rows.append((pid, pid, valid_from, None, "bench", True, g[0], g[1], g[2], idn, "测试人", gender,
                         dt.date(y, 1, 1), None, None, None, None, bool(reg[i]), True))
            if past[i]:  # an earlier version (another grid), closed when the current one started
                h = grids[gi[(i + 1) % m]]
                rows.append((next_id, pid, old_from, valid_from, "bench", True, h[0], h[1], h[2], idn, "测试人", gender,
                             dt.date(y, 1, 1), None, None, None, None, bool(reg[i]), True))
                next_id += 1
        _insert(url, Person.__table__, cols, rows)
        log(f"  persons: {start + m:,} / {n:,} ({time.perf_counter() - t0:.0f} s)")
    return time.perf_counter() - t0


def build_cases(url: str, grids: list[Any], w: np.ndarray, n: int, seed: int) -> float:
    """``n`` cases over the past year (states, deadlines and overdue like a working district)."""
    from cityops.cases import reference as ref
    from cityops.cases.models import Case
    from cityops.db import session_scope

    with session_scope() as s:
        cat = ref.catalogue(s)
        cats = [c for c in cat.by_version[cat.active_id or -1].values() if c.enabled]
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC)
    cw = np.array([float(HOT.get(c.name_zh, 1)) for c in cats])
    cw /= cw.sum()
    cols = ["source", "channel", "category_id", "category_code", "kind", "title", "lon", "lat", "grid_code",
            "community_code", "street_code", "layer_codes", "urgency", "state", "reporter_count", "lead_department_code",
            "self_handled", "reported_at", "dispatched_at", "closed_at", "sla_step", "due_at", "yellow_at",
            "overdue_count", "rework_count", "sendback_count", "extension_count", "reopen_count", "oversee_count",
            "created_by", "updated_at", "version"]
    pg = url.startswith("postgresql")
    t0 = time.perf_counter()
    batch = 100_000
    srcs = ["supervisor", "public", "hotline", "video_ai", "iot", "open311"]
    chans = ["app", "web", "phone", "sensor", "sensor", "open311"]
    for start in range(0, n, batch):
        m = min(batch, n - start)
        gi = rng.choice(len(grids), size=m, p=w)
        ci = rng.choice(len(cats), size=m, p=cw)
        si = rng.choice(len(srcs), size=m, p=[0.45, 0.15, 0.25, 0.08, 0.02, 0.05])
        age_s = rng.uniform(0, 365 * 86400, m)
        r = rng.random(m)
        oi = rng.integers(0, len(OPEN), m)
        due_off = rng.uniform(-3 * 86400, 5 * 86400, m)
        urg = rng.choice(["normal", "urgent", "critical"], size=m, p=[0.94, 0.05, 0.01])
        close_s = rng.uniform(3600, 10 * 86400, m)
        rows: list[tuple[Any, ...]] = []
        for i in range(m):
            c, g = cats[ci[i]], grids[gi[i]]
            rep = now - dt.timedelta(seconds=float(age_s[i]))
            recent = age_s[i] < 30 * 86400
            if r[i] < (0.55 if recent else 0.03):
                state = OPEN[oi[i]]
            elif r[i] < (0.58 if recent else 0.05):
                state = "voided"
            elif r[i] < (0.62 if recent else 0.08):
                state = "not_registered"
            elif r[i] > (0.8 if recent else 0.5):
                state = "evaluated"
            else:
                state = "closed"
            is_open = state in OPEN
            has_due = is_open and state != "suspended"
            due = max(rep + dt.timedelta(minutes=30), now + dt.timedelta(seconds=float(due_off[i]))) if has_due else None
            yellow = due - dt.timedelta(hours=2) if due else None
            closed = min(now, rep + dt.timedelta(seconds=float(close_s[i]))) if state in ("closed", "evaluated") else None
            disp = state in DISPATCHED
            lead = (c.default_department_code or f"jz{g[2]}") if disp else None
            rows.append((srcs[si[i]], chans[si[i]], c.id, c.code, c.kind, c.name_zh, g[3], g[4], g[0], g[1], g[2],
                         "{}" if pg else {}, str(urg[i]), state, 1, lead, False, rep, rep if disp else None, closed,
                         SLA_STEP.get(state) if is_open else None, due, yellow, int(bool(due and due <= now)),
                         0, 0, 0, 0, 0, "bench", closed or rep, 1))
        _insert(url, Case.__table__, cols, rows)
        log(f"  cases: {start + m:,} / {n:,} ({time.perf_counter() - t0:.0f} s)")
    # who handles them: the lead department of every dispatched or finished case (department accounts' scope)
    from sqlalchemy import text

    from cityops.db import make_engine

    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO case_department (case_id, department_code, role, assigned_at, assigned_by, "
                       "case_reported_at) "
                          "SELECT id, lead_department_code, 'lead', reported_at, 'bench', reported_at FROM case_file "
                          "WHERE lead_department_code IS NOT NULL"))
    eng.dispose()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- timing


class Capture:
    """The SELECTs an engine runs while ``on`` (to EXPLAIN the real statements)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.seen: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if self.on and statement.lstrip().upper().startswith("SELECT") and "registry_person" in statement:
            self.seen.append((statement, parameters))


def explain(engine: Any, statement: str, parameters: Any) -> str:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return " | ".join(str(r[-1]) for r in cur.fetchall())
        cur.execute("EXPLAIN " + statement, parameters)
        lines = [str(r[0]).strip() for r in cur.fetchall()]
        return " | ".join(ln.split("  (cost")[0] for ln in lines if not ln.startswith(("Filter", "Index Cond",
                                                                                           "Recheck", "Sort Key")))
    finally:
        raw.close()


def time_calls(label: str, fn: Callable[[int], Any], repeat: int, warm: int = 3) -> list[float]:
    out: list[float] = []
    for rep in range(repeat + warm):
        t0 = time.perf_counter()
        fn(rep)
        if rep >= warm:
            out.append(time.perf_counter() - t0)
    log(f"    {label}: p50 {_pct(out, 50)} ms  p95 {_pct(out, 95)} ms")
    return out


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if backend == "sqlite":
        path = (Path(args.dir) if args.dir else tmp) / "scoped.db"
        url = f"sqlite:///{path}"
        fresh = not path.exists()
    else:
        url, fresh = _pg_database(args.pg_url, args.pg_db, create=True, reuse=args.keep_pg)
    if fresh:
        log(f"[{backend}] setting up (schema, full demo district, reference data)")
        _setup(url)
        grids, w = _grids()
        res["build_persons_s"] = round(build_persons(url, grids, w, args.rows, args.seed), 1)
        res["build_cases_s"] = round(build_cases(url, grids, w, args.cases, args.seed + 1), 1) if args.cases else 0
        _analyze(url, args.sqlite_analyze)
    use_database(url)

    from sqlalchemy import func, select

    from cityops.cases import queries as cq
    from cityops.cases.models import Case
    from cityops.db import get_engine, get_sessionmaker
    from cityops.registry import service as registry
    from cityops.registry.models import Person
    from cityops.security.principal import SYSTEM, Principal

    maker = get_sessionmaker()
    perms = frozenset({"person.read", "registry.read", "case.read"})
    with maker() as s:
        community = s.scalar(select(Person.community_code).where(Person.street_code == STREET).limit(1))
        res["persons_current"] = int(s.scalar(select(func.count()).select_from(Person)
                                              .where(Person.valid_to.is_(None))) or 0)
        res["persons_versions"] = int(s.scalar(select(func.count()).select_from(Person)) or 0)
        res["cases"] = int(s.scalar(select(func.count()).select_from(Case)) or 0)
    street_op = Principal(username="bench_street", area_code=STREET, permissions=perms,
                          roles=frozenset({"street_operator"}))
    comm_op = Principal(username="bench_community", area_code=community, permissions=perms,
                        roles=frozenset({"community_worker"}))
    who = {"scoped": street_op, "community": comm_op, "unscoped": SYSTEM}

    def listing(p: Principal, **filters: Any) -> Callable[[int], Any]:
        def call(rep: int) -> Any:
            with maker() as s:
                return registry.list_records(s, p, "persons", page=rep % 5 + 1, page_size=PAGE, **filters)
        return call

    def counting(p: Principal) -> Callable[[int], Any]:
        def call(_rep: int) -> Any:
            with maker() as s:
                out = registry.counts(s, p)
                s.rollback()
                return out
        return call

    if backend == "pg":
        with get_engine().connect() as conn:
            res["all_visible_pct"] = {t: _all_visible(conn, t) for t in ("registry_person", "case_file")}
    log(f"[{backend}] registry: {res['persons_current']:,} current persons ({res['persons_versions']:,} versions)")
    timings: dict[str, list[float]] = {}
    totals: dict[str, int] = {}
    for name, p in who.items():
        got = listing(p)(0)
        totals[name] = int(got["total"])
        assert len(got["items"]) == PAGE
        if name == "scoped":
            assert all(i["street_code"] == STREET for i in got["items"])
        timings[f"{name}_list"] = time_calls(f"{name} list request", listing(p), args.repeat)
        timings[f"{name}_count"] = time_calls(f"{name} counts()", counting(p), args.repeat)
        if name != "community":
            timings[f"{name}_kind"] = time_calls(f"{name} list request, kind=registered",
                                                 listing(p, kind_filter="registered"), args.repeat // 2)
    # same rows as the prefix range on grid_code (what area_clause selects)
    with maker() as s:
        expect = s.scalar(select(func.count()).select_from(Person).where(
            Person.valid_to.is_(None), Person.grid_code >= STREET, Person.grid_code < STREET + ":"))
    assert totals["scoped"] == expect, (totals, expect)
    for name in who:
        res[f"{name}_total"] = totals[name]
        res[f"{name}_p50_ms"] = _pct(timings[f"{name}_list"], 50)
        res[f"{name}_p95_ms"] = _pct(timings[f"{name}_list"], 95)
        res[f"{name}_count_p50_ms"] = _pct(timings[f"{name}_count"], 50)
        res[f"{name}_count_p95_ms"] = _pct(timings[f"{name}_count"], 95)
        if f"{name}_kind" in timings:
            res[f"{name}_kind_registered_p50_ms"] = _pct(timings[f"{name}_kind"], 50)
            res[f"{name}_kind_registered_p95_ms"] = _pct(timings[f"{name}_kind"], 95)
    res["scoping_cost_pct_p95"] = round(100.0 * (res["scoped_p95_ms"] / res["unscoped_p95_ms"] - 1.0), 1)

    # the plans of what list_records ran for the street operator
    engine = get_engine()
    cap = Capture(engine)
    cap.on = True
    listing(street_op)(1)
    cap.on = False
    plans = {}
    for stmt, params in cap.seen:
        key = "count" if "count(" in stmt.lower() else "page"
        plans.setdefault(key, explain(engine, stmt, params))
    res["plans"] = plans

    if res["cases"]:
        res.update(time_cases(args, maker, cq, street_op, community))
    engine.dispose()
    return res


def time_cases(args: argparse.Namespace, maker: Any, cq: Any, street_op: Any, community: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from cityops.cases import reference as ref
    from cityops.cases.models import Case
    from cityops.security.principal import SYSTEM, Principal

    with maker() as s:
        hot = [c.code for c in ref.catalogue(s).by_id.values() if c.name_zh in HOT]
        street_cases = int(s.scalar(select(func.count()).select_from(Case).where(Case.street_code == STREET)) or 0)
    rng = np.random.default_rng(args.seed)
    states = ["dispatched", "acknowledged", "registered", "reported", "handled"]
    F = cq.CaseFilter
    with maker() as s:  # the department handling the most cases, as a district-wide department account
        dept_code = s.execute(select(Case.lead_department_code, func.count()).where(
            Case.lead_department_code.is_not(None)).group_by(Case.lead_department_code)
            .order_by(func.count().desc()).limit(1)).scalar() or "cgzf"
    dept = Principal(username="bench_dept", area_code="310117", department_code=dept_code,
                     permissions=frozenset({"case.read"}), roles=frozenset({"dept_handler"}))
    templates: dict[str, tuple[Any, Callable[[], Any]]] = {
        "district:all": (SYSTEM, lambda: F()),
        "district:area=street": (SYSTEM, lambda: F(area=STREET)),
        "district:area=community": (SYSTEM, lambda: F(area=community)),
        "district:state": (SYSTEM, lambda: F(state=[str(rng.choice(states))])),
        "district:category": (SYSTEM, lambda: F(category=[str(rng.choice(hot))])),
        "district:overdue": (SYSTEM, lambda: F(overdue=True)),
        "district:area+state": (SYSTEM, lambda: F(area=STREET, state=[str(rng.choice(states))])),
        "district:area+overdue": (SYSTEM, lambda: F(area=STREET, overdue=True)),
        "district:area+category": (SYSTEM, lambda: F(area=STREET, category=[str(rng.choice(hot))])),
        "district:category+state": (SYSTEM, lambda: F(category=[str(rng.choice(hot))],
                                                      state=[str(rng.choice(states))])),
        "street:all": (street_op, lambda: F()),
        "street:state": (street_op, lambda: F(state=[str(rng.choice(states))])),
        "street:open": (street_op, lambda: F(open=True)),
        "street:category": (street_op, lambda: F(category=[str(rng.choice(hot))])),
        "street:overdue": (street_op, lambda: F(overdue=True)),
        "street:sla=yellow": (street_op, lambda: F(sla="yellow")),
        "street:state+category": (street_op, lambda: F(state=[str(rng.choice(states))],
                                                       category=[str(rng.choice(hot))])),
        "street:urgency=critical": (street_op, lambda: F(urgency=["critical"])),
        "dept:all": (dept, lambda: F()),
        "dept:open": (dept, lambda: F(open=True)),
        "dept:overdue": (dept, lambda: F(overdue=True)),
        "dept:state": (dept, lambda: F(state=[str(rng.choice(["dispatched", "acknowledged", "handled"]))])),
        # the peer: the same department lists through the scope's ``case_file.id IN (...)`` form
        # (what every department list ran before the walk through ``case_department``'s index)
        "dept_in:all": (dept, lambda: F()),
        "dept_in:open": (dept, lambda: F(open=True)),
        "dept_in:overdue": (dept, lambda: F(overdue=True)),
    }
    out: dict[str, Any] = {"cases_street_rows": street_cases}
    every: list[float] = []
    per: dict[str, float] = {}
    totals: dict[str, int] = {}
    log(f"[cases] {street_cases:,} cases in {STREET}")
    for name, (p, make) in templates.items():
        def call(_rep: int, p: Any = p, make: Callable[[], Any] = make, name: str = name) -> Any:
            with maker() as s, contextlib.ExitStack() as stack:
                if name.startswith("dept_in:"):
                    stack.enter_context(mock.patch.object(cq, "_driving_department", lambda *_a: None))
                got = cq.list_cases(s, p, make(), page=1, page_size=PAGE)
                s.rollback()
                totals[name] = int(got["total"])
                return got
        xs = time_calls(f"list_cases {name}", call, args.case_repeat)
        every += xs
        per[name] = _pct(xs, 95)
    out["cases_list_p50_ms"] = _pct(every, 50)
    out["cases_list_p95_ms"] = _pct(every, 95)
    out["cases_list_by_filter_p95_ms"] = per
    out["cases_list_last_total"] = totals
    out["cases_scoped_p95_ms"] = per["street:all"]
    out["cases_dept_p95_ms"] = max(per[k] for k in per if k.startswith("dept:"))
    out["cases_dept_in_p95_ms"] = max(per[k] for k in per if k.startswith("dept_in:"))
    for k in ("all", "open"):  # the two forms are the same rows
        if totals[f"dept:{k}"] != totals[f"dept_in:{k}"]:
            raise SystemExit(f"dept:{k} total {totals[f'dept:{k}']} != dept_in:{k} total {totals[f'dept_in:{k}']}")
    out["cases_unscoped_p95_ms"] = per["district:all"]
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scoped_list")
    ap.add_argument("--rows", type=int, default=1_000_000, help="current persons")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=60, help="timed registry requests per principal")
    ap.add_argument("--case-repeat", type=int, default=20, help="timed case lists per filter template")
    ap.add_argument("--backends", default="sqlite", help="sqlite, pg or sqlite,pg")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--pg-db", default=PG_DB, help="name of the (throwaway) PostgreSQL database")
    ap.add_argument("--dir", default=None, help="keep / reuse the SQLite database in this folder")
    ap.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL database at the end and reuse a "
                    "kept one")
    ap.add_argument("--sqlite-analyze", action="store_true", help="run ANALYZE on SQLite after the build")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    res: dict[str, Any] = {"benchmark": "scoped_list", "rows": args.rows, "street": STREET, "page_size": PAGE,
                           "repeat": args.repeat, "case_repeat": args.case_repeat}
    with tempfile.TemporaryDirectory(prefix="cityops-bench-scoped-") as tmp:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            got = run_backend(backend, args, Path(tmp))
            prefix = "" if backend == "sqlite" else "pg_"
            res.update({f"{prefix}{k}": v for k, v in got.items()})
            if backend == "pg" and not args.keep_pg:
                _pg_database(args.pg_url, args.pg_db, create=False)
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(res)
    return 0
