"""Request bodies of the vital-signs API (readings are parsed by ``cityops.indicators.ingest``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

READING_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["device", "indicator", "ts", "value"],
    "properties": {"device": {"type": "string", "maxLength": 60}, "indicator": {"type": "string", "maxLength": 40},
                   "ts": {"type": "string", "format": "date-time", "description": "ISO 8601 with an offset"},
                   "value": {"type": "number"}}}


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    indicators: list[str] = Field(min_length=1, max_length=20)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    owner_department_code: str | None = Field(default=None, max_length=40)
    status: str = Field(default="active", pattern=r"^(active|maintenance|retired)$")
    params: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class WarningActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)
    reason: str | None = Field(default=None, max_length=2000)
