"""Base map (底图) service: store the roads / water / places layers, serve them as GeoJSON vector
layers (bbox, zoom-dependent selection and simplification) and search named places.

Served features are chosen by zoom (``MIN_ZOOM``: expressways and main roads at every zoom,
local roads from 14) and simplified to about one screen pixel at that zoom (Douglas-Peucker,
``shapely.simplify``; D. Douglas & T. Peucker, "Algorithms for the reduction of the number of
points required to represent a digitized line", Cartographica 10 (1973) 112-122).
The layers are kept in memory per database and rebuilt when an import changes a layer's version.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cityops.db import database_key, utcnow
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.geo import geojson
from cityops.geo.basemap_models import BASEMAP_LAYERS, BasemapFeature, BasemapLayer
from cityops.geo.layers import parse_bbox
from cityops.geo.models import Area
from cityops.security.principal import Principal

ROAD_ZOOM = {"motorway": 0, "trunk": 0, "primary": 0, "secondary": 12, "motorway_link": 13, "trunk_link": 13,
             "primary_link": 13, "secondary_link": 13, "tertiary": 13, "tertiary_link": 14, "residential": 14,
             "unclassified": 14, "road": 14, "living_street": 15, "service": 15}
PLACE_ZOOM = {"city": 0, "town": 0, "suburb": 0, "village": 14, "neighbourhood": 14, "quarter": 13, "hamlet": 15}
PLACE_DEFAULT_ZOOM = 13
WATER_LINE_ZOOM = {"stream": 14, "drain": 15, "ditch": 15}
_ROAD_RANK = ["motorway", "trunk", "primary", "secondary", "tertiary", "motorway_link", "trunk_link", "primary_link",
              "secondary_link", "tertiary_link", "unclassified", "residential", "road", "living_street", "service"]
_PLACE_RANK = ["city", "town", "suburb", "quarter", "government", "station", "hospital", "university", "park",
               "attraction", "school", "village", "neighbourhood", "hamlet"]


def min_zoom(layer: str, kind: str, geom_type: str) -> int:
    if layer == "roads":
        return ROAD_ZOOM.get(kind, 14)
    if layer == "places":
        return PLACE_ZOOM.get(kind, PLACE_DEFAULT_ZOOM)
    return WATER_LINE_ZOOM.get(kind, 0) if "Line" in geom_type else 0


def check_layer(layer: str) -> None:
    if layer not in BASEMAP_LAYERS:
        raise NotFound([Problem(f"没有底图图层 {layer} no base-map layer {layer!r} (one of {', '.join(BASEMAP_LAYERS)})",
                                ["path", "layer"], "not_found")])


# --------------------------------------------------------------------------- writes

def replace_layers(session: Session, principal: Principal | None, layers: dict[str, list[dict[str, Any]]], *,
                   source: str | None, synthetic: bool = False, audit: bool = True) -> dict[str, Any]:
    """Replace each given layer's features (a list of dicts: code, name, name_en, kind, geom,
    speed_kmh, oneway, properties) in the current transaction; bumps the layer's version."""
    out = {}
    now = utcnow()
    for key, feats in layers.items():
        check_layer(key)
        row = session.get(BasemapLayer, key, with_for_update=True)
        if row is None:
            row = BasemapLayer(key=key, version=0)
            session.add(row)
        row.version = (row.version or 0) + 1
        row.feature_count = len(feats)
        row.source = (source or "")[:200] or None
        row.synthetic = synthetic
        row.imported_at = now
        row.imported_by = principal.username if principal else "demo"
        session.flush()
        session.execute(delete(BasemapFeature).where(BasemapFeature.layer == key))
        session.add_all([BasemapFeature(layer=key, code=f["code"], name=f.get("name"), name_en=f.get("name_en"),
                                        kind=f["kind"], speed_kmh=f.get("speed_kmh"), oneway=int(f.get("oneway") or 0),
                                        geom=f["geom"], properties=f.get("properties") or {}) for f in feats])
        out[key] = {"version": row.version, "feature_count": len(feats)}
    session.flush()
    if audit and principal is not None:
        from cityops.security import audit as audit_log

        audit_log.record(session, principal, "basemap_import", "basemap", ",".join(sorted(layers)),
                         detail={"layers": out, "source": source})
    return out


