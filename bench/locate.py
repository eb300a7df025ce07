"""Point -> unit grid lookup: 1,000,000 random points in the district's bounding box against the
full demo's ~3,000 unit grids.

Side by side in the same run:

* cityops: ``cityops.geo.service.grid_indices_for`` (the project's batch function: raster index
  + exact test in boundary cells) on one core, best of ``--repeat`` runs after the index is built;
* shapely: a plain vectorized ``STRtree.query(points, predicate="intersects")``;
* PostGIS: the same points and polygons in tables with GiST indexes, the faster of the
  point-outer (LATERAL, min code per point) and polygon-outer (LATERAL per polygon, then the min
  code per point) forms, serial and with the server's parallel workers (the best is reported).

Exactness: 100 % agreement required with a plain shapely point-in-polygon loop (per polygon,
``intersects_xy`` on the points in its bounding box, no tree, no raster) on a sample of random
points plus every polygon vertex (points exactly on shared boundaries, where the boundary rule
decides: smallest code among the closed polygons covering the point), and with PostGIS's and
STRtree's answers on all points (same rule applied).

    python -m bench locate [--points N] [--sample N] [--repeat N] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
import shapely

from bench.common import emit, machine, peak_rss_mb

DEFAULT_PG = "postgresql+psycopg://cityops@127.0.0.1:54329/cityops"
BENCH_DB = "cityops_bench_locate"
SEED = 20210220


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plain_pip(geoms: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Reference answers: for every polygon (in code order), ``intersects_xy`` on the points inside
    its bounding box; the first (smallest code) polygon covering a point wins."""
    out = np.full(len(lon), -1, dtype=np.int64)
    bounds = shapely.bounds(geoms)
    for j, g in enumerate(geoms):
        minx, miny, maxx, maxy = bounds[j]
        cand = np.flatnonzero((lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy) & (out < 0))
        if len(cand):
            hit = shapely.intersects_xy(g, lon[cand], lat[cand])
            out[cand[hit]] = j
    return out


