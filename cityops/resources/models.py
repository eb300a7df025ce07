"""Tables of the emergency-resource database (应急资源信息库).

Every located resource carries the codes of its unit grid, community and street (``Place``), so
its reads are area-scoped by prefix (``cityops.resources.scopes``). Stock is kept per warehouse x
item (GB/T 38565 code) x batch in ``rs_stock`` with ``on_hand`` and ``reserved`` (committed to a
shipment, not yet sent); every change of either is one ``rs_stock_movement`` row, so the ledger
sums to the stock (``ledger.check``). CHECK constraints keep ``0 <= reserved <= on_hand`` whatever
writes, and a requisition cannot be ``closed`` without its return and compensation records.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow
from cityops.jobs.models import BigId


class Place:
    """Where a resource is: WGS-84 point and the codes of the unit grid that holds it."""

    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    address: Mapped[str | None] = mapped_column(String(300))


class Warehouse(Place, Base):
    """A reserve (储备库/点): government stock, an enterprise agreement reserve (企业代储), a logistics
    firm's depot, or a production-capacity reserve (产能储备). ``handling`` is the quantity it can
    ship per dispatch round (all items together), None = no limit."""

    __tablename__ = "rs_warehouse"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # government / enterprise / logistics / capacity
    managing_unit: Mapped[str | None] = mapped_column(String(120))
    contact: Mapped[str | None] = mapped_column(String(40))
    handling: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="active")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_rs_warehouse_street", Warehouse.street_code, Warehouse.id)
Index("ix_rs_warehouse_grid", Warehouse.grid_code)


class Stock(Base):
    """One item (and batch) in one warehouse: on hand, reserved, the minimum-stock level."""

    __tablename__ = "rs_stock"
    __table_args__ = (
        UniqueConstraint("warehouse_id", "item_code", "batch", name="uq_rs_stock_item_batch"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("rs_warehouse.id", ondelete="CASCADE"))
    item_code: Mapped[str] = mapped_column(String(7))  # GB/T 38565-2020, 7 digits
    item_name: Mapped[str] = mapped_column(String(80))
    unit: Mapped[str] = mapped_column(String(12))
    batch: Mapped[str] = mapped_column(String(40), default="")
    expires_on: Mapped[dt.date | None] = mapped_column(Date)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    min_stock: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_rs_stock_item", Stock.item_code, Stock.warehouse_id)


class StockMovement(Base):
    """The stock card (台账): one row per change of a stock row's on-hand or reserved quantity."""

    __tablename__ = "rs_stock_movement"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stock_id: Mapped[int] = mapped_column(ForeignKey("rs_stock.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))  # receive/commit/release/dispatch/return/adjust
    d_on_hand: Mapped[int] = mapped_column(Integer, default=0)
    d_reserved: Mapped[int] = mapped_column(Integer, default=0)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reserved_after: Mapped[int] = mapped_column(Integer)
    shipment_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(300))


Index("ix_rs_stock_movement_stock", StockMovement.stock_id, StockMovement.id)


class Team(Place, Base):
    """A rescue team (应急队伍): professional, social or volunteer; skills, headcount, equipment, base."""

    __tablename__ = "rs_team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # professional / social / volunteer
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    headcount: Mapped[int] = mapped_column(Integer, default=0)
    equipment: Mapped[list[str]] = mapped_column(JSON, default=list)
    readiness: Mapped[str] = mapped_column(String(12), default="ready")  # ready/standby/deployed/unavailable
    leader: Mapped[str | None] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(40))


Index("ix_rs_team_street", Team.street_code, Team.id)


class Expert(Place, Base):
    """An expert (应急专家) of the district's expert pool."""

    __tablename__ = "rs_expert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(40))
    specialty: Mapped[str] = mapped_column(String(60))
    title: Mapped[str | None] = mapped_column(String(60))
    organisation: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(40))


Index("ix_rs_expert_street", Expert.street_code, Expert.id)


