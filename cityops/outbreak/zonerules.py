"""Zone rules (pure, NumPy-vectorised; no database).

* ``downgrade_day``: the day a zone is due to step down — public-health.md §4.2 (protocol version 9):
  "7 days with no new case → medium; 3 more days → low"; "7 days with no new case → low". The count
  starts at the later of the day the zone took its level and the day of the last new case found
  inside; a level reached by a downgrade may have its own count (``after_downgrade_days``). A new
  case inside resets the count (the due day moves); a level without a rule never steps down.
* ``counts_in_zones``: how many of the given points (building positions) lie inside each zone, with
  weights (households, residents ...) — shapely 2 ``STRtree.query(points, predicate="intersects")``
  over the zone polygons, vectorised (docs: shapely.strtree.STRtree.query; tech-notes.md §Geospatial).
  A point on a boundary counts for every zone it touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from cityops.outbreak.rules import RuleSet

NEVER = np.iinfo(np.int64).max // 2


def downgrade_day(levels: Sequence[str], level_since: np.ndarray, last_case: np.ndarray, by_downgrade: np.ndarray,
                  rules: RuleSet) -> np.ndarray:
    """Per zone: the first day on which its level is due to step down (``NEVER`` for a level
    without a downgrade rule). Days are ``date.toordinal()``; ``last_case`` is -1 without a case."""
    n = len(levels)
    days = np.full(n, -1, dtype=np.int64)
    after = np.full(n, -1, dtype=np.int64)
    for z in rules.zones:
        m = np.fromiter((lv == z.code for lv in levels), dtype=bool, count=n)
        days[m] = z.downgrade_after_days if z.downgrade_after_days is not None else -1
        after[m] = z.after_downgrade_days or (z.downgrade_after_days or -1)
    n_days = np.where(by_downgrade, after, days)
    start = np.maximum(np.asarray(level_since, dtype=np.int64), np.asarray(last_case, dtype=np.int64))
    return np.where(n_days > 0, start + n_days, NEVER)


def due_now(levels: Sequence[str], level_since: np.ndarray, last_case: np.ndarray, by_downgrade: np.ndarray,
            today: int, rules: RuleSet) -> np.ndarray:
    """Zones whose downgrade is due on ``today`` or earlier."""
    return downgrade_day(levels, level_since, last_case, by_downgrade, rules) <= today


def counts_in_zones(zones: Sequence[Any], lon: np.ndarray, lat: np.ndarray,
                    weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For each weight column: the sum over the points inside each zone (index-aligned with
    ``zones``); ``"points"`` is the number of points."""
    nz = len(zones)
    out = {"points": np.zeros(nz, dtype=np.int64), **{k: np.zeros(nz, dtype=np.float64) for k in weights}}
    if nz == 0 or len(lon) == 0:
        return out
    tree = shapely.STRtree(np.asarray(zones, dtype=object))
    pts = shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    pi, zi = tree.query(pts, predicate="intersects")
    np.add.at(out["points"], zi, 1)
    for k, w in weights.items():
        np.add.at(out[k], zi, np.asarray(w, dtype=np.float64)[pi])
    return out


def members_in_zones(zones: Sequence[Any], lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point index, zone index) of every point inside a zone."""
    if len(zones) == 0 or len(lon) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    tree = shapely.STRtree(np.asarray(zones, dtype=object))
    pi, zi = tree.query(shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)),
                        predicate="intersects")
    return pi.astype(np.int64), zi.astype(np.int64)
