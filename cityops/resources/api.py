"""Routes of the resource domain (thin: parse, call one service function, return)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from cityops.resources import requisitions, schemas, service, shipments
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/resources")
TAGS: list[str | Enum] = ["resources"]
REF = Path(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$", description="id or code")
ACTION = Path(..., min_length=1, max_length=40, pattern=r"^[a-z_]+$")
PAGE = Query(1, ge=1, le=10_000)
SIZE = Query(100, ge=1, le=1000)
KINDS = {"warehouses": (schemas.WarehouseIn, "仓库（储备库）warehouses"), "teams": (schemas.TeamIn, "应急队伍 teams"),
         "experts": (schemas.ExpertIn, "应急专家 experts"), "equipment": (schemas.EquipmentIn, "装备 equipment"),
         "shelters": (schemas.ShelterIn, "避难场所 shelters")}


def _register(kind: str) -> None:
    model, label = KINDS[kind]

    def list_(area: str | None = Query(None, pattern=r"^\d{6,15}$"), q: str | None = Query(None, max_length=60),
              page: int = PAGE, page_size: int = SIZE, principal: Principal = require("resource.read"),
              session: Session = UnitOfWork) -> dict[str, Any]:
        return service.list_of(session, principal, kind, area=area, q=q, page=page, page_size=page_size)

    def one(ref: str = REF, principal: Principal = require("resource.read"),
            session: Session = UnitOfWork) -> dict[str, Any]:
        return service.detail(session, principal, kind, ref)

    def put(body: model, principal: Principal = require("resource.manage"),  # type: ignore[valid-type]
            session: Session = UnitOfWork) -> dict[str, Any]:
        return service.upsert(session, principal, kind, body)

    put.__annotations__["body"] = model  # the body model of this kind (annotations are strings here)
    router.add_api_route(f"/{kind}", list_, methods=["GET"], tags=TAGS, summary=f"{label} in scope")
    router.add_api_route(f"/{kind}/{{ref}}", one, methods=["GET"], tags=TAGS, summary=f"{label}: one")
    router.add_api_route(f"/{kind}", put, methods=["POST"], tags=TAGS, summary=f"{label}: create or update by code")


for _k in KINDS:
    _register(_k)


@router.post("/shelters/evacuate", tags=TAGS, summary="疏散到在册避难场所 Evacuate affected grids to the shelters on record")
def evacuate(body: schemas.EvacuateIn, principal: Principal = require("supply.dispatch"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.evacuate(session, principal, body)


@router.get("/map", tags=TAGS, summary="资源一张图 Warehouses (stock levels), teams, shelters, equipment in scope")
def resource_map(principal: Principal = require("resource.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.resource_map(session, principal)


@router.get("/expiring", tags=TAGS, summary="临期物资 Batches expiring within N days")
def expiring(days: int = Query(30, ge=0, le=3650), principal: Principal = require("resource.read"),
             session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.expiring(session, principal, days)


@router.post("/warehouses/{ref}/stock", tags=TAGS, status_code=201, summary="入库 Goods in (ledger: receive)")
def receive(body: schemas.StockIn, ref: str = REF, principal: Principal = require("stock.manage"),
            session: Session = UnitOfWork) -> dict[str, Any]:
    return service.receive(session, principal, ref, body)


@router.get("/stock/{stock_id}", tags=TAGS, summary="库存与台账 A stock row and its ledger")
def stock(stock_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("resource.read"),
          session: Session = UnitOfWork) -> dict[str, Any]:
    return service.stock_detail(session, principal, stock_id)


@router.post("/stock/{stock_id}/adjust", tags=TAGS, summary="盘点调整 Stock-taking adjustment (ledger: adjust)")
def adjust(body: schemas.AdjustIn, stock_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("stock.manage"),
           session: Session = UnitOfWork) -> dict[str, Any]:
    return service.adjust(session, principal, stock_id, body)


# ---------------------------------------------------------------- requests and shipments


@router.post("/requests", tags=TAGS, status_code=201, summary="物资需求 Raise a supply request")
def raise_request(body: schemas.RequestIn, principal: Principal = require("supply.request"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return shipments.raise_request(session, principal, body)


@router.get("/requests", tags=TAGS, summary="物资需求列表 Supply requests in scope")
def list_requests(incident: int | None = Query(None, ge=1, le=2**62), state: str | None = Query(None, max_length=12),
                  page: int = PAGE, page_size: int = SIZE, principal: Principal = require("resource.read"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return shipments.list_requests(session, principal, incident=incident, state=state, page=page, page_size=page_size)


@router.get("/requests/{ref}", tags=TAGS, summary="物资需求详情 One request")
def request_detail(ref: str = REF, principal: Principal = require("resource.read"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    from cityops.resources.models import SupplyRequest
    from cityops.resources.scopes import get_scoped

    return shipments.request_out(session, get_scoped(session, principal, SupplyRequest, ref, loc="ref"))


@router.post("/plan", tags=TAGS, summary="调度方案 Optimal dispatch of open requests from stock on record "
             "(commit: reserve it)")
def plan(body: schemas.PlanIn, principal: Principal = require("supply.dispatch"),
         session: Session = UnitOfWork) -> dict[str, Any]:
    return shipments.plan(session, principal, body)


@router.post("/shipments", tags=TAGS, status_code=201, summary="调拨发运 Commit (and dispatch) from a warehouse")
def dispatch(body: schemas.DispatchIn, principal: Principal = require("supply.dispatch"),
             session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return shipments.dispatch_direct(session, principal, body)


@router.get("/shipments", tags=TAGS, summary="调运看板 Shipments in scope (per incident / request)")
def list_shipments(incident: int | None = Query(None, ge=1, le=2**62), request: int | None = Query(None, ge=1, le=2**62),
                   state: str | None = Query(None, max_length=12), page: int = PAGE, page_size: int = SIZE,
                   principal: Principal = require("resource.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return shipments.list_shipments(session, principal, incident=incident, request=request, state=state, page=page,
                                    page_size=page_size)


@router.post("/shipments/{shipment_id}/actions/{action}", tags=TAGS,
             summary="调运单动作（按流转表）dispatch / receive / return / cancel")
def shipment_action(body: schemas.ShipmentActionIn, shipment_id: int = Path(..., ge=1, le=2**31 - 1), action: str = ACTION,
                    principal: Principal = require("supply.dispatch"), session: Session = UnitOfWork) -> dict[str, Any]:
    return shipments.act(session, principal, shipment_id, action, body.model_dump(exclude_none=True))


# ---------------------------------------------------------------- requisition


@router.post("/requisitions", tags=TAGS, status_code=201, summary="登记征用 Register a requisition (征用)")
def register(body: schemas.RequisitionIn, principal: Principal = require("requisition.manage"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return requisitions.register(session, principal, body)


@router.get("/requisitions", tags=TAGS, summary="征用台账 Requisitions in scope")
def list_requisitions(state: str | None = Query(None, max_length=12), incident: int | None = Query(None, ge=1, le=2**62),
                      page: int = PAGE, page_size: int = SIZE, principal: Principal = require("resource.read"),
                      session: Session = UnitOfWork) -> dict[str, Any]:
    return requisitions.list_requisitions(session, principal, state=state, incident=incident, page=page,
                                          page_size=page_size)


@router.get("/requisitions/{ref}", tags=TAGS, summary="征用单详情 One requisition with its timeline")
def requisition_detail(ref: str = REF, principal: Principal = require("resource.read"),
                       session: Session = UnitOfWork) -> dict[str, Any]:
    return requisitions.detail(session, principal, ref)


@router.post("/requisitions/{ref}/actions/{action}", tags=TAGS,
             summary="征用单动作（按流转表）take / record_return / record_compensation / record_payment / close")
def requisition_action(body: schemas.RequisitionActionIn, ref: str = REF, action: str = ACTION,
                       principal: Principal = require("requisition.manage"),
                       session: Session = UnitOfWork) -> dict[str, Any]:
    return requisitions.act(session, principal, ref, action, body.model_dump(exclude_none=True))


@router.get("/requisitions/{ref}/documents/{kind}", tags=TAGS, response_class=HTMLResponse,
            summary="打印征用通知书 / 归还确认书 Printable notice or return receipt")
def requisition_document(ref: str = REF, kind: str = Path(..., pattern=r"^(notice|return)$"),
                         principal: Principal = require("requisition.manage"), session: Session = UnitOfWork) -> Response:
    return HTMLResponse(requisitions.document(session, principal, ref, kind))
