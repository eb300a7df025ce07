"""Routes of the grid base: thin wrappers around ``cityops.geo.service``."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from cityops.db import get_session
from cityops.geo import schemas, service
from cityops.security.deps import public_route

router = APIRouter(prefix="/api/v1", tags=["areas"])


@router.get("/areas", response_model=schemas.AreaPage, summary="行政区划与网格列表 List areas",
            dependencies=[Depends(public_route)])
def list_areas(
    level: schemas.Level | None = Query(None, description="district / street / community / grid"),
    parent_code: str | None = Query(None, max_length=15, pattern=r"^\d{6,15}$"),
    code_prefix: str | None = Query(None, max_length=15, pattern=r"^\d{1,15}$", description="filter by area code"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(100, ge=1, le=5000),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    total, rows = service.list_areas(session, level=level, parent_code=parent_code, code_prefix=code_prefix,
                                     page=page, page_size=page_size)
    return {"total": total, "page": page, "page_size": page_size, "items": rows}


@router.get("/areas.geojson", summary="区划边界 GeoJSON FeatureCollection", dependencies=[Depends(public_route)])
def areas_geojson(
    level: schemas.Level = Query("street"),
    parent_code: str | None = Query(None, max_length=15, pattern=r"^\d{6,15}$"),
    code_prefix: str | None = Query(None, max_length=15, pattern=r"^\d{1,15}$"),
    simplify_m: float = Query(0.0, ge=0, le=500, description="simplification tolerance in metres"),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    _, rows = service.list_areas(session, level=level, parent_code=parent_code, code_prefix=code_prefix,
                                 page=1, page_size=100_000)
    return service.feature_collection([service.area_feature(a, simplify_m) for a in rows])


@router.get("/areas/{code}", response_model=schemas.AreaDetail, summary="区划详情 One area",
            dependencies=[Depends(public_route)])
def get_area(code: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.area_detail(session, code)


@router.get("/areas/{code}/geojson", summary="区划边界 GeoJSON Feature", dependencies=[Depends(public_route)])
def get_area_geojson(code: str, session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.area_feature(service.get_area(session, code))


@router.get("/grids/locate", response_model=schemas.LocateOut, summary="点位落格 Which grid covers this point",
            dependencies=[Depends(public_route)])
def locate(lat: float = Query(..., ge=-90, le=90), lon: float = Query(..., ge=-180, le=180),
           session: Session = Depends(get_session)) -> dict[str, Any]:
    return service.locate_one(session, lat, lon)


@router.post("/grids/locate", response_model=schemas.LocateBatchOut, summary="批量落格 Locate many points",
             dependencies=[Depends(public_route)])
def locate_batch(body: schemas.LocateBatchIn, session: Session = Depends(get_session)) -> dict[str, Any]:
    lon = np.array([p.lon for p in body.points], dtype=float)
    lat = np.array([p.lat for p in body.points], dtype=float)
    items = service.locate_many(session, lon, lat, with_layers=body.layers)
    for item, p in zip(items, body.points, strict=True):
        item["id"] = p.id
    return {"items": items, "outside": sum(1 for i in items if not i["inside"])}
