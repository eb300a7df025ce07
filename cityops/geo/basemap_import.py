"""Base-map import from OpenStreetMap-style GeoJSON (osmtogeojson, ``osmium export``, ogr2ogr,
QGIS): all or nothing, every bad feature named.

Each feature of the FeatureCollection is classified by its OSM tags (``properties``, or
``properties.tags`` as osmtogeojson writes them):

* **roads**: ``highway`` one of ``DRIVABLE`` with a LineString/MultiLineString geometry; ``maxspeed``
  (km/h: ``60``, ``"60"``, ``"60 km/h"``, ``"40 mph"``; a country-implicit value such as
  ``"CN:urban"`` or none means the class default ``DEFAULT_SPEED``), ``oneway`` (``yes/true/1``,
  ``no/false/0``, ``-1/reverse``; implied ``yes`` on ``highway=motorway`` and roundabouts, as in
  OSM), ``name``, ``name:en``, ``ref``;
* **water**: ``natural=water``, ``waterway=*``, ``water=*`` or ``landuse=reservoir|basin``:
  polygons (or lines for waterways drawn as lines);
* **places**: ``place=*`` or a named ``amenity``, ``tourism``, ``leisure``, ``office``, ``shop``,
  ``healthcare``, ``historic``, ``railway=station`` feature: points (a polygon becomes its
  representative point); a place needs a ``name``.

Everything else (buildings, land use, footways, nodes such as traffic signals, unnamed places,
unknown highway values) is skipped and counted by reason. Problems that reject the whole file:
a feature that is not a GeoJSON Feature, a missing or malformed geometry (non-numeric, NaN or
out-of-range coordinates, a line with fewer than two distinct positions, an unclosed or
self-intersecting ring), a road line of a drivable class given as another geometry type, an
unreadable ``maxspeed`` or ``oneway``, a ``name`` that is not a string or longer than 100
characters, a duplicate id within a layer, a feature lying entirely more than ``FAR_DEG`` degrees
(~20 km) outside the district's box, and a file with nothing to import.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cityops.errors import Problem
from cityops.geo.layers import ACCEPTED_CRS, validity_problem

MAX_FEATURES = 300_000
FAR_DEG = 0.2
DEFAULT_SPEED = {"motorway": 100.0, "motorway_link": 60.0, "trunk": 70.0, "trunk_link": 50.0, "primary": 60.0,
                 "primary_link": 40.0, "secondary": 50.0, "secondary_link": 40.0, "tertiary": 40.0,
                 "tertiary_link": 30.0, "unclassified": 30.0, "residential": 30.0, "living_street": 15.0,
                 "service": 20.0, "road": 30.0}
DRIVABLE = set(DEFAULT_SPEED)
NOT_DRIVABLE = {"footway", "path", "cycleway", "steps", "pedestrian", "bridleway", "track", "corridor", "proposed",
                "construction", "platform", "elevator", "bus_stop", "traffic_signals", "crossing", "street_lamp",
                "turning_circle", "turning_loop", "give_way", "stop", "milestone", "motorway_junction", "services",
                "rest_area", "raceway", "busway", "bus_guideway", "escape", "abandoned", "disused", "via_ferrata",
                "emergency_access_point", "speed_camera", "mini_roundabout", "passing_place", "toll_gantry"}
PLACE_TAGS = ("amenity", "tourism", "leisure", "office", "shop", "healthcare", "historic")
_ONEWAY = {"yes": 1, "true": 1, "1": 1, "no": 0, "false": 0, "0": 0, "-1": -1, "reverse": -1, "reversible": 0,
           "alternating": 0}
_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph)?\s*$", re.I)
_IMPLICIT_SPEED_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]+)?:[a-z_]+$")


def _label(i: int, fid: Any) -> str:
    return f"要素 features[{i}]" + (f" (id {fid})" if fid not in (None, "") else "")


def _tags(f: dict[str, Any]) -> dict[str, Any]:
    props = f.get("properties")
    props = dict(props) if isinstance(props, dict) else {}
    nested = props.pop("tags", None)
    if isinstance(nested, dict):
        props = {**nested, **props}
    return props


def _fid(f: dict[str, Any], tags: dict[str, Any]) -> str | None:
    for v in (f.get("id"), tags.get("@id"), tags.get("osm_id"), tags.get("id"), tags.get("code")):
        if isinstance(v, int | str) and not isinstance(v, bool) and str(v).strip():
            return str(v).strip()[:64]
    return None


def _positions(coords: Any, where: list[str | int], label: str) -> tuple[Problem | None, np.ndarray | None]:
    if (not isinstance(coords, list | tuple) or not coords
            or not all(isinstance(p, list | tuple) and 2 <= len(p) <= 3 for p in coords)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for p in coords for v in p)):
        return Problem(f"{label}: 坐标须为 [经度, 纬度] 数值数组 positions must be arrays of [lon, lat] numbers", where,
                       "coordinates"), None
    xy = np.asarray([p[:2] for p in coords], dtype=float)
    bad = ~np.isfinite(xy).all(axis=1) | (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        return Problem(f"{label}: 坐标超出范围或非数值 coordinate out of range or not finite at position {k}: "
                       f"{list(coords[k][:2])} (WGS-84 经度 -180..180、纬度 -90..90; lon/lat order)", [*where, k],
                       "out_of_range"), None
    return None, xy


def _lines(geom: dict[str, Any], where: list[str | int], label: str) -> tuple[list[Problem], list[np.ndarray]]:
    gtype, coords = geom.get("type"), geom.get("coordinates")
    parts = [coords] if gtype == "LineString" else (coords if isinstance(coords, list | tuple) else None)
    if not parts:
        return [Problem(f"{label}: 线没有坐标 empty line", [*where, "coordinates"], "geometry_invalid")], []
    probs, out = [], []
    for k, part in enumerate(parts):
        w = [*where, "coordinates"] + ([] if gtype == "LineString" else [k])
        p, xy = _positions(part, w, label)
        if p is not None:
            probs.append(p)
            continue
        assert xy is not None
        if len(np.unique(np.round(xy * 1e7), axis=0)) < 2:
            probs.append(Problem(f"{label}: 线至少需要两个不同的点 a line needs two distinct positions", w, "geometry_invalid"))
            continue
        out.append(xy)
    return probs, out


def _polygon(coords: Any, where: list[str | int], label: str) -> tuple[list[Problem], BaseGeometry | None]:
    if not isinstance(coords, list | tuple) or not coords:
        return [Problem(f"{label}: 多边形没有坐标 empty polygon", where, "geometry_invalid")], None
    rings, probs = [], []
    for r, ring in enumerate(coords):
        p, xy = _positions(ring, [*where, r], label)
        if p is not None:
            probs.append(p)
            continue
        assert xy is not None
        if len(xy) < 4 or not np.array_equal(xy[0], xy[-1]):
            probs.append(Problem(f"{label}: 环须闭合且至少 4 个坐标 a ring must be closed with at least 4 positions",
                                 [*where, r], "geometry_invalid"))
            continue
        rings.append(xy)
    if probs:
        return probs, None
    return [], shapely.Polygon(rings[0], rings[1:])


def _geometry(geom: Any, i: int, label: str) -> tuple[list[Problem], str | None, Any]:
    """(problems, type, parsed): parsed is a list of line arrays, a polygon geometry or a point array."""
    where: list[str | int] = ["features", i, "geometry"]
    if not isinstance(geom, dict):
        return [Problem(f"{label}: 缺少几何 missing geometry", where, "missing")], None, None
    gtype = geom.get("type")
    if gtype in ("LineString", "MultiLineString"):
        probs, lines = _lines(geom, where, label)
        return probs, "line", lines
    if gtype == "Point":
        p, xy = _positions([geom.get("coordinates")], [*where, "coordinates"], label)
        return ([p] if p else []), "point", xy
    if gtype in ("Polygon", "MultiPolygon"):
        coords = geom.get("coordinates")
        polys, probs = [], []
        parts = [coords] if gtype == "Polygon" else (coords if isinstance(coords, list | tuple) and coords else None)
        if parts is None:
            return [Problem(f"{label}: 多边形没有坐标 empty multipolygon", where, "geometry_invalid")], None, None
        for k, pc in enumerate(parts):
            pp, poly = _polygon(pc, [*where, "coordinates"] + ([] if gtype == "Polygon" else [k]), label)
            probs += pp
            if poly is not None:
                polys.append(poly)
        if probs:
            return probs, None, None
        g = polys[0] if gtype == "Polygon" else shapely.MultiPolygon(polys)
        vp = validity_problem(g, i, None)
        if vp is not None:
            vp.msg = vp.msg.replace(_label(i, None), label)
            return [vp], None, None
        return [], "polygon", g
    if gtype == "MultiPoint" or gtype == "GeometryCollection":
        return [], "other", None
    return [Problem(f"{label}: 未知几何类型 {gtype!r} unknown geometry type", [*where, "type"], "geometry_type")], None, None


def _speed(v: Any, kind: str, label: str, i: int) -> tuple[Problem | None, float]:
    default = DEFAULT_SPEED[kind]
    if v is None or v == "":
        return None, default
    if isinstance(v, int | float) and not isinstance(v, bool):
        s = float(v)
    elif isinstance(v, str) and _IMPLICIT_SPEED_RE.match(v.strip()):
        return None, default
    elif isinstance(v, str) and (m := _SPEED_RE.match(v)):
        s = float(m.group(1)) * (1.609344 if (m.group(2) or "").lower() == "mph" else 1.0)
    else:
        s = float("nan")
    if not math.isfinite(s) or not 1 <= s <= 200:
        return Problem(f"{label}: 限速 maxspeed {v!r} 无法识别或超出 1-200 km/h unreadable or outside 1-200 km/h",
                       ["features", i, "properties", "maxspeed"], "maxspeed"), default
    return None, s


def _oneway(tags: dict[str, Any], kind: str, label: str, i: int) -> tuple[Problem | None, int]:
    v = tags.get("oneway")
    if v is None or v == "":
        return None, 1 if (kind == "motorway" or tags.get("junction") in ("roundabout", "circular")) else 0
    key = str(v).strip().lower() if not isinstance(v, bool) else ("yes" if v else "no")
    if key not in _ONEWAY:
        return Problem(f"{label}: 单行标记 oneway {v!r} 无法识别 unreadable (yes / no / -1)",
                       ["features", i, "properties", "oneway"], "oneway"), 0
    return None, _ONEWAY[key]


def _classify(tags: dict[str, Any]) -> tuple[str | None, str]:
    """(layer or None, kind or the reason for skipping)."""
    hw = tags.get("highway")
    if hw is not None:
        hw = str(hw)
        if hw in DRIVABLE:
            return "roads", hw
        return None, "not_drivable" if hw in NOT_DRIVABLE else "unknown_highway"
    if tags.get("natural") == "water" or tags.get("waterway") or tags.get("water") or \
            tags.get("landuse") in ("reservoir", "basin"):
        return "water", str(tags.get("water") or tags.get("waterway") or tags.get("landuse") or "water")
    if tags.get("place"):
        return "places", str(tags["place"])
    for t in PLACE_TAGS:
        if tags.get(t):
            return "places", str(tags[t])
    if tags.get("railway") == "station" or tags.get("public_transport") == "station":
        return "places", "station"
    return None, "not_basemap"


def parse_osm_geojson(doc: Any, district_box: tuple[float, float, float, float] | None
                      ) -> tuple[list[Problem], dict[str, list[dict[str, Any]]], dict[str, list[int]]]:
    """(problems, features by layer, skipped feature indices by reason)."""
    out: dict[str, list[dict[str, Any]]] = {"roads": [], "water": [], "places": []}
    skipped: dict[str, list[int]] = {}
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        return [Problem(f"须为 GeoJSON FeatureCollection, 实为 {got!r} expected a GeoJSON FeatureCollection", ["type"],
                        "geojson")], out, skipped
    crs = doc.get("crs")
    if crs is not None:
        name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
        if name not in ACCEPTED_CRS:
            return [Problem(f"坐标系须为 WGS-84 (RFC 7946), 实为 {name!r} coordinates must be WGS-84 lon/lat", ["crs"],
                            "crs")], out, skipped
    feats = doc.get("features")
    if not isinstance(feats, list | tuple):
        return [Problem("缺少 features 数组 missing features array", ["features"], "missing")], out, skipped
    if len(feats) > MAX_FEATURES:
        return [Problem(f"要素过多 at most {MAX_FEATURES} features, got {len(feats)}", ["features"], "too_large")], out, skipped
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            problems.append(Problem(f"要素 features[{i}]: 须为 GeoJSON Feature a feature must be {{\"type\": \"Feature\"}}",
                                    ["features", i, "type"], "geojson"))
            continue
        if f.get("properties") is not None and not isinstance(f.get("properties"), dict):
            problems.append(Problem(f"要素 features[{i}]: properties 须为对象 properties must be an object",
                                    ["features", i, "properties"], "type_error"))
            continue
        tags = _tags(f)
        fid = _fid(f, tags)
        label = _label(i, fid)
        layer, kind = _classify(tags)
        gprobs, gtype, parsed = _geometry(f.get("geometry"), i, label)
        if gprobs:
            problems += gprobs
            continue
        if layer is None or gtype == "other":
            skipped.setdefault(kind if layer is None else "geometry_type", []).append(i)
            continue
        name, name_en = tags.get("name"), tags.get("name:en") or tags.get("name_en")
        bad_name = False
        for field, v in (("name", name), ("name:en", name_en)):
            if v is not None and (not isinstance(v, str) or len(v) > 100):
                problems.append(Problem(f"{label}: {field} 须为不超过 100 个字符的字符串 must be a string of at most 100 "
                                        "characters", ["features", i, "properties", field], "name"))
                bad_name = True
        if bad_name:
            continue
        name = name.strip() or None if isinstance(name, str) else None
        item: dict[str, Any] = {"index": i, "code": fid, "name": name, "name_en": name_en, "kind": kind,
                                "speed_kmh": None, "oneway": 0, "properties": {}}
        if layer == "roads":
            if gtype != "line":
                skipped.setdefault("highway_area" if gtype == "polygon" else "highway_node", []).append(i)
                continue
            p1, item["speed_kmh"] = _speed(tags.get("maxspeed"), kind, label, i)
            p2, item["oneway"] = _oneway(tags, kind, label, i)
            if p1 or p2:
                problems += [p for p in (p1, p2) if p]
                continue
            geom: BaseGeometry = (shapely.LineString(parsed[0]) if len(parsed) == 1
                                  else shapely.MultiLineString(parsed))
            if tags.get("ref"):
                item["properties"]["ref"] = str(tags["ref"])[:40]
        elif layer == "water":
            if gtype == "point":
                skipped.setdefault("water_point", []).append(i)
                continue
            geom = parsed if gtype == "polygon" else (shapely.LineString(parsed[0]) if len(parsed) == 1
                                                      else shapely.MultiLineString(parsed))
        else:
            if not name:
                skipped.setdefault("unnamed_place", []).append(i)
                continue
            if gtype == "point":
                geom = shapely.Point(parsed[0])
            elif gtype == "polygon":
                geom = parsed.representative_point()
            else:
                geom = shapely.LineString(parsed[0]).interpolate(0.5, normalized=True)
        if district_box is not None:
            w, s, e, n = district_box
            gx0, gy0, gx1, gy1 = geom.bounds
            if gx1 < w - FAR_DEG or gx0 > e + FAR_DEG or gy1 < s - FAR_DEG or gy0 > n + FAR_DEG:
                problems.append(Problem(f"{label}: 远在本区范围之外 lies far outside the district (more than {FAR_DEG}° "
                                        f"beyond its box; wrong coordinates or another area?)",
                                        ["features", i, "geometry"], "outside_district"))
                continue
        if fid is not None:
            if (layer, fid) in seen:
                j = seen[(layer, fid)]
                problems.append(Problem(f"{label}: 编号重复，与 features[{j}] 相同 duplicate id {fid!r} (also features[{j}])",
                                        ["features", i, "id"], "duplicate"))
                continue
            seen[(layer, fid)] = i
        item["geom"] = geom
        out[layer].append(item)
    if not problems and not any(out.values()):
        problems.append(Problem("文件中没有道路、水系或地名 nothing to import: no roads, water or named places",
                                ["features"], "empty"))
    for layer, items in out.items():
        used = {it["code"] for it in items if it["code"]}
        n = 0
        for it in items:
            if it["code"] is None:
                n += 1
                while f"{layer[0]}{n}" in used:
                    n += 1
                it["code"] = f"{layer[0]}{n}"
    return problems, out, skipped
