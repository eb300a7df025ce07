"""Base data (人、地、房、物、组织) with history.

Every table keeps **versions**: one row per version of a record, ``valid_from`` (inclusive) and
``valid_to`` (exclusive, NULL while current), both UTC. A record keeps the same ``entity_id``
(the id of its first version) and the same business key (building code, ID number, component
code, credit code, ...) across its versions; at most one version per key is current (partial
unique index). Re-imports close the current version and open a new one only when something
changed (see ``cityops.registry.importers``).

Every record carries the codes of the unit grid, community and street it lies in
(``grid_code`` / ``community_code`` / ``street_code``, computed with
``cityops.geo.service.grid_indices_for`` and ``lineage``), so area scoping of current versions is
an equality on the column of the caller's level (``cityops.security.scope.Located.within``),
served by partial indexes ``(level_code, entity_id, id) WHERE valid_to IS NULL`` (see the end of
this module); past versions are scoped by a prefix range on the indexed ``grid_code``.

Columns holding personal data are marked in ``Column.info``: ``sensitive`` (masked on output)
and ``data_class`` (GB/T 43697 grade: 核心/重要/一般) with ``pi_class`` (S3 sensitive PI,
S2 ordinary PI); ``FIELD_CLASSES`` lists them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, Geometry, UTCDateTime

# ------------------------------------------------------------------ field classes

# GB/T 43697-2024 grades (核心 > 重要 > 一般) and the platform's PI classes (vital-signs-and-security.md §2.2/2.4)
S3 = {"sensitive": True, "pi_class": "S3", "data_class": "重要", "label": "敏感个人信息"}
S2 = {"sensitive": True, "pi_class": "S2", "data_class": "一般", "label": "一般个人信息"}


class Versioned:
    """Columns shared by every base-data table (one row = one version of a record)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-10)
    # the id of the record's first version; the same for all its versions (API ids)
    entity_id: Mapped[int | None] = mapped_column(Integer, index=True, sort_order=-9)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime, sort_order=-8)
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, sort_order=-7)
    # where the version came from: an import's file name, "demo", "api"
    source: Mapped[str | None] = mapped_column(String(200))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)


class Located:
    """Codes of the unit grid (15), community (12) and street/town (9) a record lies in."""

    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    community_code: Mapped[str] = mapped_column(String(12))
    street_code: Mapped[str] = mapped_column(String(9))


class Spatial:
    """A WGS-84 position: a point, or a footprint polygon whose representative point is lon/lat."""

    geom: Mapped[Any | None] = mapped_column(Geometry)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)


class Building(Versioned, Located, Spatial, Base):
    """房: a building (楼栋) with its door-plate address."""

    __tablename__ = "registry_building"
    KEY = "code"

    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    # residential / commercial / industrial / public / mixed / other
    kind: Mapped[str] = mapped_column(String(20), default="residential")
    compound: Mapped[str | None] = mapped_column(String(100))  # 小区 / 园区
    floors: Mapped[int | None] = mapped_column(Integer)


class Household(Versioned, Located, Base):
    """户: a household living in a building (location and codes follow the building)."""

    __tablename__ = "registry_household"
    KEY = "code"

    code: Mapped[str] = mapped_column(String(40))  # 户号
    building_code: Mapped[str] = mapped_column(String(40), index=True)
    room: Mapped[str | None] = mapped_column(String(40))
    # precise home address (building address + room)
    address: Mapped[str] = mapped_column(String(300), info=S2)
    kind: Mapped[str] = mapped_column(String(20), default="family")  # family 家庭户 / collective 集体户


class Person(Versioned, Located, Base):
    """人: a person (户籍 registered and/or 实有 resident)."""

    __tablename__ = "registry_person"
    KEY = "id_number"

    id_number: Mapped[str] = mapped_column(String(18), info={**S3, "data_class": "重要"})  # GB 11643
    name: Mapped[str] = mapped_column(String(50), info=S2)
    gender: Mapped[str] = mapped_column(String(6))  # male / female, from the ID's 17th digit
    birth_date: Mapped[dt.date] = mapped_column(Date, info=S3)  # from the ID
    phone: Mapped[str | None] = mapped_column(String(20), info=S2)
    household_code: Mapped[str | None] = mapped_column(String(40), index=True)
    relation: Mapped[str | None] = mapped_column(String(20))  # 与户主关系
    address: Mapped[str | None] = mapped_column(String(300), info=S2)
    registered: Mapped[bool] = mapped_column(Boolean, default=False)  # 户籍人口 (hukou here)
    resident: Mapped[bool] = mapped_column(Boolean, default=True)  # 实有/常住 (lives here)


