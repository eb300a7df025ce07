"""Where a report is: the unit grid, community, street and every grid layer's cell of a point, from
the grid base's cached indexes (``cityops.geo.service.indexes``, refreshed every few seconds)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cityops.db import database_key
from cityops.geo import service as geo

_loc_cache: dict[str, tuple[float, Any]] = {}
_loc_lock = threading.Lock()
LOCATE_TTL = 2.0


def _index(session: Session) -> Any:
    key = database_key(session)
    hit = _loc_cache.get(key)
    t = time.monotonic()
    if hit is not None and t - hit[0] < LOCATE_TTL:
        return hit[1]
    ix = geo.indexes(session)
    with _loc_lock:
        _loc_cache[key] = (t, ix)
    return ix


@dataclass
class Located:
    grid_code: str
    community_code: str
    street_code: str
    layers: dict[str, str | None]


def locate(session: Session, lon: np.ndarray, lat: np.ndarray) -> list[Located | None]:
    """Unit grid, community, street and every layer's grid of many points (None: outside)."""
    ix = _index(session)
    gidx = ix.grids.locate(lon, lat)
    layer_hits = [(key, li.locate(lon, lat), li) for key, _name, li, _names in ix.layers]
    out: list[Located | None] = []
    for k in range(len(gidx)):
        if gidx[k] < 0:
            out.append(None)
            continue
        g = str(ix.grids.codes[gidx[k]])
        c = ix.parents.get(g) or g[:12]
        s = ix.parents.get(c) or g[:9]
        layers: dict[str, str | None] = {"city_ops": g}
        for key, hits, li in layer_hits:
            layers[key] = str(li.codes[hits[k]]) if hits[k] >= 0 else None
        out.append(Located(g, c, s, layers))
    return out


def area_names(session: Session) -> dict[str, str]:
    return dict(_index(session).names)


__all__ = ["Located", "locate", "area_names"]
