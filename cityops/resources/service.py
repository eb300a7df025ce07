"""The resource database (应急资源信息库): warehouses and their stock, teams, experts, equipment,
shelters — upserts by code, scoped lists, the map of everything located in scope.

Each resource is placed by its point: the unit grid holding it gives its grid, community and
street codes (``cityops.geo.service.locate_many``); a point outside the district is refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.resources import ledger, schemas
from cityops.resources.models import Equipment, Expert, Shelter, Stock, Team, Warehouse
from cityops.resources.scopes import SCOPES, get_scoped, readable
from cityops.security import audit, scope
from cityops.security.masking import mask_phone
from cityops.security.principal import Principal

KIND_LABELS = {
    "government": "政府实物储备", "enterprise": "企业协议储备", "logistics": "物流企业", "capacity": "产能储备",
    "professional": "专业队伍", "social": "社会力量", "volunteer": "志愿者队伍",
}
MODELS: dict[str, type[Any]] = {"warehouses": Warehouse, "teams": Team, "experts": Expert, "equipment": Equipment,
                                "shelters": Shelter}


def place_codes(session: Session, points: list[tuple[float, float]], loc: list[list[str | int]]) -> list[dict[str, Any]]:
    """Grid, community and street codes of each (lon, lat); 422 naming the point outside the district."""
    from cityops.geo import service as geo

    if not points:
        return []
    arr = np.asarray(points, dtype=float)
    hits = geo.locate_many(session, arr[:, 0], arr[:, 1], with_layers=False)
    probs: list[Problem] = []
    out: list[dict[str, Any]] = []
    for h, where in zip(hits, loc, strict=True):
        if not h.get("inside"):
            probs.append(Problem("点位不在本区范围内 the point is outside the district", [*where, "lon"], "outside"))
            out.append({})
        else:
            out.append({"grid_code": h["grid_code"], "community_code": h["community_code"],
                        "street_code": h["street_code"]})
    if probs:
        raise InvalidInput(probs)
    return out


def _in_scope_or_404(principal: Principal, model: type[Any], codes: dict[str, Any], loc: list[str | int]) -> None:
    """A principal may create or edit a resource only inside its own scope."""
    if not scope.allows(principal, SCOPES[model], area_code=codes.get("grid_code")):
        raise InvalidInput([Problem("点位不在您的管辖范围内 the point is outside your area", [*loc, "lon"], "out_of_scope")])


def upsert(session: Session, principal: Principal, kind: str, body: BaseModel) -> dict[str, Any]:
    """Create or update one resource of ``kind`` by its code (place re-derived from the point)."""
    model = MODELS[kind]
    data = body.model_dump()
    codes = place_codes(session, [(data["lon"], data["lat"])], [["body"]])[0]
    _in_scope_or_404(principal, model, codes, ["body"])
    if model is Equipment:
        wh = data.pop("warehouse", None)
        data["warehouse_id"] = None
        if wh:
            w = session.scalar(readable(principal, Warehouse).where(Warehouse.code == wh))
            if w is None:
                raise InvalidInput([Problem(f"未知仓库 unknown warehouse {wh!r}", ["body", "warehouse"], "unknown")])
            data["warehouse_id"] = w.id
    row = session.scalar(select(model).where(model.code == data["code"]))
    if row is not None and not scope.allows(principal, SCOPES[model], area_code=row.grid_code):
        raise NotFound([Problem(f"未找到 {data['code']} not found", ["body", "code"], "not_found")])
    created = row is None
    if row is None:
        row = model()
        session.add(row)
    for k, v in {**data, **codes}.items():
        setattr(row, k, v)
    if model is Warehouse:
        row.updated_at = clock.now()
    session.flush()
    audit.record(session, principal, f"resources.{kind}.{'create' if created else 'update'}", model.__tablename__,
                 row.id)
    return out(session, principal, row)


def out(session: Session, principal: Principal, row: Any) -> dict[str, Any]:
    d: dict[str, Any] = {c.key: getattr(row, c.key) for c in row.__table__.columns}
    if "phone" in d:
        d["phone"] = mask_phone(d["phone"])
    if "contact" in d:
        d["contact"] = mask_phone(d["contact"])
    if "kind" in d:
        d["kind_label"] = KIND_LABELS.get(d["kind"], d["kind"])
    if isinstance(row, Warehouse):
        d["stock"] = stock_of(session, [row.id]).get(row.id, [])
    return d


def stock_of(session: Session, warehouse_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out_: dict[int, list[dict[str, Any]]] = {}
    if not warehouse_ids:
        return out_
    for s in session.scalars(select(Stock).where(Stock.warehouse_id.in_(warehouse_ids))
                             .order_by(Stock.warehouse_id, Stock.item_code, Stock.batch)):
        out_.setdefault(s.warehouse_id, []).append(
            {"id": s.id, "item_code": s.item_code, "item_name": s.item_name, "unit": s.unit, "batch": s.batch,
             "expires_on": s.expires_on, "on_hand": s.on_hand, "reserved": s.reserved,
             "available": s.on_hand - s.reserved, "min_stock": s.min_stock,
             "low": s.on_hand - s.reserved < s.min_stock})
    return out_


def list_of(session: Session, principal: Principal, kind: str, *, area: str | None = None, q: str | None = None,
            page: int = 1, page_size: int = 100) -> dict[str, Any]:
    model = MODELS[kind]
    stmt = readable(principal, model)
    if area:
        stmt = stmt.where(SCOPES[model].located.within(area))  # type: ignore[union-attr]
    if q:
        stmt = stmt.where(model.name.contains(q))
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = list(session.scalars(stmt.order_by(model.id).offset((page - 1) * page_size).limit(page_size)))
    stocks = stock_of(session, [r.id for r in rows]) if model is Warehouse else {}
    items = []
    for r in rows:
        d = out(session, principal, r) if model is not Warehouse else {
            **{c.key: getattr(r, c.key) for c in r.__table__.columns}, "contact": mask_phone(r.contact),
            "kind_label": KIND_LABELS.get(r.kind, r.kind), "stock": stocks.get(r.id, [])}
        items.append(d)
    return {"total": total, "page": page, "page_size": page_size, "items": items}


def detail(session: Session, principal: Principal, kind: str, ref: str) -> dict[str, Any]:
    return out(session, principal, get_scoped(session, principal, MODELS[kind], ref))


# ---------------------------------------------------------------- stock


def receive(session: Session, principal: Principal, warehouse_ref: str, body: schemas.StockIn) -> dict[str, Any]:
    """Goods in (入库): the batch row is created when new; one ``receive`` movement."""
    w = get_scoped(session, principal, Warehouse, warehouse_ref, loc="warehouse")
    s = session.scalar(select(Stock).where(Stock.warehouse_id == w.id, Stock.item_code == body.item_code,
                                           Stock.batch == body.batch))
    if s is None:
        s = Stock(warehouse_id=w.id, item_code=body.item_code, item_name=body.item_name, unit=body.unit,
                  batch=body.batch, expires_on=body.expires_on, on_hand=0, reserved=0, min_stock=body.min_stock or 0)
        session.add(s)
        session.flush()
    elif body.min_stock is not None:
        s.min_stock = body.min_stock
    sid = s.id
    ledger.move(session, principal, sid, "receive", body.quantity, note=body.note)
    audit.record(session, principal, "resources.stock.receive", "rs_stock", sid, detail={"quantity": body.quantity})
    session.flush()
    return stock_detail(session, principal, sid)


def _stock_in_scope(session: Session, principal: Principal, stock_id: int) -> Stock:
    s = session.scalar(select(Stock).join(Warehouse, Warehouse.id == Stock.warehouse_id)
                       .where(Stock.id == stock_id, scope.clause(principal, SCOPES[Warehouse])))
    if s is None:
        raise NotFound([Problem(f"未找到库存 stock {stock_id} not found", ["path", "stock_id"], "not_found")])
    return s


def adjust(session: Session, principal: Principal, stock_id: int, body: schemas.AdjustIn) -> dict[str, Any]:
    """Stock-taking correction (盘点): +/- on hand, never below what is reserved."""
    _stock_in_scope(session, principal, stock_id)
    ledger.move(session, principal, stock_id, "adjust", body.delta, note=body.reason, loc=["body", "delta"])
    audit.record(session, principal, "resources.stock.adjust", "rs_stock", stock_id, detail={"delta": body.delta})
    return stock_detail(session, principal, stock_id)


def stock_detail(session: Session, principal: Principal, stock_id: int) -> dict[str, Any]:
    s = _stock_in_scope(session, principal, stock_id)
    session.refresh(s)
    return {"id": s.id, "warehouse_id": s.warehouse_id, "item_code": s.item_code, "item_name": s.item_name,
            "unit": s.unit, "batch": s.batch, "expires_on": s.expires_on, "on_hand": s.on_hand,
            "reserved": s.reserved, "available": s.on_hand - s.reserved, "min_stock": s.min_stock,
            "ledger": ledger.card(session, s.id), "ledger_ok": not ledger.check(session, [s.id])}


def expiring(session: Session, principal: Principal, within_days: int = 30) -> list[dict[str, Any]]:
    until = (clock.now() + dt.timedelta(days=within_days)).date()
    rows = session.execute(select(Stock, Warehouse.code, Warehouse.name).join(Warehouse, Warehouse.id == Stock.warehouse_id)
                           .where(scope.clause(principal, SCOPES[Warehouse]), Stock.expires_on.is_not(None),
                                  Stock.expires_on <= until, Stock.on_hand > 0).order_by(Stock.expires_on))
    return [{"stock_id": s.id, "warehouse": code, "warehouse_name": name, "item_code": s.item_code,
             "item_name": s.item_name, "batch": s.batch, "expires_on": s.expires_on, "on_hand": s.on_hand}
            for s, code, name in rows]


# ---------------------------------------------------------------- the map


def resource_map(session: Session, principal: Principal) -> dict[str, Any]:
    """Everything located in scope for the console's resources map (warehouses with stock levels)."""
    whs = list(session.scalars(readable(principal, Warehouse).order_by(Warehouse.id)))
    stocks = stock_of(session, [w.id for w in whs])

    def pt(r: Any, **extra: Any) -> dict[str, Any]:
        return {"id": r.id, "code": r.code, "name": r.name, "lon": r.lon, "lat": r.lat, "street_code": r.street_code,
                **extra}

    out_ = {"warehouses": [], "teams": [], "shelters": [], "equipment": []}  # type: dict[str, list[dict[str, Any]]]
    for w in whs:
        st = stocks.get(w.id, [])
        out_["warehouses"].append(pt(w, kind=w.kind, kind_label=KIND_LABELS.get(w.kind, w.kind), handling=w.handling,
                                     items=len({s["item_code"] for s in st}), low=sum(1 for s in st if s["low"]),
                                     stock=[{k: s[k] for k in ("item_code", "item_name", "unit", "available",
                                                                "min_stock", "low")} for s in st]))
    for t in session.scalars(readable(principal, Team).order_by(Team.id)):
        out_["teams"].append(pt(t, kind=t.kind, kind_label=KIND_LABELS.get(t.kind, t.kind), headcount=t.headcount,
                                readiness=t.readiness, skills=t.skills))
    for s in session.scalars(readable(principal, Shelter).order_by(Shelter.id)):
        out_["shelters"].append(pt(s, grade=s.grade, space_type=s.space_type, capacity=s.capacity,
                                   occupancy=s.occupancy, status=s.status))
    for e in session.scalars(readable(principal, Equipment).order_by(Equipment.id)):
        out_["equipment"].append(pt(e, kind=e.kind, quantity=e.quantity, status=e.status))
    return out_


