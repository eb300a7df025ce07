"""Benchmark: the cost of area scoping on a list page and a count (issue 3).

Builds a SQLite database with N base-data persons (``registry_person``, default 1,000,000)
spread over the 17 streets/towns of 松江区 with realistic weights, then times, side by side in
the same run, the statements the registry service issues (``cityops.registry.service.query``):

* scoped page: a 岳阳街道 street operator's first page (50 rows, ordered by record id), and
  scoped count (the list's total);
* unscoped page / count: the same statements for the system principal (no area clause).

Usage: ``python -m bench scoped_list [--rows N] [--repeat R] [--db PATH]``.
Last line: JSON with scoped_p95_ms and unscoped_p95_ms (page and count separately too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, peak_rss_mb

STREET = "310117001"  # 岳阳街道
PAGE = 50
# the indexes this benchmark recommends for every located table with versions:
# (street_code, entity_id), (community_code, entity_id), (grid_code, entity_id) and (entity_id),
# each partial on the current version (valid_to IS NULL)
INDEX_PREFIX = "ix_bench_person_current_"


def _build(url: str, rows: int, seed: int) -> float:
    from sqlalchemy import insert

    from cityops.db import make_engine
    from cityops.geo.demo import STREETS
    from cityops.registry.models import Person

    engine = make_engine(url)
    Person.__table__.create(engine)
    rng = np.random.default_rng(seed)
    weights = np.array([n * d for _c, _n, _k, _ll, n, d in STREETS], dtype=float)
    weights /= weights.sum()
    streets = np.array([c for c, *_ in STREETS])
    t0 = time.perf_counter()
    valid_from = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    batch = 50_000
    with engine.begin() as conn:
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            st = rng.choice(streets, size=n, p=weights)
            comm = rng.integers(1, 27, size=n)
            grid = rng.integers(1, 14, size=n)
            ages = rng.integers(0, 95, size=n)
            recs: list[dict[str, Any]] = []
            for i in range(n):
                pid = start + i + 1
                cc = f"{st[i]}{comm[i]:03d}"
                recs.append({"id": pid, "entity_id": pid, "valid_from": valid_from, "valid_to": None,
                             "source": "bench", "synthetic": True, "grid_code": f"{cc}{grid[i]:03d}",
                             "community_code": cc, "street_code": str(st[i]),
                             "id_number": f"310117{1930 + int(ages[i]) % 90:04d}{pid:08d}",
                             "name": "测试人", "gender": "male" if pid % 2 else "female",
                             "birth_date": dt.date(1930 + int(ages[i]) % 90, 1, 1), "phone": None,
                             "household_code": None, "relation": None, "address": None, "registered": True,
                             "resident": True})
            conn.execute(insert(Person.__table__), recs)
        for level in ("street", "community", "grid"):
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {INDEX_PREFIX}{level} ON registry_person "
                                 f"({level}_code, entity_id) WHERE valid_to IS NULL")
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {INDEX_PREFIX}all ON registry_person (entity_id) "
                             "WHERE valid_to IS NULL")
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - t0


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) * 1000.0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scoped_list")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--db", type=str, default=None, help="reuse/keep this SQLite file")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="cityops-bench-")
    path = Path(args.db) if args.db else Path(tmp.name) / "scoped.db"
    url = f"sqlite:///{path}"
    build_s = 0.0
    if not path.exists():
        build_s = _build(url, args.rows, args.seed)
        print(f"built {args.rows:,} persons in {build_s:.1f} s", flush=True)
    os.environ["CITYOPS_DATABASE_URL"] = url

    from sqlalchemy import func, select

    from cityops.db import make_engine
    from cityops.registry import service as registry
    from cityops.registry.models import Person
    from cityops.security.principal import SYSTEM, Principal

    engine = make_engine(url)
    street_op = Principal(username="bench_yy", area_code=STREET, permissions=frozenset({"person.read"}),
                          roles=frozenset({"street_operator"}))
    from sqlalchemy.orm import Session

    from cityops.security.principal import located_clause

    def as_is(principal: Principal) -> Any:  # the registry's statement today (prefix range on grid_code)
        return registry.query(session, principal, "persons")

    def level_eq(principal: Principal) -> Any:  # equality on the level's code column (indexed)
        return select(Person).where(Person.valid_to.is_(None),
                                    located_clause(principal, Person.street_code, Person.community_code,
                                                   Person.grid_code))

    variants = {"": level_eq, "registry_as_is_": as_is}
    timings: dict[str, list[float]] = {f"{v}{k}": [] for v in variants for k in (
        "scoped_page", "scoped_count", "unscoped_page", "unscoped_count")}
    sizes: dict[str, int] = {}
    plans: dict[str, str] = {}
    with Session(engine) as session:
        session.connection().info["write"] = False  # read transactions (plain BEGIN on SQLite)
        total = session.scalar(select(func.count()).select_from(Person)) or 0
        cases = {"scoped": street_op, "unscoped": SYSTEM}
        for rep in range(args.repeat + 5):
            for vname, build in variants.items():
                for name, principal in cases.items():
                    stmt = build(principal)
                    page = (rep % 5) + 1
                    t0 = time.perf_counter()
                    rows = session.scalars(stmt.order_by(Person.entity_id, Person.id)
                                           .offset((page - 1) * PAGE).limit(PAGE)).all()
                    t1 = time.perf_counter()
                    n = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
                    t2 = time.perf_counter()
                    if name == "scoped":
                        assert all(r.grid_code.startswith(STREET) for r in rows)
                    if rep >= 5:  # warm-up excluded
                        timings[f"{vname}{name}_page"].append(t1 - t0)
                        timings[f"{vname}{name}_count"].append(t2 - t1)
                    sizes[f"{vname}{name}"] = int(n or 0)
        assert sizes["scoped"] == sizes["registry_as_is_scoped"], sizes
        for vname, build in variants.items():
            scoped = build(street_op)
            for label, stmt in (("page", scoped.order_by(Person.entity_id, Person.id).limit(PAGE)),
                                ("count", select(func.count()).select_from(scoped.order_by(None).subquery()))):
                sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
                plans[f"{vname}{label}"] = " | ".join(r[-1] for r in session.connection().exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + sql).all())
    engine.dispose()
    res: dict[str, Any] = {"benchmark": "scoped_list", "backend": "sqlite", "rows": int(total),
                           "street": STREET, "street_rows": sizes.get("scoped"),
                           "method": "scoped/unscoped_*: equality on the level's code column with partial indexes "
                                     "(level_code, entity_id); registry_as_is_*: the registry's current statement", "page_size": PAGE,
                           "repeat": args.repeat, "build_s": round(build_s, 1), "plans": plans}
    for k, xs in timings.items():
        res[f"{k}_p50_ms"] = round(_pct(xs, 50), 2)
        res[f"{k}_p95_ms"] = round(_pct(xs, 95), 2)
    # one "list request" = page + count (what GET /registry/persons runs)
    for v in variants:
        both_s = [a + b for a, b in zip(timings[f"{v}scoped_page"], timings[f"{v}scoped_count"], strict=True)]
        both_u = [a + b for a, b in zip(timings[f"{v}unscoped_page"], timings[f"{v}unscoped_count"], strict=True)]
        res[f"{v}scoped_p50_ms"] = round(_pct(both_s, 50), 2)
        res[f"{v}scoped_p95_ms"] = round(_pct(both_s, 95), 2)
        res[f"{v}unscoped_p50_ms"] = round(_pct(both_u, 50), 2)
        res[f"{v}unscoped_p95_ms"] = round(_pct(both_u, 95), 2)
        res[f"{v}scoping_cost_pct_p95"] = round(100.0 * (res[f"{v}scoped_p95_ms"] / res[f"{v}unscoped_p95_ms"] - 1.0), 1)
        res[f"{v}mean_ratio"] = round(statistics.mean(both_s) / statistics.mean(both_u), 3)
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    tmp.cleanup()
    emit(res)
    return 0
