"""Crosswalk between a grid layer and the unified grid (多格合一 对照表).

For every unified grid U (unit grid, 15-digit code) and every grid L of the other layer that
overlaps it: ``share = area(U ∩ L) / area(U)``, areas in m². ``share_of_layer_grid``
is the same intersection over ``area(L)``. Intersections are computed on the stored WGS-84
geometries and measured in UTM 51N (``geom.areas_m2``). ``uncovered_m2`` is the part of U covered by no grid
of the layer, computed separately (U minus the union of the layer), and U is
``fully_covered`` when that is at most ``FULL_TOLERANCE`` of its area: for such a U the shares
add up to 1 when the layer has no overlaps.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy.orm import Session

from cityops.db import database_key
from cityops.exports import SafeWriter
from cityops.geo.geom import areas_m2
from cityops.geo.layers import UNIFIED_KEY, layer_features
from cityops.security.principal import Principal

FULL_TOLERANCE = 1e-7  # relative uncovered area under which a unified grid counts as fully covered


@dataclass
class Crosswalk:
    key: str
    layer_name: str
    version: int
    grid_codes: np.ndarray  # str
    grid_names: list[str]
    grid_area: np.ndarray
    uncovered: np.ndarray
    layer_codes: list[str]
    layer_names: list[str]
    layer_area: np.ndarray
    pair_g: np.ndarray  # sorted by grid, then layer code
    pair_l: np.ndarray
    inter: np.ndarray
    starts: np.ndarray  # pair_g == k for pairs starts[k]:starts[k+1]

    def parts(self, k: int) -> list[dict[str, Any]]:
        out = []
        for p in range(int(self.starts[k]), int(self.starts[k + 1])):
            j = int(self.pair_l[p])
            out.append({"code": self.layer_codes[j], "name": self.layer_names[j], "area_m2": round(float(self.inter[p]), 3),
                        "share": float(self.inter[p] / self.grid_area[k]),
                        "share_of_layer_grid": float(self.inter[p] / self.layer_area[j]) if self.layer_area[j] > 0 else None})
        return out

    def item(self, k: int) -> dict[str, Any]:
        ga = float(self.grid_area[k])
        parts = self.parts(k)
        return {"grid_code": str(self.grid_codes[k]), "grid_name": self.grid_names[k], "grid_area_m2": round(ga, 3),
                "covered_share": float(sum(p["share"] for p in parts)),
                "uncovered_m2": round(float(self.uncovered[k]), 6),
                "fully_covered": bool(self.uncovered[k] <= FULL_TOLERANCE * ga), "parts": parts}


_cache: dict[tuple[Any, ...], Crosswalk] = {}
_lock = threading.Lock()


def compute(session: Session, key: str) -> Crosswalk:
    from cityops.geo.service import areas_stamp

    layer, feats = layer_features(session, key)
    ck = (database_key(session), key, layer.version, layer.imported_at, areas_stamp(session))
    with _lock:
        hit = _cache.get(ck)
    if hit is not None:
        return hit
    _, grids = layer_features(session, UNIFIED_KEY)
    g_arr = np.asarray([g["geom"] for g in grids], dtype=object)
    l_arr = np.asarray([f["geom"] for f in feats], dtype=object)
    g_area = areas_m2(g_arr)
    l_area = areas_m2(l_arr)
    uncovered = g_area.copy()
    pg = pl = np.zeros(0, dtype=np.int64)
    inter = np.zeros(0)
    if len(grids) and len(feats):
        # set operations on the stored WGS-84 geometries, areas measured in UTM 51N
        tree = shapely.STRtree(l_arr)
        pg, pl = tree.query(g_arr, predicate="intersects")
        inter = areas_m2(shapely.intersection(g_arr[pg], l_arr[pl]))
        keep = inter > 0
        pg, pl, inter = pg[keep], pl[keep], inter[keep]
        order = np.lexsort((pl, pg))  # layer features come ordered by code
        pg, pl, inter = pg[order], pl[order], inter[order]
        # uncovered part of every unified grid, independently of the intersection areas
        union = shapely.union_all(l_arr)
        shapely.prepare(union)
        covered = shapely.covers(union, g_arr)
        uncovered = np.zeros(len(grids))
        not_cov = np.flatnonzero(~covered)
        cand_g, cand_l = tree.query(g_arr[not_cov], predicate="intersects")
        by_grid: dict[int, list[int]] = {}
        for a, b in zip(cand_g.tolist(), cand_l.tolist(), strict=True):
            by_grid.setdefault(a, []).append(b)
        rest = [shapely.difference(g_arr[k], shapely.union_all(l_arr[by_grid[j]])) if j in by_grid else g_arr[k]
                for j, k in enumerate(not_cov.tolist())]
        if rest:
            uncovered[not_cov] = areas_m2(np.asarray(rest, dtype=object))
    starts = np.searchsorted(pg, np.arange(len(grids) + 1))
    cw = Crosswalk(key=layer.key, layer_name=layer.name, version=layer.version,
                   grid_codes=np.asarray([g["code"] for g in grids], dtype=str), grid_names=[g["name"] for g in grids],
                   grid_area=g_area, uncovered=uncovered, layer_codes=[f["code"] for f in feats],
                   layer_names=[f["name"] for f in feats], layer_area=l_area, pair_g=pg, pair_l=pl, inter=inter,
                   starts=starts)
    with _lock:
        if len(_cache) > 16:
            _cache.clear()
        _cache[ck] = cw
    return cw


def _selected(cw: Crosswalk, code_prefix: str | None) -> np.ndarray:
    if not code_prefix:
        return np.arange(len(cw.grid_codes))
    return np.flatnonzero(np.char.startswith(cw.grid_codes, code_prefix))


def crosswalk_page(session: Session, principal: Principal, key: str, *, code_prefix: str | None = None,
                   page: int = 1, page_size: int = 100) -> dict[str, Any]:
    cw = compute(session, key)
    sel = _selected(cw, code_prefix)
    chunk = sel[(page - 1) * page_size: page * page_size]
    return {"layer": cw.key, "layer_name": cw.layer_name, "version": cw.version, "total": int(len(sel)),
            "page": page, "page_size": page_size, "items": [cw.item(int(k)) for k in chunk]}


CSV_COLUMNS = ["grid_code", "grid_name", "layer", "layer_code", "layer_name", "intersection_m2", "share",
               "share_of_layer_grid", "grid_area_m2", "fully_covered"]


def crosswalk_csv(session: Session, principal: Principal, key: str, *, code_prefix: str | None = None) -> Iterator[str]:
    """CSV rows (UTF-8 with BOM so that spreadsheet programs read the Chinese names)."""
    cw = compute(session, key)
    sel = _selected(cw, code_prefix)

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        w = SafeWriter(buf)  # CRLF like every other export; codes kept as text
        buf.write("\ufeff")
        w.writerow(CSV_COLUMNS)
        for n, k in enumerate(sel.tolist(), start=1):
            ga = float(cw.grid_area[k])
            full = bool(cw.uncovered[k] <= FULL_TOLERANCE * ga)
            for p in range(int(cw.starts[k]), int(cw.starts[k + 1])):
                j = int(cw.pair_l[p])
                la = float(cw.layer_area[j])
                w.writerow([cw.grid_codes[k], cw.grid_names[k], cw.key, cw.layer_codes[j], cw.layer_names[j],
                            f"{cw.inter[p]:.3f}", f"{cw.inter[p] / ga:.9f}",
                            f"{cw.inter[p] / la:.9f}" if la > 0 else "", f"{ga:.3f}", "1" if full else "0"])
            if n % 200 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return rows()
