"""Tables of the case engine (一网统管 案件闭环).

* reference data, versioned: departments, catalogue versions / categories / crosswalk,
  working calendars and their days, the transition table, escalation rules, intake policy;
* the case file and what hangs off it: reports (every intake, duplicates linked), timeline,
  SLA steps (each with due_at / yellow_at), department assignments (lead + co-handlers),
  routing decisions, consultation messages (会商), escalations (unique key: exactly once);
* machine signals and their filters; uploaded media; idempotency records.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow

# ---------------------------------------------------------------- reference data



# the reporter's personal data (masked on output, never leaves the safe room)
REPORTER_PI = {"sensitive": True, "pi_class": "S2", "data_class": "一般", "label": "一般个人信息"}

class Department(Base):
    """A handling unit (专业部门: 主管/权属/养护) or a 街镇城运中心. ``code`` is what accounts carry
    in ``department_code``."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(150))
    # district_department / owner_unit / maintenance_unit / street_centre / command_centre
    kind: Mapped[str] = mapped_column(String(24), default="district_department")
    # the territory it answers for (district code for district departments, 9 digits for a 街镇)
    area_code: Mapped[str | None] = mapped_column(String(15), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CatalogueVersion(Base):
    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    standard_ref: Mapped[str] = mapped_column(String(60))
    # draft / published / retired ; the active version is the published one with the latest
    # valid_from <= now (and valid_to empty or later)
    status: Mapped[str] = mapped_column(String(12), default="published")
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    default_time_limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    urgent_time_limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(80))


