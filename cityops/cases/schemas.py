"""Pydantic input/output models of the case API (also what the Open311 / evaluation / feed code
and the console build on)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Urgency = Literal["normal", "urgent", "critical"]
StaffSource = Literal["supervisor", "hotline", "referral", "media", "public"]
AppealType = Literal["inquiry", "help", "complaint", "tip_off", "suggestion"]
Satisfaction = Literal["satisfied", "basically_satisfied", "unsatisfied"]
Result = Literal["valid", "invalid", "pass", "fail"]
SLAState = Literal["green", "yellow", "red", "none"]
TimeUnit = Literal["working_hour", "working_day", "natural_hour", "natural_day"]

MEDIA_ID = r"^[0-9a-f]{32}$"
PHONE = r"^[0-9+\- ]{3,30}$"



class ReportBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category_code: str | None = Field(default=None, min_length=4, max_length=16, pattern=r"^\d+$",
                                      description="类别代码 category code of the catalogue (e.g. 20102 / 206010); "
                                                  "none: proposed from title/description (智能派单)")
    lat: float = Field(ge=-90, le=90, description="纬度 WGS-84")
    lon: float = Field(ge=-180, le=180, description="经度 WGS-84")
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000, description="问题描述")
    address: str | None = Field(default=None, max_length=300)
    urgency: Urgency | None = Field(default=None, description="紧急程度; default: the category's")
    media: list[str] = Field(default_factory=list, max_length=20, description="ids from POST /api/v1/media")
    reporter_name: str | None = Field(default=None, max_length=60)
    reporter_phone: str | None = Field(default=None, pattern=PHONE)

    @field_validator("media")
    @classmethod
    def _media_ids(cls, v: list[str]) -> list[str]:
        import re

        for m in v:
            if not re.fullmatch(MEDIA_ID, m):
                raise ValueError(f"media id {m!r} is not a 32-hex-digit id from POST /api/v1/media")
        return v


class PublicReportCreate(ReportBase):
    """A citizen's report (public, rate-limited)."""


class ReportCreate(ReportBase):
    """A report by a signed-in principal (grid worker / supervisor, operator entering a call ...)."""

    source: StaffSource = "supervisor"
    appeal_type: AppealType | None = None
    external_id: str | None = Field(default=None, max_length=64, description="the referring system's own id")
    reported_at: AwareDatetime | None = Field(default=None, description="when it was found (default: now)")
    self_handled: bool = Field(False, description="自行处置: fixed on the spot; recorded as closed")


class IntakeResult(BaseModel):
    case_id: int
    case_no: str
    state: str
    linked: bool = Field(description="true: the report was linked to an open case (duplicate)")
    report_id: int
    reporter_count: int
    distance_m: float | None = None
    category_code: str
    category_name: str
    grid_code: str
    community_code: str
    street_code: str
    urgency: str
    tracking_token: str | None = Field(default=None, description="public reports: token to follow the case and evaluate")


class HotlineOrder(BaseModel):
    """One 12345 work order (JSON import row; CSV uses the same column names)."""

    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64, description="热线工单编号 (kept as external_id)")
    received_at: AwareDatetime
    category_code: str | None = Field(default=None, min_length=4, max_length=16, pattern=r"^\d+$",
                                      description="none: proposed from title/content (智能派单)")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    grid_code: str | None = Field(default=None, pattern=r"^\d{15}$")
    address: str | None = Field(default=None, max_length=300)
    title: str | None = Field(default=None, max_length=200)
    content: str | None = Field(default=None, max_length=4000)
    appeal_type: AppealType | None = None
    urgency: Urgency | None = None
    caller_name: str | None = Field(default=None, max_length=60)
    caller_phone: str | None = Field(default=None, pattern=PHONE)