def evacuate(session: Session, principal: Principal, body: schemas.EvacuateIn) -> dict[str, Any]:
    """Evacuation to the shelters on record: every shelter in scope that is standby or open, with
    its free places (capacity − occupancy), through the emergency evacuation optimiser."""
    from cityops.emergency import schemas as em
    from cityops.emergency import service as em_service

    rows = [s for s in session.scalars(readable(principal, Shelter).where(Shelter.status.in_(("standby", "open")))
                                       .order_by(Shelter.id)) if s.capacity - s.occupancy > 0]
    if not rows:
        raise InvalidInput([Problem("范围内没有可用的避难场所 no shelter with free places in scope", ["body"],
                                    "no_shelter")])
    names = {f"S{s.id}": (s.code, s.name) for s in rows}
    res = em_service.evacuate(session, principal, em.EvacuateIn(
        area_code=body.area_code, grids=body.grids, sources=None, travel=body.travel, max_minutes=body.max_minutes,
        unassigned_penalty=1e6,
        shelters=[em.ShelterIn(id=f"S{s.id}", x=s.lon, y=s.lat, capacity=s.capacity - s.occupancy) for s in rows]))
    for a in res["assignments"]:
        a["shelter_code"], a["shelter_name"] = names[a["shelter"]]
    for s in res["shelters"]:
        s["code"], s["name"] = names[s["id"]]
    return res