class Category(Base):
    """One minor category (小类) of a catalogue version."""

    __tablename__ = "category"
    __table_args__ = (
        UniqueConstraint("version_id", "code", name="uq_category_version_code"),
        UniqueConstraint("version_id", "kind", "type_code", name="uq_category_version_kind_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("catalogue_version.id", ondelete="CASCADE"), index=True)
    # public code: kind digit (1 部件, 2 事件/事项) + type code, e.g. 20102 (2013) / 206010 (2026)
    code: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # component / event / matter
    major_code: Mapped[str] = mapped_column(String(4))
    major_name: Mapped[str | None] = mapped_column(String(60))
    minor_code: Mapped[str] = mapped_column(String(4))
    type_code: Mapped[str] = mapped_column(String(8))
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(150))
    registration_criteria: Mapped[str | None] = mapped_column(Text)  # 立案条件
    closure_criteria: Mapped[str | None] = mapped_column(Text)  # 结案条件
    # {"handle": {"value": 4, "unit": "working_hour"}, ...}; steps not given use the version defaults
    time_limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    urgent_time_limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    urgency_default: Mapped[str] = mapped_column(String(10), default="normal")
    responsibility_rule: Mapped[str] = mapped_column(String(20), default="territory_first")
    default_department_code: Mapped[str | None] = mapped_column(String(40))
    co_department_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"area_prefix": "310117107", "department_code": "jz310117107"}]
    area_overrides: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    code_note: Mapped[str | None] = mapped_column(String(300))
    is_local_extension: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class CategoryCrosswalk(Base):
    __tablename__ = "category_crosswalk"
    __table_args__ = (UniqueConstraint("from_category_id", "to_category_id", name="uq_category_crosswalk_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_category_id: Mapped[int] = mapped_column(ForeignKey("category.id", ondelete="CASCADE"), index=True)
    to_category_id: Mapped[int] = mapped_column(ForeignKey("category.id", ondelete="CASCADE"), index=True)
    relation: Mapped[str] = mapped_column(String(16), default="equivalent")  # equivalent / broader / narrower


class WorkCalendarRow(Base):
    """A version of a working calendar (工作日历). Versions are immutable once used: a change is a
    new version; the active one is the latest ``active`` version of the code."""

    __tablename__ = "work_calendar"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_work_calendar_code_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    periods: Mapped[list[list[str]]] = mapped_column(JSON, default=list)  # [["09:00", "12:00"], ...]
    weekend: Mapped[list[int]] = mapped_column(JSON, default=list)  # weekday numbers, 0 = Monday
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(80))


class CalendarDay(Base):
    __tablename__ = "calendar_day"
    __table_args__ = (UniqueConstraint("calendar_id", "day", name="uq_calendar_day_calendar_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("work_calendar.id", ondelete="CASCADE"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(10))  # holiday / workday (调休 make-up working day)
    name: Mapped[str | None] = mapped_column(String(60))
    name_en: Mapped[str | None] = mapped_column(String(100))
    verified: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(String(300))


class Transition(Base):
    """One row of the workflow transition table (state x action -> state), as data."""

    __tablename__ = "case_transition"
    __table_args__ = (UniqueConstraint("from_state", "action", name="uq_case_transition_from_action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_state: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(30))
    to_state: Mapped[str | None] = mapped_column(String(20))  # None: stays; "@previous": back (resume)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    permission: Mapped[str] = mapped_column(String(40), default="case.act")
    required: Mapped[list[str]] = mapped_column(JSON, default=list)  # reason / photos / department_code / ...
    guard: Mapped[str | None] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(12))  # lead / assigned: who may act as a department
    start_steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    finish_steps: Mapped[list[str]] = mapped_column(JSON, default=list)  # ["*"]: every open step
    cancel_steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    effects: Mapped[list[str]] = mapped_column(JSON, default=list)
    sort: Mapped[int] = mapped_column(Integer, default=0)


class EscalationRule(Base):
    """Flat escalation as data: on a trigger, notify the targets at once."""

    __tablename__ = "escalation_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # overdue (a step passed its due time) / yellow (80 %) / urgent_reported / urgent_dispatched
    trigger: Mapped[str] = mapped_column(String(24))
    steps: Mapped[list[str] | None] = mapped_column(JSON)  # None: every step
    urgencies: Mapped[list[str] | None] = mapped_column(JSON)  # None: every urgency
    # [{"role": "district_commander"}, {"role": "dept_leader", "department": "lead"}, {"role": "shift_lead", "area": "street"}]
    targets: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    level: Mapped[str] = mapped_column(String(12), default="escalation")  # escalation / warning
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class PolicySetting(Base):
    """Small key/value settings of the case engine (dedupe radius and window, trusted sources ...)."""

    __tablename__ = "case_policy"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(80))


# ---------------------------------------------------------------- the case file


class Case(Base):
    __tablename__ = "case_file"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_case_file_source_external"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # supervisor / public / hotline / video_ai / iot / referral / media / open311
    source: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16), default="api")  # app / web / phone / import / api / sensor
    external_id: Mapped[str | None] = mapped_column(String(64))  # e.g. the 12345 order number
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    category_code: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(12))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(300))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str] = mapped_column(String(15))
    community_code: Mapped[str] = mapped_column(String(12))
    street_code: Mapped[str] = mapped_column(String(9))
    layer_codes: Mapped[dict[str, str | None]] = mapped_column(JSON, default=dict)
    urgency: Mapped[str] = mapped_column(String(10), default="normal")  # normal / urgent / critical
    appeal_type: Mapped[str | None] = mapped_column(String(12))  # inquiry / help / complaint / tip_off / suggestion
    state: Mapped[str] = mapped_column(String(20), default="reported")
    prev_state: Mapped[str | None] = mapped_column(String(20))
    # reporter (sensitive: masked on every output)
    reporter_name: Mapped[str | None] = mapped_column(String(60), info=REPORTER_PI)
    reporter_phone: Mapped[str | None] = mapped_column(String(30), info=REPORTER_PI)
    reporter_account_id: Mapped[int | None] = mapped_column(Integer)
    reporter_count: Mapped[int] = mapped_column(Integer, default=1)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"))
    tracking_token: Mapped[str | None] = mapped_column(String(40), unique=True)
    # routing and handling
    proposed_department_code: Mapped[str | None] = mapped_column(String(40))
    lead_department_code: Mapped[str | None] = mapped_column(String(40))
    verification_result: Mapped[str | None] = mapped_column(String(12))  # valid / invalid
    inspection_result: Mapped[str | None] = mapped_column(String(12))  # pass / fail
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    closure_reason: Mapped[str | None] = mapped_column(String(40))
    extension_pending: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    self_handled: Mapped[bool] = mapped_column(Boolean, default=False)
    # per-stage timestamps
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    verifying_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    registered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    not_registered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_back_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    inspecting_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    inspected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reopened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # SLA of the open steps (earliest), so that overdue / yellow filters are index range queries
    sla_step: Mapped[str | None] = mapped_column(String(16))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    yellow_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    overdue_count: Mapped[int] = mapped_column(Integer, default=0)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    sendback_count: Mapped[int] = mapped_column(Integer, default=0)
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    oversee_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    @property
    def case_no(self) -> str:
        return case_no(self.id, self.reported_at)


def case_no(case_id: int, reported_at: dt.datetime | None) -> str:
    """案件编号: local report date (yyyymmdd) + the id, zero-padded to 7 digits."""
    from zoneinfo import ZoneInfo

    day = (reported_at or utcnow()).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")
    return f"{day}{case_id:07d}"


