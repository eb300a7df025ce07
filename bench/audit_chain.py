"""The audit step on every write path, keyed vs. unkeyed, side by side in one process (issue 17).

Per backend a fresh database (schema from the models) gets audit rows appended the way the write
paths append them — ``audit.record`` (one row) and ``audit.record_many`` (a batch of 32, as the
group-commit writer does) in their own committed transaction — alternately in two modes (who goes first
alternates too), round after round so that the machine's noise falls on both alike:

* ``unkeyed``: the chain before issue 17 (plain SHA-256; SQLite: the UPDATE / DELETE triggers only);
* ``keyed``: this code (HMAC-SHA256 with the key outside the database; SQLite: also the BEFORE
  INSERT trigger that refuses ``INSERT OR REPLACE``; PostgreSQL: also the TRUNCATE trigger).

    python -m bench audit_chain [--backends sqlite,pg] [--rounds 6] [--n 400] [--pg-url URL] [--pg-db NAME]

Last line: JSON with per backend and mode the microseconds per committed single append and per row
of a 32-row append (medians over rounds), and the keyed / unkeyed ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, use_database

DEFAULT_PG = "postgresql+psycopg://cityops@127.0.0.1:54329/cityops"


def _mode(keyed: bool) -> None:
    from cityops.db import get_engine
    from cityops.security import audit
    from cityops.security.models import install_audit_guard

    audit.row_hash = _KEYED if keyed else _legacy  # type: ignore[assignment]
    with get_engine().begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_replace")
            if keyed:
                install_audit_guard(conn)
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
            if keyed:
                install_audit_guard(conn)


def _legacy(prev_hash: str, *args: Any, key: bytes | None = None) -> str:
    from cityops.security import audit

    return audit.legacy_row_hash(prev_hash, *args)


def _timed(n: int, batch: int) -> tuple[float, float]:
    """Microseconds per row (wall, and this process's CPU — SQLite's own work included, not the
    PostgreSQL server's) of ``n`` rows appended in committed steps of ``batch`` rows."""
    from cityops.db import session_scope
    from cityops.security import audit
    from cityops.security.principal import Principal

    p = Principal(username="bench_writer", roles=frozenset({"dispatcher"}), account_id=7, source_ip="10.0.0.9")
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        with session_scope() as s:
            audit.record_many(s, [audit.Entry(p, "case.create", "case", i + j, detail={"i": i + j, "城": "松江"})
                                  for j in range(batch)])
    return (time.perf_counter() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from cityops.db import create_postgis_database, drop_database, make_engine
    from cityops.models import load_all

    url = (f"sqlite:///{tmp / 'bench-audit.db'}" if backend == "sqlite"
           else create_postgis_database(args.pg_url, args.pg_db, replace=True))
    engine = make_engine(url)
    load_all().metadata.create_all(engine)
    engine.dispose()
    use_database(url)
    names = ("single_us", "single_cpu_us", "batch32_us_per_row", "batch32_cpu_us_per_row")
    res: dict[str, dict[str, list[float]]] = {m: {k: [] for k in names} for m in ("unkeyed", "keyed")}
    try:
        for r in range(args.rounds):
            for mode in (("unkeyed", "keyed") if r % 2 == 0 else ("keyed", "unkeyed")):  # alternate who goes first
                _mode(mode == "keyed")
                for label, batch, n in (("single", 1, args.n), ("batch32", 32, args.n * 8)):
                    wall, cpu = _timed(n, batch)
                    suffix = "" if batch == 1 else "_per_row"
                    res[mode][f"{label}_us{suffix}"].append(wall)
                    res[mode][f"{label}_cpu_us{suffix}"].append(cpu)
        from cityops.db import session_scope
        from cityops.security import anchors

        _mode(True)
        with session_scope() as s:
            t0 = time.perf_counter()
            anchors.write_anchor(s)
            anchor_ms = (time.perf_counter() - t0) * 1000
            rows = anchors.audit.count(s)
    finally:
        from cityops.db import reset_engine

        reset_engine()
        if backend == "pg":
            drop_database(args.pg_url, args.pg_db)
    out: dict[str, Any] = {"rows_written": rows, "anchor_ms": round(anchor_ms, 2)}
    for mode, figs in res.items():
        for k, v in figs.items():
            out[f"{mode}_{k}"] = round(statistics.median(v), 1)
    for k in names:
        out[f"keyed_vs_unkeyed_{k}"] = round(out[f"keyed_{k}"] / out[f"unkeyed_{k}"], 3)
    print(f"[{backend}] {out}", file=sys.stderr, flush=True)
    return out


_KEYED: Any = None


def main(argv: list[str]) -> int:
    global _KEYED
    ap = argparse.ArgumentParser(prog="python -m bench audit_chain")
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--n", type=int, default=400, help="single appends per round and mode (x8 rows batched)")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--pg-db", default="cityops_bench_audit")
    args = ap.parse_args(argv)
    from cityops.security import audit

    _KEYED = audit.row_hash
    result: dict[str, Any] = {"benchmark": "audit_chain", "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="cityops-bench-audit-") as d:
        for backend in args.backends.split(","):
            result[backend] = run_backend(backend.strip(), args, Path(d))
    emit(result)
    return 0
