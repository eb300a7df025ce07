"""Travel times over the stored road network (service functions of the geo domain).

``travel_minutes(session, src_lonlat, dst_lonlat)`` is what other domains call: door-to-door
minutes by road (``cityops.geo.network``: access leg + shortest path + access leg) when the
base map has roads, else the straight line x ``network.STRAIGHT_FACTOR`` at
``network.STRAIGHT_SPEED_KMH``. The graph is built once per database and roads version.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cityops.db import database_key
from cityops.geo import basemap, network

_graphs: dict[str, tuple[int, network.RoadGraph]] = {}
_lock = threading.Lock()


def road_graph(session: Session) -> network.RoadGraph | None:
    """The road graph of the current roads layer (None without roads)."""
    versions = basemap.layer_versions(session)
    if "roads" not in versions:
        return None
    key = database_key(session)
    got = _graphs.get(key)
    if got is not None and got[0] == versions["roads"]:
        return got[1]
    with _lock:
        got = _graphs.get(key)
        if got is not None and got[0] == versions["roads"]:
            return got[1]
        feats = basemap.road_features(session)
        if feats is None:
            return None
        version, lines, speeds, oneways = feats
        graph = network.build_graph(lines, speeds, oneways)
        _graphs[key] = (version, graph)
        return graph


def travel_minutes(session: Session, src_lonlat: np.ndarray, dst_lonlat: np.ndarray, *,
                   model: str = "network") -> tuple[np.ndarray, dict[str, Any]]:
    """(S, T) minutes between lon/lat points and a description of the travel model used.

    ``model="network"`` uses the roads (straight line x factor when there are none);
    ``model="straight"`` always the straight line x factor."""
    src = network.lonlat_to_utm(src_lonlat[:, 0], src_lonlat[:, 1])
    dst = network.lonlat_to_utm(dst_lonlat[:, 0], dst_lonlat[:, 1])
    graph = road_graph(session) if model == "network" else None
    if graph is None or graph.v_xy.shape[0] == 0:
        return network.straight_seconds(src, dst) / 60.0, {
            "model": "straight_line", "factor": network.STRAIGHT_FACTOR, "speed_kmh": network.STRAIGHT_SPEED_KMH,
            "note": "没有路网，按直线距离 × 系数估算 no road network: straight line x factor" if model == "network" else None}
    s, t = network.snap(graph, src), network.snap(graph, dst)
    sec = s.access_s[:, None] + network.network_seconds(graph, s, t) + t.access_s[None, :]
    return sec / 60.0, {"model": "road_network", "nodes": graph.n_nodes, "edges": graph.n_edges,
                        "access_speed_kmh": network.ACCESS_SPEED_KMH, "access_factor": network.ACCESS_FACTOR,
                        "max_access_m": round(float(max(s.distance_m.max(initial=0), t.distance_m.max(initial=0))), 1)}


def grid_points(session: Session, *, code_prefix: str | None = None, codes: list[str] | None = None
                ) -> list[dict[str, Any]]:
    """Current unit grids (code, name, population, lon/lat of a point inside) under ``code_prefix``
    or with the given ``codes`` (in that order; unknown codes are left out)."""
    from sqlalchemy import select

    from cityops.geo.models import Area
    from cityops.security.principal import code_prefix_clause

    stmt = select(Area.code, Area.name, Area.population, Area.geom).where(Area.level == "grid", Area.valid_to.is_(None))
    if codes is not None:
        stmt = stmt.where(Area.code.in_(sorted(set(codes))))
    elif code_prefix:
        stmt = stmt.where(code_prefix_clause(Area.code, code_prefix))
    rows = session.execute(stmt.order_by(Area.code)).all()
    out = {}
    for r in rows:
        p = r.geom.representative_point()
        out[r.code] = {"code": r.code, "name": r.name, "population": int(r.population or 0), "lon": p.x, "lat": p.y}
    return [out[c] for c in codes if c in out] if codes is not None else list(out.values())


REACH_DEG = 0.5  # travel is computed for points within this many degrees (~50 km) of the district's box


def out_of_reach(session: Session, lonlat: np.ndarray) -> np.ndarray:
    """True for each lon/lat point too far from the district for its travel times (beyond
    ``REACH_DEG`` of the district's box, or not projectable to UTM 51N without a district)."""
    from sqlalchemy import select

    from cityops.geo.models import Area

    pts = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    geom = session.scalar(select(Area.geom).where(Area.level == "district", Area.valid_to.is_(None)).limit(1))
    if geom is not None:
        w, s, e, n = geom.bounds
        out: np.ndarray = ~((pts[:, 0] >= w - REACH_DEG) & (pts[:, 0] <= e + REACH_DEG)
                            & (pts[:, 1] >= s - REACH_DEG) & (pts[:, 1] <= n + REACH_DEG))
        return out
    xy = network.lonlat_to_utm(pts[:, 0], pts[:, 1])
    bad: np.ndarray = ~np.isfinite(xy).all(axis=1)
    return bad
