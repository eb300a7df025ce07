"""Grid layers (多格合一): import from GeoJSON with all-or-nothing validation, listing, GeoJSON out.

Import format: an RFC 7946 GeoJSON ``FeatureCollection`` in WGS-84 longitude/latitude. Each
feature has a ``Polygon`` or ``MultiPolygon`` geometry and the required properties ``code``
(unique in the layer, at most 40 characters) and ``name`` (at most 100 characters); any other
properties are kept as they are. Every problem of the file is listed (feature index, field,
reason and, for geometric problems, a location) and nothing is written unless there is none.
A successful import of an existing layer replaces its features atomically with a new version;
the older versions stay readable (``version=`` on the GeoJSON route).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cityops.config import get_settings
from cityops.db import utcnow
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.geo import geojson
from cityops.geo.geom import areas_m2, polygon_parts
from cityops.geo.models import Area, GridLayer, LayerGrid
from cityops.security.principal import Principal

UNIFIED_KEY = "city_ops"
UNIFIED_NAME = ("城运网格", "City-operations grid (unified)")
KEY_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
MAX_FEATURES = 50_000
MAX_BYTES = 64 * 2**20
REQUIRED = ("code", "name")
ACCEPTED_CRS = {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326",
                "EPSG:4490", "urn:ogc:def:crs:EPSG::4490", "CRS84", "OGC:CRS84"}


def _loc(p: tuple[float, float] | None) -> dict[str, Any]:
    return {} if p is None else {"location": {"lon": round(p[0], 7), "lat": round(p[1], 7)}}


def _label(i: int, code: Any) -> str:
    return f"要素 features[{i}]" + (f" (code {code})" if isinstance(code, str) and code else "")


def check_key(key: str) -> None:
    if not re.fullmatch(KEY_PATTERN, key or ""):
        raise InvalidInput([Problem("图层标识须为小写字母开头的 2-40 位小写字母、数字或下划线 layer key must match "
                                    f"{KEY_PATTERN}", ["path", "key"])])


# --------------------------------------------------------------------------- parsing and validation

def parse_geojson_bytes(data: bytes, loc: str = "body") -> Any:
    if len(data) > MAX_BYTES:
        raise InvalidInput([Problem(f"文件过大 file larger than {MAX_BYTES // 2**20} MB", [loc], "too_large")])
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(f"文件须为 UTF-8 编码 the file is not UTF-8 ({exc.reason} at byte {exc.start})",
                                    [loc], "encoding")])
    except json.JSONDecodeError as exc:
        raise InvalidInput([Problem(f"不是合法的 JSON invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                                    [loc], "json_invalid")])


def _ring_problems(ring: Any, where: list[str | int], i: int, code: Any) -> tuple[list[Problem], np.ndarray | None]:
    """Shape and range of one linear ring's positions."""
    label = _label(i, code)
    if not isinstance(ring, list | tuple) or not all(isinstance(p, list | tuple) for p in ring):
        return [Problem(f"{label}: 坐标格式错误 a ring must be an array of positions", where, "coordinates")], None
    if any(len(p) < 2 or len(p) > 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
           for p in ring):
        return [Problem(f"{label}: 坐标须为 [经度, 纬度] 数值 each position must be [lon, lat] numbers", where,
                        "coordinates")], None
    xy = np.asarray([p[:2] for p in ring], dtype=float)
    probs: list[Problem] = []
    bad = ~np.isfinite(xy).all(axis=1) | (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        probs.append(Problem(f"{label}: 坐标超出范围 coordinate out of range at position {k}: {ring[k][:2]} "
                             "(需要 WGS-84 经度 -180..180、纬度 -90..90; lon/lat order)", [*where, k], "out_of_range",
                             {"feature": i}))
        return probs, None
    if len(xy) < 4:
        probs.append(Problem(f"{label}: 环至少需要 4 个坐标 a ring needs at least 4 positions, got {len(xy)}", where,
                             "geometry_invalid", {"feature": i}))
        return probs, None
    if not np.array_equal(xy[0], xy[-1]):
        probs.append(Problem(f"{label}: 环未闭合 ring not closed (first and last positions differ)", where,
                             "geometry_invalid", {"feature": i, **_loc((float(xy[0, 0]), float(xy[0, 1])))}))
        return probs, None
    return probs, xy


def _polygon_from(coords: Any, where: list[str | int], i: int, code: Any) -> tuple[list[Problem], BaseGeometry | None]:
    label = _label(i, code)
    if not isinstance(coords, list | tuple) or not coords:
        return [Problem(f"{label}: 多边形没有坐标 empty polygon", where, "geometry_invalid", {"feature": i})], None
    probs: list[Problem] = []
    rings: list[np.ndarray] = []
    for r, ring in enumerate(coords):
        p, xy = _ring_problems(ring, [*where, r], i, code)
        probs += p
        if xy is not None:
            rings.append(xy)
    if probs:
        return probs, None
    return [], shapely.Polygon(rings[0], rings[1:])


def _geometry(geom: Any, i: int, code: Any) -> tuple[list[Problem], BaseGeometry | None]:
    where: list[str | int] = ["features", i, "geometry"]
    label = _label(i, code)
    if not isinstance(geom, dict):
        return [Problem(f"{label}: 缺少几何 missing geometry", where, "missing", {"feature": i})], None
    gtype = geom.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        return [Problem(f"{label}: 几何类型须为 Polygon 或 MultiPolygon, 实为 {gtype!r} geometry must be a Polygon or "
                        "MultiPolygon", [*where, "type"], "geometry_type", {"feature": i})], None
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        return _polygon_from(coords, [*where, "coordinates"], i, code)
    if not isinstance(coords, list | tuple) or not coords:
        return [Problem(f"{label}: 多边形没有坐标 empty multipolygon", [*where, "coordinates"], "geometry_invalid",
                        {"feature": i})], None
    probs: list[Problem] = []
    polys = []
    for k, pc in enumerate(coords):
        p, poly = _polygon_from(pc, [*where, "coordinates", k], i, code)
        probs += p
        if poly is not None:
            polys.append(poly)
    if probs:
        return probs, None
    return [], shapely.MultiPolygon(polys)


_REASON_AT = re.compile(r"^(?P<reason>[^\[]+)\[(?P<x>[-+0-9.eE]+) (?P<y>[-+0-9.eE]+)\]")

REASONS_ZH = {"Self-intersection": "自相交", "Ring Self-intersection": "环自相交", "Hole lies outside shell": "洞在外环之外",
              "Interior is disconnected": "内部不连通", "Nested holes": "洞相互嵌套", "Nested shells": "多边形相互嵌套",
              "Duplicate Rings": "重复的环", "Too few points": "点数过少", "Invalid Coordinate": "坐标无效",
              "Ring is not closed": "环未闭合"}


def validity_problem(g: BaseGeometry, i: int, code: Any) -> Problem | None:
    """A problem naming the reason and the point where a geometry is invalid (GEOS's reason)."""
    if shapely.is_valid(g):
        return None
    reason = shapely.is_valid_reason(g)
    m = _REASON_AT.match(reason or "")
    where = None
    text = reason
    if m:
        text = m.group("reason").strip()
        where = (float(m.group("x")), float(m.group("y")))
    zh = REASONS_ZH.get(text, "几何无效")
    at = f" at lon {where[0]:.7f}, lat {where[1]:.7f}" if where else ""
    return Problem(f"{_label(i, code)}: 几何无效（{zh}）invalid geometry: {text}{at}", ["features", i, "geometry"],
                   "geometry_invalid", {"feature": i, "reason": text, **_loc(where)})


def _district(session: Session) -> BaseGeometry | None:
    g = session.scalar(select(Area.geom).where(Area.level == "district", Area.valid_to.is_(None)).order_by(Area.code).limit(1))
    return g


def validate_feature_collection(doc: Any, district: BaseGeometry | None, *, tolerance_m2: float | None = None
                                ) -> tuple[list[Problem], list[dict[str, Any]]]:
    """All problems of a layer file, and the parsed features (code, name, geom, properties)."""
    tol = get_settings().sliver_min_area_m2 if tolerance_m2 is None else tolerance_m2
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        return [Problem(f"须为 GeoJSON FeatureCollection, 实为 {got!r} expected a GeoJSON FeatureCollection", ["type"],
                        "geojson")], []
    crs = doc.get("crs")
    if crs is not None:
        name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
        if name not in ACCEPTED_CRS:
            return [Problem(f"坐标系须为 WGS-84 (RFC 7946), 实为 {name!r} coordinates must be WGS-84 lon/lat", ["crs"],
                            "crs")], []
    feats = doc.get("features")
    if not isinstance(feats, list | tuple):
        return [Problem("缺少 features 数组 missing features array", ["features"], "missing")], []
    if not feats:
        return [Problem("图层没有要素 the layer has no features", ["features"], "empty")], []
    if len(feats) > MAX_FEATURES:
        return [Problem(f"要素过多 at most {MAX_FEATURES} features, got {len(feats)}", ["features"], "too_large")], []

    problems: list[Problem] = []
    parsed: list[dict[str, Any]] = []
    ok_geoms: list[tuple[int, BaseGeometry]] = []
    first_of_code: dict[str, int] = {}
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            problems.append(Problem(f"要素 features[{i}]: 须为 GeoJSON Feature a feature must be {{\"type\": \"Feature\"}}",
                                    ["features", i, "type"], "geojson", {"feature": i}))
            continue
        props = f.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            problems.append(Problem(f"要素 features[{i}]: properties 须为对象 properties must be an object",
                                    ["features", i, "properties"], "type_error", {"feature": i}))
            props = {}
        code = props.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        for field, maxlen in (("code", 40), ("name", 100)):
            v = code if field == "code" else props.get("name")
            if v is None or (isinstance(v, str) and not v.strip()):
                problems.append(Problem(f"{_label(i, code)}: 缺少必填属性 {field} missing required property {field!r}",
                                        ["features", i, "properties", field], "missing", {"feature": i}))
            elif not isinstance(v, str):
                problems.append(Problem(f"{_label(i, code)}: 属性 {field} 须为字符串 property {field!r} must be a string",
                                        ["features", i, "properties", field], "type_error", {"feature": i}))
            elif len(v) > maxlen:
                problems.append(Problem(f"{_label(i, code)}: 属性 {field} 超过 {maxlen} 个字符 property {field!r} is "
                                        f"longer than {maxlen} characters", ["features", i, "properties", field],
                                        "too_long", {"feature": i}))
        if isinstance(code, str) and code.strip():
            if code in first_of_code:
                j = first_of_code[code]
                problems.append(Problem(f"{_label(i, code)}: 编码重复，与 features[{j}] 相同 duplicate code {code!r} "
                                        f"(also features[{j}])", ["features", i, "properties", "code"], "duplicate",
                                        {"feature": i, "other_feature": j}))
            else:
                first_of_code[code] = i
        gprobs, geom = _geometry(f.get("geometry"), i, code)
        problems += gprobs
        if geom is not None:
            if geom.is_empty:
                problems.append(Problem(f"{_label(i, code)}: 几何为空 empty geometry", ["features", i, "geometry"],
                                        "geometry_invalid", {"feature": i}))
                geom = None
            else:
                vp = validity_problem(geom, i, code)
                if vp is not None:
                    problems.append(vp)
                    # the repaired shape is still checked for overlaps and against the outline
                    parts = polygon_parts(shapely.make_valid(geom))
                    geom = shapely.MultiPolygon(parts) if parts else None
            if geom is not None:
                ok_geoms.append((i, geom))
        extra = {k: v for k, v in props.items() if k not in REQUIRED}
        parsed.append({"index": i, "code": code, "name": props.get("name"), "geom": geom, "properties": extra})

    code_of = {p["index"]: p["code"] for p in parsed}
    problems += _overlap_problems(ok_geoms, tol, code_of)
    if district is not None:
        problems += _outside_problems(ok_geoms, district, tol, code_of)
    return problems, parsed


def _overlap_problems(items: Sequence[tuple[int, BaseGeometry]], tol: float, code_of: dict[int, Any]) -> list[Problem]:
    """Pairs whose interiors share more than ``tol`` m² (set operations in WGS-84, areas in UTM)."""
    if len(items) < 2:
        return []
    idx = np.asarray([i for i, _ in items])
    arr = np.asarray([g for _, g in items], dtype=object)
    a, b = shapely.STRtree(arr).query(arr, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    if not len(a):
        return []
    inner = shapely.relate_pattern(arr[a], arr[b], "2********")
    a, b = a[inner], b[inner]
    if not len(a):
        return []
    inter = shapely.intersection(arr[a], arr[b])
    areas = areas_m2(inter)
    out = []
    for k in np.flatnonzero(areas > tol):
        i, j = int(idx[a[k]]), int(idx[b[k]])
        rp = shapely.point_on_surface(inter[k])
        out.append(Problem(f"{_label(i, code_of.get(i))} 与 {_label(j, code_of.get(j))} 重叠 {areas[k]:.1f} m² "
                           f"overlap of {areas[k]:.1f} m² around lon {rp.x:.6f}, lat {rp.y:.6f}",
                           ["features", i, "geometry"], "overlap",
                           {"feature": i, "other_feature": j, "area_m2": round(float(areas[k]), 2), **_loc((rp.x, rp.y))}))
    return out


def _outside_problems(items: Sequence[tuple[int, BaseGeometry]], district: BaseGeometry, tol: float,
                      code_of: dict[int, Any]) -> list[Problem]:
    if not items:
        return []
    shapely.prepare(district)
    arr = np.asarray([g for _, g in items], dtype=object)
    ks = np.flatnonzero(~shapely.covers(district, arr))
    if not len(ks):
        return []
    rest = shapely.difference(arr[ks], district)
    areas = areas_m2(rest)
    totals = areas_m2(arr[ks])
    out = []
    for j in np.flatnonzero(areas > tol):
        i = items[int(ks[j])][0]
        area, total = float(areas[j]), float(totals[j])
        rp = shapely.point_on_surface(rest[j])
        whole = area >= total * (1 - 1e-9)
        msg = ("完全位于本区之外 lies entirely outside the district" if whole else
               f"有 {area:.1f} m² ({area / total:.1%}) 位于本区之外 {area:.1f} m² lie outside the district")
        out.append(Problem(f"{_label(i, code_of.get(i))}: {msg} (around lon {rp.x:.6f}, lat {rp.y:.6f})",
                           ["features", i, "geometry"], "outside_district",
                           {"feature": i, "area_m2": round(area, 2), **_loc((rp.x, rp.y))}))
    return out


# --------------------------------------------------------------------------- writes

def import_layer(session: Session, principal: Principal, key: str, doc: Any, *, name: str | None = None,
                 name_en: str | None = None, description: str | None = None, source: str | None = None,
                 tolerance_m2: float | None = None) -> dict[str, Any]:
    """Validate ``doc`` (a parsed GeoJSON FeatureCollection) and make it the new version of layer
    ``key`` (created if new). Raises ``InvalidInput`` listing every problem; writes nothing then."""
    check_key(key)
    if key == UNIFIED_KEY:
        raise InvalidInput([Problem("城运网格是单元网格（行政区划）本身，不能以图层导入 the unified grid is the unit grids "
                                    "of the areas; it cannot be imported as a layer", ["path", "key"], "unified")])
    doc_name = doc.get("name") if isinstance(doc, dict) and isinstance(doc.get("name"), str) else None
    meta_probs = []
    for field, v, n in (("name", name or doc_name, 100), ("name_en", name_en, 100), ("description", description, 500)):
        if v is not None and len(v) > n:
            meta_probs.append(Problem(f"{field} 超过 {n} 个字符 longer than {n} characters", ["query", field], "too_long"))
    district = _district(session)
    if not (session.new or session.dirty or session.deleted):
        session.rollback()  # validate holding no lock (on SQLite every transaction takes the write lock)
    problems, feats = validate_feature_collection(doc, district, tolerance_m2=tolerance_m2)
    problems = meta_probs + problems
    if problems:
        raise InvalidInput(problems, layer=key, problem_count=len(problems))

    # the write: one transaction, the layer row locked (PostgreSQL) / the database (SQLite)
    layer = session.scalar(select(GridLayer).where(GridLayer.key == key).with_for_update())
    if layer is not None and layer.is_unified:
        session.rollback()
        raise InvalidInput([Problem(f"图层 {key} 是统一网格 layer {key} is the unified grid", ["path", "key"], "unified")])
    new_name = (name or doc_name or (layer.name if layer else None) or key).strip() or key
    now = utcnow()
    created = layer is None
    if layer is None:
        layer = GridLayer(key=key, name=new_name, name_en=name_en, is_unified=False, description=description,
                          version=0)
        session.add(layer)
    else:
        layer.name = new_name
        if name_en is not None:
            layer.name_en = name_en
        if description is not None:
            layer.description = description
    layer.version = (layer.version or 0) + 1
    layer.imported_at = now
    layer.imported_by = principal.username
    layer.source = (source or "")[:200] or None
    layer.feature_count = len(feats)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict([Problem(f"图层 {key} 正在被同时导入 layer {key} is being imported concurrently, retry",
                                ["path", "key"], "conflict")])
    geoms = [f["geom"] for f in feats]
    areas = areas_m2(geoms)
    session.add_all([
        LayerGrid(layer_id=layer.id, version=layer.version, code=f["code"], name=f["name"], geom=g,
                  area_m2=float(a), properties=f["properties"])
        for f, g, a in zip(feats, geoms, areas, strict=True)])
    summary = {"key": key, "name": layer.name, "version": layer.version, "created": created,
               "feature_count": len(feats), "total_area_m2": round(float(np.sum(areas)), 1),
               "imported_at": now, "imported_by": principal.username}
    _audit(session, principal, "layer_import", key, {"version": layer.version, "features": len(feats),
                                                     "source": source})
    return summary


def _audit(session: Session, principal: Principal, action: str, key: str, detail: dict[str, Any]) -> None:
    from cityops.security import audit

    audit.record(session, principal, action, "grid_layer", key, detail=detail)


# --------------------------------------------------------------------------- reads

def _unified_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Area).where(Area.level == "grid", Area.valid_to.is_(None))) or 0


