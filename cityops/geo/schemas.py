"""Pydantic I/O of the grid base."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Level = Literal["district", "street", "community", "grid"]


class AreaOut(BaseModel):
    code: str
    name: str
    name_en: str | None = None
    level: Level
    kind: str | None = None
    parent_code: str | None = None
    area_m2: float
    population: int
    synthetic: bool = False


class AreaDetail(AreaOut):
    responsible: list[dict[str, Any]] = Field(default_factory=list)
    street_code: str | None = None
    community_code: str | None = None
    children: int = 0


class Page(BaseModel):
    total: int
    page: int
    page_size: int


class AreaPage(Page):
    items: list[AreaOut]


class LayerHit(BaseModel):
    layer: str
    layer_name: str
    code: str | None
    name: str | None


class LocateOut(BaseModel):
    lat: float
    lon: float
    inside: bool = Field(description="false when the point is outside the district")
    grid_code: str | None = None
    grid_name: str | None = None
    community_code: str | None = None
    community_name: str | None = None
    street_code: str | None = None
    street_name: str | None = None
    layers: list[LayerHit] = Field(default_factory=list)
    message: str | None = None


class PointIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    id: str | None = Field(default=None, max_length=100)


class LocateBatchIn(BaseModel):
    points: list[PointIn] = Field(max_length=100_000)
    layers: bool = Field(default=False, description="also answer the covering grid of every layer")


class LocateBatchOut(BaseModel):
    items: list[LocateOut]
    outside: int