class HotlineImportResult(BaseModel):
    created: int
    linked: int
    skipped: int
    items: list[dict[str, Any]]


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["video_ai", "iot"]
    device_id: str = Field(min_length=1, max_length=60)
    signal_type: str = Field(min_length=1, max_length=60, description="e.g. 暴露垃圾 / 井盖异常 / water_level")
    category_code: str | None = Field(default=None, min_length=4, max_length=16, pattern=r"^\d+$",
                                      description="category to open a case in; none: stored only")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    observed_at: AwareDatetime | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    media: list[str] = Field(default_factory=list, max_length=10)
    signal_key: str | None = Field(default=None, max_length=200, description="default: device|type|grid")


class SignalResult(BaseModel):
    signal_id: int
    outcome: Literal["case_created", "deduplicated", "snoozed", "monitored", "ignored"]
    case_id: int | None = None
    case_no: str | None = None
    filter: str | None = None


class SignalFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    mode: Literal["active", "monitor", "inactive", "expired"] = "active"
    action: Literal["deduplicate", "snooze", "none"] = "snooze"
    signal_type: str | None = Field(default=None, max_length=60)
    device_prefix: str | None = Field(default=None, max_length=60)
    area_prefix: str | None = Field(default=None, pattern=r"^\d{6,15}$")
    window_minutes: int = Field(60, ge=1, le=60 * 24 * 30)
    expires_at: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=300)


class Extension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = Field(gt=0, le=1000)
    unit: TimeUnit


class ActionIn(BaseModel):
    """Body of POST /api/v1/cases/{id}/actions/{action}; which fields are required depends on
    the transition (see GET /api/v1/cases/workflow)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)
    reason: str | None = Field(default=None, max_length=2000)
    department_code: str | None = Field(default=None, max_length=40, description="lead department (dispatch / reassign)")
    co_department_codes: list[str] = Field(default_factory=list, max_length=10, description="联合处置 co-handlers")
    photos: list[str] = Field(default_factory=list, max_length=20, description="media ids")
    result: Result | None = Field(default=None, description="verify: valid/invalid; inspect: pass/fail")
    satisfaction: Satisfaction | None = None
    extension: Extension | None = None
    target_case: str | None = Field(default=None, max_length=20, description="merge: the case (id or number) to merge into")
    expected_version: int | None = Field(default=None, ge=1, description="optimistic lock: the version you saw")

    @field_validator("photos")
    @classmethod
    def _media_ids(cls, v: list[str]) -> list[str]:
        import re

        for m in v:
            if not re.fullmatch(MEDIA_ID, m):
                raise ValueError(f"media id {m!r} is not a 32-hex-digit id from POST /api/v1/media")
        return v


class AvailableAction(BaseModel):
    action: str
    label: str
    label_en: str
    to_state: str | None
    required: list[str]
    guard: str | None = None


class ConsultationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=4000)
    attachments: list[str] = Field(default_factory=list, max_length=10)


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    satisfaction: Satisfaction
    note: str | None = Field(default=None, max_length=2000)


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")
    name: str = Field(min_length=1, max_length=100)
    name_en: str | None = Field(default=None, max_length=150)
    kind: Literal["district_department", "owner_unit", "maintenance_unit", "street_centre", "command_centre"] = \
        "district_department"
    area_code: str | None = Field(default=None, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$")
    phone: str | None = Field(default=None, max_length=40)
    active: bool = True


class CaseSummary(BaseModel):
    id: int
    case_no: str
    state: str
    state_label: str
    source: str
    channel: str
    category_code: str
    category_name: str
    kind: str
    title: str
    address: str | None
    lon: float
    lat: float
    grid_code: str
    community_code: str
    street_code: str
    street_name: str | None = None
    urgency: str
    reporter_count: int
    lead_department_code: str | None
    lead_department_name: str | None = None
    reported_at: dt.datetime
    closed_at: dt.datetime | None = None
    sla_step: str | None
    due_at: dt.datetime | None
    yellow_at: dt.datetime | None
    sla: SLAState
    overdue_count: int
    external_id: str | None = None
    version: int


class CasePage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[CaseSummary]


# ---------------------------------------------------------------- administration of the reference data
# (typed bodies; the services check the meaning — known states, steps, effects — and name every problem)

Name = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z_][A-Za-z0-9_.:\-]*$")


class TransitionRowIn(BaseModel):
    """One row of the workflow's transition table (``GET /cases/workflow`` returns the rows in force)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_state: str = Field(alias="from", min_length=1, max_length=30)
    action: str = Field(min_length=1, max_length=30)
    to: str | None = Field(None, max_length=30, description="new state; null: unchanged; @previous: back (resume)")
    roles: list[str] = Field(default_factory=list, max_length=60, description="empty: any role holding the permission")
    permission: str | None = Field(None, max_length=60)
    required: list[str] = Field(default_factory=list, max_length=20)
    guard: str | None = Field(None, max_length=60)
    department: Literal["lead", "co"] | None = None
    start_steps: list[str] = Field(default_factory=list, max_length=20)
    finish_steps: list[str] = Field(default_factory=list, max_length=20)
    cancel_steps: list[str] = Field(default_factory=list, max_length=20)
    effects: list[str] = Field(default_factory=list, max_length=30)
    label: str | None = Field(None, max_length=60, description="ignored (returned by GET)")
    label_en: str | None = Field(None, max_length=60, description="ignored (returned by GET)")

    def row(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude={"label", "label_en"})


