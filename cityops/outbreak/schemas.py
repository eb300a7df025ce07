"""Pydantic inputs of outbreak command (outputs are plain dicts built by the services)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

ID_NUMBER = r"^\d{17}[\dXx]$"
PHONE = r"^[0-9+\- ]{3,20}$"
ExposureKind = Literal["household", "work", "meal", "transport", "medical", "school", "other"]


class OutbreakIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disease: str = Field(min_length=2, max_length=30, pattern=r"^[a-z0-9_]+$", description="e.g. covid19")
    area_code: str = Field(min_length=6, max_length=9, pattern=r"^\d+$", description="district (6) or street (9)")
    title: str | None = Field(default=None, max_length=200)
    reason: str = Field(min_length=2, max_length=2000, description="启用原因 why outbreak mode is switched on")
    rule_set: str | None = Field(default=None, max_length=40, description="default: the disease's first rule set")
    signal_type: str | None = Field(default=None, max_length=30, description="health_signal / cluster / manual ...")
    signal_ref: str | None = Field(default=None, max_length=80, description="the signal that caused it")
    exercise: bool = False


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)


class PersonIn(BaseModel):
    """Who: an ID number links the person to the registry (residence taken from there); without one
    (or without a registry match) a residence point is needed."""

    model_config = ConfigDict(extra="forbid")

    id_number: str | None = Field(default=None, pattern=ID_NUMBER)
    name: str = Field(min_length=1, max_length=50)
    phone: str | None = Field(default=None, pattern=PHONE)
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)


class PlaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["building", "place", "grid", "point"]
    code: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: PersonIn | None = None
    person_id: int | None = Field(default=None, ge=1, description="a tracked person (e.g. a 密接) who became a case")
    classification: str = Field(min_length=2, max_length=20)
    onset_on: dt.date | None = None
    sampled_on: dt.date | None = None
    reported_at: AwareDatetime | None = None
    found_in: Literal["community", "quarantine", "screening", "hospital"] = "community"
    places: list[PlaceIn] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _who(self) -> CaseIn:
        if (self.person is None) == (self.person_id is None):
            raise ValueError("give exactly one of person (a new person) and person_id (a tracked person)")
        return self


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classification: str = Field(min_length=2, max_length=20)
    onset_on: dt.date | None = None
    sampled_on: dt.date | None = None
    outcome: Literal["treating", "recovered", "deceased"] | None = None
    note: str | None = Field(default=None, max_length=1000)


class ExposureIn(BaseModel):
    """An edge of the contact graph: ``person`` (or ``person_id``) was exposed to ``source_id``."""

    model_config = ConfigDict(extra="forbid")

    source_id: int = Field(ge=1, description="the tracked person (a case or a contact) they were exposed to")
    person: PersonIn | None = None
    person_id: int | None = Field(default=None, ge=1)
    kind: ExposureKind = "other"
    place: PlaceIn | None = None
    start_at: AwareDatetime
    end_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> ExposureIn:
        if (self.person is None) == (self.person_id is None):
            raise ValueError("give exactly one of person and person_id")
        if self.end_at < self.start_at:
            raise ValueError("end_at is before start_at")
        return self


class ExposuresIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exposures: list[ExposureIn] = Field(min_length=1, max_length=5000)


class ZoneIn(BaseModel):
    """A zone: drawn (``geometry``: a GeoJSON Polygon / MultiPolygon in WGS-84), or built from a
    building (its grid plus the neighbouring grids) or from grids."""

    model_config = ConfigDict(extra="forbid")

    level: str = Field(min_length=2, max_length=20)
    name: str | None = Field(default=None, max_length=200)
    geometry: dict[str, Any] | None = None
    building_code: str | None = Field(default=None, max_length=40)
    neighbours: bool = Field(True, description="with building_code: add the grids touching the building's grid")
    grid_codes: list[str] | None = Field(default=None, max_length=200)
    start_on: dt.date | None = None
    planned_end: dt.date | None = None

    @model_validator(mode="after")
    def _one(self) -> ZoneIn:
        given = [x for x in (self.geometry, self.building_code, self.grid_codes) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of geometry, building_code and grid_codes")
        return self


class SupplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=2, max_length=30)
    note: str | None = Field(default=None, max_length=1000)


class DeliveredIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: int | None = Field(default=None, ge=0, le=10_000_000)
    note: str | None = Field(default=None, max_length=1000)


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: int = Field(ge=1)
    day: dt.date | None = None
    kind: Literal["check", "test"] = "check"
    result: Literal["normal", "symptoms", "negative", "positive", "unreachable"]
    note: str | None = Field(default=None, max_length=500)
