"""Control zones (封控区/管控区/防范区, or the rule set's levels): polygons drawn, or built from the
base data ("this building's grid plus its neighbours", or a list of grids); their lifecycle (table
from the rule set, ``machines.zone_table``); the automatic downgrade when no new case is found inside
for N days — one downgrade, one timeline row, one notice, armed as a timer (``cityops.jobs``) and
moved by every new case inside; the population, households and vulnerable persons inside as of the
zone's date (``cityops.registry.occupancy``), the cases and contacts inside."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import CityOpsError, InvalidInput, Problem
from cityops.geo import geojson
from cityops.jobs import service as jobs
from cityops.lifecycle import service as lifecycle
from cityops.outbreak import machines, persons, rules, zonerules
from cityops.outbreak.days import TZ, local_day
from cityops.outbreak.models import Outbreak, OutbreakCase, TrackedPerson, Zone
from cityops.outbreak.schemas import ZoneIn
from cityops.outbreak.scopes import PERSON_SCOPE, ZONE_SCOPE, get_outbreak, get_zone
from cityops.security import audit, scope
from cityops.security.principal import SYSTEM, Principal

OBJECT = "ob_zone"
DOWNGRADE_TIMER = "outbreak.zone_downgrade"


def _grid_union(session: Session, codes: list[str], loc: list[str | int]) -> BaseGeometry:
    from cityops.geo import service as geo

    ix = geo.indexes(session).grids
    pos = np.searchsorted(ix.codes, np.asarray(codes, dtype=object))
    bad = [c for c, p in zip(codes, pos, strict=True) if p >= len(ix.codes) or ix.codes[p] != c]
    if bad:
        raise InvalidInput([Problem(f"未知的网格 unknown grid(s) {', '.join(bad[:5])}", loc, "value_error")])
    return shapely.union_all(ix.geoms[pos])


def _neighbours(session: Session, grid: str) -> list[str]:
    """The grid and every grid touching it (shared edge or corner)."""
    from cityops.geo import service as geo

    ix = geo.indexes(session).grids
    k = int(np.searchsorted(ix.codes, grid))
    hits = ix.tree.query(ix.geoms[k].buffer(1e-6), predicate="intersects")
    return sorted({str(ix.codes[h]) for h in hits} | {grid})


def build_geometry(session: Session, body: ZoneIn) -> tuple[BaseGeometry, dict[str, Any]]:
    if body.geometry is not None:
        try:
            g = shape(body.geometry)
        except Exception as exc:  # shapely raises several types for bad GeoJSON
            raise InvalidInput([Problem(f"几何无效 invalid GeoJSON geometry: {exc}", ["body", "geometry"],
                                        "value_error")]) from None
        if g.geom_type not in ("Polygon", "MultiPolygon") or g.is_empty:
            raise InvalidInput([Problem("须为面 Polygon / MultiPolygon", ["body", "geometry", "type"], "value_error")])
        if not g.is_valid:
            raise InvalidInput([Problem(f"面自相交或无效 the polygon is not valid: {shapely.is_valid_reason(g)}",
                                        ["body", "geometry"], "value_error")])
        return g, {"kind": "drawn"}
    if body.building_code:
        from cityops.registry import occupancy

        pos = occupancy.building_positions(session, [body.building_code])
        if body.building_code not in pos:
            raise InvalidInput([Problem(f"未知的楼栋 unknown building {body.building_code}", ["body", "building_code"],
                                        "value_error")])
        grid = pos[body.building_code][2]
        grids = _neighbours(session, grid) if body.neighbours else [grid]
        return _grid_union(session, grids, ["body", "building_code"]), {
            "kind": "building", "building": body.building_code, "grids": grids, "anchor": grid}
    assert body.grid_codes
    grids = sorted(set(body.grid_codes))
    return _grid_union(session, grids, ["body", "grid_codes"]), {"kind": "grids", "grids": grids}


def _last_case_inside(session: Session, ob: Outbreak, geom: BaseGeometry, rs: rules.RuleSet,
                      until: dt.datetime | None = None) -> dt.date | None:
    stmt = select(OutbreakCase.lon, OutbreakCase.lat, OutbreakCase.reported_at).where(
        OutbreakCase.outbreak_id == ob.id, OutbreakCase.classification.in_(sorted(rs.source_classes())),
        OutbreakCase.lon.is_not(None))
    if until is not None:
        stmt = stmt.where(OutbreakCase.reported_at <= until)
    rows = session.execute(stmt).all()
    if not rows:
        return None
    inside = shapely.intersects_xy(geom, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))
    days = [local_day(r[2]) for r, ok in zip(rows, inside, strict=True) if ok]
    return max(days) if days else None


def _arm(session: Session, z: Zone, rs: rules.RuleSet) -> None:
    """Compute the zone's downgrade day and arm (or cancel) its timer for 00:00 of that day."""
    if z.state == machines.LIFTED:
        z.downgrade_due = None
        jobs.cancel_timers(session, OBJECT, z.id, DOWNGRADE_TIMER)
        return
    day = int(zonerules.downgrade_day([z.state], np.array([z.level_since.toordinal()]),
                                      np.array([z.last_case_on.toordinal() if z.last_case_on else -1]),
                                      np.array([z.by_downgrade]), rs)[0])
    if day >= zonerules.NEVER:
        z.downgrade_due = None
        jobs.cancel_timers(session, OBJECT, z.id, DOWNGRADE_TIMER)
        return
    z.downgrade_due = dt.date.fromordinal(day)
    at = dt.datetime.combine(z.downgrade_due, dt.time(0), TZ).astimezone(dt.UTC)
    jobs.schedule_timer(session, DOWNGRADE_TIMER, OBJECT, z.id, at, {"zone_id": z.id})