def parse_case_no(value: str) -> int | None:
    """The id inside a case number (or a plain id)."""
    v = value.strip()
    if v.isdigit() and len(v) >= 15:
        return int(v[8:])
    if v.isdigit() and len(v) <= 12:
        return int(v)
    return None


# Lists are ordered by reported_at (then id); the area scope is an equality on the street /
# community / grid column (cityops.cases.queries.area_filter). A street holds a quarter of a
# district's cases, so a street's usual filters have their own indexes: state and category keep
# the page's order (no sort) and make the total an index-only count, and the last one, led by
# due_at, covers the overdue / SLA filters and the counts of any other filter (state, category,
# urgency, source, kind) without reading the table; category + state (the district's usual
# combination) is counted from its own index (bench/scoped_list.py, issue 4).
Index("ix_case_file_reported", Case.reported_at)
Index("ix_case_file_street_reported", Case.street_code, Case.reported_at)
Index("ix_case_file_street_state_reported", Case.street_code, Case.state, Case.reported_at)
Index("ix_case_file_street_category_reported", Case.street_code, Case.category_id, Case.reported_at)
Index("ix_case_file_street_due_cover", Case.street_code, Case.due_at, Case.yellow_at, Case.state, Case.category_id,
      Case.urgency, Case.source, Case.kind)
Index("ix_case_file_community_reported", Case.community_code, Case.reported_at)
Index("ix_case_file_grid_reported", Case.grid_code, Case.reported_at)
Index("ix_case_file_state_reported", Case.state, Case.reported_at)
Index("ix_case_file_category_reported", Case.category_id, Case.reported_at)
Index("ix_case_file_category_state_reported", Case.category_id, Case.state, Case.reported_at)
Index("ix_case_file_source_reported", Case.source, Case.reported_at)
Index("ix_case_file_lead_reported", Case.lead_department_code, Case.reported_at)
Index("ix_case_file_due", Case.due_at)
Index("ix_case_file_closed", Case.closed_at)
Index("ix_case_file_lat_lon", Case.lat, Case.lon)
# Duplicate search (cityops.cases.intake.near_open_cases): the open cases of one category near a
# point. Partial (open cases only), so it stays small and the planner cannot take it for the
# category lists (whose order it cannot give). The states are the open states of the workflow
# (data/workflow.json; tests/test_cases_reference.py checks they agree) written out, because the
# duplicate query must repeat the index's condition word for word for SQLite to use it.
DEDUPE_STATES = ("accepted", "acknowledged", "dispatched", "handled", "inspected", "inspecting", "registered",
                 "reported", "sent_back", "suspended", "verified", "verifying")
Index("ix_case_file_open_category_lat_lon", Case.category_id, Case.lat, Case.lon,
      sqlite_where=Case.state.in_(DEDUPE_STATES), postgresql_where=Case.state.in_(DEDUPE_STATES))


