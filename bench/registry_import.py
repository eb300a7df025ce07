"""``python -m bench registry_import``: import 50,000 persons through the service (CSV and XLSX).

On a fresh database holding the full demo district (grid base + demo base data: ~20,000
households), it times ``cityops.registry.service.import_file`` for:

* ``csv_create``: a CSV of N new persons (each in an existing household) -> N created;
* ``csv_unchanged``: the same file again -> N unchanged, nothing written;
* ``csv_update_10pct``: the file with 10 % of the phone numbers changed -> N/10 new versions;
* ``xlsx_create``: an XLSX of N other new persons -> N created.

Runs on SQLite and, when a PostgreSQL server is given (``--pg URL`` or
``CITYOPS_TEST_DATABASE_URL``) and reachable, on PostgreSQL too. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import tempfile
import time
import uuid
from typing import Any

from bench.common import emit, peak_rss_mb


def _persons(n: int, households: list[str], offset: int) -> list[list[str]]:
    from cityops.registry.codes import make_id_number

    rows = []
    start = dt.date(1950, 1, 1)
    for i in range(n):
        k = i + offset
        born = start + dt.timedelta(days=k // 500)
        rows.append([make_id_number("110101", born, (k % 500) * 2 + (k % 2)), f"测试{k % 997}号",
                     f"139{k:08d}"[-11:], households[k % len(households)], "否"])
    return rows


HEADER = ["身份证号", "姓名", "手机号", "户号", "户籍"]


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _xlsx(rows: list[list[str]]) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _database(backend: str, pg_url: str | None, tmp: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/registry-bench.db"

    assert pg_url
    from cityops.db import create_postgis_database

    return create_postgis_database(pg_url, f"bench_registry_{uuid.uuid4().hex[:8]}")


def _drop(url: str, pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    from cityops.db import drop_database

    drop_database(pg_url, str(make_url(url).database))


def run(backend: str, n: int, pg_url: str | None, tmp: str) -> dict[str, Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from cityops.db import make_engine
    from cityops.demo.seed import seed_demo
    from cityops.models import load_all
    from cityops.registry import service
    from cityops.registry.models import Household
    from cityops.security.principal import SYSTEM

    url = _database(backend, pg_url, tmp)
    engine = make_engine(url)
    out: dict[str, Any] = {}
    try:
        load_all().metadata.create_all(engine)
        t0 = time.perf_counter()
        with Session(engine) as s:
            seed_demo(s, small=False)
        out["seed_full_demo_s"] = round(time.perf_counter() - t0, 2)
        with Session(engine) as s:
            households = list(s.scalars(select(Household.code).where(Household.valid_to.is_(None))
                                        .order_by(Household.code)))
        rows = _persons(n, households, 0)
        steps = [("csv_create", "p.csv", _csv(rows), (n, 0, 0)),
                 ("csv_unchanged", "p.csv", _csv(rows), (0, 0, n))]
        changed = [r[:] for r in rows]
        for r in changed[::10]:
            r[2] = "138" + r[2][3:]
        steps.append(("csv_update_10pct", "p.csv", _csv(changed), (0, len(changed[::10]), n - len(changed[::10]))))
        steps.append(("xlsx_create", "p.xlsx", _xlsx(_persons(n, households, n)), (n, 0, 0)))
        now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        for i, (name, fname, data, expect) in enumerate(steps):
            with Session(engine) as s:
                t = time.perf_counter()
                rep = service.import_file(s, SYSTEM, "persons", fname, data, now=now + dt.timedelta(minutes=i))
                secs = time.perf_counter() - t
            got = (rep["created"], rep["updated"], rep["unchanged"])
            if got != expect:
                raise RuntimeError(f"{backend} {name}: expected {expect}, got {got}")
            out[f"{name}_s"] = round(secs, 2)
            out[f"{name}_rows_per_s"] = round(n / secs)
            print(f"{backend:10s} {name:18s} {secs:6.2f} s  {n / secs:9.0f} rows/s  {got}", flush=True)
    finally:
        engine.dispose()
        if backend == "postgresql" and pg_url:
            _drop(url, pg_url)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench registry_import")
    ap.add_argument("--persons", type=int, default=50_000)
    ap.add_argument("--pg", default=os.environ.get("CITYOPS_TEST_DATABASE_URL"),
                    help="PostgreSQL+PostGIS server URL (a scratch database is created and dropped)")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"benchmark": "registry_import", "persons": args.persons}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = run("sqlite", args.persons, None, tmp)
        if args.pg:
            try:
                result["postgresql"] = run("postgresql", args.persons, args.pg, tmp)
            except Exception as exc:  # server missing or unreachable: say so, keep the SQLite figures
                if "connect" not in str(exc).lower() and "connection" not in str(exc).lower():
                    raise
                result["postgresql"] = None
                result["postgresql_note"] = f"PostgreSQL not reachable: {type(exc).__name__}"
        else:
            result["postgresql"] = None
            result["postgresql_note"] = "no PostgreSQL URL given (--pg or CITYOPS_TEST_DATABASE_URL)"
    result["csv_create_rows_per_s"] = result["sqlite"]["csv_create_rows_per_s"]
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(result)
    return 0
