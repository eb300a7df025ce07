"""Routes of the grid base: thin wrappers around ``cityops.geo.service``."""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityops.errors import InvalidInput, Problem
from cityops.geo import crosswalk, layers, schemas, service, topology
from cityops.geo.geojson import GeoJSONResponse
from cityops.security.deps import public_route, require
from cityops.security.principal import Principal
from cityops.uow import StreamingReads, UnitOfWork

router = APIRouter(prefix="/api/v1")
AREAS: list[str | Enum] = ["areas"]
LAYERS: list[str | Enum] = ["layers"]


@router.get("/areas", tags=AREAS, response_model=schemas.AreaPage, summary="行政区划与网格列表 List areas",
            dependencies=[Depends(public_route)])
def list_areas(
    level: schemas.Level | None = Query(None, description="district / street / community / grid"),
    parent_code: str | None = Query(None, max_length=15, pattern=r"^\d{6,15}$"),
    code_prefix: str | None = Query(None, max_length=15, pattern=r"^\d{1,15}$", description="filter by area code"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(100, ge=1, le=5000),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    total, rows = service.list_areas(session, level=level, parent_code=parent_code, code_prefix=code_prefix,
                                     page=page, page_size=page_size)
    return {"total": total, "page": page, "page_size": page_size, "items": rows}


@router.get("/areas.geojson", tags=AREAS, summary="区划边界 GeoJSON FeatureCollection", dependencies=[Depends(public_route)],
            response_class=GeoJSONResponse)
def areas_geojson(
    level: schemas.Level = Query("street"),
    parent_code: str | None = Query(None, max_length=15, pattern=r"^\d{6,15}$"),
    code_prefix: str | None = Query(None, max_length=15, pattern=r"^\d{1,15}$"),
    simplify_m: float = Query(0.0, ge=0, le=500, description="simplification tolerance in metres"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    _, rows = service.list_areas(session, level=level, parent_code=parent_code, code_prefix=code_prefix,
                                 page=1, page_size=100_000)
    return service.feature_collection([service.area_feature(a, simplify_m) for a in rows])


@router.get("/areas/{code}", tags=AREAS, response_model=schemas.AreaDetail, summary="区划详情 One area",
            dependencies=[Depends(public_route)])
def get_area(code: str, session: Session = UnitOfWork) -> dict[str, Any]:
    return service.area_detail(session, code)


@router.get("/areas/{code}/geojson", tags=AREAS, summary="区划边界 GeoJSON Feature", dependencies=[Depends(public_route)],
            response_class=GeoJSONResponse)
def get_area_geojson(code: str, session: Session = UnitOfWork) -> dict[str, Any]:
    return service.area_feature(service.get_area(session, code))


@router.get("/grids/locate", tags=AREAS, response_model=schemas.LocateOut, summary="点位落格 Which grid covers this point",
            dependencies=[Depends(public_route)])
def locate(lat: float = Query(..., ge=-90, le=90), lon: float = Query(..., ge=-180, le=180),
           session: Session = UnitOfWork) -> dict[str, Any]:
    return service.locate_one(session, lat, lon)


@router.post("/grids/locate", tags=AREAS, response_model=schemas.LocateBatchOut, summary="批量落格 Locate many points",
             dependencies=[Depends(public_route)])
def locate_batch(body: schemas.LocateBatchIn, session: Session = UnitOfWork) -> dict[str, Any]:
    lon = np.array([p.lon for p in body.points], dtype=float)
    lat = np.array([p.lat for p in body.points], dtype=float)
    items = service.locate_many(session, lon, lat, with_layers=body.layers)
    for item, p in zip(items, body.points, strict=True):
        item["id"] = p.id
    return {"items": items, "outside": sum(1 for i in items if not i["inside"])}


# ------------------------------------------------------------------------------------------ layers

KEY = Path(..., pattern=layers.KEY_PATTERN, max_length=40, description="图层标识 layer key, e.g. policing, city_ops")
PREFIX = Query(None, max_length=15, pattern=r"^\d{1,15}$", description="按统一网格编码前缀筛选 filter by area code")


@router.get("/layers", response_model=schemas.LayerList, tags=LAYERS, summary="网格图层列表 List grid layers")
def list_layers(principal: Principal = require("layer.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": layers.list_layers(session, principal)}


@router.get("/layers/{key}.geojson", tags=LAYERS, summary="图层要素 GeoJSON FeatureCollection of a layer",
            response_class=GeoJSONResponse)
def layer_geojson(
    key: str = KEY,
    bbox: str | None = Query(None, max_length=200, pattern=r"^\s*-?\d{1,3}(\.\d+)?\s*(,\s*-?\d{1,3}(\.\d+)?\s*){3}$", description="minLon,minLat,maxLon,maxLat (WGS-84)"),
    code_prefix: str | None = Query(None, max_length=40, description="按要素编码前缀筛选 filter by feature code prefix"),
    version: int | None = Query(None, ge=1, le=1_000_000, description="历史版本 an older version of the layer"),
    simplify_m: float = Query(0.0, ge=0, le=500, description="simplification tolerance in metres"),
    principal: Principal = require("layer.read"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    return layers.layer_geojson(session, principal, key, bbox=bbox, code_prefix=code_prefix, version=version,
                                simplify_m=simplify_m)


@router.get("/layers/{key}/topology", response_model=schemas.TopologyReport, tags=LAYERS,
            summary="拓扑检查 Topology report: gaps, overlaps, slivers, features outside the district")
def layer_topology(
    key: str = KEY,
    tolerance_m2: float | None = Query(None, ge=0, le=1e8, description="面积容差 area tolerance (m²)"),
    width_m: float | None = Query(None, ge=0, le=1000, description="细长部分宽度 thin-part width (m)"),
    tiny_m2: float = Query(topology.TINY_M2, ge=0, le=1e8, description="碎片面积 tiny polygon area (m²)"),
    principal: Principal = require("layer.read"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    return topology.topology_report(session, principal, key, tolerance_m2=tolerance_m2, width_m=width_m,
                                    tiny_m2=tiny_m2)


@router.get("/layers/{key}/crosswalk", response_model=schemas.CrosswalkPage, tags=LAYERS,
            summary="多格合一对照表 Crosswalk: share of each unified grid covered by each grid of the layer")
def layer_crosswalk(
    key: str = KEY,
    code_prefix: str | None = PREFIX,
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(100, ge=1, le=5000),
    principal: Principal = require("layer.read"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    return crosswalk.crosswalk_page(session, principal, key, code_prefix=code_prefix, page=page, page_size=page_size)


@router.get("/layers/{key}/crosswalk.csv", tags=LAYERS, response_class=StreamingResponse,
            summary="对照表 CSV Crosswalk as CSV (UTF-8)",
            responses={200: {"content": {"text/csv": {}}, "description": "one row per (unified grid, layer grid)"}})
def layer_crosswalk_csv(
    key: str = KEY,
    code_prefix: str | None = PREFIX,
    principal: Principal = require("layer.read"),
    session: Session = StreamingReads,
) -> StreamingResponse:
    rows = crosswalk.crosswalk_csv(session, principal, key, code_prefix=code_prefix)
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="crosswalk_{key}.csv"'})


_FC_SCHEMA = {
    "type": "object", "title": "FeatureCollection", "required": ["type", "features"],
    "description": "RFC 7946 FeatureCollection, WGS-84; every feature a Polygon/MultiPolygon with properties code, name",
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "name": {"type": "string"},
        "features": {"type": "array", "items": {
            "type": "object", "required": ["type", "geometry", "properties"],
            "properties": {"type": {"type": "string", "enum": ["Feature"]},
                           "geometry": {"type": "object"},
                           "properties": {"type": "object", "required": ["code", "name"],
                                          "properties": {"code": {"type": "string"}, "name": {"type": "string"}}}}}},
    },
}
_IMPORT_BODY = {
    "required": True,
    "content": {
        "application/geo+json": {"schema": _FC_SCHEMA},
        "application/json": {"schema": _FC_SCHEMA},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "GeoJSON file"},
                           "name": {"type": "string", "maxLength": 100}, "name_en": {"type": "string", "maxLength": 100},
                           "description": {"type": "string", "maxLength": 500}}}},
    },
}


@router.post("/layers/{key}/import", response_model=schemas.LayerImportOut, tags=LAYERS,
             summary="导入图层 Import (or replace) a layer from GeoJSON; all-or-nothing",
             openapi_extra={"requestBody": _IMPORT_BODY})
async def import_layer(
    request: Request,
    key: str = KEY,
    name: str | None = Query(None, max_length=100, description="图层名称 layer name"),
    name_en: str | None = Query(None, max_length=100),
    description: str | None = Query(None, max_length=500),
    tolerance_m2: float | None = Query(None, ge=0, le=1e8, description="重叠/出界面积容差 overlap tolerance (m²)"),
    principal: Principal = require("layer.write"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    doc, source, form = await _read_geojson(request)
    return await run_in_threadpool(
        layers.import_layer, session, principal, key, doc, name=name or form.get("name"),
        name_en=name_en or form.get("name_en"), description=description or form.get("description"), source=source,
        tolerance_m2=tolerance_m2)


async def _read_geojson(request: Request) -> tuple[Any, str | None, dict[str, str]]:
    """(parsed document, file name, other form fields) from a JSON body or a multipart upload."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > layers.MAX_BYTES + 2**20:
        raise InvalidInput([Problem(f"文件过大 larger than {layers.MAX_BYTES // 2**20} MB", ["body"], "too_large")])
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as exc:  # malformed multipart bodies are the client's problem
            raise InvalidInput([Problem(f"无法解析上传内容 malformed multipart body: {exc}", ["body"], "multipart")])
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k in ("name", "name_en", "description")}
        if upload is None or isinstance(upload, str):
            raise InvalidInput([Problem("缺少文件字段 file missing form field 'file' (the GeoJSON file)", ["body", "file"],
                                        "missing")])
        data = await upload.read(layers.MAX_BYTES + 1)
        return layers.parse_geojson_bytes(data, "file"), upload.filename, fields
    data = await request.body()
    if not data:
        raise InvalidInput([Problem("请求体为空 empty body: send a GeoJSON FeatureCollection", ["body"], "missing")])
    return layers.parse_geojson_bytes(data, "body"), None, {}


@router.get("/layers/{key}", response_model=schemas.LayerOut, tags=LAYERS, summary="图层信息 One layer")
def get_layer(key: str = KEY, principal: Principal = require("layer.read"),
              session: Session = UnitOfWork) -> dict[str, Any]:
    return layers.layer_out(session, layers.get_layer(session, key))