class Facility(Versioned, Located, Spatial, Base):
    """物: a managed component (管理部件), GB/T 30428.2-2013 (16 digits) or GB/T 47678.5-2026 (17)."""

    __tablename__ = "registry_facility"
    KEY = "code"

    code: Mapped[str] = mapped_column(String(17))
    standard_ref: Mapped[str] = mapped_column(String(40))
    major_code: Mapped[str] = mapped_column(String(2))
    minor_code: Mapped[str] = mapped_column(String(3))
    type_code: Mapped[str] = mapped_column(String(5), index=True)  # major + minor
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="intact")  # intact/damaged/missing/abandoned/removed
    accuracy_class: Mapped[str] = mapped_column(String(1), default="B")  # A ±0.5 m, B ±1 m, C ±10 m
    competent_dept: Mapped[str | None] = mapped_column(String(100))
    competent_code: Mapped[str | None] = mapped_column(String(18))
    owner_unit: Mapped[str | None] = mapped_column(String(100))
    owner_code: Mapped[str | None] = mapped_column(String(18))
    maintenance_unit: Mapped[str | None] = mapped_column(String(100))
    maintenance_code: Mapped[str | None] = mapped_column(String(18))
    initial_date: Mapped[dt.date | None] = mapped_column(Date)
    data_source: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(String(1000))


class Organisation(Versioned, Located, Spatial, Base):
    """组织: an enterprise or organisation with its unified social credit code (GB 32100)."""

    __tablename__ = "registry_organisation"
    KEY = "credit_code"

    credit_code: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(200))
    # from the code's first two characters: enterprise, individual_business, cooperative,
    # social_organisation, public_institution, government, other
    org_kind: Mapped[str] = mapped_column(String(30), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    industry: Mapped[str | None] = mapped_column(String(60))  # GB/T 4754 门类 letter + name
    legal_rep: Mapped[str | None] = mapped_column(String(50))  # public registry information
    phone: Mapped[str | None] = mapped_column(String(20), info=S2)
    employees: Mapped[int | None] = mapped_column(Integer)


class Place(Versioned, Located, Spatial, Base):
    """重点场所: schools, hospitals, markets, construction sites, ..."""

    __tablename__ = "registry_place"
    KEY = "code"

    code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(30), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    capacity: Mapped[int | None] = mapped_column(Integer)
    responsible_unit: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))  # the place's public number


MODELS: dict[str, type[Any]] = {
    "buildings": Building,
    "households": Household,
    "persons": Person,
    "facilities": Facility,
    "organisations": Organisation,
    "places": Place,
}
SPATIAL_KINDS = ("buildings", "facilities", "organisations", "places")

# at most one current version per business key
for _m in MODELS.values():
    _key = getattr(_m, _m.KEY)
    Index(f"uq_{_m.__tablename__}_current_key", _key, unique=True,
          sqlite_where=_m.valid_to.is_(None), postgresql_where=_m.valid_to.is_(None))

# Reads of current versions (lists, counts, exports, by id): the area scope is an equality on the
# code column of the caller's level (``cityops.security.scope.Located.within``), and pages are
# ordered by (entity_id, id). One partial index per level, (level_code, entity_id, id, *filter
# columns) over the current versions, serves the filter AND the order of a page (no sort) and
# answers the scoped count from the index alone, also with the list's kind / status filter
# (``KIND_FILTER_COLUMNS``); (entity_id, id, *filter columns) does the same for district-wide
# reads. Versions valid at a past instant (``as_of``) use the full ``grid_code`` / ``entity_id``
# indexes. Figures: bench/scoped_list.py, bench/RESULTS.md.
CURRENT_INDEX_LEVELS = ("street", "community", "grid")
KIND_FILTER_COLUMNS: dict[str, tuple[str, ...]] = {
    "buildings": ("kind",), "households": ("kind",), "persons": ("registered", "resident"),
    "facilities": ("type_code", "status"), "organisations": ("org_kind",), "places": ("kind",),
}
for _kind, _m in MODELS.items():
    _current = _m.valid_to.is_(None)
    _extra = [getattr(_m, c) for c in KIND_FILTER_COLUMNS[_kind]]
    for _level in CURRENT_INDEX_LEVELS:
        Index(f"ix_{_m.__tablename__}_current_{_level}", getattr(_m, f"{_level}_code"), _m.entity_id, _m.id, *_extra,
              sqlite_where=_current, postgresql_where=_current)
    Index(f"ix_{_m.__tablename__}_current", _m.entity_id, _m.id, *_extra, sqlite_where=_current,
          postgresql_where=_current)


def field_classes() -> dict[str, dict[str, Any]]:
    """``"table.column" -> info`` for every column marked sensitive."""
    out: dict[str, dict[str, Any]] = {}
    for m in MODELS.values():
        for col in m.__table__.columns:
            if col.info.get("sensitive"):
                out[f"{m.__tablename__}.{col.name}"] = dict(col.info)
    return out


FIELD_CLASSES = field_classes()
