"""Geometry helpers of the grid base: projections, areas and coverage cleaning.

Everything is stored in WGS-84 (EPSG:4326); metric work (areas, tolerances) is done in
UTM zone 51N (EPSG:32651), the local metric projection for Shanghai.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

TO_UTM = pyproj.Transformer.from_crs(4326, 32651, always_xy=True)
TO_WGS = pyproj.Transformer.from_crs(32651, 4326, always_xy=True)

# coordinates are kept on a 1e-7 degree grid (about 1 cm): shared edges stay identical
GRID_SIZE = 1e-7
# densification before measuring areas in UTM: about 50 m
DENSIFY_DEG = 5e-4


def to_utm(g: BaseGeometry) -> BaseGeometry:
    return shapely.transform(g, lambda xy: np.column_stack(TO_UTM.transform(xy[:, 0], xy[:, 1])))


def to_wgs(g: BaseGeometry) -> BaseGeometry:
    return shapely.transform(g, lambda xy: np.column_stack(TO_WGS.transform(xy[:, 0], xy[:, 1])))


def to_utm_many(geoms: Sequence[BaseGeometry] | np.ndarray) -> np.ndarray:
    """Vectorized WGS-84 -> UTM 51N of an array of geometries (one pyproj call)."""
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return arr
    out: np.ndarray = shapely.transform(arr, lambda xy: np.column_stack(TO_UTM.transform(xy[:, 0], xy[:, 1])))
    return out


def area_m2(g_wgs: BaseGeometry) -> float:
    """Area in m² of a WGS-84 geometry (see ``areas_m2``)."""
    return float(areas_m2(np.asarray([g_wgs], dtype=object))[0])


def areas_m2(geoms: Sequence[BaseGeometry] | np.ndarray) -> np.ndarray:
    """Areas in m² of WGS-84 geometries, measured in UTM 51N.

    Edges are straight lines in longitude/latitude (RFC 7946); in UTM they are slightly curved,
    so the geometries are densified to ``DENSIFY_DEG`` before projecting (a 5 km edge would
    otherwise be off by ~10 cm in the middle). Areas of pieces that tile a polygon in WGS-84 then
    add up to its area to ~1e-9."""
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return np.zeros(0)
    return np.asarray(shapely.area(to_utm_many(shapely.segmentize(arr, DENSIFY_DEG))), dtype=float)


def utm_point_to_lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_WGS.transform(x, y)
    return float(lon), float(lat)


def polygon_parts(g: BaseGeometry) -> list[BaseGeometry]:
    """The polygons of a (multi)polygon or collection, in order."""
    return [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and not p.is_empty]


def snap_coverages(tilings_utm: Sequence[Sequence[BaseGeometry]], tol_m: float = 1e-6,
                   grid_size: float = GRID_SIZE) -> list[list[BaseGeometry]]:
    """Tilings built in UTM (each an almost exact partition of the same territory, e.g. Voronoi
    cells clipped to a common outline) -> WGS-84 tilings whose neighbours share their vertices.

    Every polygon is snapped (``tol_m`` metres) to the vertices of all the polygons of all the
    tilings: a vertex lying on a neighbour's edge (a T-junction, within floating-point error) is
    inserted into that edge, so shared boundaries have identical vertex sequences. They then stay
    identical through the projection to WGS-84 and the rounding to ``grid_size`` degrees, so each
    tiling is an exact coverage and all of them cover exactly the same ground."""
    arrs = [np.asarray(list(t), dtype=object) for t in tilings_utm]
    sizes = [len(a) for a in arrs]
    allp = np.concatenate(arrs) if arrs else np.asarray([], dtype=object)
    if not len(allp):
        return [[] for _ in arrs]
    pts = shapely.points(np.unique(shapely.get_coordinates(allp), axis=0))
    pi, vi = shapely.STRtree(pts).query(shapely.boundary(allp), predicate="dwithin", distance=tol_m)
    has = np.unique(pi)
    snapped = allp.copy()
    snapped[has] = shapely.snap(allp[has], shapely.multipoints(pts[vi], indices=np.searchsorted(has, pi)), tol_m)
    wgs = shapely.transform(snapped, lambda xy: np.column_stack(TO_WGS.transform(xy[:, 0], xy[:, 1])))
    wgs = shapely.remove_repeated_points(shapely.set_precision(wgs, grid_size, mode="pointwise"))
    out: list[list[BaseGeometry]] = []
    start = 0
    for n in sizes:
        out.append(list(wgs[start:start + n]))
        start += n
    return out
