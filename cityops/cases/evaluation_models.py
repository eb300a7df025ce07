"""Versioned evaluation schemes (考核方案): indicator weights, count step functions and grade bands
as data. A version is immutable once saved; a change is a new version."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class EvaluationScheme(Base):
    __tablename__ = "evaluation_scheme"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_evaluation_scheme_code_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(200))
    # published / draft / retired; the one in force for a period is the latest published version
    # whose valid_from is before the period's end
    status: Mapped[str] = mapped_column(String(12), default="published")
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(80))


class EvaluationFact(Base):
    """Daily facts of the evaluation: the raw counts of one subject key (an account, a department,
    an area code) for one Asia/Shanghai day and one street, as ``cityops.cases.evaluation`` would
    count them over that day alone. Maintained by the worker (``evaluation.facts``); a period's
    evaluation sums the days instead of scanning the history."""

    __tablename__ = "evaluation_fact"
    __table_args__ = (UniqueConstraint("subject", "day", "street_code", "key", name="uq_evaluation_fact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(20))
    day: Mapped[dt.date] = mapped_column(Date)
    street_code: Mapped[str] = mapped_column(String(15))
    key: Mapped[str] = mapped_column(String(80))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EvaluationFactDay(Base):
    """Which days have facts, and which of them a later change made stale (``dirty``)."""

    __tablename__ = "evaluation_fact_day"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    rows: Mapped[int] = mapped_column(Integer, default=0)


class EvaluationFactMark(Base):
    """The last case_event id whose case's days were marked (one row, id 1)."""

    __tablename__ = "evaluation_fact_mark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
Index("ix_evaluation_fact_subject_day", EvaluationFact.subject, EvaluationFact.day)