def import_geojson(session: Session, principal: Principal, doc: Any, *, source: str | None = None,
                   only: list[str] | None = None) -> dict[str, Any]:
    """Validate an OSM-style GeoJSON FeatureCollection (``cityops.geo.basemap_import``) and replace
    the layers it holds (or the ``only`` ones); all or nothing. Returns counts, skipped features
    and the road graph's statistics."""
    from cityops.geo import network
    from cityops.geo.basemap_import import parse_osm_geojson

    for k in only or []:
        check_layer(k)
    district = session.scalar(select(Area.geom).where(Area.level == "district", Area.valid_to.is_(None)).limit(1))
    session.rollback()  # validate holding no lock
    problems, layers, skipped = parse_osm_geojson(doc, district.bounds if district is not None else None)
    if problems:
        raise InvalidInput(problems, problem_count=len(problems))
    chosen = {k: v for k, v in layers.items() if (k in only if only else bool(v))}
    graph_stats = None
    if chosen.get("roads"):
        lines, speeds, oneways = _road_arrays(chosen["roads"])
        graph_stats = network.build_graph(lines, speeds, oneways).stats()
    written = replace_layers(session, principal, chosen, source=source)
    return {"layers": written, "skipped": {k: {"count": len(v), "features": v[:20]} for k, v in sorted(skipped.items())},
            "road_graph": graph_stats}