def layer_out(session: Session, layer: GridLayer) -> dict[str, Any]:
    count = _unified_count(session) if layer.is_unified else layer.feature_count
    return {"key": layer.key, "name": layer.name, "name_en": layer.name_en, "is_unified": layer.is_unified,
            "description": layer.description, "version": layer.version, "feature_count": count,
            "imported_at": layer.imported_at, "imported_by": layer.imported_by, "source": layer.source}


def list_layers(session: Session, principal: Principal) -> list[dict[str, Any]]:
    rows = list(session.scalars(select(GridLayer).order_by(GridLayer.is_unified.desc(), GridLayer.key)))
    out = [layer_out(session, r) for r in rows]
    if not any(r.is_unified for r in rows):
        out.insert(0, {"key": UNIFIED_KEY, "name": UNIFIED_NAME[0], "name_en": UNIFIED_NAME[1], "is_unified": True,
                       "description": None, "version": 1, "feature_count": _unified_count(session),
                       "imported_at": None, "imported_by": None, "source": None})
    return out


def get_layer(session: Session, key: str) -> GridLayer:
    layer = session.scalar(select(GridLayer).where(GridLayer.key == key))
    if layer is None and key == UNIFIED_KEY:
        return GridLayer(key=UNIFIED_KEY, name=UNIFIED_NAME[0], name_en=UNIFIED_NAME[1], is_unified=True, version=1)
    if layer is None:
        raise NotFound([Problem(f"没有图层 {key} no layer {key!r}", ["path", "key"], "not_found")])
    return layer


