"""The stock ledger (物资台账): every change of a stock row is ONE conditional UPDATE plus one
movement row, in the caller's transaction.

Why stock never goes negative, also under concurrent dispatch:

* the UPDATE carries its own condition (``on_hand + Δ >= 0 AND reserved + Δr >= 0 AND
  reserved + Δr <= on_hand + Δ``) and RETURNING of the new values; no read-then-write race is left.
  On PostgreSQL a concurrent UPDATE of the same row waits for the row lock and re-evaluates the
  condition on the committed row (READ COMMITTED), so two dispatches can never both take the last
  unit; on SQLite every writing unit of work holds the database's write lock from its first
  statement (``BEGIN IMMEDIATE``, ``cityops.db``), so writers run one after the other;
* CHECK constraints (``on_hand >= 0``, ``0 <= reserved <= on_hand``) refuse any other writer;
* the movement row records both deltas and the values after, so Σ Δ over a stock row's movements
  equals its on-hand and reserved quantities (``check``).

Reference: Sahana Eden's inventory log (inv_track_item), the EDXL-RM request → commit → send chain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from cityops import clock
from cityops.errors import Conflict, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.resources.models import Stock, StockMovement, Warehouse
from cityops.security.principal import Principal

STOCK: Table = Stock.__table__  # type: ignore[assignment]
KINDS = {"receive": "入库", "commit": "承诺（预留）", "release": "取消预留", "dispatch": "出库发运",
         "return": "归还入库", "adjust": "盘点调整"}


def move(session: Session, principal: Principal, stock_id: int, kind: str, d_on_hand: int = 0,
         d_reserved: int = 0, *, shipment_id: int | None = None, note: str | None = None,
         loc: list[str | int] | None = None) -> StockMovement:
    """Apply (Δ on hand, Δ reserved) to one stock row, or raise 409 naming what is short."""
    assert kind in KINDS, kind
    new_on_hand = STOCK.c.on_hand + d_on_hand
    new_reserved = STOCK.c.reserved + d_reserved
    res = session.execute(
        update(STOCK).where(STOCK.c.id == stock_id, new_on_hand >= 0, new_reserved >= 0, new_reserved <= new_on_hand)
        .values(on_hand=new_on_hand, reserved=new_reserved, updated_at=clock.now())
        .returning(STOCK.c.on_hand, STOCK.c.reserved, STOCK.c.min_stock, STOCK.c.warehouse_id, STOCK.c.item_code))
    row = res.first()
    where = loc or ["body", "quantity"]
    if row is None:
        cur = session.execute(select(STOCK.c.on_hand, STOCK.c.reserved).where(STOCK.c.id == stock_id)).first()
        if cur is None:
            raise NotFound([Problem(f"未找到库存 stock {stock_id} not found", ["body", "stock"], "not_found")])
        avail = cur.on_hand - cur.reserved
        want = -(d_on_hand - d_reserved) if d_reserved <= 0 else d_reserved
        raise Conflict([Problem(f"库存不足 insufficient stock: 可用 available {avail}（在库 on hand {cur.on_hand}，"
                                f"已预留 reserved {cur.reserved}），需 requested {abs(want)}", where,
                                "insufficient_stock", {"available": avail, "on_hand": cur.on_hand,
                                                       "reserved": cur.reserved})])
    expire(session, Stock, stock_id)
    m = StockMovement(stock_id=stock_id, kind=kind, d_on_hand=d_on_hand, d_reserved=d_reserved,
                      on_hand_after=row.on_hand, reserved_after=row.reserved, shipment_id=shipment_id,
                      at=clock.now(), actor=principal.username[:120], note=(note or None) and note[:300])
    session.add(m)
    available = row.on_hand - row.reserved
    before = available - (d_on_hand - d_reserved)
    if row.min_stock and available < row.min_stock <= before:
        jobs.enqueue(session, "resources.stock_low", {
            "stock_id": stock_id, "warehouse_id": row.warehouse_id, "item_code": row.item_code,
            "available": available, "min_stock": row.min_stock, "at": clock.now()})
    return m


def expire(session: Session, model: Any, pk: int) -> None:
    """Forget a row changed by a core UPDATE, so that the session reads it again."""
    obj = session.identity_map.get(identity_key(model, pk))
    if obj is not None:
        session.expire(obj)


def check(session: Session, stock_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Stock rows whose ledger does not sum to them (empty when the ledger is sound)."""
    sums = (select(StockMovement.stock_id, func.sum(StockMovement.d_on_hand).label("on_hand"),
                   func.sum(StockMovement.d_reserved).label("reserved"))
            .group_by(StockMovement.stock_id).subquery())
    stmt = (select(Stock.id, Stock.on_hand, Stock.reserved, sums.c.on_hand, sums.c.reserved)
            .outerjoin(sums, sums.c.stock_id == Stock.id))
    if stock_ids is not None:
        stmt = stmt.where(Stock.id.in_(stock_ids))
    out = []
    for sid, oh, rs, s_oh, s_rs in session.execute(stmt):
        if (s_oh or 0) != oh or (s_rs or 0) != rs:
            out.append({"stock_id": sid, "on_hand": oh, "reserved": rs, "ledger_on_hand": int(s_oh or 0),
                        "ledger_reserved": int(s_rs or 0)})
    return out


def card(session: Session, stock_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """The stock card of one row, newest first."""
    rows = session.scalars(select(StockMovement).where(StockMovement.stock_id == stock_id)
                           .order_by(StockMovement.id.desc()).limit(limit))
    return [{"id": m.id, "kind": m.kind, "kind_label": KINDS.get(m.kind, m.kind), "d_on_hand": m.d_on_hand,
             "d_reserved": m.d_reserved, "on_hand_after": m.on_hand_after, "reserved_after": m.reserved_after,
             "shipment_id": m.shipment_id, "at": m.at, "actor": m.actor, "note": m.note} for m in rows]


def available_by_item(session: Session, warehouse_ids: list[int]) -> dict[int, dict[str, int]]:
    """warehouse id -> item code -> available (on hand − reserved), all batches together."""
    out: dict[int, dict[str, int]] = {}
    if not warehouse_ids:
        return out
    for wid, item, avail in session.execute(
            select(Stock.warehouse_id, Stock.item_code, func.sum(Stock.on_hand - Stock.reserved))
            .where(Stock.warehouse_id.in_(warehouse_ids)).group_by(Stock.warehouse_id, Stock.item_code)):
        out.setdefault(int(wid), {})[str(item)] = int(avail or 0)
    return out


def batches(session: Session, warehouse_id: int, item_code: str) -> list[Stock]:
    """The batches of an item in a warehouse, first to expire first (FEFO), then oldest."""
    return list(session.scalars(select(Stock).where(Stock.warehouse_id == warehouse_id, Stock.item_code == item_code)
                                .order_by(Stock.expires_on.is_(None), Stock.expires_on, Stock.id)))


def warehouse_of(session: Session, stock_id: int) -> Warehouse | None:
    return session.scalar(select(Warehouse).join(Stock, Stock.warehouse_id == Warehouse.id).where(Stock.id == stock_id))
