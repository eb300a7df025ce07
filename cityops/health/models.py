"""Tables of public-health surveillance (平时监测预警): sentinel sites, daily syndrome counts per site,
notifiable-disease case reports (personal data: masked and area-scoped), detection signals with their
response workflow (初步核实 -> 现场调查 -> 排除 / 疑似事件 / 确认暴发)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow
from cityops.jobs.models import Json
from cityops.security.scope import Located, ScopedKind

SITE_KINDS = {"fever_clinic": ("发热门诊", "fever clinic"), "pharmacy": ("药店", "pharmacy"),
              "school": ("学校", "school"), "kindergarten": ("幼儿园", "kindergarten"),
              "hospital": ("哨点医院", "sentinel hospital")}
SYNDROMES = {"ili": ("流感样病例", "influenza-like illness (fever >= 38 C with cough or sore throat)"),
             "diarrhoea": ("腹泻", "diarrhoea"), "rash": ("皮疹", "rash"), "fever": ("发热", "fever"),
             "absenteeism": ("因病缺勤", "absenteeism"), "antipyretic": ("退热药销售", "antipyretic sales")}
SIGNAL_OPEN = ("new", "verifying", "investigating")
OUTCOMES = ("excluded", "suspected", "confirmed")


class SentinelSite(Base):
    """A sentinel site (哨点) and where it is (WGS-84 -> grid, community, street)."""

    __tablename__ = "health_site"
    __table_args__ = (Index("ix_health_site_street", "street_code", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


SITE_SCOPE = ScopedKind("health_site", Located(street=SentinelSite.street_code,
                                               community=SentinelSite.community_code, grid=SentinelSite.grid_code))


class DailyCount(Base):
    """Count of one syndrome at one site on one local (Asia/Shanghai) day; ``visits`` = all visits (ILI%)."""

    __tablename__ = "health_count"
    __table_args__ = (UniqueConstraint("site_id", "day", "syndrome", name="uq_health_count"),
                      Index("ix_health_count_day", "day", "syndrome"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("health_site.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    syndrome: Mapped[str] = mapped_column(String(20))
    count: Mapped[int] = mapped_column(Integer)
    visits: Mapped[int | None] = mapped_column(Integer)
    street_code: Mapped[str | None] = mapped_column(String(9))  # denormalised from the site (aggregation)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseReport(Base):
    """A notifiable-disease case report (传染病报告卡); name, ID number, phone and address are personal data."""

    __tablename__ = "health_case_report"
    __table_args__ = (Index("ix_health_case_street", "street_code", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    disease: Mapped[str] = mapped_column(String(60))
    disease_class: Mapped[str] = mapped_column(String(2))  # A / B / C
    name: Mapped[str] = mapped_column(String(60))
    id_number: Mapped[str] = mapped_column(String(18))
    phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(1))
    age: Mapped[int | None] = mapped_column(Integer)
    onset_date: Mapped[dt.date | None] = mapped_column(Date)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("health_site.id"))
    grid_code: Mapped[str] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))


CASE_REPORT_SCOPE = ScopedKind("health_case_report", Located(street=CaseReport.street_code,
                                                             community=CaseReport.community_code,
                                                             grid=CaseReport.grid_code))


class Signal(Base):
    """A detection signal (预警信号) and its response: status new -> verifying -> investigating -> closed,
    outcome excluded / suspected / confirmed; ``verify_due_at`` armed as a timer (escalates once)."""

    __tablename__ = "health_signal"
    __table_args__ = (UniqueConstraint("method", "syndrome", "area_code", "period_end", name="uq_health_signal"),
                      Index("ix_health_signal_status", "status", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(40))
    syndrome: Mapped[str] = mapped_column(String(40))
    area_code: Mapped[str] = mapped_column(String(15))
    area_level: Mapped[str] = mapped_column(String(10))  # district / street / site
    site_id: Mapped[int | None] = mapped_column(ForeignKey("health_site.id"))
    period_end: Mapped[dt.date] = mapped_column(Date)
    observed: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    params: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    rule: Mapped[str | None] = mapped_column(String(40))  # e.g. school_ili_10 / school_ili_30
    status: Mapped[str] = mapped_column(String(16), default="new")
    outcome: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    verify_due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    investigated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    officer: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


SIGNAL_SCOPE = ScopedKind("health_signal", Located(code=Signal.area_code))