class CaseReport(Base):
    """Every intake (a report from one reporter through one channel). The first one creates the
    case; a duplicate within the radius/window is linked to the open case instead."""

    __tablename__ = "case_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16), default="api")
    external_id: Mapped[str | None] = mapped_column(String(64))
    reporter_name: Mapped[str | None] = mapped_column(String(60), info=REPORTER_PI)
    reporter_phone: Mapped[str | None] = mapped_column(String(30), info=REPORTER_PI)
    reporter_account_id: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    media: Mapped[list[str]] = mapped_column(JSON, default=list)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseEvent(Base):
    """The shared timeline: one row per transition and per significant happening."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    actor_account_id: Mapped[int | None] = mapped_column(Integer)
    actor_roles: Mapped[str | None] = mapped_column(String(200))
    department_code: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(30))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attachments: Mapped[list[str]] = mapped_column(JSON, default=list)


Index("ix_case_event_case_id", CaseEvent.case_id, CaseEvent.id)
# the evaluation and the daily facts read the events of a period (by action)
Index("ix_case_event_action_at", CaseEvent.action, CaseEvent.at)


class CaseStep(Base):
    """One timed step of a case (accept, verify, register, dispatch, acknowledge, handle, inspect,
    close, evaluate). Its timer is a row of cityops.jobs (kind case.sla: yellow phase, then red)."""

    __tablename__ = "case_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer, default=1)
    department_code: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="open")  # open / done / cancelled / paused
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    yellow_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    limit_value: Mapped[float] = mapped_column(Float)
    limit_unit: Mapped[str] = mapped_column(String(16))
    calendar_id: Mapped[int | None] = mapped_column(Integer)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    overdue_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # when the red timer fired
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paused_remaining_s: Mapped[float | None] = mapped_column(Float)
    extended: Mapped[int] = mapped_column(Integer, default=0)


Index("ix_case_step_status_due", CaseStep.status, CaseStep.due_at)
Index("ix_case_step_step_finished", CaseStep.step, CaseStep.finished_at)


class CaseDepartment(Base):
    """Who handles a case now and before: the lead department and co-handlers (联合处置)."""

    __tablename__ = "case_department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"))
    department_code: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(8))  # lead / co
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_by: Mapped[str | None] = mapped_column(String(80))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    feedback_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # the case's report time, kept here (it never changes) so that a department's case list walks
    # this table's index in the list's order and counts its cases without touching ``case_file``
    case_reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# the cases a department handles now, in report-time order (partial: PostgreSQL does not take
# ``released_at IS NULL`` as fixing a column for the order, so the column is not in the key)
Index("ix_case_department_dept_active", CaseDepartment.department_code, CaseDepartment.case_reported_at,
      CaseDepartment.case_id, sqlite_where=CaseDepartment.released_at.is_(None),
      postgresql_where=CaseDepartment.released_at.is_(None))
# a case's departments (and, covering, "is this case handled by D now" probed from a filtered list)
Index("ix_case_department_case_active", CaseDepartment.case_id, CaseDepartment.department_code,
      CaseDepartment.released_at)


class RoutingDecision(Base):
    """Proposed vs chosen department at every dispatch (training data for smarter routing)."""

    __tablename__ = "routing_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(20))  # register (proposal) / dispatch / reassign
    rule: Mapped[str | None] = mapped_column(String(40))
    explanation: Mapped[str | None] = mapped_column(String(300))
    proposed_department_code: Mapped[str | None] = mapped_column(String(40))
    proposed_co_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    chosen_department_code: Mapped[str | None] = mapped_column(String(40))
    chosen_co_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(Text)


class ConsultationMessage(Base):
    """会商: messages on a case between the departments involved and the command centre."""

    __tablename__ = "case_consultation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    author: Mapped[str] = mapped_column(String(80))
    author_roles: Mapped[str | None] = mapped_column(String(200))
    department_code: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[str]] = mapped_column(JSON, default=list)


class Escalation(Base):
    """An escalation (or warning) that happened. ``key`` is unique, so that a rule fires exactly
    once per case step however many workers run the timer pass."""

    __tablename__ = "case_escalation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[int | None] = mapped_column(Integer)
    rule_code: Mapped[str] = mapped_column(String(40))
    trigger: Mapped[str] = mapped_column(String(24))
    level: Mapped[str] = mapped_column(String(12), default="escalation")
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(String(300))


# ---------------------------------------------------------------- machine signals


class SignalFilter(Base):
    """Dispatch-style signal filter: mode active / monitor / inactive / expired, action
    deduplicate / snooze / none, a window, an optional expiry and what it matches."""

    __tablename__ = "signal_filter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(10), default="active")
    action: Mapped[str] = mapped_column(String(12), default="deduplicate")
    signal_type: Mapped[str | None] = mapped_column(String(60))
    device_prefix: Mapped[str | None] = mapped_column(String(60))
    area_prefix: Mapped[str | None] = mapped_column(String(15))
    window_minutes: Mapped[int] = mapped_column(Integer, default=60)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Signal(Base):
    """A raw sensor / video-AI signal: always stored, whatever became of it."""

    __tablename__ = "case_signal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # video_ai / iot
    device_id: Mapped[str] = mapped_column(String(60))
    signal_type: Mapped[str] = mapped_column(String(60))
    signal_key: Mapped[str] = mapped_column(String(200))
    category_id: Mapped[int | None] = mapped_column(Integer)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    confidence: Mapped[float | None] = mapped_column(Float)
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # case_created / deduplicated / snoozed / monitored / ignored
    outcome: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(Integer)
    filter_id: Mapped[int | None] = mapped_column(Integer)


Index("ix_case_signal_key_observed", Signal.signal_key, Signal.observed_at)


# ---------------------------------------------------------------- media and idempotency


class Media(Base):
    __tablename__ = "case_media"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(300))
    uploaded_by: Mapped[str | None] = mapped_column(String(80))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)


class IdempotencyRecord(Base):
    """The first answer to a request sent with an Idempotency-Key; a retry gets it again."""

    __tablename__ = "case_idempotency"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_case_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=201)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    case_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def table(model: Any) -> Table:
    """The Core table of a mapped class (typed for Core insert/update statements)."""
    return model.__table__  # type: ignore[no-any-return]
