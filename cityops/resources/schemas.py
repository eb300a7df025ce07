"""Request bodies of the resource domain (Pydantic 2): bad input is a 422 naming the field."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ITEM_RE = re.compile(r"^[1-3](\d{2}){3}$")


def check_item_code(v: str) -> str:
    """GB/T 38565-2020: 4 levels, 7 digits, first 1-3, each 2-digit group 01-99 (99 = other)."""
    v = v.strip()
    if not ITEM_RE.match(v) or any(v[i:i + 2] == "00" for i in (1, 3, 5)):
        raise ValueError("物资编码须为 GB/T 38565 七位码（首位 1-3，其后每两位 01-99） "
                         "an item code is 7 digits of GB/T 38565: 1-3 then three groups 01-99")
    return v


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PlaceIn(_In):
    lon: float = Field(..., ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(..., ge=-90, le=90, allow_inf_nan=False)
    address: str | None = Field(None, max_length=300)


class WarehouseIn(PlaceIn):
    code: str = Field(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(..., min_length=1, max_length=120)
    kind: Literal["government", "enterprise", "logistics", "capacity"]
    managing_unit: str | None = Field(None, max_length=120)
    contact: str | None = Field(None, max_length=40)
    handling: int | None = Field(None, ge=0, le=10**9)
    status: Literal["active", "inactive"] = "active"


class StockIn(_In):
    item_code: str = Field(..., max_length=7)
    item_name: str = Field(..., min_length=1, max_length=80)
    unit: str = Field(..., min_length=1, max_length=12)
    batch: str = Field("", max_length=40)
    expires_on: dt.date | None = None
    quantity: int = Field(..., ge=1, le=10**9)
    min_stock: int | None = Field(None, ge=0, le=10**9)
    note: str | None = Field(None, max_length=300)

    _code = field_validator("item_code")(check_item_code)


class AdjustIn(_In):
    delta: int = Field(..., ge=-10**9, le=10**9)
    reason: str = Field(..., min_length=1, max_length=300)

    @field_validator("delta")
    @classmethod
    def _nonzero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("调整数量不能为 0 the adjustment must not be 0")
        return v


class TeamIn(PlaceIn):
    code: str = Field(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(..., min_length=1, max_length=120)
    kind: Literal["professional", "social", "volunteer"]
    skills: list[str] = Field(default_factory=list, max_length=30)
    headcount: int = Field(0, ge=0, le=100_000)
    equipment: list[str] = Field(default_factory=list, max_length=50)
    readiness: Literal["ready", "standby", "deployed", "unavailable"] = "ready"
    leader: str | None = Field(None, max_length=40)
    phone: str | None = Field(None, max_length=40)


class ExpertIn(PlaceIn):
    code: str = Field(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(..., min_length=1, max_length=40)
    specialty: str = Field(..., min_length=1, max_length=60)
    title: str | None = Field(None, max_length=60)
    organisation: str | None = Field(None, max_length=120)
    phone: str | None = Field(None, max_length=40)


class EquipmentIn(PlaceIn):
    code: str = Field(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(..., min_length=1, max_length=120)
    kind: Literal["vehicle", "machinery", "pump", "generator", "boat", "medical", "comms", "other"]
    quantity: int = Field(1, ge=1, le=100_000)
    plate: str | None = Field(None, max_length=20)
    owner_kind: Literal["government", "enterprise", "logistics", "social"] = "government"
    owner_name: str | None = Field(None, max_length=120)
    warehouse: str | None = Field(None, max_length=40, description="code of the warehouse it is kept at")
    status: Literal["available", "in_use", "maintenance"] = "available"


class ShelterIn(PlaceIn):
    code: str = Field(..., min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(..., min_length=1, max_length=120)
    grade: Literal["province", "city", "county", "township", "community"]
    space_type: Literal["site", "building"]
    functions: list[str] = Field(default_factory=list, max_length=20)
    capacity: int = Field(..., ge=1, le=1_000_000)
    occupancy: int = Field(0, ge=0, le=1_000_000)
    effective_area_m2: float | None = Field(None, ge=0, allow_inf_nan=False)
    service_radius_m: float | None = Field(None, ge=0, allow_inf_nan=False)
    facilities: list[str] = Field(default_factory=list, max_length=50)
    status: Literal["standby", "open", "full", "closed"] = "standby"
    managing_unit: str | None = Field(None, max_length=120)


class LineIn(_In):
    item_code: str = Field(..., max_length=7)
    quantity: int = Field(..., ge=1, le=10**9)

    _code = field_validator("item_code")(check_item_code)


class RequestIn(PlaceIn):
    demand_name: str = Field(..., min_length=1, max_length=120)
    priority: float = Field(1.0, gt=0, le=1000, allow_inf_nan=False)
    deadline: dt.datetime | None = None
    incident: int | None = Field(None, ge=1, le=2**62)
    lines: list[LineIn] = Field(..., min_length=1, max_length=200)


class PlanIn(_In):
    requests: list[int] | None = Field(None, max_length=20_000)
    incident: int | None = Field(None, ge=1, le=2**62)
    travel: Literal["network", "euclidean"] = "network"
    unmet_penalty: float = Field(1e6, gt=0, le=1e12, allow_inf_nan=False)
    commit: bool = False


class DispatchIn(_In):
    request: int = Field(..., ge=1, le=2**62)
    item_code: str = Field(..., max_length=7)
    warehouse: int = Field(..., ge=1, le=2**62)
    quantity: int = Field(..., ge=1, le=10**9)
    dispatch: bool = True
    vehicle: str | None = Field(None, max_length=40)

    _code = field_validator("item_code")(check_item_code)


class ShipmentActionIn(_In):
    returned_qty: int | None = Field(None, ge=0, le=10**9)
    reason: str | None = Field(None, max_length=300)
    note: str | None = Field(None, max_length=300)


COUNTY_OR_ABOVE = ("county", "city", "province", "national")


class RequisitionIn(PlaceIn):
    notice_no: str | None = Field(None, max_length=60)
    incident: int | None = Field(None, ge=1, le=2**62)
    authority: str = Field(..., min_length=1, max_length=120)
    authority_level: str = Field(..., max_length=12)
    legal_basis: str = Field(..., min_length=1, max_length=2000)
    owner_name: str = Field(..., min_length=1, max_length=120)
    owner_kind: Literal["person", "organisation"]
    owner_contact: str | None = Field(None, max_length=40)
    item: str = Field(..., min_length=1, max_length=120)
    quantity: int = Field(1, ge=1, le=100_000)
    identifiers: dict[str, str] = Field(default_factory=dict, max_length=10)
    condition_before: str = Field(..., min_length=1, max_length=2000)
    appraiser: str | None = Field(None, max_length=120)
    purpose: str | None = Field(None, max_length=2000)
    custodian: str | None = Field(None, max_length=120)
    take_first: bool = False
    paperwork_due: dt.datetime | None = None
    planned_return: dt.datetime | None = None

    @field_validator("authority_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v not in COUNTY_OR_ABOVE:
            raise ValueError("征用须由县级以上人民政府及其部门决定 a requisition is decided by a government (or its "
                             f"department) at county level or above: one of {', '.join(COUNTY_OR_ABOVE)}")
        return v


class RequisitionActionIn(_In):
    returned_at: dt.datetime | None = None
    condition_after: str | None = Field(None, max_length=2000)
    damage: str | None = Field(None, max_length=2000)
    amount: float | None = Field(None, ge=0, le=1e10, allow_inf_nan=False)
    basis: str | None = Field(None, max_length=2000)
    approved_by: str | None = Field(None, max_length=120)
    paid_at: dt.datetime | None = None
    payment_ref: str | None = Field(None, max_length=60)
    reason: str | None = Field(None, max_length=300)
    note: str | None = Field(None, max_length=300)


class EvacuateIn(_In):
    area_code: str | None = Field(None, pattern=r"^\d{6,15}$", description="受影响区域 affected area (its unit grids)")
    grids: list[Annotated[str, Field(pattern=r"^\d{15}$")]] | None = Field(None, max_length=5000)
    travel: Literal["network", "euclidean"] = "network"
    max_minutes: float | None = Field(None, gt=0, le=1440, allow_inf_nan=False)
