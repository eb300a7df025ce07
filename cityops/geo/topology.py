"""Topology report of a grid layer (or of the unified grid, key ``city_ops``).

Measured in UTM 51N (m, m²) against the district outline (the ``district`` area):

* **gaps** — parts of the district covered by no grid, larger than ``tolerance_m2``;
* **overlaps** — pairs of grids whose interiors share more than ``tolerance_m2``;
* **slivers** — grid parts smaller than ``tiny_m2`` ("tiny"), and thin parts of a grid narrower
  than ``width_m`` (what a morphological opening with that width removes) larger than
  ``tolerance_m2`` ("thin");
* **outside** — grids with more than ``tolerance_m2`` outside the district;
* **invalid** — grids whose geometry is not valid (with GEOS's reason and point).

Each item carries its area in m² and a location (a point inside it, WGS-84 lat/lon). Problems
at or below the tolerance are only counted (``below_tolerance``).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from cityops.config import get_settings
from cityops.db import database_key
from cityops.geo.geom import TO_WGS, areas_m2, polygon_parts, to_utm_many
from cityops.geo.layers import _district, layer_features, validity_problem
from cityops.security.principal import Principal

TINY_M2 = 10.0
MITRE_LIMIT = 50.0
_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
_lock = threading.Lock()


def _lonlat_many(pts: np.ndarray) -> list[tuple[float, float]]:
    if len(pts) == 0:
        return []
    xy = shapely.get_coordinates(pts)
    return [(round(float(a), 7), round(float(b), 7)) for a, b in xy]


def _lonlat_utm(pts: np.ndarray) -> list[tuple[float, float]]:
    if len(pts) == 0:
        return []
    xy = shapely.get_coordinates(pts)
    lon, lat = TO_WGS.transform(xy[:, 0], xy[:, 1])
    return [(round(float(a), 7), round(float(b), 7)) for a, b in zip(lon, lat, strict=True)]


def _bbox(g: BaseGeometry) -> list[float]:
    return [round(float(v), 7) for v in g.bounds]


def _area(geoms: np.ndarray) -> np.ndarray:
    return areas_m2(geoms)


def analyse(codes: list[str], geoms: list[BaseGeometry], district: BaseGeometry | None, *, tolerance_m2: float,
            width_m: float, tiny_m2: float = TINY_M2) -> dict[str, Any]:
    """The topology report of one tiling (``geoms`` in WGS-84, ``district`` the outline).

    Set operations run on the stored WGS-84 geometries (so an edge that is shared in the data is
    shared in the analysis); their results are measured in UTM 51N. Thin parts are found in UTM."""
    n = len(geoms)
    report: dict[str, Any] = {"features": n, "gaps": [], "overlaps": [], "slivers": [], "outside": [], "invalid": []}
    below = {"gaps": 0, "gap_area_m2": 0.0, "overlaps": 0, "overlap_area_m2": 0.0, "outside": 0, "outside_area_m2": 0.0}
    arr = np.asarray(geoms, dtype=object)

    # invalid geometries (repaired for the rest of the analysis)
    valid = shapely.is_valid(arr) if n else np.zeros(0, dtype=bool)
    for k in np.flatnonzero(~valid):
        p = validity_problem(arr[k], int(k), codes[k])
        loc = (p.extra.get("location") if p else None) or {}
        report["invalid"].append({"code": codes[k], "reason": p.extra.get("reason") if p else "invalid",
                                  "lat": loc.get("lat"), "lon": loc.get("lon"), "area_m2": round(float(_area(arr[k:k + 1])[0]), 2)})
        arr[k] = shapely.make_valid(arr[k])

    # overlaps: pairs whose interiors intersect in 2-D
    if n > 1:
        a, b = shapely.STRtree(arr).query(arr, predicate="intersects")
        m = a < b
        a, b = a[m], b[m]
        inner = shapely.relate_pattern(arr[a], arr[b], "2********") if len(a) else np.zeros(0, dtype=bool)
        a, b = a[inner], b[inner]
        inter = shapely.intersection(arr[a], arr[b]) if len(a) else np.asarray([], dtype=object)
        areas = _area(inter)
        big = areas > tolerance_m2
        below["overlaps"] = int((~big).sum())
        below["overlap_area_m2"] = round(float(areas[~big].sum()), 4)
        ks = np.flatnonzero(big)
        for k, (lon, lat) in zip(ks, _lonlat_many(shapely.point_on_surface(inter[ks])), strict=True):
            report["overlaps"].append({"codes": [codes[a[k]], codes[b[k]]], "area_m2": round(float(areas[k]), 2),
                                       "lat": lat, "lon": lon, "bbox": _bbox(inter[k])})

    # gaps: the district minus the union of the grids (holes inside the union included)
    union = shapely.union_all(arr) if n else shapely.Polygon()
    if district is not None:
        gap = shapely.difference(district, union)
    else:  # no outline: only holes of the union count
        gap = shapely.union_all([shapely.Polygon(r) for p in polygon_parts(union) for r in p.interiors])
    gparts = np.asarray(polygon_parts(gap), dtype=object)
    if len(gparts):
        gareas = _area(gparts)
        big = gareas > tolerance_m2
        below["gaps"] = int((~big).sum())
        below["gap_area_m2"] = round(float(gareas[~big].sum()), 4)
        ks = np.flatnonzero(big)
        for k, (lon, lat) in zip(ks, _lonlat_many(shapely.point_on_surface(gparts[ks])), strict=True):
            report["gaps"].append({"area_m2": round(float(gareas[k]), 2), "lat": lat, "lon": lon, "bbox": _bbox(gparts[k])})

    # outside the district
    if district is not None and n:
        shapely.prepare(district)
        ks = np.flatnonzero(~shapely.covers(district, arr))
        rest = shapely.difference(arr[ks], district) if len(ks) else np.asarray([], dtype=object)
        rareas = _area(rest)
        big = rareas > tolerance_m2
        below["outside"] = int((~big).sum())
        below["outside_area_m2"] = round(float(rareas[~big].sum()), 4)
        for j in np.flatnonzero(big):
            (lon, lat), = _lonlat_many(shapely.point_on_surface(rest[j:j + 1]))
            k = ks[j]
            report["outside"].append({"code": codes[k], "area_m2": round(float(rareas[j]), 2),
                                      "share": round(float(rareas[j] / max(_area(arr[k:k + 1])[0], 1e-12)), 6),
                                      "lat": lat, "lon": lon})

    # slivers: tiny parts, and thin parts (removed by an opening of width width_m), in UTM
    if n:
        parts, pidx = shapely.get_parts(to_utm_many(arr), return_index=True)
        pareas = shapely.area(parts)
        for k in np.flatnonzero(pareas < tiny_m2):
            (lon, lat), = _lonlat_utm(shapely.point_on_surface(parts[k:k + 1]))
            report["slivers"].append({"code": codes[pidx[k]], "kind": "tiny", "area_m2": round(float(pareas[k]), 2),
                                      "lat": lat, "lon": lon})
        big_parts = np.flatnonzero(pareas >= tiny_m2)
        if width_m > 0 and len(big_parts):
            src = parts[big_parts]
            opened = shapely.buffer(shapely.buffer(src, -width_m / 2, join_style="mitre", mitre_limit=MITRE_LIMIT),
                                    width_m / 2, join_style="mitre", mitre_limit=MITRE_LIMIT)
            thin = shapely.difference(src, opened)
            tparts, tidx = shapely.get_parts(thin, return_index=True)
            tareas = shapely.area(tparts)
            ks = np.flatnonzero(tareas > tolerance_m2)
            for k, (lon, lat) in zip(ks, _lonlat_utm(shapely.point_on_surface(tparts[ks])), strict=True):
                report["slivers"].append({"code": codes[pidx[big_parts[tidx[k]]]], "kind": "thin",
                                          "area_m2": round(float(tareas[k]), 2), "lat": lat, "lon": lon})

    for key in ("gaps", "overlaps", "slivers", "outside"):
        report[key].sort(key=lambda it: -it["area_m2"])
    report["counts"] = {k: len(report[k]) for k in ("gaps", "overlaps", "slivers", "outside", "invalid")}
    report["clean"] = not any(report["counts"].values())
    report["below_tolerance"] = below
    report["district_area_m2"] = round(float(_area(np.asarray([district], dtype=object))[0]), 1) if district is not None else None
    report["covered_area_m2"] = round(float(_area(np.asarray([union], dtype=object))[0]), 1)
    report["coverage_valid"] = bool(shapely.coverage_is_valid(arr)) if n else True
    return report


def topology_report(session: Session, principal: Principal, key: str, *, tolerance_m2: float | None = None,
                    width_m: float | None = None, tiny_m2: float = TINY_M2) -> dict[str, Any]:
    """The report of layer ``key`` (``city_ops``: the unit grids), cached until the layer or the
    areas change."""
    from cityops.geo.service import areas_stamp

    s = get_settings()
    tol = s.sliver_min_area_m2 if tolerance_m2 is None else tolerance_m2
    width = s.topology_tolerance_m if width_m is None else width_m
    layer, feats = layer_features(session, key)
    ck = (database_key(session), key, layer.version, layer.imported_at, areas_stamp(session), tol, width, tiny_m2)
    with _lock:
        hit = _cache.get(ck)
    if hit is None:
        rep = analyse([f["code"] for f in feats], [f["geom"] for f in feats], _district(session),
                      tolerance_m2=tol, width_m=width, tiny_m2=tiny_m2)
        hit = {"layer": layer.key, "layer_name": layer.name, "version": layer.version, "is_unified": layer.is_unified,
               "tolerances": {"tolerance_m2": tol, "width_m": width, "tiny_m2": tiny_m2}, **rep}
        with _lock:
            if len(_cache) > 32:
                _cache.clear()
            _cache[ck] = hit
    return hit