def layer_features(session: Session, key: str, *, version: int | None = None) -> tuple[GridLayer, list[dict[str, Any]]]:
    """(layer, features) with code, name, geom (WGS-84), area_m2 and properties; for the unified
    layer the current unit grids."""
    layer = get_layer(session, key)
    if layer.is_unified:
        rows = session.execute(select(Area.code, Area.name, Area.geom, Area.area_m2, Area.parent_code)
                               .where(Area.level == "grid", Area.valid_to.is_(None)).order_by(Area.code)).all()
        return layer, [{"code": r.code, "name": r.name, "geom": r.geom, "area_m2": r.area_m2,
                        "properties": {"community_code": r.parent_code, "street_code": r.code[:9]}} for r in rows]
    v = layer.version if version is None else version
    if v < 1 or v > layer.version:
        raise NotFound([Problem(f"图层 {key} 没有第 {v} 版 layer {key!r} has no version {v} (current {layer.version})",
                                ["query", "version"], "not_found")])
    rows = session.execute(select(LayerGrid.code, LayerGrid.name, LayerGrid.geom, LayerGrid.area_m2, LayerGrid.properties)
                           .where(LayerGrid.layer_id == layer.id, LayerGrid.version == v).order_by(LayerGrid.code)).all()
    return layer, [{"code": r.code, "name": r.name, "geom": r.geom, "area_m2": r.area_m2,
                    "properties": dict(r.properties or {})} for r in rows]