def create_zone(session: Session, principal: Principal, ob_ref: str | int, body: ZoneIn) -> dict[str, Any]:
    ob = get_outbreak(session, ob_ref, for_update=True)
    rs = rules.get(ob.rule_set)
    rs.zone(body.level)
    geom, built = build_geometry(session, body)
    # the zone's place (its scope): the building's grid, the first grid listed, or a point inside the drawing
    anchor = built.get("anchor") or (built["grids"][0] if built.get("grids") else None)
    if anchor is not None:
        from cityops.geo import service as geo

        c, s = geo.lineage(session, anchor)
        g = anchor
    else:
        rp = geom.representative_point()
        (g, c, s), = persons.locate(session, [rp.x], [rp.y])
    if g is None:
        raise InvalidInput([Problem("区域不在本区范围内 the zone lies outside the district", ["body"], "value_error")])
    if not scope.allows(principal, ZONE_SCOPE, area_code=g):
        raise InvalidInput([Problem("区域超出账号范围 the zone lies outside the account's area", ["body"], "value_error")])
    now = clock.now()
    start = body.start_on or local_day(now)
    seq = int(session.scalar(select(func.count()).select_from(Zone).where(Zone.outbreak_id == ob.id)) or 0) + 1
    level = rs.zone(body.level)
    z = Zone(code=f"{ob.code}-Z{seq:03d}", outbreak_id=ob.id, name=body.name or f"{level.zh}{seq}", state=body.level,
             by_downgrade=False, geom=geom, built_from=built, street_code=s, community_code=c, grid_code=g,
             start_on=start, planned_end=body.planned_end, level_since=start,
             last_case_on=_last_case_inside(session, ob, geom, rs), created_by=principal.username, created_at=now)
    session.add(z)
    session.flush()
    _arm(session, z, rs)
    lifecycle.add_entry(session, principal, OBJECT, z.id, "create", at=now, to_state=z.state,
                        note=f"划定{level.zh}", data={"built_from": built, "start_on": start})
    audit.record(session, principal, "ob_zone.create", OBJECT, z.id, detail={"level": z.state, "built_from": built})
    return zone_dict(session, principal, z, rs)


def note_case(session: Session, ob: Outbreak, c: OutbreakCase, day: dt.date) -> list[int]:
    """A new (source) case: every zone of the outbreak holding its residence or one of its exposure
    places starts its count again (an upgrade when the level says so). Returns the zone ids."""
    rs = rules.get(ob.rule_set)
    pts = [(c.lon, c.lat)] if c.lon is not None else []
    pts += [(p["lon"], p["lat"]) for p in (c.places or []) if p.get("lon") is not None]
    zones = session.scalars(select(Zone).where(Zone.outbreak_id == ob.id, Zone.state != machines.LIFTED)
                            .with_for_update()).all()
    if not pts or not zones:
        return []
    xs, ys = np.array([p[0] for p in pts], dtype=float), np.array([p[1] for p in pts], dtype=float)
    hit: list[int] = []
    for z in zones:
        if not shapely.intersects_xy(z.geom, xs, ys).any():
            continue
        hit.append(z.id)
        before = z.last_case_on
        z.last_case_on = max(day, before) if before else day
        level = rs.zone(z.state)
        if level.case_upgrades_to:
            lifecycle.perform(session, SYSTEM, machines.zone_table(ob.rule_set), z, "upgrade", {"day": day},
                              audit_detail={"case": c.code})
        else:
            lifecycle.add_entry(session, SYSTEM, OBJECT, z.id, "case_inside", from_state=z.state, to_state=z.state,
                                note=f"区域内新增病例 {c.code}，重新计算降级日期 a new case inside: the count starts again",
                                data={"case": c.code, "day": day})
        _arm(session, z, rs)
    return hit


