"""Routes of outbreak command (thin: parse, call one service function, return)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from cityops.geo.geojson import GeoJSONResponse, doc_response
from cityops.outbreak import followup, report, rules, service, supplies, tracing, zones
from cityops.outbreak.schemas import (
    CaseIn,
    ClassifyIn,
    DeliveredIn,
    ExposuresIn,
    FollowUpIn,
    OutbreakIn,
    ReasonIn,
    SupplyIn,
    ZoneIn,
)
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/outbreak", tags=["outbreak"])


def _ref() -> Any:
    return Path(..., min_length=1, max_length=30, pattern=r"^[A-Za-z0-9-]+$", description="id or code")


def _id() -> Any:
    return Path(..., ge=1, le=2**31 - 1)  # INTEGER keys (PostgreSQL int4)


def _action() -> Any:
    return Path(..., min_length=1, max_length=30, pattern=r"^[a-z_]+$")


def _lang(request: Request) -> str:
    from cityops.console.i18n import pick_lang

    return pick_lang(request)


def _day(value: dt.date | None) -> dt.date | None:
    """The ``date`` query parameter (FastAPI has parsed it: a bad one is a 422 naming query.date)."""
    return value


@router.get("/rule-sets", summary="疫情处置规则集 Rule sets (classifications, categories, zones)")
def rule_sets(principal: Principal = require("outbreak.read")) -> list[dict[str, Any]]:
    return [r.model_dump() for r in rules.rule_sets().values()]


@router.get("/outbreaks", summary="战时疫情列表 Outbreaks (figures inside in scope)")
def list_outbreaks(state: str | None = Query(None, pattern=r"^(active|ended)$"),
                   principal: Principal = require("outbreak.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.list_outbreaks(session, principal, state=state)


@router.post("/outbreaks", status_code=201, summary="启用战时疫情模式 Switch outbreak mode on")
def open_outbreak(body: OutbreakIn, principal: Principal = require("outbreak.command"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return service.open_outbreak(session, principal, body)


@router.get("/outbreaks/{outbreak}", summary="疫情详情 Outbreak detail")
def outbreak_detail(outbreak: str = _ref(), principal: Principal = require("outbreak.read"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    return service.detail(session, principal, outbreak)


@router.post("/outbreaks/{outbreak}/actions/{action}", summary="关闭/重新启用战时模式 Switch off (end) / on (resume)")
def outbreak_action(body: ReasonIn, outbreak: str = _ref(), action: str = _action(),
                    principal: Principal = require("outbreak.command"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.act(session, principal, outbreak, action, body.reason)


@router.get("/outbreaks/{outbreak}/cases", summary="病例列表（脱敏） Cases in scope, masked")
def list_cases(request: Request, outbreak: str = _ref(), street: str | None = Query(None, pattern=r"^\d{9}$"),
               classification: str | None = Query(None, max_length=20), page: int = Query(1, ge=1, le=10_000),
               page_size: int = Query(100, ge=1, le=1000), principal: Principal = require("outbreak.read"),
               session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.list_cases(session, principal, outbreak, street=street, classification=classification, page=page,
                              page_size=page_size, lang=_lang(request))


@router.post("/outbreaks/{outbreak}/cases", status_code=201, summary="登记病例 Report a case")
def report_case(request: Request, body: CaseIn, outbreak: str = _ref(), principal: Principal = require("outbreak.act"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.report_case(session, principal, outbreak, body, _lang(request))


@router.get("/cases/{case}", summary="病例详情 Case detail with its classification history")
def case_detail(request: Request, case: str = _ref(), principal: Principal = require("outbreak.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.case_detail(session, principal, case, _lang(request))


@router.post("/cases/{case}/classify", summary="订正病例分类 Change a case's classification")
def classify(request: Request, body: ClassifyIn, case: str = _ref(), principal: Principal = require("outbreak.act"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.classify(session, principal, case, body, _lang(request))


@router.get("/cases/{case}/chain", summary="传播链 The contact graph around a case")
def chain(request: Request, case: str = _ref(), principal: Principal = require("outbreak.read"),
          session: Session = UnitOfWork) -> dict[str, Any]:
    return followup.chain(session, principal, case, _lang(request))


@router.get("/outbreaks/{outbreak}/contacts", summary="密接/次密接（脱敏） Contacts in scope, masked")
def list_contacts(request: Request, outbreak: str = _ref(), category: str | None = Query(None, pattern=r"^(close|secondary)$"),
                  community: str | None = Query(None, pattern=r"^\d{12}$"), page: int = Query(1, ge=1, le=10_000),
                  page_size: int = Query(100, ge=1, le=1000), principal: Principal = require("outbreak.read"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.list_contacts(session, principal, outbreak, category=category, community=community, page=page,
                                 page_size=page_size, lang=_lang(request))


@router.get("/persons/{person_id}", summary="人员详情（脱敏） A tracked person, masked")
def person(request: Request, person_id: int = _id(), principal: Principal = require("outbreak.read"),
           session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.person_detail(session, principal, person_id, _lang(request))


@router.post("/outbreaks/{outbreak}/exposures", status_code=201, summary="登记接触（流调） Record exposures")
def add_exposures(body: ExposuresIn, outbreak: str = _ref(), principal: Principal = require("outbreak.act"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return tracing.add_exposures(session, principal, outbreak, body)


@router.get("/outbreaks/{outbreak}/places.geojson", summary="暴露场所 GeoJSON of exposure places",
            response_class=GeoJSONResponse, responses=doc_response())
def places(outbreak: str = _ref(), principal: Principal = require("outbreak.read"),
           session: Session = UnitOfWork) -> dict[str, Any]:
    return followup.places_geojson(session, principal, outbreak)


@router.get("/outbreaks/{outbreak}/zones", summary="管控区域及人口 Zones with their counts")
def list_zones(outbreak: str = _ref(), state: str | None = Query(None, max_length=20),
               principal: Principal = require("outbreak.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return zones.list_zones(session, principal, outbreak, state=state)


@router.get("/outbreaks/{outbreak}/zones.geojson", summary="管控区域 GeoJSON",
            response_class=GeoJSONResponse, responses=doc_response())
def zones_geojson(outbreak: str = _ref(), principal: Principal = require("outbreak.read"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return zones.zones_geojson(session, principal, outbreak)


@router.post("/outbreaks/{outbreak}/zones", status_code=201, summary="划定管控区域 Draw or build a zone")
def create_zone(body: ZoneIn, outbreak: str = _ref(), principal: Principal = require("outbreak.act"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return zones.create_zone(session, principal, outbreak, body)


@router.get("/zones/{zone}", summary="管控区域详情 Zone detail")
def zone_detail(zone: str = _ref(), principal: Principal = require("outbreak.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return zones.zone_detail(session, principal, zone)


@router.post("/zones/{zone}/actions/{action}", summary="区域升级/降级/解除 Act on a zone (lifecycle table)")
def zone_action(body: ReasonIn, zone: str = _ref(), action: str = _action(), principal: Principal = require("outbreak.act"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return zones.act(session, principal, zone, action, body.reason)


@router.post("/zones/{zone}/supplies", status_code=201, summary="保供需求 Request supplies for a zone's households")
def request_supplies(body: SupplyIn, zone: str = _ref(), principal: Principal = require("outbreak.act"),
                     session: Session = UnitOfWork) -> dict[str, Any]:
    return supplies.request(session, principal, zone, body)


@router.get("/outbreaks/{outbreak}/supplies", summary="保供需求列表 Supply requests")
def list_supplies(outbreak: str = _ref(), principal: Principal = require("outbreak.read"),
                  session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return supplies.list_supplies(session, principal, outbreak)


@router.post("/supplies/{supply_id}/delivered", summary="物资已送达 Mark a supply request delivered")
def supply_delivered(body: DeliveredIn, supply_id: int = _id(), principal: Principal = require("outbreak.act"),
                     session: Session = UnitOfWork) -> dict[str, Any]:
    return supplies.delivered(session, principal, supply_id, body)


@router.get("/outbreaks/{outbreak}/followups", summary="今日随访清单（分居村） Today's follow-up list per community")
def followups(request: Request, outbreak: str = _ref(), date: dt.date | None = Query(None, description="YYYY-MM-DD"),
              community: str | None = Query(None, pattern=r"^\d{12}$"), principal: Principal = require("outbreak.read"),
              session: Session = UnitOfWork) -> dict[str, Any]:
    return followup.due_today(session, principal, outbreak, _day(date), community=community, lang=_lang(request))


@router.post("/outbreaks/{outbreak}/followups", status_code=201, summary="记录随访 Record a check or a test")
def record_followup(body: FollowUpIn, outbreak: str = _ref(), principal: Principal = require("outbreak.act"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    return followup.record(session, principal, outbreak, body)


@router.get("/outbreaks/{outbreak}/report", summary="疫情日报数据 The daily situation report (figures)")
def report_json(outbreak: str = _ref(), date: dt.date | None = Query(None, description="YYYY-MM-DD"),
                principal: Principal = require("outbreak.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    day = _day(date) or service.local_day(service.clock.now())
    return report.report_data(session, principal, outbreak, day)


@router.get("/outbreaks/{outbreak}/report.pdf", summary="疫情日报 PDF（未生成时排队生成，202） The report as PDF")
def report_pdf(request: Request, outbreak: str = _ref(), date: dt.date | None = Query(None, description="YYYY-MM-DD"),
               regenerate: bool = False, principal: Principal = require("outbreak.read"),
               session: Session = UnitOfWork) -> Response:
    day = _day(date) or service.local_day(service.clock.now())
    lang = _lang(request)
    row = None if regenerate else report.stored(session, principal, outbreak, day, lang)
    if row is not None and row.pdf:
        return Response(row.pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="outbreak-report-{day}.pdf"'})
    report.request_generation(session, principal, outbreak, day, lang)
    return JSONResponse({"status": "queued", "day": day.isoformat(), "error": row.pdf_error if row else None},
                        status_code=202, headers={"Retry-After": "10"})
