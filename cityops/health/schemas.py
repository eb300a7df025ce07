"""Request bodies of the public-health API (Pydantic 2); bad input is a 422 naming the field."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["earsC1", "earsC2", "earsC3", "earsC3_textbook", "cusum", "farringtonFlexible", "cidars_mpm",
                 "fixed"]


class SeriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int
    observed: list[int] = Field(..., min_length=1, max_length=20_000)  # each 0 .. 1e9 (checked below)
    dates: list[dt.date] | None = None
    freq: int = Field(52, ge=1, le=366)
    start: list[int] | None = Field(None, min_length=2, max_length=2)

    @model_validator(mode="after")
    def _same_length(self) -> SeriesIn:
        if any(v < 0 or v > 10**9 for v in self.observed):
            raise ValueError("observed: 计数须在 0 到 1e9 之间 counts must be in 0 .. 1e9")
        if self.dates is not None and len(self.dates) != len(self.observed):
            raise ValueError("dates: 日期与计数长度不同 dates and observed differ in length (ragged series)")
        return self


class DetectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Method
    control: dict[str, Any] = Field(default_factory=dict)
    series: list[SeriesIn] = Field(..., min_length=1, max_length=20_000)


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location_id: str | int
    time: int | dt.date
    count: int = Field(1, ge=0, le=1_000_000)


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location_id: str | int
    x: float | None = Field(None, allow_inf_nan=False, ge=-1e9, le=1e9)
    y: float | None = Field(None, allow_inf_nan=False, ge=-1e9, le=1e9)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)

    @model_validator(mode="after")
    def _coords(self) -> LocationIn:
        if (self.x is None or self.y is None) and (self.lat is None or self.lon is None):
            raise ValueError("需要 x/y 或 lat/lon needs x and y, or lat and lon")
        return self


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: list[CaseIn] = Field(..., min_length=1, max_length=2_000_000)
    locations: list[LocationIn] = Field(..., min_length=1, max_length=5_000)
    study_end: int | dt.date | None = None
    max_spatial_share: float = Field(0.5, gt=0, le=1)
    max_temporal_share: float = Field(0.5, gt=0, le=1)
    min_cases: int = Field(2, ge=1)
    replications: int = Field(999, ge=0, le=99_999)
    seed: int = Field(1, ge=0, le=2**63 - 1)


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(..., min_length=1, max_length=60)
    name: str = Field(..., min_length=1, max_length=200)
    kind: str
    lon: float = Field(..., ge=-180, le=180)
    lat: float = Field(..., ge=-90, le=90)


class CountIn(BaseModel):
    site: str
    day: str
    syndrome: str
    count: Any
    visits: Any = None


class SignalActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000)
