"""Pydantic input/output models of smart dispatch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["hotline", "grid", "app", "video_ai", "web", "supervisor", "public", "iot", "other"]


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000, description="投诉/上报原文 the complaint text")
    channel: Channel | None = Field(default=None, description="来源渠道 12345 / grid / app / video_ai ...")


class Candidate(BaseModel):
    category_code: str
    name_zh: str
    department_code: str | None
    score: float = Field(description="校准后的概率 calibrated probability")


class PlaceMatch(BaseModel):
    text: str
    kind: str
    codes: list[str]


class PlaceOut(BaseModel):
    street_code: str | None
    community_code: str | None
    grid_code: str | None
    score: float
    matched: list[PlaceMatch]


class ClassifyOut(BaseModel):
    candidates: list[Candidate] = Field(description="前5个候选类别，按概率降序 top 5, best first")
    place: PlaceOut | None
    model_version: int | None
    needs_review: bool = Field(description="置信度低于阈值，需人工确认 below the confidence threshold")


class CorrectionIn(BaseModel):
    """A dispatcher's decision on a case's proposal (any field left out: as proposed)."""

    model_config = ConfigDict(extra="forbid")

    case_id: int = Field(ge=1)
    category_code: str | None = Field(default=None, min_length=4, max_length=16, pattern=r"^\d+$")
    department_code: str | None = Field(default=None, max_length=40)
    street_code: str | None = Field(default=None, pattern=r"^\d{9}$")
    community_code: str | None = Field(default=None, pattern=r"^\d{12}$")
    grid_code: str | None = Field(default=None, pattern=r"^\d{15}$")
    note: str | None = Field(default=None, max_length=2000)


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    force: bool = False