def parse_bbox(bbox: str | None) -> tuple[float, float, float, float] | None:
    if bbox is None or not bbox.strip():
        return None
    try:
        vals = [float(v) for v in bbox.split(",")]
    except ValueError:
        vals = []
    if (len(vals) != 4 or not all(math.isfinite(v) for v in vals) or not (-180 <= vals[0] <= vals[2] <= 180)
            or not (-90 <= vals[1] <= vals[3] <= 90)):
        raise InvalidInput([Problem("bbox 须为 最小经度,最小纬度,最大经度,最大纬度 bbox must be minLon,minLat,maxLon,maxLat "
                                    "in WGS-84", ["query", "bbox"])])
    return vals[0], vals[1], vals[2], vals[3]


def layer_geojson(session: Session, principal: Principal, key: str, *, bbox: str | None = None,
                  code_prefix: str | None = None, version: int | None = None,
                  simplify_m: float = 0.0) -> dict[str, Any]:
    box = parse_bbox(bbox)
    layer, feats = layer_features(session, key, version=version)
    if code_prefix:
        feats = [f for f in feats if f["code"].startswith(code_prefix)]
    if box is not None and feats:
        hit = shapely.intersects(shapely.box(*box), np.asarray([f["geom"] for f in feats], dtype=object))
        feats = [f for f, h in zip(feats, hit, strict=True) if h]
    out = []
    for f in feats:
        g = f["geom"]
        if simplify_m > 0:
            g = shapely.simplify(g, simplify_m / 111_000.0, preserve_topology=True)
        out.append({"type": "Feature", "id": f["code"], "geometry": geojson.geometry(g),
                    "properties": {**f["properties"], "code": f["code"], "name": f["name"],
                                   "area_m2": round(float(f["area_m2"] or 0.0), 1)}})
    return {"type": "FeatureCollection", "name": layer.name, "layer": layer.key,
            "version": layer.version if version is None else version, "features": out}