def check_zone(session: Session, z: Zone, today: dt.date) -> bool:
    """Downgrade ``z`` once when it is due on ``today``; True when it did."""
    ob = session.get(Outbreak, z.outbreak_id)
    assert ob is not None
    rs = rules.get(ob.rule_set)
    if z.state == machines.LIFTED or ob.state != "active":
        return False
    due = z.downgrade_due
    if due is None or due > today:
        _arm(session, z, rs)
        return False
    level = rs.zone(z.state)
    lifecycle.perform(session, SYSTEM, machines.zone_table(ob.rule_set), z, "downgrade", {"day": due},
                      audit_detail={"rule": f"{level.code}: {z.by_downgrade and level.after_downgrade_days or level.downgrade_after_days} days"})
    new = machines.zone_table(ob.rule_set).machine.state_label(z.state)
    msg = (f"{z.name}（{z.code}）连续无新增病例，自{due:%Y-%m-%d}起由{level.zh}调整为{new}。"
           f"{z.name} had no new case inside: {level.en} -> {z.state} from {due}.")
    jobs.notify(session, role="street_operator", area_code=z.street_code, title=f"管控区域降级：{z.name}"[:200],
                body=msg, link=f"/outbreak?outbreak={ob.id}&zone={z.id}", severity="info")
    _arm(session, z, rs)
    return True


def fire_downgrade(session: Session, payload: dict[str, Any]) -> None:
    """The downgrade timer (``cityops worker``)."""
    z = session.get(Zone, int(payload["zone_id"]), with_for_update=True)
    if z is not None:
        check_zone(session, z, local_day(clock.now()))


def check_zones(session: Session, today: dt.date | None = None) -> list[int]:
    """Every active zone due on ``today`` (default: now in Shanghai) downgraded once (the sweep the
    CLI runs; the timers do the same zone by zone)."""
    day = today or local_day(clock.now())
    due = session.scalars(select(Zone).where(Zone.state != machines.LIFTED, Zone.downgrade_due <= day)
                          .order_by(Zone.id).with_for_update()).all()
    return [z.id for z in due if check_zone(session, z, day)]


def act(session: Session, principal: Principal, ref: str | int, action: str, reason: str | None) -> dict[str, Any]:
    z = get_zone(session, principal, ref, for_update=True)
    ob = get_outbreak(session, z.outbreak_id)
    rs = rules.get(ob.rule_set)
    lifecycle.perform(session, principal, machines.zone_table(ob.rule_set), z, action,
                      {"reason": reason, "day": local_day(clock.now())}, audit_detail={"reason": reason})
    _arm(session, z, rs)
    return zone_dict(session, principal, z, rs)


# ---------------------------------------------------------------- counts


def as_of_instant(day: dt.date) -> dt.datetime:
    """The end of a Shanghai day (the registry's state after all changes of that day)."""
    return (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), TZ) - dt.timedelta(microseconds=1)).astimezone(dt.UTC)


def populations(session: Session, zones: list[Zone], rs: rules.RuleSet,
                day: dt.date | None = None) -> list[dict[str, int]]:
    """Per zone: buildings, households, residents and elderly living alone inside, counted from the
    registry's buildings as of the zone's date (``start_on``; or ``day`` when given)."""
    from cityops.registry import occupancy

    out: list[dict[str, int]] = [{} for _ in zones]
    by_day: dict[dt.date, list[int]] = {}
    for k, z in enumerate(zones):
        by_day.setdefault(day or z.start_on, []).append(k)
    for d, ks in by_day.items():
        occ = occupancy.building_occupancy(session, as_of_instant(d), elderly_age=rs.vulnerable.get("elderly_age", 60))
        got = zonerules.counts_in_zones([zones[k].geom for k in ks], occ.lon, occ.lat,
                                        {"households": occ.households, "residents": occ.residents,
                                         "elderly_alone": occ.elderly_alone})
        for j, k in enumerate(ks):
            out[k] = {"as_of": d.isoformat(), "buildings": int(got["points"][j]),  # type: ignore[dict-item]
                      "households": int(got["households"][j]), "residents": int(got["residents"][j]),
                      "elderly_alone": int(got["elderly_alone"][j])}
    return out