def _road_arrays(feats: list[dict[str, Any]]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    lines, speeds, oneways = [], [], []
    for f in feats:
        for part in shapely.get_parts(f["geom"]):
            lines.append(np.asarray(shapely.get_coordinates(part)))
            speeds.append(float(f.get("speed_kmh") or 30.0))
            oneways.append(int(f.get("oneway") or 0))
    return lines, np.asarray(speeds), np.asarray(oneways)


# --------------------------------------------------------------------------- cache

@dataclass
class _Layer:
    version: int
    codes: np.ndarray
    names: list[str | None]
    names_en: list[str | None]
    kinds: np.ndarray
    speed: np.ndarray
    oneway: np.ndarray
    geoms: np.ndarray
    zoom: np.ndarray
    rank: np.ndarray
    props: list[dict[str, Any]]
    tree: shapely.STRtree


_cache: dict[tuple[str, str], _Layer] = {}
_lock = threading.Lock()


def layer_versions(session: Session) -> dict[str, int]:
    return dict(session.execute(select(BasemapLayer.key, BasemapLayer.version)).tuples().all())


def _load(session: Session, layer: str) -> _Layer | None:
    versions = layer_versions(session)
    if layer not in versions:
        return None
    key = (database_key(session), layer)
    got = _cache.get(key)
    if got is not None and got.version == versions[layer]:
        return got
    with _lock:
        got = _cache.get(key)
        if got is not None and got.version == versions[layer]:
            return got
        rows = session.execute(select(BasemapFeature.code, BasemapFeature.name, BasemapFeature.name_en,
                                      BasemapFeature.kind, BasemapFeature.speed_kmh, BasemapFeature.oneway,
                                      BasemapFeature.geom, BasemapFeature.properties)
                               .where(BasemapFeature.layer == layer).order_by(BasemapFeature.id)).all()
        geoms = np.asarray([r.geom for r in rows], dtype=object)
        kinds = np.asarray([r.kind for r in rows], dtype=object)
        gtypes = shapely.get_type_id(geoms) if len(geoms) else np.zeros(0, dtype=int)
        ranks = _ROAD_RANK if layer == "roads" else _PLACE_RANK
        got = _Layer(
            version=versions[layer], codes=np.asarray([r.code for r in rows], dtype=object),
            names=[r.name for r in rows], names_en=[r.name_en for r in rows], kinds=kinds,
            speed=np.asarray([r.speed_kmh or np.nan for r in rows], dtype=float),
            oneway=np.asarray([r.oneway or 0 for r in rows], dtype=np.int64), geoms=geoms,
            zoom=np.asarray([min_zoom(layer, k, "Line" if t in (1, 5) else "Polygon") for k, t in zip(kinds, gtypes, strict=True)],
                            dtype=float),
            rank=np.asarray([ranks.index(k) if k in ranks else len(ranks) for k in kinds]),
            props=[dict(r.properties or {}) for r in rows], tree=shapely.STRtree(geoms))
        _cache[key] = got
        return got


# --------------------------------------------------------------------------- reads

def simplify_tolerance_deg(zoom: float, lat: float = 31.0) -> float:
    """About one screen pixel of a 256-px Web-Mercator tile at ``zoom``, in degrees."""
    metres_per_px = 156543.03392 * np.cos(np.deg2rad(lat)) / 2 ** zoom
    return float(metres_per_px / 111_320.0)


def layer_geojson(session: Session, layer: str, *, bbox: str | None = None, zoom: float = 14.0,
                  limit: int = 20_000) -> str:
    """The layer's features for a map view as GeoJSON text (WGS-84, RFC 7946: 7 decimals, rings oriented)."""
    check_layer(layer)
    box = parse_bbox(bbox)
    data = _load(session, layer)
    if data is None or not len(data.geoms):
        return json.dumps({"type": "FeatureCollection", "layer": layer, "zoom": zoom, "features": []})
    idx = data.tree.query(shapely.box(*box), predicate="intersects") if box is not None else np.arange(len(data.geoms))
    idx = np.sort(idx[data.zoom[idx] <= zoom])
    truncated = len(idx) > limit
    if truncated:
        idx = idx[np.argsort(data.rank[idx], kind="stable")[:limit]]
    geoms = data.geoms[idx]
    if zoom < 16 and len(geoms):
        geoms = shapely.simplify(geoms, simplify_tolerance_deg(zoom), preserve_topology=True)
    texts = geojson.geometry_texts(geoms)  # RFC 7946: 7 decimals, exterior rings counter-clockwise
    parts = []
    for k, gj in zip(idx, texts, strict=True):
        props: dict[str, Any] = {"code": data.codes[k], "name": data.names[k], "kind": data.kinds[k]}
        if data.names_en[k]:
            props["name_en"] = data.names_en[k]
        if layer == "roads":
            props["speed_kmh"] = float(data.speed[k])
            props["oneway"] = int(data.oneway[k])
        for p in ("ref", "approximate", "area_code"):
            if p in data.props[k]:
                props[p] = data.props[k][p]
        parts.append('{"type":"Feature","id":' + json.dumps(data.codes[k]) + ',"geometry":' + gj + ',"properties":'
                     + json.dumps(props, ensure_ascii=False) + "}")
    head = json.dumps({"type": "FeatureCollection", "layer": layer, "zoom": zoom, "version": data.version,
                       "truncated": truncated}, ensure_ascii=False)[:-1]
    return head + ',"features":[' + ",".join(parts) + "]}"


def layers_info(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(BasemapLayer).order_by(BasemapLayer.key)).all()
    return [{"key": r.key, "version": r.version, "feature_count": r.feature_count, "source": r.source,
             "synthetic": r.synthetic, "imported_at": r.imported_at, "imported_by": r.imported_by} for r in rows]


def search(session: Session, q: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Named places, roads, water and areas whose name contains ``q`` (case-insensitive): exact
    matches first, then prefixes, then the rest; a road's pieces of one name are one result."""
    needle = q.strip().casefold()
    if not needle:
        raise InvalidInput([Problem("请输入要搜索的名称 q must not be empty", ["query", "q"], "missing")])
    found: list[tuple[tuple[int, int, int, str], dict[str, Any]]] = []
    for order, layer in enumerate(("places", "water", "roads")):
        data = _load(session, layer)
        if data is None:
            continue
        groups: dict[str, list[int]] = {}
        for k, (nm, en) in enumerate(zip(data.names, data.names_en, strict=True)):
            hay = f"{nm or ''}\n{en or ''}".casefold()
            if nm and needle in hay:
                groups.setdefault(nm, []).append(k)
        for nm, ks in groups.items():
            g = shapely.union_all(data.geoms[ks]) if len(ks) > 1 else data.geoms[ks[0]]
            p = g.representative_point() if g.geom_type != "Point" else g
            if "Line" in g.geom_type:
                p = shapely.get_parts(g)[0].interpolate(0.5, normalized=True) if len(ks) > 1 else g.interpolate(0.5, normalized=True)
            k0 = ks[0]
            score = 0 if nm.casefold() == needle else 1 if nm.casefold().startswith(needle) else 2
            found.append(((score, order, int(data.rank[k0]), nm), {
                "name": nm, "name_en": data.names_en[k0], "layer": layer, "kind": data.kinds[k0],
                "code": data.codes[k0], "lon": round(p.x, 6), "lat": round(p.y, 6),
                "bbox": [round(v, 6) for v in g.bounds]}))
    rows = session.execute(select(Area.code, Area.name, Area.level, Area.geom)
                           .where(Area.valid_to.is_(None), Area.name.contains(q.strip(), autoescape=True))
                           .order_by(Area.code).limit(limit)).all()
    for r in rows:
        p = r.geom.representative_point()
        score = 0 if r.name.casefold() == needle else 1 if r.name.casefold().startswith(needle) else 2
        found.append(((score, 3, 0, r.code), {"name": r.name, "name_en": None, "layer": "areas", "kind": r.level,
                                             "code": r.code, "lon": round(p.x, 6), "lat": round(p.y, 6),
                                             "bbox": [round(v, 6) for v in r.geom.bounds]}))
    found.sort(key=lambda t: t[0])
    return [item for _key, item in found[:limit]]


def road_features(session: Session) -> tuple[int, list[np.ndarray], np.ndarray, np.ndarray] | None:
    """(version, line coordinate arrays, speeds km/h, one-way flags) of the roads layer, or None."""
    data = _load(session, "roads")
    if data is None or not len(data.geoms):
        return None
    lines: list[np.ndarray] = []
    speeds: list[float] = []
    oneways: list[int] = []
    for g, s, o in zip(data.geoms, data.speed, data.oneway, strict=True):
        for part in shapely.get_parts(g):
            lines.append(np.asarray(shapely.get_coordinates(part)))
            speeds.append(float(s) if np.isfinite(s) else 30.0)
            oneways.append(int(o))
    return data.version, lines, np.asarray(speeds), np.asarray(oneways)
