"""Versioned evaluation schemes (考核方案): indicator weights, count step functions and grade bands
as data. A version is immutable once saved; a change is a new version."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
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
