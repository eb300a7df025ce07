"""Routes of city vital signs: catalogue, devices, readings (ingest and series), warnings, the
board's data and its console page. Thin: parse, call one service function, return."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import AwareDatetime
from sqlalchemy.orm import Session

from cityops.console.views import render, require_page
from cityops.indicators import schemas, service
from cityops.indicators.console import install as install_console
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter()
install_console()
TAG: list[str | Enum] = ["vital-signs"]


async def _raw_body(request: Request) -> bytes:
    return await request.body()


# ---------------------------------------------------------------------------------------------- catalogue

@router.get("/api/v1/indicators", tags=TAG, summary="指标目录 The indicator catalogue (indicators and rules)")
def get_indicators(principal: Principal = require("indicator.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.indicators(session)


@router.get("/api/v1/indicators/versions", tags=TAG, summary="目录版本 Catalogue versions")
def get_versions(principal: Principal = require("indicator.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.catalogue_versions(session)


@router.put("/api/v1/indicators", tags=TAG, summary="发布新目录版本 Publish a new catalogue version (validated whole)")
def put_indicators(body: dict[str, Any], principal: Principal = require("indicator.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return service.publish_catalogue(session, principal, body)


# ---------------------------------------------------------------------------------------------- devices

@router.get("/api/v1/devices", tags=TAG, summary="感知设备 Devices in scope (filter by indicator, area, status)")
def get_devices(indicator: str | None = Query(None, max_length=40),
                area: str | None = Query(None, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$"),
                status: str | None = Query(None, pattern=r"^(active|maintenance|retired)$"),
                page: int = Query(1, ge=1, le=100_000), page_size: int = Query(100, ge=1, le=1000),
                principal: Principal = require("indicator.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    from cityops.indicators.models import DEVICE_SCOPE
    from cityops.indicators.queries import check_area

    check_area(principal, area, DEVICE_SCOPE)
    return service.list_devices(session, principal, indicator=indicator, area=area, status=status, page=page,
                                page_size=page_size)


@router.get("/api/v1/devices/{code}", tags=TAG, summary="一台设备 One device")
def get_device(code: str = Path(..., max_length=60), principal: Principal = require("indicator.read"),
               session: Session = UnitOfWork) -> dict[str, Any]:
    from cityops.indicators.devices import device_out
    from cityops.indicators.devices import get_device as _get

    return device_out(_get(session, principal, code))


@router.put("/api/v1/devices/{code}", tags=TAG, summary="登记或修改设备 Register or update a device")
def put_device(body: schemas.DeviceIn, code: str = Path(..., min_length=1, max_length=60),
               principal: Principal = require("indicator.manage"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.put_device(session, principal, code, body.model_dump())


@router.post("/api/v1/devices/import", tags=TAG,
             summary="导入设备（CSV 或 GeoJSON，全部或全不） Import devices from CSV or GeoJSON, all or nothing")
def import_devices(file: UploadFile = File(...), principal: Principal = require("indicator.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return service.import_devices(session, principal, file.file.read(), file.filename, file.content_type)


# ---------------------------------------------------------------------------------------------- readings

@router.post("/api/v1/readings", tags=TAG, status_code=202,
             summary="上报读数 Readings in: JSON array, NDJSON (application/x-ndjson) or CSV",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "array", "items": schemas.READING_SCHEMA}},
                 "application/x-ndjson": {"schema": {"type": "string"}},
                 "text/csv": {"schema": {"type": "string"}}}}})
def post_readings(request: Request, partial: bool = Query(False, description="store the good rows, list the bad ones"),
                  body: bytes = Depends(_raw_body), principal: Principal = require("reading.ingest"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return service.ingest(session, principal, body, request.headers.get("content-type"), partial=partial)


@router.get("/api/v1/readings/series", tags=TAG, summary="时序 A series of buckets (area rollups or one device)")
def get_series(indicator: str = Query(..., max_length=40), area: str | None = Query(None, pattern=r"^\d{6,15}$"),
               device: str | None = Query(None, max_length=60), from_: AwareDatetime | None = Query(None, alias="from"),
               to: AwareDatetime | None = Query(None), step: str = Query("1h", pattern=r"^(1m|1h|1d|60|3600|86400)$"),
               principal: Principal = require("indicator.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.series(session, principal, indicator=indicator, area=area, device=device, start=from_, end=to,
                          step=step)


# ---------------------------------------------------------------------------------------------- warnings

@router.get("/api/v1/warnings", tags=TAG, summary="预警 Warnings in scope")
def get_warnings(state: str = Query("open", pattern=r"^(open|all|raised|acknowledged|handled|lifted)$"),
                 area: str | None = Query(None, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$"),
                 level: str | None = Query(None, pattern=r"^(blue|yellow|orange|red)$"),
                 min_level: str | None = Query(None, pattern=r"^(blue|yellow|orange|red)$"),
                 rule: str | None = Query(None, max_length=60), indicator: str | None = Query(None, max_length=40),
                 category: str | None = Query(None, max_length=20),
                 page: int = Query(1, ge=1, le=100_000), page_size: int = Query(50, ge=1, le=500),
                 principal: Principal = require("indicator.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.list_warnings(session, principal, state=state, area=area, level=level, min_level=min_level,
                                 rule=rule, indicator=indicator, category=category, page=page, page_size=page_size)


@router.get("/api/v1/warnings/{warning_id}", tags=TAG, summary="一条预警及其时间线 One warning with its timeline")
def get_warning(warning_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("indicator.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.warning_detail(session, principal, warning_id)


@router.get("/api/v1/warnings/{warning_id}/incident", tags=TAG,
            summary="预警转突发事件所需信息 What an emergency incident needs from a warning")
def get_warning_incident(warning_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("indicator.read"),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    return service.warning_for_incident(session, principal, warning_id)


@router.post("/api/v1/warnings/{warning_id}/actions/{action}", tags=TAG,
             summary="预警处置：签收、处置、解除 Act on a warning: acknowledge, handle, lift")
def post_warning_action(body: schemas.WarningActionIn, warning_id: int = Path(..., ge=1, le=2**31 - 1),
                        action: str = Path(..., max_length=40), principal: Principal = require("warning.act"),
                        session: Session = UnitOfWork) -> dict[str, Any]:
    return service.act_on_warning(session, principal, warning_id, action, body.model_dump(exclude_none=True))


# ---------------------------------------------------------------------------------------------- board

@router.get("/api/v1/vitals/board", tags=TAG, summary="城市体征看板数据 The vital-signs board's data")
def get_board(principal: Principal = require("indicator.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.board(session, principal)


@router.get("/vitals", response_class=HTMLResponse, include_in_schema=False)
def vitals_page(request: Request, warning: int | None = Query(None, ge=1, le=2**31 - 1),
                principal: Principal = require_page("indicator.read")) -> Response:
    """The 城市体征 board (console page)."""
    return render(request, "vitals.html", "vitals", principal, focus=warning)
