"""Point -> polygon lookup over a tiling (unit grids, or the grids of any layer).

Boundary rule (deterministic): a point belongs to the polygon with the **smallest code**
among the polygons whose *closed* polygon (interior + boundary) covers it; a point covered by
no polygon is outside (-1). So a point on the shared edge of two grids goes to the grid with
the smaller code, a point on a corner shared by four grids to the smallest of the four, and a
point on the outer boundary of the district is inside. Overlapping layers follow the same
rule (smallest code wins inside the overlap).

Algorithm (``PolygonIndex``): a uniform raster over the bounding box of all polygons, with
cells of about ``cell_m`` metres. Each cell is

* **boundary** (-2): its closed box, widened by ``EPS`` degrees, touches the boundary (any ring,
  holes included) of some polygon; marked conservatively by testing every boundary segment
  (segmentized to at most one cell long) against the boxes of the cells it can reach;
* otherwise, the whole cell lies in one face of the arrangement, so its answer is the answer
  of any point in it: non-boundary cells are grouped into connected components
  (``scipy.ndimage.label``), and one exact query per component (cell centre, STRtree
  ``intersects`` + smallest-code rule) gives the polygon index, or -1 (outside).

A query is a few vectorized NumPy operations (cell index, one gather); only points falling in
boundary cells get the exact test, which is a shapely STRtree ``intersects`` query on those
points, the same predicate as the plain check, with the smallest-code rule. The widening
``EPS`` (1e-9 degrees, about 0.1 mm) is far larger than the floating-point error of computing
a point's cell, so a point is never answered from a cell that does not contain it up to that
margin: answers are exact, not approximate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

EPS = 1e-9  # degrees; widening of cell boxes when marking boundary cells
OUTSIDE = -1
BOUNDARY = -2
M_PER_DEG_LAT = 110_950.0


def _min_index_per_point(n: int, pi: np.ndarray, gi: np.ndarray) -> np.ndarray:
    """For query pairs (point i, polygon j) the smallest j per point, -1 when none."""
    out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(out, pi, gi)
    out[out == np.iinfo(np.int64).max] = OUTSIDE
    return out


@dataclass
class PolygonIndex:
    codes: np.ndarray  # sorted codes (str, object array)
    geoms: np.ndarray  # shapely geometries in the same order
    tree: shapely.STRtree
    x0: float = 0.0
    y0: float = 0.0
    dx: float = 1.0
    dy: float = 1.0
    nx: int = 0
    ny: int = 0
    cells: np.ndarray | None = None  # flat (ny * nx): polygon index, OUTSIDE or BOUNDARY
    cell_m: float = 0.0
    build_s: float = 0.0

    @classmethod
    def build(cls, codes: Sequence[str], geoms: Sequence[BaseGeometry], *, cell_m: float | None = None,
              max_cells: int = 1 << 23) -> PolygonIndex:
        """Index ``geoms`` (WGS-84 polygons/multipolygons) under their ``codes`` (empty or missing
        geometries are left out: they cover nothing).

        ``cell_m``: raster cell size in metres; by default about 4,000 cells per polygon
        (at most ``max_cells``), i.e. ~10 m for the full demo's ~3,000 unit grids."""
        import time

        t0 = time.perf_counter()
        pairs = [(c, g) for c, g in zip(codes, geoms, strict=True) if g is not None and not g.is_empty]
        codes_arr = np.asarray([c for c, _ in pairs], dtype=object)
        order = np.argsort(codes_arr, kind="stable") if len(codes_arr) else np.zeros(0, dtype=np.int64)
        codes_arr = codes_arr[order]
        geoms_arr = np.empty(len(pairs), dtype=object)
        geoms_arr[:] = [g for _, g in pairs]
        geoms_arr = geoms_arr[order]
        shapely.prepare(geoms_arr)
        ix = cls(codes_arr, geoms_arr, shapely.STRtree(geoms_arr))
        if len(geoms_arr):
            ix._build_raster(cell_m, max_cells)
        ix.build_s = time.perf_counter() - t0
        return ix

    # ------------------------------------------------------------------ build

    def _build_raster(self, cell_m: float | None, max_cells: int) -> None:
        minx, miny, maxx, maxy = shapely.total_bounds(self.geoms)
        lat_mid = (miny + maxy) / 2
        m_per_deg_lon = M_PER_DEG_LAT * max(math.cos(math.radians(lat_mid)), 0.01)
        w_m = max((maxx - minx) * m_per_deg_lon, 1e-3)
        h_m = max((maxy - miny) * M_PER_DEG_LAT, 1e-3)
        if cell_m is None:
            target = min(max(4000 * len(self.geoms), 1 << 14), max_cells)
            cell_m = math.sqrt(w_m * h_m / target)
        cell_m = max(cell_m, math.sqrt(w_m * h_m / max_cells), 0.01)
        self.cell_m = cell_m
        self.dx = cell_m / m_per_deg_lon
        self.dy = cell_m / M_PER_DEG_LAT
        # a margin of one cell around the bbox, so that every boundary is strictly inside
        self.x0 = minx - self.dx
        self.y0 = miny - self.dy
        self.nx = int(math.ceil((maxx - minx) / self.dx)) + 2
        self.ny = int(math.ceil((maxy - miny) / self.dy)) + 2
        boundary = self._boundary_mask()
        grid = boundary.reshape(self.ny, self.nx)
        labels, nlab = ndimage.label(~grid, structure=np.ones((3, 3), dtype=bool))
        flat = labels.ravel()
        # one cell per component (the last one written wins: any cell will do)
        rep = np.zeros(nlab + 1, dtype=np.int64)
        rep[flat] = np.arange(flat.size, dtype=np.int64)
        rep = rep[1:]
        cy, cx = np.divmod(rep, self.nx)
        px = self.x0 + (cx + 0.5) * self.dx
        py = self.y0 + (cy + 0.5) * self.dy
        comp_owner = np.concatenate([[BOUNDARY], self._exact(px, py)])
        dtype = np.int16 if len(self.geoms) < np.iinfo(np.int16).max else np.int32
        self.cells = comp_owner[flat].astype(dtype)

    def _boundary_mask(self) -> np.ndarray:
        """Cells whose closed box (widened by EPS) touches a polygon boundary."""
        parts = shapely.get_parts(self.geoms)
        rings = shapely.get_rings(parts)
        step = min(self.dx, self.dy)
        rings = shapely.segmentize(rings, step)
        xy, ridx = shapely.get_coordinates(rings, return_index=True)
        same = ridx[1:] == ridx[:-1]
        x1, y1 = xy[:-1, 0][same], xy[:-1, 1][same]
        x2, y2 = xy[1:, 0][same], xy[1:, 1][same]
        mask = np.zeros(self.nx * self.ny, dtype=bool)
        ix0 = np.floor((np.minimum(x1, x2) - EPS - self.x0) / self.dx).astype(np.int64)
        ix1 = np.floor((np.maximum(x1, x2) + EPS - self.x0) / self.dx).astype(np.int64)
        iy0 = np.floor((np.minimum(y1, y2) - EPS - self.y0) / self.dy).astype(np.int64)
        iy1 = np.floor((np.maximum(y1, y2) + EPS - self.y0) / self.dy).astype(np.int64)
        ex, ey = x2 - x1, y2 - y1
        span = int(max((ix1 - ix0).max(initial=0), (iy1 - iy0).max(initial=0))) + 1
        for kx in range(span):
            for ky in range(span):
                sel = np.flatnonzero((ix0 + kx <= ix1) & (iy0 + ky <= iy1))
                if not len(sel):
                    continue
                cx = ix0[sel] + kx
                cy = iy0[sel] + ky
                bx0 = self.x0 + cx * self.dx - EPS
                bx1 = self.x0 + (cx + 1) * self.dx + EPS
                by0 = self.y0 + cy * self.dy - EPS
                by1 = self.y0 + (cy + 1) * self.dy + EPS
                sx, sy, tx, ty = x1[sel], y1[sel], ex[sel], ey[sel]
                # the segment's line separates the box iff all four corners are strictly on one side
                s00 = tx * (by0 - sy) - ty * (bx0 - sx)
                s01 = tx * (by1 - sy) - ty * (bx0 - sx)
                s10 = tx * (by0 - sy) - ty * (bx1 - sx)
                s11 = tx * (by1 - sy) - ty * (bx1 - sx)
                lo = np.minimum(np.minimum(s00, s01), np.minimum(s10, s11))
                hi = np.maximum(np.maximum(s00, s01), np.maximum(s10, s11))
                hit = (lo <= 0) & (hi >= 0)
                ok = hit & (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)
                mask[cy[ok] * self.nx + cx[ok]] = True
        return mask

    # ------------------------------------------------------------------ query

    def _exact(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Exact answer (closed polygons, smallest index) for each point: STRtree + intersects."""
        if lon.size == 0:
            return np.zeros(0, dtype=np.int64)
        pi, gi = self.tree.query(shapely.points(lon, lat), predicate="intersects")
        return _min_index_per_point(lon.shape[0], pi, gi)

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index (into ``codes``) of the polygon covering each point, -1 when outside."""
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        n = lon.shape[0]
        if n == 0 or self.cells is None:
            return np.full(n, OUTSIDE, dtype=np.int64)
        fx = lon - self.x0
        fx *= 1.0 / self.dx
        fy = lat - self.y0
        fy *= 1.0 / self.dy
        inb = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)  # False for NaN too
        if not inb.all():
            fx[~inb] = 0
            fy[~inb] = 0
        flat = fy.astype(np.int64)
        flat *= self.nx
        flat += fx.astype(np.int64)
        out = self.cells[flat].astype(np.int64)
        if not inb.all():
            out[~inb] = OUTSIDE
        b = np.flatnonzero(out == BOUNDARY)
        if len(b):
            out[b] = self._exact(lon[b], lat[b])
        return out

    def locate_exact(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The same answers without the raster (STRtree only): the reference path."""
        return self._exact(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))

    def locate_codes(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        idx = self.locate(lon, lat)
        return [self.codes[i] if i >= 0 else None for i in idx]

    def stats(self) -> dict[str, float | int]:
        cells = self.cells if self.cells is not None else np.zeros(0)
        return {"polygons": int(len(self.geoms)), "cells": int(cells.size), "cell_m": round(self.cell_m, 2),
                "boundary_cells": int((cells == BOUNDARY).sum()), "raster_mb": round(cells.nbytes / 2**20, 1),
                "build_s": round(self.build_s, 3)}
