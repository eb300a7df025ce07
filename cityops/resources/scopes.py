"""The scoped kinds of the resource database (``cityops.security.scope``): every read filters with
``scope.clause(principal, KIND)``; an object out of scope is 404. All are area-scoped by where the
resource is (a shipment and a request by their demand point, a stock row by its warehouse)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.errors import NotFound, Problem
from cityops.resources.models import (
    Equipment,
    Expert,
    Requisition,
    Shelter,
    Shipment,
    SupplyRequest,
    Team,
    Warehouse,
)
from cityops.security import scope
from cityops.security.principal import Principal
from cityops.security.scope import Located, ScopedKind


def _located(model: Any) -> Located:
    return Located(street=model.street_code, community=model.community_code, grid=model.grid_code)


WAREHOUSE_SCOPE = ScopedKind("rs_warehouse", _located(Warehouse))
TEAM_SCOPE = ScopedKind("rs_team", _located(Team))
EXPERT_SCOPE = ScopedKind("rs_expert", _located(Expert))
EQUIPMENT_SCOPE = ScopedKind("rs_equipment", _located(Equipment))
SHELTER_SCOPE = ScopedKind("rs_shelter", _located(Shelter))
REQUEST_SCOPE = ScopedKind("rs_request", _located(SupplyRequest))
SHIPMENT_SCOPE = ScopedKind("rs_shipment", _located(Shipment))
REQUISITION_SCOPE = ScopedKind("rs_requisition", _located(Requisition))

SCOPES: dict[type[Any], ScopedKind] = {
    Warehouse: WAREHOUSE_SCOPE, Team: TEAM_SCOPE, Expert: EXPERT_SCOPE, Equipment: EQUIPMENT_SCOPE,
    Shelter: SHELTER_SCOPE, SupplyRequest: REQUEST_SCOPE, Shipment: SHIPMENT_SCOPE, Requisition: REQUISITION_SCOPE,
}
LABELS: dict[type[Any], str] = {Warehouse: "仓库 warehouse", Team: "队伍 team", Expert: "专家 expert", Equipment: "装备 equipment",
          Shelter: "避难场所 shelter", SupplyRequest: "物资需求 request", Shipment: "调运单 shipment",
          Requisition: "征用单 requisition"}

M = TypeVar("M")


def readable(principal: Principal, model: type[M]) -> Any:
    return select(model).where(scope.clause(principal, SCOPES[model]))


def get_scoped(session: Session, principal: Principal, model: type[M], ref: int | str, *,
               for_update: bool = False, loc: str = "id") -> M:
    """One row by id (or code) in the principal's scope, else 404 (row-locked with ``for_update``)."""
    s = str(ref).strip()
    col: Any = model.id if s.isdigit() and len(s) <= 12 else model.code  # type: ignore[attr-defined]
    stmt = readable(principal, model).where(col == (int(s) if s.isdigit() and len(s) <= 12 else s))
    if for_update:
        stmt = stmt.with_for_update()
    row: M | None = session.scalar(stmt)
    if row is None:
        raise NotFound([Problem(f"未找到{LABELS[model]} {s} not found", ["path", loc], "not_found")])
    return row
