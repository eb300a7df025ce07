"""Request and answer shapes of the emergency planning API (allocate, evacuate, coverage)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=64)]
Qty = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
Coord = Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)]
ItemCode = Annotated[str, Field(min_length=1, max_length=64)]

MAX_WAREHOUSES = 1000
MAX_DEMANDS = 20_000
MAX_ITEMS = 200


class WarehouseIn(BaseModel):
    id: Id
    x: Coord = Field(description="euclidean: any planar unit; network: longitude (WGS-84)")
    y: Coord = Field(description="euclidean: same unit as x; network: latitude (WGS-84)")
    stock: dict[ItemCode, Qty] = Field(default_factory=dict, max_length=MAX_ITEMS,
                                       description="库存 stock per item (0 = listed but out of stock)")
    handling: Qty | None = Field(None, description="处理能力：全部物资合计最多发运量 most it can ship, all items together")


class DemandIn(BaseModel):
    id: Id
    x: Coord
    y: Coord
    need: dict[ItemCode, Qty] = Field(default_factory=dict, max_length=MAX_ITEMS)
    priority: float = Field(1.0, gt=0, le=1e6, allow_inf_nan=False, description="优先级权重 weight of its travel cost")


class AllocateIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "warehouses": [{"id": "W1", "x": 0, "y": 0, "stock": {"water": 100, "tent": 10}, "handling": None},
                       {"id": "W2", "x": 10, "y": 0, "stock": {"water": 50, "tent": 0}, "handling": 40}],
        "demands": [{"id": "D1", "x": 3, "y": 4, "need": {"water": 80, "tent": 5}, "priority": 2},
                    {"id": "D2", "x": 9, "y": 1, "need": {"water": 60}, "priority": 1}],
        "travel": "euclidean", "unmet_penalty": 1e6}})

    warehouses: list[WarehouseIn] = Field(..., min_length=1, max_length=MAX_WAREHOUSES)
    demands: list[DemandIn] = Field(..., min_length=1, max_length=MAX_DEMANDS)
    travel: Literal["euclidean", "network"] = "euclidean"
    unmet_penalty: float = Field(1e6, gt=0, le=1e15, allow_inf_nan=False, description="每单位未满足的惩罚 penalty per unit unmet")
    integer: bool = Field(False, description="整件调运 whole units only")


class ShipmentOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    item: str
    qty: float


class UnmetOut(BaseModel):
    demand: str
    item: str
    qty: float
    reason: str = Field(description="no_stock / unreachable / stock_exhausted / handling_capacity / penalty_cheaper / "
                                    "whole_units / trade_off")


class AllocateOut(BaseModel):
    objective: float
    status: str
    shipments: list[ShipmentOut]
    unmet: list[UnmetOut]
    explanation: dict[str, Any]


class SourceIn(BaseModel):
    id: Id
    x: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] = Field(description="longitude")
    y: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] = Field(description="latitude")
    population: int = Field(..., ge=0, le=10_000_000)


class ShelterIn(BaseModel):
    id: Id
    x: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] = Field(description="longitude")
    y: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] = Field(description="latitude")
    capacity: int = Field(..., ge=0, le=10_000_000)


class EvacuateIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "area_code": "310117001", "travel": "network", "max_minutes": 60,
        "shelters": [{"id": "S1", "x": 121.23, "y": 31.0, "capacity": 20000}]}})

    area_code: str | None = Field(None, pattern=r"^\d{6,15}$", description="受影响区域：其下全部单元网格 affected area")
    grids: list[Annotated[str, Field(pattern=r"^\d{15}$")]] | None = Field(None, max_length=5000,
                                                                             description="受影响的单元网格 affected grids")
    sources: list[SourceIn] | None = Field(None, max_length=5000, description="或直接给出人口点 or population points")
    shelters: list[ShelterIn] = Field(..., min_length=1, max_length=2000)
    travel: Literal["euclidean", "network"] = "network"
    max_minutes: float | None = Field(None, gt=0, le=1440, allow_inf_nan=False)
    unassigned_penalty: float = Field(1e6, gt=0, le=1e12, allow_inf_nan=False, description="每人未安置惩罚（人·分钟）")


class AssignmentOut(BaseModel):
    source: str
    shelter: str
    people: int
    minutes: float


class EvacuateOut(BaseModel):
    status: str
    objective: float
    person_minutes: float
    total_people: int
    assigned: int
    mean_minutes: float | None
    max_minutes: float | None
    assignments: list[AssignmentOut]
    unassigned: list[dict[str, Any]]
    shelters: list[dict[str, Any]]
    explanation: dict[str, Any]


class FacilityIn(BaseModel):
    id: Id
    kind: Annotated[str, Field(min_length=1, max_length=40)] = Field(description="e.g. fire_team, warehouse, medical")
    x: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] = Field(description="longitude")
    y: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] = Field(description="latitude")


class CoverageIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "minutes": 15, "travel": "network", "area_code": "310117",
        "facilities": [{"id": "F1", "kind": "fire_team", "x": 121.23, "y": 31.03}]}})

    facilities: list[FacilityIn] = Field(..., min_length=1, max_length=2000)
    minutes: float = Field(..., gt=0, le=1440, allow_inf_nan=False)
    area_code: str | None = Field(None, pattern=r"^\d{6,15}$", description="只分析该区域内的网格 only grids under this code")
    travel: Literal["euclidean", "network"] = "network"
    max_listed: int = Field(500, ge=0, le=5000, description="每类最多列出的未覆盖网格数 uncovered grids listed per kind")


class CoverageOut(BaseModel):
    minutes: float
    travel: dict[str, Any]
    grids: int
    kinds: list[dict[str, Any]]
