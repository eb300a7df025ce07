"""Tables of emergency command (应急指挥): incidents and their intakes, the flat-reporting record
(who was told when) and the reporting deadlines (信息报告), plans as versioned documents, their
activations and the department tasks they create, public warnings and the CAP messages issued for
them, and the mobilisation call-ups.

State changes of incidents, tasks and warnings are lifecycle tables (``data/*_lifecycle.json``) run
by ``cityops.lifecycle``; their timelines are the generic ``timeline_entry`` rows. Drill data is
flagged (``exercise``) on every derived row and kept out of live figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, Geometry, UTCDateTime, utcnow


class Incident(Base):
    """One emergency (突发事件): category + subtype + free event type, severity I–IV, the response
    level now, where (the codes of the most precise known area; point and affected area when known)."""

    __tablename__ = "em_incident"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(20))  # natural / accident / public_health / social_security
    subtype: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str | None] = mapped_column(String(60))  # e.g. 暴雨内涝, 燃气泄漏
    severity: Mapped[str] = mapped_column(String(4))  # I / II / III / IV
    response_level: Mapped[str | None] = mapped_column(String(4))
    state: Mapped[str] = mapped_column(String(20), default="reported")
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    area_code: Mapped[str] = mapped_column(String(15))
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry, nullable=True)
    address: Mapped[str | None] = mapped_column(String(300))
    source_type: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str | None] = mapped_column(String(80))
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the first report (deadlines count from it)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # intake into the system
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("em_incident.id"))
    report_count: Mapped[int] = mapped_column(Integer, default=1)
    summary: Mapped[str | None] = mapped_column(Text)  # the evaluation's conclusion (归档)
    rules_version: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_em_incident_street_opened", Incident.street_code, Incident.opened_at)
Index("ix_em_incident_community_opened", Incident.community_code, Incident.opened_at)
Index("ix_em_incident_grid", Incident.grid_code)
Index("ix_em_incident_state_opened", Incident.state, Incident.opened_at)
Index("ix_em_incident_category_state", Incident.category, Incident.subtype, Incident.state)


class IncidentIntake(Base):
    """Every report that reached an incident (phone, escalated case, vital-signs warning, health
    signal ...). A duplicate report is linked here instead of opening a second incident; a linked
    source (case id, warning id) is linked at most once."""

    __tablename__ = "em_incident_intake"
    __table_args__ = (UniqueConstraint("source_type", "source_ref", name="uq_em_incident_intake_source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("em_incident.id", ondelete="CASCADE"), index=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    source_type: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str | None] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    area_code: Mapped[str | None] = mapped_column(String(15))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    reporter: Mapped[str | None] = mapped_column(String(80))
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(80))
    merged_from_id: Mapped[int | None] = mapped_column(Integer)  # the incident it came from (manual merge)


class IncidentNotice(Base):
    """Who was told about an incident, when and how: the flat-reporting record the report→department
    and report→command times are measured from. ``kind`` command / department / street / partner;
    ``level`` district / city / national (command), department, street."""

    __tablename__ = "em_incident_notice"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("em_incident.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(12))
    recipient_code: Mapped[str] = mapped_column(String(40))
    recipient_name: Mapped[str | None] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(12))  # in_app / phone / written / outbox
    origin: Mapped[str] = mapped_column(String(16))  # intake / report / activation / merge
    notified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    notification_id: Mapped[int | None] = mapped_column(Integer)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))


Index("ix_em_incident_notice_incident", IncidentNotice.incident_id, IncidentNotice.kind, IncidentNotice.notified_at)
Index("ix_em_incident_notice_recipient", IncidentNotice.recipient_code, IncidentNotice.incident_id)


class ReportDeadline(Base):
    """One information-reporting obligation of an incident (e.g. 30 min by phone to the district
    command), armed as a timer; passing ``due_at`` unreported escalates once (``escalated_at``)."""

    __tablename__ = "em_report_deadline"
    __table_args__ = (UniqueConstraint("incident_id", "rule_code", name="uq_em_report_deadline_rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("em_incident.id", ondelete="CASCADE"), index=True)
    rule_code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(12))  # initial / follow_up / final (首报 / 续报 / 终报)
    channel: Mapped[str] = mapped_column(String(12))  # phone / written
    level: Mapped[str] = mapped_column(String(12))  # district / city / national
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(80))
    content: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Plan(Base):
    """A contingency plan (预案); its content lives in versions (``PlanVersion``)."""

    __tablename__ = "em_plan"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    plan_type: Mapped[str] = mapped_column(String(16))  # overall / special / department / grassroots / unit
    owner_department_code: Mapped[str | None] = mapped_column(String(40))
    current_version_id: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_review_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_drill_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_drill_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlanVersion(Base):
    """One version of a plan: the validated document (JSON/YAML import), immutable once stored."""

    __tablename__ = "em_plan_version"
    __table_args__ = (UniqueConstraint("plan_id", "version", name="uq_em_plan_version_plan_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("em_plan.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(40))  # the document's own edition label
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(80))


class PlanActivation(Base):
    """A plan activated for an incident at a response level (the level follows the incident's)."""

    __tablename__ = "em_plan_activation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("em_incident.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("em_plan.id"))
    plan_version_id: Mapped[int] = mapped_column(ForeignKey("em_plan_version.id"))
    level: Mapped[str] = mapped_column(String(4))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    activated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    activated_by: Mapped[str | None] = mapped_column(String(80))
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class EmergencyTask(Base):
    """A department's task from an activated plan (the closed loop's steps have a sibling here): an
    owner department, a deadline (SLA), its own lifecycle (``data/task_lifecycle.json``)."""

    __tablename__ = "em_task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("em_incident.id", ondelete="CASCADE"))
    activation_id: Mapped[int] = mapped_column(ForeignKey("em_plan_activation.id", ondelete="CASCADE"), index=True)
    task_key: Mapped[str] = mapped_column(String(60))
    level: Mapped[str] = mapped_column(String(4))  # the response level at which it was added
    group_code: Mapped[str | None] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    owner_department_code: Mapped[str] = mapped_column(String(40))
    area_code: Mapped[str] = mapped_column(String(15))
    state: Mapped[str] = mapped_column(String(16), default="open")
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    yellow_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    overdue_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


