"""Routes of public-health surveillance: analyst detection and scan, sentinel sites, daily counts (JSON and
CSV), case reports (scoped, masked), signals and their actions, KPIs, the console page. Thin."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from cityops.console.views import render, require_page
from cityops.health import schemas, service
from cityops.health.console import install as install_console
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import ReadOnlyUnitOfWork, UnitOfWork

router = APIRouter()
install_console()
TAG: list[str | Enum] = ["public-health"]


def _jsonable(body: Any) -> dict[str, Any]:
    return body.model_dump(mode="json")  # type: ignore[no-any-return]


@router.post("/api/v1/health/detect", tags=TAG,
             summary="暴发探测（与 R surveillance 一致） Outbreak detection, R surveillance semantics")
def post_detect(body: schemas.DetectIn, principal: Principal = require("health.analyse"),
                session: Session = ReadOnlyUnitOfWork) -> dict[str, Any]:
    d = body.model_dump()
    d["series"] = [{**s, "dates": s["dates"]} for s in d["series"]]
    return service.detect(d)


@router.post("/api/v1/health/scan", tags=TAG,
             summary="时空重排扫描统计量（与 SaTScan 一致） Space-time permutation scan (SaTScan conventions)")
def post_scan(body: schemas.ScanIn, principal: Principal = require("health.analyse"),
              session: Session = ReadOnlyUnitOfWork) -> dict[str, Any]:
    d = body.model_dump()
    for c in d["cases"]:
        if isinstance(c["time"], dt.date):
            c["time"] = c["time"].isoformat()
    if isinstance(d.get("study_end"), dt.date):
        d["study_end"] = d["study_end"].isoformat()
    return service.run_scan(d)


@router.get("/api/v1/health/sites", tags=TAG, summary="哨点 Sentinel sites in scope")
def get_sites(principal: Principal = require("health.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.list_sites(session, principal)


@router.put("/api/v1/health/sites", tags=TAG, summary="登记或修改哨点（全部或全不） Register sites, all or nothing")
def put_sites(body: list[schemas.SiteIn], principal: Principal = require("health.manage"),
              session: Session = UnitOfWork) -> dict[str, Any]:
    return service.put_sites(session, principal, [b.model_dump() for b in body])


@router.post("/api/v1/health/counts", tags=TAG, summary="上报每日症状计数（全部或全不） Daily counts, all or nothing")
def post_counts(body: list[schemas.CountIn], principal: Principal = require("health.report"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.put_counts(session, principal, [b.model_dump() for b in body])


@router.post("/api/v1/health/counts/import", tags=TAG, summary="导入每日症状计数 CSV（全部或全不） Import counts CSV")
def import_counts(file: UploadFile = File(...), principal: Principal = require("health.report"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    rows = service.parse_counts_csv(file.file.read())
    return service.put_counts(session, principal, rows, loc="row")


@router.get("/api/v1/health/case-reports", tags=TAG, summary="传染病报告（脱敏、按辖区） Case reports, masked and scoped")
def get_case_reports(disease: str | None = Query(None, max_length=60), page: int = Query(1, ge=1, le=100_000),
                     principal: Principal = require("health.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.list_case_reports(session, principal, disease=disease, page=page)


@router.get("/api/v1/health/signals", tags=TAG, summary="预警信号 Signals in scope")
def get_signals(status: str | None = Query(None, pattern=r"^(new|verifying|investigating|closed)$"),
                principal: Principal = require("health.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.list_signals(session, principal, status=status)


@router.get("/api/v1/health/signals/kpis", tags=TAG, summary="信号响应指标 CIDARS response KPIs")
def get_kpis(principal: Principal = require("health.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.signal_kpis(session, principal)


@router.get("/api/v1/health/signals/{signal_id}", tags=TAG, summary="一条预警信号 One signal")
def get_signal(signal_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("health.read"),
               session: Session = UnitOfWork) -> dict[str, Any]:
    return service.signal_out(service.get_signal(session, principal, signal_id))


@router.post("/api/v1/health/signals/{signal_id}/actions/{action}", tags=TAG,
             summary="信号处置：核实、调查、排除、疑似、确认 Act on a signal")
def post_signal_action(body: schemas.SignalActionIn, signal_id: int = Path(..., ge=1, le=2**31 - 1),
                       action: str = Path(..., max_length=40), principal: Principal = require("signal.act"),
                       session: Session = UnitOfWork) -> dict[str, Any]:
    return service.signal_action(session, principal, signal_id, action, body.model_dump(exclude_none=True))


@router.get("/health", response_class=HTMLResponse, include_in_schema=False)
def health_page(request: Request, principal: Principal = require_page("health.read"),
                session: Session = UnitOfWork) -> Response:
    """The 公共卫生监测 console page: epidemic curves with bounds and alarms, the signal queue, KPIs."""
    return render(request, "health.html", "health", principal, **service.page_data(session, principal))
