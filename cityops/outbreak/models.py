"""Tables of outbreak command (战时疫情处置).

* ``ob_outbreak``: outbreak mode switched on for one disease in one area (district or street), linked
  to the signal that caused it; switching it off keeps every row (state ``ended``).
* ``ob_person``: everyone the outbreak tracks — cases and contacts — linked to the registry person
  with the same ID number when there is one; residence codes (scope); the derived category and end
  dates (``cityops.outbreak.categorise``, recomputed when the graph changes).
* ``ob_case``: a case report (classification, onset, sampling, outcome, exposure places).
  Classification changes are timeline rows (``timeline_entry``, object ``ob_case``).
* ``ob_exposure``: one edge of the contact graph: person exposed to a source person at a place.
* ``ob_zone``: a control zone (封控/管控/防范 or the rule set's levels) as a polygon with its level,
  dates and the day of the last new case inside (the downgrade count starts from it).
* ``ob_supply``: a supplies request for the households of a zone, handed over as a case to the
  responsible department (``cityops.cases.service``) and tracked until delivered.
* ``ob_followup``: a community station's record of a daily check or a test of a contact.
* ``ob_report``: a generated daily situation report (HTML + PDF, the console's briefing pipeline).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, Geometry, UTCDateTime, utcnow

S3 = {"sensitive": True, "pi_class": "S3", "data_class": "重要", "label": "敏感个人信息"}
S2 = {"sensitive": True, "pi_class": "S2", "data_class": "一般", "label": "一般个人信息"}


class Outbreak(Base):
    __tablename__ = "ob_outbreak"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    disease: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(200))
    area_code: Mapped[str] = mapped_column(String(15))
    street_code: Mapped[str | None] = mapped_column(String(9))
    rule_set: Mapped[str] = mapped_column(String(40))
    rules_version: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12), default="active")  # active / ended
    signal_type: Mapped[str | None] = mapped_column(String(30))  # e.g. health_signal, cluster, manual
    signal_ref: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(String(120))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    recomputed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # random tokens renewed with every change of the exposures / of the tracked persons (new ones, new
    # derived values): in-memory copies of the graph are valid for one token (``tracing._load``); a
    # rolled-back change takes its token with it, so a copy never outlives the rows it was read from
    exposure_token: Mapped[str | None] = mapped_column(String(32))
    person_token: Mapped[str | None] = mapped_column(String(32))
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)


# at most one active outbreak per disease and area
Index("uq_ob_outbreak_active", Outbreak.disease, Outbreak.area_code, unique=True,
      sqlite_where=Outbreak.state == "active", postgresql_where=Outbreak.state == "active")


class TrackedPerson(Base):
    __tablename__ = "ob_person"
    __table_args__ = (UniqueConstraint("outbreak_id", "id_number", name="uq_ob_person_id_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbreak_id: Mapped[int] = mapped_column(ForeignKey("ob_outbreak.id", ondelete="CASCADE"))
    id_number: Mapped[str | None] = mapped_column(String(18), info=S3)
    name: Mapped[str] = mapped_column(String(50), info=S2)
    phone: Mapped[str | None] = mapped_column(String(20), info=S2)
    registry_person_id: Mapped[int | None] = mapped_column(Integer)  # registry entity id (same ID number)
    household_code: Mapped[str | None] = mapped_column(String(40))
    building_code: Mapped[str | None] = mapped_column(String(40))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))
    # derived by rule (cityops.outbreak.categorise): case / close / secondary / None
    category: Mapped[str | None] = mapped_column(String(12))
    category_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_exposure_on: Mapped[dt.date | None] = mapped_column(Date)
    quarantine_end: Mapped[dt.date | None] = mapped_column(Date)
    monitoring_end: Mapped[dt.date | None] = mapped_column(Date)
    # the four derived values packed in one integer (``categorise.pack``): what a recomputation diffs
    cat_key: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_ob_person_key", TrackedPerson.outbreak_id, TrackedPerson.id, TrackedPerson.cat_key)
Index("ix_ob_person_street", TrackedPerson.outbreak_id, TrackedPerson.street_code, TrackedPerson.category)
Index("ix_ob_person_community", TrackedPerson.community_code, TrackedPerson.category)
Index("ix_ob_person_grid", TrackedPerson.outbreak_id, TrackedPerson.grid_code)


class OutbreakCase(Base):
    __tablename__ = "ob_case"
    __table_args__ = (UniqueConstraint("outbreak_id", "person_id", name="uq_ob_case_person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    outbreak_id: Mapped[int] = mapped_column(ForeignKey("ob_outbreak.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("ob_person.id", ondelete="CASCADE"))
    classification: Mapped[str] = mapped_column(String(20))
    onset_on: Mapped[dt.date | None] = mapped_column(Date)
    sampled_on: Mapped[dt.date | None] = mapped_column(Date)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    found_in: Mapped[str] = mapped_column(String(20), default="community")  # community / quarantine / screening
    outcome: Mapped[str | None] = mapped_column(String(20))  # treating / recovered / deceased
    # residence (copied from the person: the scope and the zone counts of a case)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))
    places: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # exposure places visited
    reported_by: Mapped[str] = mapped_column(String(120))


Index("ix_ob_case_street", OutbreakCase.outbreak_id, OutbreakCase.street_code, OutbreakCase.reported_at)
Index("ix_ob_case_community", OutbreakCase.community_code)
Index("ix_ob_case_grid", OutbreakCase.grid_code)


class Exposure(Base):
    __tablename__ = "ob_exposure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbreak_id: Mapped[int] = mapped_column(ForeignKey("ob_outbreak.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("ob_person.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("ob_person.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # household / work / meal / transport / medical / other
    place_kind: Mapped[str | None] = mapped_column(String(20))  # building / place / grid / point
    place_code: Mapped[str | None] = mapped_column(String(40))
    place_name: Mapped[str | None] = mapped_column(String(200))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    community_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(9))
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # the Shanghai calendar days of start and end (date.toordinal()): what the category rules compare
    start_day: Mapped[int] = mapped_column(Integer)
    end_day: Mapped[int] = mapped_column(Integer)
    recorded_by: Mapped[str] = mapped_column(String(120))


# covering: a recomputation reads the whole graph from the index alone
Index("ix_ob_exposure_graph", Exposure.outbreak_id, Exposure.person_id, Exposure.source_id, Exposure.start_day,
      Exposure.end_day)
Index("ix_ob_exposure_source", Exposure.source_id)
Index("ix_ob_exposure_person", Exposure.person_id)


class Zone(Base):
    __tablename__ = "ob_zone"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    outbreak_id: Mapped[int] = mapped_column(ForeignKey("ob_outbreak.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))  # the level code (sealed / controlled / precaution) or lifted
    by_downgrade: Mapped[bool] = mapped_column(Boolean, default=False)
    geom: Mapped[Any] = mapped_column(Geometry)
    built_from: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"kind": "drawn"|"building"|"grids", ...}
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    start_on: Mapped[dt.date] = mapped_column(Date)  # the zone's date (its population is counted as of it)
    planned_end: Mapped[dt.date | None] = mapped_column(Date)
    level_since: Mapped[dt.date] = mapped_column(Date)
    last_case_on: Mapped[dt.date | None] = mapped_column(Date)
    downgrade_due: Mapped[dt.date | None] = mapped_column(Date)
    lifted_on: Mapped[dt.date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_ob_zone_outbreak", Zone.outbreak_id, Zone.state)
Index("ix_ob_zone_street", Zone.street_code)


class SupplyRequest(Base):
    __tablename__ = "ob_supply"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("ob_zone.id", ondelete="CASCADE"))
    outbreak_id: Mapped[int] = mapped_column(ForeignKey("ob_outbreak.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    households: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(10))
    department_code: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(12), default="requested")  # requested / delivered / cancelled
    case_id: Mapped[int | None] = mapped_column(Integer)
    case_no: Mapped[str | None] = mapped_column(String(40))
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(120))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_quantity: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)


Index("ix_ob_supply_zone", SupplyRequest.zone_id, SupplyRequest.kind)


class FollowUp(Base):
    __tablename__ = "ob_followup"
    __table_args__ = (UniqueConstraint("person_id", "day", "kind", name="uq_ob_followup_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("ob_person.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(12))  # check / test
    result: Mapped[str] = mapped_column(String(20))  # normal / symptoms / negative / positive / unreachable
    note: Mapped[str | None] = mapped_column(String(500))
    community_code: Mapped[str | None] = mapped_column(String(12))
    done_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_by: Mapped[str] = mapped_column(String(120))


class SituationReport(Base):
    """One generated 疫情日报 of an outbreak for a day and the reader's area (district or street)."""

    __tablename__ = "ob_report"
    __table_args__ = (UniqueConstraint("outbreak_id", "day", "area_code", "lang", name="uq_ob_report_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbreak_id: Mapped[int] = mapped_column(ForeignKey("ob_outbreak.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    area_code: Mapped[str] = mapped_column(String(15))
    lang: Mapped[str] = mapped_column(String(4), default="zh")
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdf_error: Mapped[str | None] = mapped_column(Text)
    generated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    generated_by: Mapped[str] = mapped_column(String(120))