Index("ix_em_task_incident_state", EmergencyTask.incident_id, EmergencyTask.state)
Index("ix_em_task_owner_state_due", EmergencyTask.owner_department_code, EmergencyTask.state, EmergencyTask.due_at)
Index("ix_em_task_area", EmergencyTask.area_code)


class PublicWarning(Base):
    """A public warning (预警信息): red / orange / yellow / blue, Actual or Exercise; each issue
    (publish, update, cancel) is a CAP message (``WarningMessage``)."""

    __tablename__ = "em_warning"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("em_incident.id", ondelete="SET NULL"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    level: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10), default="Actual")  # CAP status: Actual / Exercise
    event: Mapped[str] = mapped_column(String(60))  # e.g. 暴雨
    event_en: Mapped[str | None] = mapped_column(String(60))
    cap_category: Mapped[str] = mapped_column(String(12), default="Met")
    certainty: Mapped[str] = mapped_column(String(10), default="Likely")
    response_type: Mapped[str | None] = mapped_column(String(12))
    headline: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    instruction: Mapped[str | None] = mapped_column(Text)
    headline_en: Mapped[str | None] = mapped_column(String(200))
    description_en: Mapped[str | None] = mapped_column(Text)
    instruction_en: Mapped[str | None] = mapped_column(Text)
    area_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    area_code: Mapped[str] = mapped_column(String(15))  # the smallest area holding all of them (scope)
    area_desc: Mapped[str] = mapped_column(String(300))
    geom: Mapped[Any] = mapped_column(Geometry, nullable=True)
    effective_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    onset_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(300))
    drafted_by: Mapped[str] = mapped_column(String(80))
    drafted_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_by: Mapped[str | None] = mapped_column(String(80))
    approved_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_em_warning_area_state", PublicWarning.area_code, PublicWarning.state)
Index("ix_em_warning_state_published", PublicWarning.state, PublicWarning.published_at)


class WarningMessage(Base):
    """One CAP 1.2 message as issued (validated against the OASIS XSD when written): Alert, Update
    (references the earlier ones) or Cancel. The stored XML is what ``/warnings/{id}.cap`` serves."""

    __tablename__ = "em_warning_message"
    __table_args__ = (UniqueConstraint("warning_id", "seq", name="uq_em_warning_message_warning_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("em_warning.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    sender: Mapped[str] = mapped_column(String(120))
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_text: Mapped[str] = mapped_column(String(32))  # as written in the message (+08:00)
    msg_type: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10))
    references: Mapped[str | None] = mapped_column(Text)
    xml: Mapped[str] = mapped_column(Text)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)


class MobilisationCallup(Base):
    """One rung of the mobilisation ladder called up for an incident: which pool, which organisation
    (a department of the district, a partner under agreement, or the residents), its duty; the
    acknowledgement is tracked."""

    __tablename__ = "em_mobilisation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("em_incident.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(4))
    pool: Mapped[str] = mapped_column(String(20))
    org_code: Mapped[str] = mapped_column(String(40))
    org_name: Mapped[str] = mapped_column(String(120))
    department_code: Mapped[str | None] = mapped_column(String(40))
    duty: Mapped[str] = mapped_column(Text)
    area_code: Mapped[str] = mapped_column(String(15))
    state: Mapped[str] = mapped_column(String(16), default="called")  # called / acknowledged / stood_down
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    called_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))
    stood_down_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


Index("ix_em_mobilisation_department", MobilisationCallup.department_code, MobilisationCallup.state)
