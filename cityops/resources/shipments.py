"""Requests, commitments and shipments (EDXL-RM-like request → commit → dispatch → received →
returned), each step a ledger movement (``cityops.resources.ledger``), and the dispatch plan made
by the emergency allocator (``cityops.emergency.service.allocate``) from the stock on record.

The shipment's lifecycle is a table (``data/shipment_lifecycle.json``) run by
``cityops.lifecycle.service.perform`` (timeline row, audit row, outbox event per change); the
effects below are its ledger movements. A request line can never be committed beyond its
quantity (conditional UPDATE, like the stock).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.lifecycle import Context
from cityops.lifecycle import service as lifecycle
from cityops.resources import ledger, machines, schemas
from cityops.resources.models import RequestLine, Shipment, SupplyRequest, Warehouse
from cityops.resources.scopes import get_scoped, readable
from cityops.resources.service import place_codes
from cityops.security import audit
from cityops.security.principal import Principal

LINES: Table = RequestLine.__table__  # type: ignore[assignment]
REQUESTS: Table = SupplyRequest.__table__  # type: ignore[assignment]


def new_code(prefix: str) -> str:
    """GB/T 40413-style identifier: kind, date (Asia/Shanghai) and a random part."""
    from zoneinfo import ZoneInfo

    return f"{prefix}{clock.now().astimezone(ZoneInfo('Asia/Shanghai')):%Y%m%d}-{secrets.token_hex(3).upper()}"


def incident_id_of(session: Session, principal: Principal, ref: int | None) -> int | None:
    if ref is None:
        return None
    from cityops.emergency.scopes import get_incident

    return int(get_incident(session, principal, ref).id)


# ---------------------------------------------------------------- requests


def raise_request(session: Session, principal: Principal, body: schemas.RequestIn) -> dict[str, Any]:
    codes = place_codes(session, [(body.lon, body.lat)], [["body"]])[0]
    seen: dict[str, int] = {}
    for i, ln in enumerate(body.lines):
        if ln.item_code in seen:
            raise InvalidInput([Problem(f"物资重复 item {ln.item_code} listed twice (also lines[{seen[ln.item_code]}])",
                                        ["body", "lines", i, "item_code"], "duplicate")])
        seen[ln.item_code] = i
    deadline = clock.aware(body.deadline, "deadline") if body.deadline else None
    r = SupplyRequest(code=new_code("RQ"), incident_id=incident_id_of(session, principal, body.incident),
                      demand_name=body.demand_name, priority=body.priority, deadline=deadline, state="open",
                      requested_by=principal.username[:120], created_at=clock.now(), lon=body.lon, lat=body.lat,
                      address=body.address, **codes)
    session.add(r)
    session.flush()
    for ln in body.lines:
        session.add(RequestLine(request_id=r.id, item_code=ln.item_code, quantity=ln.quantity, committed=0,
                                received=0))
    session.flush()
    audit.record(session, principal, "resources.request.create", "rs_request", r.id)
    return request_out(session, r)


def request_out(session: Session, r: SupplyRequest) -> dict[str, Any]:
    lines = session.scalars(select(RequestLine).where(RequestLine.request_id == r.id).order_by(RequestLine.id))
    return {"id": r.id, "code": r.code, "incident_id": r.incident_id, "demand_name": r.demand_name,
            "priority": r.priority, "deadline": r.deadline, "state": r.state, "lon": r.lon, "lat": r.lat,
            "street_code": r.street_code, "community_code": r.community_code, "grid_code": r.grid_code,
            "requested_by": r.requested_by, "created_at": r.created_at,
            "lines": [{"id": ln.id, "item_code": ln.item_code, "quantity": ln.quantity, "committed": ln.committed,
                       "received": ln.received, "open": ln.quantity - ln.committed} for ln in lines]}


def list_requests(session: Session, principal: Principal, *, incident: int | None = None, state: str | None = None,
                  page: int = 1, page_size: int = 100) -> dict[str, Any]:
    stmt = readable(principal, SupplyRequest)
    if incident is not None:
        stmt = stmt.where(SupplyRequest.incident_id == incident)
    if state:
        stmt = stmt.where(SupplyRequest.state == state)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = session.scalars(stmt.order_by(SupplyRequest.id).offset((page - 1) * page_size).limit(page_size))
    return {"total": total, "items": [request_out(session, r) for r in rows]}


# ---------------------------------------------------------------- commit / dispatch


def _line(session: Session, request_id: int, item_code: str, loc: list[str | int]) -> RequestLine:
    ln = session.scalar(select(RequestLine).where(RequestLine.request_id == request_id,
                                                  RequestLine.item_code == item_code))
    if ln is None:
        raise InvalidInput([Problem(f"该需求没有物资 {item_code} the request does not ask for this item", loc,
                                    "unknown_item")])
    return ln


def _commit_line(session: Session, line_id: int, qty: int) -> None:
    res = session.execute(update(LINES).where(LINES.c.id == line_id, LINES.c.committed + qty <= LINES.c.quantity)
                          .values(committed=LINES.c.committed + qty))
    if not res.rowcount:  # type: ignore[attr-defined]
        raise Conflict([Problem("超出需求数量 more than the request still needs", ["body", "quantity"], "over_request")])
    ledger.expire(session, RequestLine, line_id)


def commit(session: Session, principal: Principal, r: SupplyRequest, w: Warehouse, item_code: str, qty: int, *,
           minutes: float | None = None, plan_ref: str | None = None, vehicle: str | None = None) -> list[Shipment]:
    """The warehouse commits ``qty`` of an item to a request: stock reserved (batches first to
    expire first), one shipment per batch, state ``committed``."""
    ln = _line(session, r.id, item_code, ["body", "item_code"])
    _commit_line(session, ln.id, qty)
    left, out = qty, []
    for s in ledger.batches(session, w.id, item_code):
        take = min(left, s.on_hand - s.reserved)
        if take <= 0:
            continue
        sh = Shipment(code=new_code("SH"), request_id=r.id, line_id=ln.id, incident_id=r.incident_id,
                      warehouse_id=w.id, stock_id=s.id, item_code=item_code, quantity=take, state="committed",
                      minutes=minutes, plan_ref=plan_ref, vehicle=vehicle, street_code=r.street_code,
                      community_code=r.community_code, grid_code=r.grid_code, committed_at=clock.now(),
                      created_by=principal.username[:120])
        session.add(sh)
        session.flush()
        ledger.move(session, principal, s.id, "commit", 0, take, shipment_id=sh.id)  # 409 when a racer took it
        lifecycle.add_entry(session, principal, "rs_shipment", sh.id, "commit", at=clock.now(), to_state="committed",
                            data={"quantity": take, "warehouse": w.code, "request": r.code})
        out.append(sh)
        left -= take
        if left == 0:
            break
    if left:
        avail = sum(s.on_hand - s.reserved for s in ledger.batches(session, w.id, item_code)) + (qty - left)
        raise Conflict([Problem(f"库存不足 insufficient stock at {w.code}: 可用 available {avail}, 需 requested {qty}",
                                ["body", "quantity"], "insufficient_stock", {"available": avail})])
    return out


def dispatch_direct(session: Session, principal: Principal, body: schemas.DispatchIn) -> list[dict[str, Any]]:
    """Commit (and by default dispatch at once) from one warehouse to one request."""
    r = get_scoped(session, principal, SupplyRequest, body.request, loc="request")
    w = get_scoped(session, principal, Warehouse, body.warehouse, loc="warehouse")
    shipments = commit(session, principal, r, w, body.item_code, body.quantity, vehicle=body.vehicle)
    if body.dispatch:
        for sh in shipments:
            lifecycle.perform(session, principal, machines.shipment_table(), sh, "dispatch", {}, at=clock.now())
    return [shipment_out(sh) for sh in shipments]


# ---------------------------------------------------------------- lifecycle effects


def issue_effect(ctx: Context) -> None:
    sh: Shipment = ctx.obj
    ledger.move(ctx.session, ctx.principal, sh.stock_id, "dispatch", -sh.quantity, -sh.quantity, shipment_id=sh.id)
    sh.dispatched_at = ctx.at


def release_effect(ctx: Context) -> None:
    sh: Shipment = ctx.obj
    ledger.move(ctx.session, ctx.principal, sh.stock_id, "release", 0, -sh.quantity, shipment_id=sh.id)
    ctx.session.execute(update(LINES).where(LINES.c.id == sh.line_id).values(committed=LINES.c.committed - sh.quantity))
    ledger.expire(ctx.session, RequestLine, sh.line_id)


def receive_effect(ctx: Context) -> None:
    sh: Shipment = ctx.obj
    s = ctx.session
    sh.received_at = ctx.at
    s.execute(update(LINES).where(LINES.c.id == sh.line_id).values(received=LINES.c.received + sh.quantity))
    ledger.expire(s, RequestLine, sh.line_id)
    short = s.scalar(select(func.count()).select_from(RequestLine).where(
        RequestLine.request_id == sh.request_id, RequestLine.received < RequestLine.quantity))
    if not short:
        s.execute(update(REQUESTS).where(REQUESTS.c.id == sh.request_id)
                  .values(state="fulfilled"))
        ledger.expire(s, SupplyRequest, sh.request_id)


def restock_effect(ctx: Context) -> None:
    sh: Shipment = ctx.obj
    body = ctx.body or {}
    qty = int((body.get("returned_qty") if isinstance(body, dict) else body.returned_qty) or 0)
    if qty > sh.quantity:
        raise InvalidInput([Problem(f"归还数量不能超过发运数量 {sh.quantity} at most the quantity shipped",
                                    ["body", "returned_qty"], "value_error")])
    if qty:
        ledger.move(ctx.session, ctx.principal, sh.stock_id, "return", qty, 0, shipment_id=sh.id)
    sh.returned_qty, sh.returned_at = qty, ctx.at
    ctx.data["returned_qty"] = qty


def act(session: Session, principal: Principal, shipment_id: int, action: str, body: dict[str, Any]) -> dict[str, Any]:
    sh = get_scoped(session, principal, Shipment, shipment_id, for_update=True, loc="shipment_id")
    lifecycle.perform(session, principal, machines.shipment_table(), sh, action, body, at=clock.now())
    return shipment_out(sh)


def shipment_out(sh: Shipment) -> dict[str, Any]:
    return {"id": sh.id, "code": sh.code, "request_id": sh.request_id, "incident_id": sh.incident_id,
            "warehouse_id": sh.warehouse_id, "stock_id": sh.stock_id, "item_code": sh.item_code,
            "quantity": sh.quantity, "returned_qty": sh.returned_qty, "state": sh.state,
            "state_label": machines.SHIPMENT.state_label(sh.state), "minutes": sh.minutes, "vehicle": sh.vehicle,
            "plan_ref": sh.plan_ref, "committed_at": sh.committed_at, "dispatched_at": sh.dispatched_at,
            "received_at": sh.received_at, "returned_at": sh.returned_at, "street_code": sh.street_code}


def list_shipments(session: Session, principal: Principal, *, incident: int | None = None, request: int | None = None,
                   state: str | None = None, page: int = 1, page_size: int = 200) -> dict[str, Any]:
    stmt = readable(principal, Shipment)
    if incident is not None:
        stmt = stmt.where(Shipment.incident_id == incident)
    if request is not None:
        stmt = stmt.where(Shipment.request_id == request)
    if state:
        stmt = stmt.where(Shipment.state == state)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = list(session.scalars(stmt.order_by(Shipment.id).offset((page - 1) * page_size).limit(page_size)))
    names = dict(session.execute(select(Warehouse.id, Warehouse.name).where(
        Warehouse.id.in_({r.warehouse_id for r in rows} or {0}))).all())
    dests = dict(session.execute(select(SupplyRequest.id, SupplyRequest.demand_name).where(
        SupplyRequest.id.in_({r.request_id for r in rows} or {0}))).all())
    sub = stmt.subquery()
    by_state = {str(st): int(n) for st, n in session.execute(select(sub.c.state, func.count()).group_by(sub.c.state))}
    items = [{**shipment_out(r), "warehouse_name": names.get(r.warehouse_id),
              "demand_name": dests.get(r.request_id)} for r in rows]
    return {"total": total, "by_state": by_state, "items": items}


# ---------------------------------------------------------------- the plan (allocator)


def plan(session: Session, principal: Principal, body: schemas.PlanIn) -> dict[str, Any]:
    """An optimal dispatch plan for the open lines of the requests (or of an incident's requests)
    from the available stock of the warehouses in scope; with ``commit`` the plan's shipments are
    committed (stock reserved) at once, in this transaction."""
    from cityops.emergency import schemas as em
    from cityops.emergency import service as em_service

    stmt = readable(principal, SupplyRequest).where(SupplyRequest.state == "open")
    if body.requests:
        stmt = stmt.where(SupplyRequest.id.in_(body.requests))
    elif body.incident is not None:
        stmt = stmt.where(SupplyRequest.incident_id == incident_id_of(session, principal, body.incident))
    else:
        raise InvalidInput([Problem("需指定需求或事件 requests or an incident is needed", ["body", "requests"], "missing")])
    reqs = list(session.scalars(stmt.order_by(SupplyRequest.id)))
    if body.requests:
        missing = sorted(set(body.requests) - {r.id for r in reqs})
        if missing:
            raise NotFound([Problem(f"未找到或已关闭的需求 requests not found or not open: {missing[:20]}",
                                    ["body", "requests"], "not_found")])
    lines = list(session.scalars(select(RequestLine).where(RequestLine.request_id.in_([r.id for r in reqs] or [0]),
                                                           RequestLine.committed < RequestLine.quantity)))
    need: dict[int, dict[str, float]] = defaultdict(dict)
    for ln in lines:
        need[ln.request_id][ln.item_code] = ln.quantity - ln.committed
    whs = list(session.scalars(readable(principal, Warehouse).where(Warehouse.status == "active").order_by(Warehouse.id)))
    avail = ledger.available_by_item(session, [w.id for w in whs])
    items = sorted({i for d in need.values() for i in d})
    if not need:
        return {"status": "nothing_to_plan", "objective": 0.0, "shipments": [], "unmet": [], "committed": []}
    if not whs:
        raise Conflict([Problem("范围内没有可用仓库 no active warehouse in scope", ["body"], "no_warehouse")])
    wid = {f"W{w.id}": w for w in whs}
    rid = {f"R{r.id}": r for r in reqs}
    alloc = em.AllocateIn(
        warehouses=[em.WarehouseIn(id=k, x=w.lon, y=w.lat, stock={i: max(0, avail.get(w.id, {}).get(i, 0)) for i in items},
                                   handling=w.handling) for k, w in wid.items()],
        demands=[em.DemandIn(id=k, x=r.lon, y=r.lat, need=need[r.id], priority=r.priority)
                 for k, r in rid.items() if need.get(r.id)],
        travel=body.travel, unmet_penalty=body.unmet_penalty, integer=True)
    result = em_service.allocate(session, principal, alloc)
    ref = new_code("PL")
    committed: list[dict[str, Any]] = []
    for s in result["shipments"]:
        s["warehouse"] = wid[s["from"]].code
        s["warehouse_name"] = wid[s["from"]].name
        s["request"] = rid[s["to"]].code
        s["demand_name"] = rid[s["to"]].demand_name
    for u in result["unmet"]:
        u["request"] = rid[u["demand"]].code
    if body.commit:
        for s in result["shipments"]:
            q = int(round(float(s["qty"])))
            if q <= 0:
                continue
            for sh in commit(session, principal, rid[s["to"]], wid[s["from"]], s["item"], q, plan_ref=ref):
                committed.append(shipment_out(sh))
        audit.record(session, principal, "resources.plan.commit", "rs_plan", ref,
                     detail={"shipments": len(committed), "objective": result["objective"]})
    return {**result, "plan_ref": ref, "committed": committed}
