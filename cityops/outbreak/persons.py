"""Tracked persons of an outbreak: resolving who a report names (the registry person with the same
ID number, else a residence point located in the grid base), and their masked output (ID number,
phone and name masked like all personal data, ``cityops.security.masking``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import InvalidInput, Problem
from cityops.outbreak.models import Outbreak, TrackedPerson
from cityops.outbreak.schemas import PersonIn
from cityops.security import masking
from cityops.security.principal import Principal

CATEGORY_LABELS = {"case": ("病例", "case"), "close": ("密接", "close contact"),
                   "secondary": ("次密接", "secondary contact"), None: ("—", "—")}


def locate(session: Session, lon: Sequence[float], lat: Sequence[float]) -> list[tuple[str | None, str | None, str | None]]:
    """(grid, community, street) of each point (None outside the district)."""
    from cityops.geo import service as geo

    if not len(lon):
        return []
    grids = geo.grid_indices_for(session, np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    ix = geo.indexes(session)
    out: list[tuple[str | None, str | None, str | None]] = []
    for g in grids:
        if g is None:
            out.append((None, None, None))
            continue
        c = ix.parents.get(str(g))
        out.append((str(g), c, ix.parents.get(c) if c else None))
    return out


def resolve(session: Session, ob: Outbreak, items: Sequence[PersonIn], locs: Sequence[list[str | int]]) -> list[TrackedPerson]:
    """The tracked person of each item (existing by ID number, else new: residence from the registry
    person with that ID number, else from the item's point). All or nothing: every problem named."""
    from cityops.registry import occupancy

    ids = [p.id_number.upper() for p in items if p.id_number]
    have = {p.id_number: p for p in session.scalars(select(TrackedPerson).where(
        TrackedPerson.outbreak_id == ob.id, TrackedPerson.id_number.in_(ids)))} if ids else {}
    reg = occupancy.residences(session, ids) if ids else {}
    need_locate = [k for k, p in enumerate(items)
                   if not (p.id_number and (p.id_number.upper() in have or p.id_number.upper() in reg))]
    problems: list[Problem] = []
    for k in need_locate:
        if items[k].lon is None or items[k].lat is None:
            problems.append(Problem("未匹配到人口信息时需给出居住地点位 lon/lat: no registry person with this ID "
                                    "number (or none given), so the residence point is needed", [*locs[k], "lon"],
                                    "missing"))
    placed = dict(zip(need_locate, locate(session, [float(items[k].lon or 0) for k in need_locate],
                                          [float(items[k].lat or 0) for k in need_locate]), strict=True)) \
        if not problems else {}
    for k, (g, _c, _s) in placed.items():
        if g is None:
            problems.append(Problem("居住地点位不在本区范围内 the residence point is outside the district",
                                    [*locs[k], "lon"], "value_error"))
    if problems:
        raise InvalidInput(problems)
    out: list[TrackedPerson] = []
    made: dict[str, TrackedPerson] = {}
    created = False
    now = clock.now()
    for k, p in enumerate(items):
        key = p.id_number.upper() if p.id_number else None
        if key and key in have:
            out.append(have[key])
            continue
        if key and key in made:
            out.append(made[key])
            continue
        r = reg.get(key) if key else None
        if r is not None:
            tp = TrackedPerson(outbreak_id=ob.id, id_number=key, name=p.name or r.name, phone=p.phone or r.phone,
                               registry_person_id=r.person_id, household_code=r.household_code,
                               building_code=r.building_code, lon=r.lon if r.lon is not None else p.lon,
                               lat=r.lat if r.lat is not None else p.lat, grid_code=r.grid_code,
                               community_code=r.community_code, street_code=r.street_code, created_at=now)
        else:
            g, c, s = placed[k]
            tp = TrackedPerson(outbreak_id=ob.id, id_number=key, name=p.name, phone=p.phone, lon=p.lon, lat=p.lat,
                               grid_code=g, community_code=c, street_code=s, created_at=now)
        session.add(tp)
        created = True
        if key:
            made[key] = tp
        out.append(tp)
    if created:
        import uuid

        ob.person_token = uuid.uuid4().hex
    session.flush()
    return out


def person_dict(p: TrackedPerson, principal: Principal, lang: str = "zh") -> dict[str, Any]:
    """A tracked person for output: ID number (6+4), phone (3+4) and name masked."""
    label = CATEGORY_LABELS.get(p.category, (p.category or "—", p.category or "—"))
    return {
        "id": p.id, "name": masking.mask_name(p.name), "id_number": masking.mask_id_number(p.id_number),
        "phone": masking.mask_phone(p.phone), "registry_linked": p.registry_person_id is not None,
        "category": p.category, "category_label": label[1] if lang == "en" else label[0],
        "last_exposure_on": p.last_exposure_on, "quarantine_end": p.quarantine_end, "monitoring_end": p.monitoring_end,
        "grid_code": p.grid_code, "community_code": p.community_code, "street_code": p.street_code,
        "building_code": p.building_code, "lon": p.lon, "lat": p.lat, "masked": True,
    }