def strtree_locate(tree: shapely.STRtree, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    pi, gi = tree.query(shapely.points(lon, lat), predicate="intersects")
    out = np.full(len(lon), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(out, pi, gi)
    out[out == np.iinfo(np.int64).max] = -1
    return out


def seed_database(url: str) -> tuple[Any, float, float]:
    """A throwaway SQLite database with the full demo district's grid base."""
    from cityops.db import make_engine
    from cityops.geo import demo
    from cityops.geo.seed import seed_geo
    from cityops.models import load_all

    engine = make_engine(url)
    load_all().metadata.create_all(engine)
    from sqlalchemy.orm import Session

    t0 = time.perf_counter()
    district = demo.generate()
    gen_s = time.perf_counter() - t0
    with Session(engine) as s:
        t0 = time.perf_counter()
        seed_geo(s, district)
        s.commit()
        seed_s = time.perf_counter() - t0
    return engine, gen_s, seed_s


def postgis(pg_url: str, codes: np.ndarray, geoms: np.ndarray, lon: np.ndarray, lat: np.ndarray,
            vx: np.ndarray, vy: np.ndarray) -> dict[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(pg_url)
    conninfo = dict(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
                    dbname=u.database)
    from cityops.db import create_postgis_database, drop_database

    create_postgis_database(pg_url, BENCH_DB, replace=True)
    conninfo["dbname"] = BENCH_DB
    res: dict[str, Any] = {}
    try:
        with psycopg.connect(**{k: v for k, v in conninfo.items() if v is not None}, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            res["version"] = " ".join(conn.execute("SELECT split_part(version(), ' ', 2), postgis_lib_version()").fetchone())
            conn.execute("CREATE TABLE grids (idx integer PRIMARY KEY, code text NOT NULL, geom geometry(Polygon, 4326))")
            conn.execute("CREATE TABLE points (id integer PRIMARY KEY, geom geometry(Point, 4326))")
            conn.execute("CREATE TABLE vpoints (id integer PRIMARY KEY, geom geometry(Point, 4326))")
            t0 = time.perf_counter()
            with conn.cursor().copy("COPY grids (idx, code, geom) FROM STDIN") as cp:
                for i, (c, g) in enumerate(zip(codes, shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True,
                                                                      include_srid=True), strict=True)):
                    cp.write_row((i, str(c), g))
            for table, x, y in (("points", lon, lat), ("vpoints", vx, vy)):
                wkb = shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4326), hex=True, include_srid=True)
                with conn.cursor().copy(f"COPY {table} (id, geom) FROM STDIN") as cp:
                    for i, w in enumerate(wkb):
                        cp.write_row((i, w))
            conn.execute("CREATE INDEX ON grids USING gist (geom)")
            conn.execute("CREATE INDEX ON points USING gist (geom)")
            conn.execute("CREATE INDEX ON vpoints USING gist (geom)")
            conn.execute("VACUUM ANALYZE grids")
            conn.execute("VACUUM ANALYZE points")
            conn.execute("VACUUM ANALYZE vpoints")
            res["load_s"] = round(time.perf_counter() - t0, 2)
            forms = {
                # for each point, the smallest-code grid covering it (planner: index scan on grids per point)
                "point_outer": "SELECT p.id, x.idx FROM {pts} p CROSS JOIN LATERAL "
                               "(SELECT min(g.idx) AS idx FROM grids g WHERE ST_Intersects(g.geom, p.geom)) x",
                # for each polygon, the points inside it (prepared polygon reused), then min per point
                "polygon_outer": "SELECT x.id, min(g.idx) AS idx FROM grids g CROSS JOIN LATERAL "
                                 "(SELECT p.id FROM {pts} p WHERE ST_Intersects(g.geom, p.geom)) x GROUP BY x.id",
            }
            timings: dict[str, float] = {}
            answers: dict[str, np.ndarray] = {}
            for form, sql in forms.items():
                for mode, workers in (("serial", 0), ("parallel", 2)):
                    conn.execute(f"SET max_parallel_workers_per_gather = {workers}")
                    conn.execute("DROP TABLE IF EXISTS ans")
                    t0 = time.perf_counter()
                    conn.execute("CREATE TEMP TABLE ans AS " + sql.format(pts="points"))
                    dt = time.perf_counter() - t0
                    timings[f"{form}_{mode}"] = dt
                    log(f"  PostGIS {form} {mode}: {dt:.2f} s = {len(lon) / dt:,.0f} points/s")
                    if mode == "serial":
                        rows = conn.execute("SELECT id, idx FROM ans WHERE idx IS NOT NULL").fetchall()
                        a = np.full(len(lon), -1, dtype=np.int64)
                        if rows:
                            arr = np.asarray(rows, dtype=np.int64)
                            a[arr[:, 0]] = arr[:, 1]
                        answers[form] = a
            conn.execute("SET max_parallel_workers_per_gather = 0")
            rows = conn.execute(forms["point_outer"].format(pts="vpoints")).fetchall()
            va = np.full(len(vx), -1, dtype=np.int64)
            for i, idx in rows:
                if idx is not None:
                    va[i] = idx
            best = min(timings, key=lambda k: timings[k])
            res.update(timings_s={k: round(v, 3) for k, v in timings.items()}, best_form=best,
                       points_per_s=len(lon) / timings[best],
                       points_per_s_by_form={k: round(len(lon) / v) for k, v in timings.items()})
            res["answers"] = answers
            res["vertex_answers"] = va
    finally:
        drop_database(pg_url, BENCH_DB)
    return res


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench locate")
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000, help="random points checked against the plain loop")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pg-url", default=os.environ.get("CITYOPS_BENCH_PG_URL", DEFAULT_PG))
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args(argv)

    from cityops.geo import service

    tmp = tempfile.mkdtemp(prefix="cityops-bench-locate-")
    url = f"sqlite:///{tmp}/bench.db"
    log(f"seeding the full demo district into {url} ...")
    engine, gen_s, seed_s = seed_database(url)
    from sqlalchemy.orm import Session

    rng = np.random.default_rng(SEED)
    with Session(engine) as session:
        t0 = time.perf_counter()
        ix = service.indexes(session)  # builds the unified-grid index (+ the layers')
        indexes_s = time.perf_counter() - t0
        gi = ix.grids
        build_s = gi.build_s
        minx, miny, maxx, maxy = shapely.total_bounds(gi.geoms)
        lon = rng.uniform(minx, maxx, args.points)
        lat = rng.uniform(miny, maxy, args.points)
        service.grid_indices_for(session, lon[:1000], lat[:1000])  # warm
        runs = []
        codes_out = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            codes_out = service.grid_indices_for(session, lon, lat)
            runs.append(time.perf_counter() - t0)
        ours_s = min(runs)
        # memory of one batch call (NumPy allocations are traced), apart from the process's RSS
        import tracemalloc

        tracemalloc.start()
        service.grid_indices_for(session, lon, lat)
        call_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rss_after_ours = peak_rss_mb()
        raw_runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ours = gi.locate(lon, lat)
            raw_runs.append(time.perf_counter() - t0)
    assert codes_out is not None
    log(f"cityops grid_indices_for: {ours_s:.3f} s = {args.points / ours_s:,.0f} points/s "
        f"(index alone {args.points / min(raw_runs):,.0f}/s; build {build_s:.2f} s)")

    # the batch function's codes agree with the index answers
    codes_ok = bool(np.array_equal(codes_out, np.where(ours >= 0, gi.codes[np.maximum(ours, 0)], None)))

    t0 = time.perf_counter()
    st = strtree_locate(gi.tree, lon, lat)
    strtree_s = time.perf_counter() - t0
    log(f"shapely STRtree vectorized: {strtree_s:.3f} s = {args.points / strtree_s:,.0f} points/s")

    # exactness against the plain loop: random sample + every vertex (boundary points)
    vxy = np.unique(shapely.get_coordinates(gi.geoms), axis=0)
    t0 = time.perf_counter()
    s = min(args.sample, args.points)
    ref = plain_pip(gi.geoms, lon[:s], lat[:s])
    vref = plain_pip(gi.geoms, vxy[:, 0], vxy[:, 1])
    vours = gi.locate(vxy[:, 0], vxy[:, 1])
    log(f"plain point-in-polygon reference on {s:,} + {len(vxy):,} vertex points: {time.perf_counter() - t0:.1f} s")
    agreement = {
        "plain_sample": float(np.mean(ref == ours[:s])),
        "plain_vertices": float(np.mean(vref == vours)),
        "strtree_all": float(np.mean(st == ours)),
        "batch_codes": codes_ok,
    }
    shared_vertices = int(np.sum(np.bincount(shapely.STRtree(gi.geoms).query(
        shapely.points(vxy), predicate="intersects")[0], minlength=len(vxy)) > 1))

    rss_before_pg = peak_rss_mb()
    pg: dict[str, Any] = {}
    pg_note = None
    if args.no_pg:
        pg_note = "PostGIS skipped (--no-pg)"
    else:
        try:
            log(f"PostGIS at {args.pg_url.split('@')[-1]} ...")
            pg = postgis(args.pg_url, gi.codes, gi.geoms, lon, lat, vxy[:, 0], vxy[:, 1])
            for form, a in pg.pop("answers").items():
                agreement[f"postgis_{form}"] = float(np.mean(a == ours))
            agreement["postgis_vertices"] = float(np.mean(pg.pop("vertex_answers") == vours))
        except Exception as exc:  # no server / no PostGIS: say so, keep the rest
            pg_note = f"PostGIS not available: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            pg = {}
    if pg_note:
        log(pg_note)

    pps = args.points / ours_s
    pg_pps = pg.get("points_per_s")
    exact = all(v == 1.0 or v is True for v in agreement.values())
    result = {
        "benchmark": "locate",
        "points": args.points,
        "grids": int(len(gi.codes)),
        "points_per_s": round(pps),
        "index_points_per_s": round(args.points / min(raw_runs)),
        "postgis_points_per_s": round(pg_pps) if pg_pps else None,
        "strtree_points_per_s": round(args.points / strtree_s),
        "speedup_vs_postgis": round(pps / pg_pps, 1) if pg_pps else None,
        "speedup_vs_strtree": round(pps / (args.points / strtree_s), 1),
        "agreement": agreement,
        "exact": exact,
        "boundary_vertices_checked": int(len(vxy)),
        "shared_vertices": shared_vertices,
        "build_s": round(build_s, 3),
        "indexes_s": round(indexes_s, 3),
        "generate_s": round(gen_s, 2),
        "seed_s": round(seed_s, 2),
        "index": gi.stats(),
        "inside_share": round(float(np.mean(ours >= 0)), 4),
        "boundary_point_share": round(float(np.mean(gi.cells[_cell_of(gi, lon, lat)] == -2)), 4) if gi.cells is not None else None,
        "postgis": {k: v for k, v in pg.items() if k != "points_per_s"} or None,
        "postgis_note": pg_note,
        "targets": {"points_per_s>=2M": pps >= 2_000_000, "vs_postgis>=5x": bool(pg_pps and pps >= 5 * pg_pps),
                    "exact": exact},
        "call_peak_alloc_mb": round(call_peak_mb, 1),
        "peak_rss_mb_after_cityops_runs": round(rss_after_ours, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_mb_without_postgis": round(rss_before_pg, 1),
        "machine": machine(),
    }
    emit(result)
    return 0 if exact else 1


def _cell_of(gi: Any, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    fx = np.clip(((lon - gi.x0) / gi.dx).astype(np.int64), 0, gi.nx - 1)
    fy = np.clip(((lat - gi.y0) / gi.dy).astype(np.int64), 0, gi.ny - 1)
    return fy * gi.nx + fx


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