class Equipment(Place, Base):
    """Vehicles and equipment (应急装备): own, an enterprise's or a logistics firm's (a reserve or
    requisition source)."""

    __tablename__ = "rs_equipment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # vehicle/machinery/pump/generator/boat/medical/comms/other
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    plate: Mapped[str | None] = mapped_column(String(20))
    owner_kind: Mapped[str] = mapped_column(String(16), default="government")
    owner_name: Mapped[str | None] = mapped_column(String(120))
    warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("rs_warehouse.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), default="available")


Index("ix_rs_equipment_street", Equipment.street_code, Equipment.id)


class Shelter(Place, Base):
    """An emergency shelter (应急避难场所), GB/T 44013-2024 grade and space type."""

    __tablename__ = "rs_shelter"
    __table_args__ = (CheckConstraint("occupancy >= 0", name="occupancy_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    grade: Mapped[str] = mapped_column(String(12))  # province/city/county/township/community
    space_type: Mapped[str] = mapped_column(String(10))  # site (场地型) / building (场所型)
    functions: Mapped[list[str]] = mapped_column(JSON, default=list)
    capacity: Mapped[int] = mapped_column(Integer)
    occupancy: Mapped[int] = mapped_column(Integer, default=0)
    effective_area_m2: Mapped[float | None] = mapped_column(Float)
    service_radius_m: Mapped[float | None] = mapped_column(Float)
    facilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default="standby")  # standby/open/full/closed
    managing_unit: Mapped[str | None] = mapped_column(String(120))


Index("ix_rs_shelter_street", Shelter.street_code, Shelter.id)


class SupplyRequest(Place, Base):
    """A demand point's request (EDXL-RM RequestResource-like): items, priority, deadline; linked to
    an incident when raised for one (保供 requests of public health too)."""

    __tablename__ = "rs_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    demand_name: Mapped[str] = mapped_column(String(120))
    priority: Mapped[float] = mapped_column(Float, default=1.0)
    deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(12), default="open")  # open / fulfilled / cancelled
    requested_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_rs_request_street", SupplyRequest.street_code, SupplyRequest.id)


class RequestLine(Base):
    __tablename__ = "rs_request_line"
    __table_args__ = (UniqueConstraint("request_id", "item_code", name="uq_rs_request_line_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("rs_request.id", ondelete="CASCADE"))
    item_code: Mapped[str] = mapped_column(String(7))
    quantity: Mapped[int] = mapped_column(Integer)
    committed: Mapped[int] = mapped_column(Integer, default=0)  # in live shipments (not cancelled)
    received: Mapped[int] = mapped_column(Integer, default=0)


class Shipment(Base):
    """One warehouse's shipment of one item (batch) to one request: committed -> dispatched ->
    received -> returned (or cancelled), each step a ledger movement. Scoped by its destination."""

    __tablename__ = "rs_shipment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("rs_request.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("rs_request_line.id", ondelete="CASCADE"))
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("rs_warehouse.id"))
    stock_id: Mapped[int] = mapped_column(ForeignKey("rs_stock.id"))
    item_code: Mapped[str] = mapped_column(String(7))
    quantity: Mapped[int] = mapped_column(Integer)
    returned_qty: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default="committed")
    minutes: Mapped[float | None] = mapped_column(Float)  # planned travel time
    vehicle: Mapped[str | None] = mapped_column(String(40))
    plan_ref: Mapped[str | None] = mapped_column(String(40))
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    committed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(120))


Index("ix_rs_shipment_street", Shipment.street_code, Shipment.id)


class Requisition(Place, Base):
    """A requisition (征用) of a private resource, with its legal record (2024 突发事件应对法 Art. 12):
    deciding authority (county level or above), legal basis, owner, item and condition before,
    dates, return and condition after, compensation (amount, basis, paid)."""

    __tablename__ = "rs_requisition"
    __table_args__ = (CheckConstraint(
        "state <> 'closed' OR (returned_at IS NOT NULL AND condition_after IS NOT NULL AND "
        "compensation_amount IS NOT NULL AND compensation_basis IS NOT NULL AND "
        "(compensation_amount = 0 OR compensation_paid_at IS NOT NULL))", name="closed_needs_records"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    notice_no: Mapped[str | None] = mapped_column(String(60))
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    authority: Mapped[str] = mapped_column(String(120))
    authority_level: Mapped[str] = mapped_column(String(12))  # county / city / province / national
    legal_basis: Mapped[str] = mapped_column(Text)
    owner_name: Mapped[str] = mapped_column(String(120))
    owner_kind: Mapped[str] = mapped_column(String(12))  # person / organisation
    owner_contact: Mapped[str | None] = mapped_column(String(40))
    item: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    identifiers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # plate, serial ...
    condition_before: Mapped[str] = mapped_column(Text)
    appraiser: Mapped[str | None] = mapped_column(String(120))
    purpose: Mapped[str | None] = mapped_column(Text)
    custodian: Mapped[str | None] = mapped_column(String(120))
    take_first: Mapped[bool] = mapped_column(default=False)  # 先行征用、后办手续
    paperwork_due: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    planned_return: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    taken_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    condition_after: Mapped[str | None] = mapped_column(Text)
    damage: Mapped[str | None] = mapped_column(Text)
    compensation_amount: Mapped[float | None] = mapped_column(Float)  # yuan
    compensation_basis: Mapped[str | None] = mapped_column(Text)
    compensation_approved_by: Mapped[str | None] = mapped_column(String(120))
    compensation_paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    payment_ref: Mapped[str | None] = mapped_column(String(60))
    state: Mapped[str] = mapped_column(String(12), default="registered")
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_rs_requisition_street", Requisition.street_code, Requisition.id)
