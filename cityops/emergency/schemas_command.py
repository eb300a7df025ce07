"""Request bodies of the emergency-command API (Pydantic; responses are the services' dicts)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cityops.emergency.rules import Level


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentIn(_In):
    """An incident report (phone report at the duty office, or any other channel)."""

    source_type: Literal["phone", "app", "sensor", "vital_signs", "health_signal"] = "phone"
    source_ref: str | None = Field(default=None, max_length=80)
    category: str = Field(min_length=2, max_length=40, description="category code, or a subtype code alone")
    subtype: str | None = Field(default=None, max_length=40)
    severity: Level
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    event_type: str | None = Field(default=None, max_length=60)
    area: str | None = Field(default=None, max_length=15, description="area code (district 6 … grid 15 digits)")
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    geometry: dict[str, Any] | None = Field(default=None, description="GeoJSON geometry of the affected area")
    address: str | None = Field(default=None, max_length=300)
    reporter: str | None = Field(default=None, max_length=80)
    reported_at: dt.datetime | None = Field(default=None, description="when the first report came in (default: now)")
    exercise: bool = False


class FromCaseIn(_In):
    """A dispatcher escalates a case (read through the case service) to an incident."""

    case_id: int = Field(ge=1, le=2**62)
    category: str = Field(min_length=2, max_length=40)
    subtype: str | None = Field(default=None, max_length=40)
    severity: Level
    title: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class ActionBody(_In):
    """The body of a lifecycle action (what the transition table requires)."""

    level: Level | None = None
    plan: str | None = Field(default=None, max_length=60)
    plans: list[str] | None = Field(default=None, max_length=20)
    target: str | None = Field(default=None, max_length=24)
    summary: str | None = Field(default=None, max_length=4000)
    reason: str | None = Field(default=None, max_length=2000)
    note: str | None = Field(default=None, max_length=2000)
    changes: dict[str, Any] | None = None

    def as_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ReportIn(_In):
    """An information report made (首报/续报/终报) to a command level."""

    level: Literal["district", "city", "national"]
    channel: Literal["phone", "written"]
    kind: Literal["initial", "follow_up", "final"] = "initial"
    content: str | None = Field(default=None, max_length=4000)


class NoteIn(_In):
    note: str | None = Field(default=None, max_length=2000)


class DrillIn(_In):
    held_on: dt.date | None = None
    note: str | None = Field(default=None, max_length=2000)
    incident: str | None = Field(default=None, max_length=24)
