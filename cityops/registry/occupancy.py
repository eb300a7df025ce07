"""Base-data services for other domains that count people in places (outbreak command's zones,
supplies, vulnerable persons): who lives in which building as of an instant, and where a person
with a given ID number lives. Plain functions over the versioned tables (valid at ``at``; current
versions when ``at`` is None); no personal data leaves here except what the caller asks by key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cityops.registry.models import Building, Household, Person


def _valid(model: Any, at: dt.datetime | None) -> Any:
    if at is None:
        return model.valid_to.is_(None)
    return and_(model.valid_from <= at, (model.valid_to.is_(None)) | (model.valid_to > at))


@dataclass(frozen=True)
class Occupancy:
    """Buildings valid at ``at`` with their position and who lives there then: households, resident
    persons, elderly persons living alone (a one-person household whose member is ``elderly_age`` or
    older on that day)."""

    codes: np.ndarray  # object [B]
    lon: np.ndarray
    lat: np.ndarray
    street_code: np.ndarray  # object [B]
    community_code: np.ndarray  # object [B]
    households: np.ndarray  # int64 [B]
    residents: np.ndarray  # int64 [B]
    elderly_alone: np.ndarray  # int64 [B]


_cache: dict[tuple[Any, ...], Occupancy] = {}
_CACHE_SIZE = 8


def _stamp(session: Session) -> tuple[Any, ...]:
    """Changes to buildings, households or persons (a new version, or one closed) change this."""
    out: list[Any] = []
    for m in (Building, Household, Person):
        out.extend(session.execute(select(func.count(), func.max(m.id), func.max(m.valid_to))).one())
    return tuple(out)


def building_occupancy(session: Session, at: dt.datetime | None = None, *, elderly_age: int = 60,
                       area_code: str | None = None) -> Occupancy:
    """The occupancy of every building (inside ``area_code`` when given) as of ``at``. Results are kept
    per database, instant and state of the three tables (``_stamp``): counting the same day again after
    no change to the base data reads three aggregates only."""
    from cityops.db import database_key

    key = (database_key(session), at, elderly_age, area_code, _stamp(session))
    hit = _cache.get(key)
    if hit is not None:
        return hit
    occ = _occupancy(session, at, elderly_age=elderly_age, area_code=area_code)
    if len(_cache) >= _CACHE_SIZE:
        _cache.pop(next(iter(_cache)))
    _cache[key] = occ
    return occ


def _occupancy(session: Session, at: dt.datetime | None, *, elderly_age: int, area_code: str | None) -> Occupancy:
    b = select(Building.code, Building.lon, Building.lat, Building.street_code, Building.community_code).where(
        _valid(Building, at), Building.lon.is_not(None), Building.lat.is_not(None))
    if area_code:
        b = b.where(Building.grid_code >= area_code, Building.grid_code < area_code + ":")
    rows = session.execute(b).all()
    codes = np.array([r[0] for r in rows], dtype=object)
    index = {c: i for i, c in enumerate(codes)}
    hh = np.zeros(len(rows), dtype=np.int64)
    res = np.zeros(len(rows), dtype=np.int64)
    alone = np.zeros(len(rows), dtype=np.int64)
    for code, n in session.execute(select(Household.building_code, func.count()).where(_valid(Household, at))
                                   .group_by(Household.building_code)):
        i = index.get(code)
        if i is not None:
            hh[i] = n
    day = (at or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    cutoff = day.replace(year=day.year - elderly_age) if not (day.month == 2 and day.day == 29) else \
        dt.date(day.year - elderly_age, 2, 28)
    members = (select(Household.building_code, Person.household_code, func.count().label("n"),
                      func.min(Person.birth_date).label("born"))
               .join(Household, and_(Household.code == Person.household_code, _valid(Household, at)))
               .where(_valid(Person, at), Person.resident.is_(True))
               .group_by(Household.building_code, Person.household_code))
    for code, _hcode, n, born in session.execute(members):
        i = index.get(code)
        if i is None:
            continue
        res[i] += n
        if n == 1 and born is not None and born <= cutoff:
            alone[i] += 1
    return Occupancy(codes, np.array([r[1] for r in rows], dtype=float), np.array([r[2] for r in rows], dtype=float),
                     np.array([r[3] for r in rows], dtype=object), np.array([r[4] for r in rows], dtype=object),
                     hh, res, alone)


@dataclass(frozen=True)
class Residence:
    person_id: int  # registry entity id
    id_number: str
    name: str
    phone: str | None
    household_code: str | None
    building_code: str | None
    lon: float | None
    lat: float | None
    grid_code: str
    community_code: str
    street_code: str


def residences(session: Session, id_numbers: Iterable[str]) -> dict[str, Residence]:
    """Current registry persons with these ID numbers and where they live (their household's
    building position when known)."""
    keys = sorted({k for k in id_numbers if k})
    out: dict[str, Residence] = {}
    for lo in range(0, len(keys), 500):
        part = keys[lo:lo + 500]
        stmt = (select(Person.entity_id, Person.id_number, Person.name, Person.phone, Person.household_code,
                       Household.building_code, Building.lon, Building.lat, Person.grid_code, Person.community_code,
                       Person.street_code)
                .outerjoin(Household, and_(Household.code == Person.household_code, Household.valid_to.is_(None)))
                .outerjoin(Building, and_(Building.code == Household.building_code, Building.valid_to.is_(None)))
                .where(Person.id_number.in_(part), Person.valid_to.is_(None)))
        for r in session.execute(stmt):
            out[r.id_number] = Residence(int(r.entity_id), r.id_number, r.name, r.phone, r.household_code,
                                         r.building_code, r.lon, r.lat, r.grid_code, r.community_code, r.street_code)
    return out


def building_positions(session: Session, codes: Iterable[str]) -> dict[str, tuple[float, float, str]]:
    """Current buildings by code: (lon, lat, grid code)."""
    keys = sorted({c for c in codes if c})
    out: dict[str, tuple[float, float, str]] = {}
    for lo in range(0, len(keys), 500):
        for code, lon, lat, grid in session.execute(select(Building.code, Building.lon, Building.lat, Building.grid_code)
                                                    .where(Building.code.in_(keys[lo:lo + 500]),
                                                           Building.valid_to.is_(None))):
            if lon is not None and lat is not None:
                out[code] = (float(lon), float(lat), grid)
    return out
