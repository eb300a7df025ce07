"""The scoped kinds of outbreak command (``cityops.security.scope``): every read of personal or
area-bound outbreak data filters with ``scope.clause(principal, KIND)``; out of scope is 404.

* cases and tracked persons (contacts): by the place of residence (street / community / grid);
* exposures: by the exposure place;
* zones: by the street / community / grid holding the zone's representative point;
* supply requests: by the zone's street / community; a department sees the requests addressed to it.

An outbreak itself (disease, area, rule set, state) is a district command object without personal
data: it is listed to every holder of ``outbreak.read``; what lies inside it is scoped.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.errors import NotFound, Problem
from cityops.outbreak.models import Exposure, Outbreak, OutbreakCase, SupplyRequest, TrackedPerson, Zone
from cityops.security import scope
from cityops.security.principal import Principal
from cityops.security.scope import Located, ScopedKind

CASE_SCOPE = ScopedKind("ob_case", Located(street=OutbreakCase.street_code, community=OutbreakCase.community_code,
                                           grid=OutbreakCase.grid_code))
PERSON_SCOPE = ScopedKind("ob_person", Located(street=TrackedPerson.street_code,
                                               community=TrackedPerson.community_code, grid=TrackedPerson.grid_code))
EXPOSURE_SCOPE = ScopedKind("ob_exposure", Located(street=Exposure.street_code, community=Exposure.community_code,
                                                   grid=Exposure.grid_code))
ZONE_SCOPE = ScopedKind("ob_zone", Located(street=Zone.street_code, community=Zone.community_code,
                                           grid=Zone.grid_code))
SUPPLY_SCOPE = ScopedKind("ob_supply", Located(street=SupplyRequest.street_code,
                                               community=SupplyRequest.community_code),
                          handled_by=lambda dept: SupplyRequest.department_code == dept)


def _ref_clause(model: type[Outbreak] | type[OutbreakCase] | type[Zone], ref: str | int) -> object:
    s = str(ref).strip()
    return model.id == int(s) if s.isdigit() and len(s) <= 12 else model.code == s


def get_outbreak(session: Session, ref: str | int, *, for_update: bool = False) -> Outbreak:
    stmt = select(Outbreak).where(_ref_clause(Outbreak, ref))  # type: ignore[arg-type]
    if for_update:
        stmt = stmt.with_for_update()
    ob = session.scalar(stmt)
    if ob is None:
        raise NotFound([Problem(f"未找到疫情 outbreak {ref} not found", ["path", "outbreak"], "not_found")])
    return ob


def get_case(session: Session, principal: Principal, ref: str | int) -> OutbreakCase:
    c: OutbreakCase | None = session.scalar(select(OutbreakCase).where(
        _ref_clause(OutbreakCase, ref), scope.clause(principal, CASE_SCOPE)))  # type: ignore[arg-type]
    if c is None:
        raise NotFound([Problem(f"未找到病例 case {ref} not found", ["path", "case"], "not_found")])
    return c


def get_person(session: Session, principal: Principal, person_id: int) -> TrackedPerson:
    p = session.scalar(select(TrackedPerson).where(TrackedPerson.id == person_id, scope.clause(principal, PERSON_SCOPE)))
    if p is None:
        raise NotFound([Problem(f"未找到人员 person {person_id} not found", ["path", "person"], "not_found")])
    return p


def get_zone(session: Session, principal: Principal, ref: str | int, *, for_update: bool = False) -> Zone:
    stmt = select(Zone).where(_ref_clause(Zone, ref), scope.clause(principal, ZONE_SCOPE))  # type: ignore[arg-type]
    if for_update:
        stmt = stmt.with_for_update()
    z = session.scalar(stmt)
    if z is None:
        raise NotFound([Problem(f"未找到管控区域 zone {ref} not found", ["path", "zone"], "not_found")])
    return z
