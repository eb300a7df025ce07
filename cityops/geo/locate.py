"""Point -> polygon lookup over a tiling (unit grids, or the grids of any layer).

Boundary rule (deterministic): a point on the shared boundary of several grids belongs to
the grid with the smallest code among the grids whose closed polygon covers it. A point
covered by no grid is outside (-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass
class PolygonIndex:
    codes: np.ndarray  # sorted codes (str)
    geoms: np.ndarray  # shapely geometries in the same order
    tree: shapely.STRtree

    @classmethod
    def build(cls, codes: Sequence[str], geoms: Sequence[BaseGeometry]) -> PolygonIndex:
        order = np.argsort(np.asarray(codes, dtype=object))
        codes_arr = np.asarray(codes, dtype=object)[order]
        geoms_arr = np.asarray(geoms, dtype=object)[order]
        shapely.prepare(geoms_arr)
        return cls(codes_arr, geoms_arr, shapely.STRtree(geoms_arr))

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index (into ``codes``) of the grid covering each point, -1 when outside."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        out = np.full(lon.shape[0], -1, dtype=np.int64)
        if lon.size == 0:
            return out
        pts = shapely.points(lon, lat)
        pi, gi = self.tree.query(pts, predicate="intersects")
        # smallest code index wins on shared boundaries
        big = np.iinfo(np.int64).max
        best = np.full(lon.shape[0], big, dtype=np.int64)
        np.minimum.at(best, pi, gi)
        hit = best != big
        out[hit] = best[hit]
        return out

    def locate_codes(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        idx = self.locate(lon, lat)
        return [self.codes[i] if i >= 0 else None for i in idx]
