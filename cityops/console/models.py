"""Tables of the console: the generated daily briefings (城运日报)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class Briefing(Base):
    """One generated 城运日报 for a day (Asia/Shanghai) and an area (the district, or a street)."""

    __tablename__ = "console_briefing"
    __table_args__ = (UniqueConstraint("day", "area_code", "lang", name="uq_console_briefing_day_area_lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    area_code: Mapped[str] = mapped_column(String(15))
    lang: Mapped[str] = mapped_column(String(4), default="zh")
    generated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    generated_by: Mapped[str] = mapped_column(String(80))  # username, or "schedule"
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdf_engine: Mapped[str | None] = mapped_column(String(120))  # e.g. "Chromium 156.0.8078.108 built on Debian"
    pdf_error: Mapped[str | None] = mapped_column(Text)