class PolicyPatch(BaseModel):
    """Intake policy settings to change (others keep their value)."""

    model_config = ConfigDict(extra="forbid")

    dedupe_radius_m: float | None = Field(None, ge=0, le=5000)
    dedupe_window_hours: float | None = Field(None, ge=0, le=24 * 365)
    dedupe_sources: list[str] | None = Field(None, max_length=20)
    trusted_sources: list[str] | None = Field(None, max_length=20)
    signal_window_minutes: float | None = Field(None, ge=0, le=7 * 24 * 60)
    signal_min_confidence: float | None = Field(None, ge=0, le=1)
    yellow_fraction: float | None = Field(None, gt=0, lt=1)
    public_rate_per_minute: float | None = Field(None, ge=0, le=10000)
    max_media_bytes: int | None = Field(None, ge=1, le=200 * 1024 * 1024)
    geojson_cap: int | None = Field(None, ge=1, le=100_000)

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class EscalationTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=40)
    department: Literal["lead"] | None = None
    area: Literal["street", "community", "grid", "district"] | None = None


class EscalationRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40)
    name: str | None = Field(None, max_length=200)
    trigger: Literal["overdue", "yellow", "urgent_reported", "urgent_dispatched"]
    steps: list[str] | None = Field(None, max_length=20)
    urgencies: list[Literal["normal", "urgent", "critical"]] | None = None
    targets: list[EscalationTarget] = Field(min_length=1, max_length=20)
    level: Literal["escalation", "warning"] = "escalation"
    enabled: bool = True


class CalendarDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date
    kind: Literal["holiday", "workday"] = Field(description="holiday, or workday (调休 make-up working day)")
    name: str | None = Field(None, max_length=60)
    name_en: str | None = Field(None, max_length=60)
    verified: bool = True
    note: str | None = Field(None, max_length=300)


class CalendarIn(BaseModel):
    """A new version of a working calendar (periods of the working day, weekend, holidays and 调休)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    name_en: str | None = Field(None, max_length=100)
    timezone: str = Field("Asia/Shanghai", max_length=60)
    periods: list[tuple[str, str]] = Field(min_length=1, max_length=8, description="[[\"09:00\", \"12:00\"], ...]")
    weekend: list[int] = Field(default_factory=lambda: [5, 6], max_length=7)
    days: list[CalendarDayIn] = Field(default_factory=list, max_length=2000)
    source: str | None = Field(None, max_length=300)

    def doc(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["periods"] = [list(p) for p in self.periods]
        return d
