"""Pydantic I/O of the grid base."""

from __future__ import annotations

import datetime as dt
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
    id: str | None = Field(default=None, description="the caller's id of the point (batch)")
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


# ------------------------------------------------------------------------------------------ layers

class LayerOut(BaseModel):
    key: str
    name: str
    name_en: str | None = None
    is_unified: bool = False
    description: str | None = None
    version: int
    feature_count: int
    imported_at: dt.datetime | None = None
    imported_by: str | None = None
    source: str | None = None


class LayerList(BaseModel):
    items: list[LayerOut]


class LayerImportOut(BaseModel):
    key: str
    name: str
    version: int
    created: bool
    feature_count: int
    total_area_m2: float
    imported_at: dt.datetime
    imported_by: str


class GapItem(BaseModel):
    area_m2: float
    lat: float
    lon: float
    bbox: list[float] = Field(description="minLon, minLat, maxLon, maxLat")


class OverlapItem(GapItem):
    codes: list[str]


class SliverItem(BaseModel):
    code: str
    kind: Literal["tiny", "thin"]
    area_m2: float
    lat: float
    lon: float


class OutsideItem(BaseModel):
    code: str
    area_m2: float
    share: float
    lat: float
    lon: float


class InvalidItem(BaseModel):
    code: str
    reason: str
    area_m2: float
    lat: float | None = None
    lon: float | None = None


class TopologyReport(BaseModel):
    layer: str
    layer_name: str
    version: int
    is_unified: bool
    tolerances: dict[str, float]
    features: int
    clean: bool = Field(description="no gap, overlap, sliver, outside or invalid item above the tolerances")
    counts: dict[str, int]
    gaps: list[GapItem]
    overlaps: list[OverlapItem]
    slivers: list[SliverItem]
    outside: list[OutsideItem]
    invalid: list[InvalidItem]
    below_tolerance: dict[str, float]
    district_area_m2: float | None = None
    covered_area_m2: float
    coverage_valid: bool = Field(description="shapely coverage_is_valid: edges of neighbours match exactly")


class CrosswalkPart(BaseModel):
    code: str
    name: str
    area_m2: float
    share: float = Field(description="intersection / unified grid area")
    share_of_layer_grid: float | None = Field(None, description="intersection / layer grid area")


class CrosswalkItem(BaseModel):
    grid_code: str
    grid_name: str
    grid_area_m2: float
    covered_share: float
    uncovered_m2: float
    fully_covered: bool
    parts: list[CrosswalkPart]


class CrosswalkPage(Page):
    layer: str
    layer_name: str
    version: int
    items: list[CrosswalkItem]


# ------------------------------------------------------------------------------------ base map

class BasemapLayerOut(BaseModel):
    key: str
    version: int
    feature_count: int
    source: str | None = None
    synthetic: bool = False
    imported_at: dt.datetime | None = None
    imported_by: str | None = None


class BasemapLayers(BaseModel):
    items: list[BasemapLayerOut]


class PlaceHit(BaseModel):
    name: str
    name_en: str | None = None
    layer: str = Field(description="places / water / roads / areas")
    kind: str
    code: str
    lon: float
    lat: float
    bbox: list[float]


class PlaceSearchOut(BaseModel):
    items: list[PlaceHit]


class BasemapImportOut(BaseModel):
    layers: dict[str, dict[str, int]]
    skipped: dict[str, dict[str, Any]]
    road_graph: dict[str, float] | None = None
