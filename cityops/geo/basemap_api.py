"""Routes of the base map (底图): vector layers, place search, OSM-style GeoJSON import."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityops.errors import InvalidInput, Problem
from cityops.geo import basemap, schemas
from cityops.geo.api import _IMPORT_BODY, _read_geojson
from cityops.geo.basemap_models import BASEMAP_LAYERS
from cityops.security.deps import public_route, require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/basemap")
TAGS: list[str | Enum] = ["basemap"]


@router.get("", tags=TAGS, response_model=schemas.BasemapLayers, summary="底图图层 Base-map layers",
            dependencies=[Depends(public_route)])
def list_basemap(session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": basemap.layers_info(session)}


@router.get("/search", tags=TAGS, response_model=schemas.PlaceSearchOut, summary="地名搜索 Search places, roads and areas",
            dependencies=[Depends(public_route)])
def search(q: str = Query(..., min_length=1, max_length=50, description="名称（包含即可） part of a name"),
           limit: int = Query(20, ge=1, le=100), session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": basemap.search(session, q, limit=limit)}


@router.get("/{layer}", tags=TAGS, summary="底图矢量图层 GeoJSON of a base-map layer (roads / water / places)",
            response_class=Response, dependencies=[Depends(public_route)],
            responses={200: {"content": {"application/geo+json": {}}, "description": "GeoJSON FeatureCollection"}})
def layer_geojson(
    layer: str = Path(..., pattern="^(" + "|".join(BASEMAP_LAYERS) + ")$", description="roads / water / places"),
    bbox: str | None = Query(None, max_length=200, pattern=r"^\s*-?\d{1,3}(\.\d+)?\s*(,\s*-?\d{1,3}(\.\d+)?\s*){3}$", description="minLon,minLat,maxLon,maxLat (WGS-84)"),
    zoom: float = Query(14.0, ge=0, le=22, description="地图缩放级别：决定要素取舍与简化 map zoom: selects and simplifies"),
    session: Session = UnitOfWork,
) -> Response:
    return Response(basemap.layer_geojson(session, layer, bbox=bbox, zoom=zoom), media_type="application/geo+json")


@router.post("/import", tags=TAGS, response_model=schemas.BasemapImportOut,
             summary="导入底图 Import roads, water and places from OSM-style GeoJSON; all-or-nothing",
             openapi_extra={"requestBody": _IMPORT_BODY})
async def import_basemap(
    request: Request,
    layers: str | None = Query(None, max_length=40, description="只替换这些图层 replace only these layers, e.g. roads,water"),
    principal: Principal = require("layer.write"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    only = [x.strip() for x in layers.split(",") if x.strip()] if layers else None
    bad = [x for x in only or [] if x not in BASEMAP_LAYERS]
    if bad:
        raise InvalidInput([Problem(f"未知底图图层 unknown base-map layer(s) {', '.join(bad)} (roads / water / places)",
                                    ["query", "layers"])])
    doc, source, _form = await _read_geojson(request)
    return await run_in_threadpool(basemap.import_geojson, session, principal, doc, source=source, only=only)
