"""Tables of city vital signs (城市运行体征): catalogue versions, devices and their series, raw
readings (partitioned by time on PostgreSQL), the ingest batch log, rollups, warnings.

Raw readings are the hot table: times are UTC epoch milliseconds (``BigInteger``), not
``UTCDateTime``, so that a batch of 5,000 readings needs no datetime object per row; the key
``(ts, series_id, rev)`` makes (device, indicator, ts) idempotent (``rev`` > 0: a correction) and
keeps inserts of a live stream at the right end of the B-tree. On PostgreSQL the table is
partitioned by range of ``ts`` (one partition a day, see ``cityops.indicators.partitions``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow
from cityops.jobs.models import BigId, Json
from cityops.security.scope import Located, ScopedKind

LEVELS = ("blue", "yellow", "orange", "red")  # 四级(蓝) .. 一级(红); rank = index
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
OPEN_STATES = ("raised", "acknowledged", "handled")


class CatalogueVersion(Base):
    """One version of the indicator catalogue (indicators and rules), as data."""

    __tablename__ = "indicator_catalogue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(60), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    doc: Mapped[dict[str, Any]] = mapped_column(Json)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))


class Device(Base):
    """A sensor / terminal (物联感知设备) and where it is (WGS-84 → grid, community, street)."""

    __tablename__ = "indicator_device"
    __table_args__ = (Index("ix_indicator_device_grid", "grid_code", "id"),
                      Index("ix_indicator_device_street", "street_code", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    indicators: Mapped[list[str]] = mapped_column(Json, default=list)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))
    owner_department_code: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / maintenance / retired
    params: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # e.g. {"warning_line": 3.8}
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


DEVICE_SCOPE = ScopedKind("device", Located(street=Device.street_code, community=Device.community_code,
                                            grid=Device.grid_code))


class Series(Base):
    """One (device, indicator): the unit readings, rule state and device rollups are kept per."""

    __tablename__ = "indicator_series"
    __table_args__ = (UniqueConstraint("device_id", "indicator_code", name="uq_indicator_series_device_indicator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("indicator_device.id"))
    indicator_code: Mapped[str] = mapped_column(String(40))
    # denormalised from the device (rollups group by them in SQL)
    grid_code: Mapped[str] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))


class Reading(Base):
    """A raw reading. ``ts`` UTC epoch ms; ``rev`` 0 the first value, 1.. corrections."""

    __tablename__ = "indicator_reading"
    __table_args__ = (PrimaryKeyConstraint("ts", "series_id", "rev", name="pk_indicator_reading"),
                      {"sqlite_with_rowid": False, "postgresql_partition_by": "RANGE (ts)"})

    ts: Mapped[int] = mapped_column(BigInteger)
    series_id: Mapped[int] = mapped_column(Integer)
    rev: Mapped[int] = mapped_column(SmallInteger, default=0)
    value: Mapped[float] = mapped_column(Float)
    batch_id: Mapped[int] = mapped_column(BigInteger)


class Batch(Base):
    """The ingest log: one row per stored batch (its readings carry its id). ``status``: stored
    (committed, rules not yet run) -> evaluated (rules and rollups done, in one transaction)."""

    __tablename__ = "indicator_batch"
    __table_args__ = (Index("ix_indicator_batch_stored", "id", sqlite_where=text("status = 'stored'"),
                            postgresql_where=text("status = 'stored'")),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(120))
    n: Mapped[int] = mapped_column(Integer)
    ts_min: Mapped[int] = mapped_column(BigInteger)
    ts_max: Mapped[int] = mapped_column(BigInteger)
    corrections: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10), default="stored")
    evaluated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Lease(Base):
    """Who runs the rules now (one evaluator per database; others only store)."""

    __tablename__ = "indicator_lease"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    epoch: Mapped[int] = mapped_column(Integer, default=0)


class DeviceRollup(Base):
    """Per-series aggregates of closed and open buckets (``res`` 3600 or 86400 s; minutes of one
    device come from the raw readings)."""

    __tablename__ = "indicator_rollup_device"
    __table_args__ = (PrimaryKeyConstraint("series_id", "res", "bucket", name="pk_indicator_rollup_device"),
                      {"sqlite_with_rowid": False})

    series_id: Mapped[int] = mapped_column(Integer)
    res: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int] = mapped_column(BigInteger)  # epoch ms of the bucket start
    n: Mapped[int] = mapped_column(Integer)
    sum: Mapped[float] = mapped_column(Float)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    last: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[int] = mapped_column(BigInteger)


class AreaRollup(Base):
    """Per-area (grid / community / street / district) aggregates over the devices inside, per
    indicator (``res`` 60, 3600, 86400 s)."""

    __tablename__ = "indicator_rollup_area"
    __table_args__ = (PrimaryKeyConstraint("area_code", "indicator_code", "res", "bucket",
                                           name="pk_indicator_rollup_area"), {"sqlite_with_rowid": False})

    area_code: Mapped[str] = mapped_column(String(15))
    indicator_code: Mapped[str] = mapped_column(String(40))
    res: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer)
    sum: Mapped[float] = mapped_column(Float)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    last: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[int] = mapped_column(BigInteger)


class RollupTouched(Base):
    """Hour buckets whose minute rollups changed since the coarser rollups were derived."""

    __tablename__ = "indicator_rollup_touched"
    __table_args__ = (PrimaryKeyConstraint("bucket", name="pk_indicator_rollup_touched"),)

    bucket: Mapped[int] = mapped_column(BigInteger)  # hour start, epoch ms


class EarlyWarning(Base):
    """An early warning (预警): one open per (rule, area); raised -> acknowledged -> handled -> lifted."""

    __tablename__ = "indicator_warning"
    __table_args__ = (
        Index("uq_indicator_warning_open", "rule_code", "area_code", unique=True,
              sqlite_where=text("state != 'lifted'"), postgresql_where=text("state != 'lifted'")),
        Index("ix_indicator_warning_state", "state", "level_rank", "id"),
        Index("ix_indicator_warning_street", "street_code", "id"),
        Index("ix_indicator_warning_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_code: Mapped[str] = mapped_column(String(60))
    rule_kind: Mapped[str] = mapped_column(String(20))
    catalogue_version: Mapped[str] = mapped_column(String(60))
    indicator_code: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(20))
    area_code: Mapped[str] = mapped_column(String(15))
    area_level: Mapped[str] = mapped_column(String(10))
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    owner_department_code: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(8))
    level_rank: Mapped[int] = mapped_column(SmallInteger)
    max_level: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="raised")
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    level_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    subjects: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # device code -> level
    trigger: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # readings that raised it
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(Integer)
    case_no: Mapped[str | None] = mapped_column(String(40))


WARNING_SCOPE = ScopedKind(
    "warning", Located(street=EarlyWarning.street_code, community=EarlyWarning.community_code, grid=EarlyWarning.grid_code,
                       code=EarlyWarning.area_code),
    handled_by=lambda dept: EarlyWarning.owner_department_code == dept)


def _install() -> None:
    from cityops.indicators.partitions import install_ddl_event

    install_ddl_event(Reading.__table__)


_install()