def people_inside(session: Session, principal: Principal, zones: list[Zone], ob: Outbreak) -> list[dict[str, int]]:
    """Per zone: the cases and contacts (in the principal's scope) living inside."""
    from cityops.geo import service as geo

    out = [{"cases": 0, "close": 0, "secondary": 0} for _ in zones]
    if not zones:
        return out
    # only the people of the unit grids the zones touch (a person's grid holds their residence point)
    gx = geo.indexes(session).grids
    hits = gx.tree.query(np.asarray([z.geom for z in zones], dtype=object), predicate="intersects")[1]
    grids = sorted({str(gx.codes[h]) for h in hits})
    rows: list[Any] = []
    for lo in range(0, len(grids), 500):
        rows += session.execute(select(TrackedPerson.lon, TrackedPerson.lat, TrackedPerson.category).where(
            TrackedPerson.outbreak_id == ob.id, TrackedPerson.grid_code.in_(grids[lo:lo + 500]),
            TrackedPerson.category.is_not(None), TrackedPerson.lon.is_not(None),
            scope.clause(principal, PERSON_SCOPE))).all()
    if not rows:
        return out
    pi, zi = zonerules.members_in_zones([z.geom for z in zones], np.array([r[0] for r in rows]),
                                        np.array([r[1] for r in rows]))
    for p, k in zip(pi, zi, strict=True):
        c = str(rows[int(p)][2])
        out[int(k)]["cases" if c == "case" else c] += 1
    return out


def zone_dict(session: Session, principal: Principal, z: Zone, rs: rules.RuleSet, *, counts: bool = True,
              population: dict[str, int] | None = None, people: dict[str, int] | None = None,
              geometry: bool = False) -> dict[str, Any]:
    table = machines.zone_table(rs.code)
    out: dict[str, Any] = {
        "id": z.id, "code": z.code, "outbreak_id": z.outbreak_id, "name": z.name, "level": z.state,
        "level_label": table.machine.state_label(z.state), "by_downgrade": z.by_downgrade, "built_from": z.built_from,
        "street_code": z.street_code, "community_code": z.community_code, "grid_code": z.grid_code,
        "start_on": z.start_on, "planned_end": z.planned_end, "level_since": z.level_since,
        "last_case_on": z.last_case_on, "downgrade_due": z.downgrade_due, "lifted_on": z.lifted_on,
    }
    if counts:
        ob = session.get(Outbreak, z.outbreak_id)
        assert ob is not None
        out["population"] = population if population is not None else populations(session, [z], rs)[0]
        out["people"] = people if people is not None else people_inside(session, principal, [z], ob)[0]
    if geometry:
        out["geometry"] = geojson.geometry(z.geom)  # RFC 7946: rounded, exterior rings counter-clockwise
    return out


def list_zones(session: Session, principal: Principal, ob_ref: str | int, *, state: str | None = None,
               geometry: bool = False) -> list[dict[str, Any]]:
    ob = get_outbreak(session, ob_ref)
    rs = rules.get(ob.rule_set)
    stmt = select(Zone).where(Zone.outbreak_id == ob.id, scope.clause(principal, ZONE_SCOPE)).order_by(Zone.id)
    if state:
        stmt = stmt.where(Zone.state == state)
    zs = list(session.scalars(stmt))
    pops = populations(session, zs, rs)
    ppl = people_inside(session, principal, zs, ob)
    return [zone_dict(session, principal, z, rs, population=p, people=q, geometry=geometry)
            for z, p, q in zip(zs, pops, ppl, strict=True)]


def zones_geojson(session: Session, principal: Principal, ob_ref: str | int) -> dict[str, Any]:
    feats = []
    for d in list_zones(session, principal, ob_ref, geometry=True):
        geom = d.pop("geometry")
        feats.append({"type": "Feature", "id": d["id"], "geometry": geom, "properties": d})
    return {"type": "FeatureCollection", "features": feats}


def zone_detail(session: Session, principal: Principal, ref: str | int) -> dict[str, Any]:
    z = get_zone(session, principal, ref)
    ob = get_outbreak(session, z.outbreak_id)
    out = zone_dict(session, principal, z, rules.get(ob.rule_set), geometry=True)
    out["timeline"] = lifecycle.timeline(session, OBJECT, z.id)
    try:
        out["allowed_actions"] = lifecycle.allowed_actions(session, principal, machines.zone_table(ob.rule_set), z)
    except CityOpsError:
        out["allowed_actions"] = []
    return out
