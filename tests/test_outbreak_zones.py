"""Zones (issue 15, second and third acceptance points).

* covid19-v9: a 封控区 steps down to 管控区 after 7 days with no new case inside (public-health.md §4.2),
  exactly once (one timeline row, one notice; checking again the same day or the next does nothing);
  a new case inside before that starts the count again.
  Zone Z1 from 2026-06-01: due 06-08. Zone Z2 from 2026-06-01 with a case inside reported 06-05:
  due 06-12, not 06-08. After its downgrade Z1 is a 管控区 reached by downgrade: 3 more days → 06-11.
* The population and households of a zone equal an independent count: shapely over the registry's
  buildings valid at the end of the zone's day (2026-06-01 Asia/Shanghai), households and resident
  persons of those buildings at that instant; a household added later is not counted as of that day.
"""

from __future__ import annotations

import datetime as dt

import pytest
from shapely.geometry import Point, mapping
from sqlalchemy import and_, or_, select

from tests.outbreak_helpers import TZ, new_outbreak, sh

STREET = "310117116"  # 石湖荡镇
D = dt.date


@pytest.fixture()
def ob(session):
    return new_outbreak(session, STREET, "测试：管控区降级")


def _grids(session, prefix):
    from cityops.geo.models import Area

    return session.execute(select(Area.code, Area.geom).where(Area.level == "grid", Area.code.startswith(prefix))
                           .order_by(Area.code)).all()


def _far_apart(grids):
    """Two grids that do not touch."""
    a = grids[0]
    b = next(g for g in grids[1:] if not g.geom.buffer(1e-5).intersects(a.geom))
    return a, b


def test_downgrade_once_and_a_new_case_resets(session, ob):
    from cityops.jobs import service as jobs
    from cityops.lifecycle import service as lifecycle
    from cityops.outbreak import tracing, zones
    from cityops.outbreak.models import Zone
    from cityops.outbreak.schemas import CaseIn, PersonIn, ZoneIn
    from cityops.security.principal import SYSTEM

    g1, g2 = _far_apart(_grids(session, STREET))
    z1 = zones.create_zone(session, SYSTEM, ob["id"], ZoneIn(level="sealed", grid_codes=[g1.code],
                                                             start_on=D(2026, 6, 1)))
    z2 = zones.create_zone(session, SYSTEM, ob["id"], ZoneIn(level="sealed", grid_codes=[g2.code],
                                                             start_on=D(2026, 6, 1)))
    assert z1["downgrade_due"] == D(2026, 6, 8) and z2["downgrade_due"] == D(2026, 6, 8)
    t = jobs.get_timer(session, zones.DOWNGRADE_TIMER, "ob_zone", z1["id"])
    assert t is not None and t.due_at == dt.datetime(2026, 6, 8, tzinfo=TZ)
    # a case living inside Z2, reported 06-05 → Z2's count starts again: due 06-12
    p = g2.geom.representative_point()
    tracing.report_case(session, SYSTEM, ob["id"], CaseIn(person=PersonIn(name="测试病例", lon=p.x, lat=p.y),
                                                          classification="confirmed", onset_on=D(2026, 6, 4),
                                                          reported_at=sh(2026, 6, 5, 10)))
    zz2 = session.get(Zone, z2["id"])
    assert zz2.last_case_on == D(2026, 6, 5) and zz2.downgrade_due == D(2026, 6, 12)
    assert jobs.get_timer(session, zones.DOWNGRADE_TIMER, "ob_zone", z2["id"]).due_at == dt.datetime(2026, 6, 12,
                                                                                                      tzinfo=TZ)
    zz1 = session.get(Zone, z1["id"])
    assert zz1.last_case_on is None and zz1.downgrade_due == D(2026, 6, 8)

    def check(day):
        return [zid for zid in (z1["id"], z2["id"]) if zones.check_zone(session, session.get(Zone, zid), day)]

    assert check(D(2026, 6, 7)) == []
    assert check(D(2026, 6, 8)) == [z1["id"]]
    assert check(D(2026, 6, 8)) == []  # the same day again: nothing
    assert check(D(2026, 6, 9)) == []
    assert check(D(2026, 6, 10)) == []
    zz1 = session.get(Zone, z1["id"])
    assert zz1.state == "controlled" and zz1.by_downgrade and zz1.level_since == D(2026, 6, 8)
    assert zz1.downgrade_due == D(2026, 6, 11)  # 3 more days after a downgrade
    rows = [r for r in lifecycle.timeline(session, "ob_zone", z1["id"]) if r["action"] == "downgrade"]
    assert [(r["from_state"], r["to_state"]) for r in rows] == [("sealed", "controlled")]
    assert session.get(Zone, z2["id"]).state == "sealed"
    assert check(D(2026, 6, 11)) == [z1["id"]]  # the 管控区 steps down to 防范区
    assert check(D(2026, 6, 12)) == [z2["id"]]
    assert session.get(Zone, z1["id"]).state == "precaution" and session.get(Zone, z1["id"]).downgrade_due is None
    rows = [r for r in lifecycle.timeline(session, "ob_zone", z2["id"]) if r["action"] in ("downgrade", "case_inside")]
    assert [r["action"] for r in rows] == ["case_inside", "downgrade"]
    # the timer handler does the same on the worker's clock: on 06-13 nothing (Z2's next step is due 06-15),
    # on 06-15 the 管控区 steps down
    from cityops import clock

    with clock.pinned(sh(2026, 6, 13, 1)):
        zones.fire_downgrade(session, {"zone_id": z2["id"]})
    assert session.get(Zone, z2["id"]).state == "controlled"
    with clock.pinned(sh(2026, 6, 15, 0, 1)):
        zones.fire_downgrade(session, {"zone_id": z2["id"]})
    assert session.get(Zone, z2["id"]).state == "precaution"
    session.rollback()


def test_a_case_inside_a_controlled_zone_upgrades_it(session, ob):
    from cityops.outbreak import tracing, zones
    from cityops.outbreak.models import Zone
    from cityops.outbreak.schemas import CaseIn, PersonIn, ZoneIn
    from cityops.security.principal import SYSTEM

    g = _grids(session, STREET)[2]
    z = zones.create_zone(session, SYSTEM, ob["id"], ZoneIn(level="controlled", grid_codes=[g.code],
                                                            start_on=D(2026, 7, 1)))
    assert z["downgrade_due"] == D(2026, 7, 8)
    p = g.geom.representative_point()
    tracing.report_case(session, SYSTEM, ob["id"], CaseIn(person=PersonIn(name="测试", lon=p.x, lat=p.y),
                                                          classification="asymptomatic", sampled_on=D(2026, 7, 3),
                                                          reported_at=sh(2026, 7, 3, 9)))
    zz = session.get(Zone, z["id"])
    assert zz.state == "sealed" and zz.level_since == D(2026, 7, 3) and zz.downgrade_due == D(2026, 7, 10)
    session.rollback()


def _independent(session, geom, day):
    """Buildings, households and residents inside ``geom`` as of the end of ``day`` (Shanghai), counted
    straight from the registry tables with shapely, building by building."""
    from cityops.registry.models import Building, Household, Person

    at = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), TZ) - dt.timedelta(microseconds=1))

    def valid(m):
        return and_(m.valid_from <= at, or_(m.valid_to.is_(None), m.valid_to > at))

    inside = {code for code, lon, lat in session.execute(select(Building.code, Building.lon, Building.lat)
                                                         .where(valid(Building)))
              if lon is not None and geom.intersects(Point(lon, lat))}
    hh = [code for code, b in session.execute(select(Household.code, Household.building_code).where(valid(Household)))
          if b in inside]
    hset = set(hh)
    residents = sum(1 for (h,) in session.execute(select(Person.household_code).where(valid(Person),
                                                                                     Person.resident.is_(True)))
                    if h in hset)
    return len(inside), len(hh), residents


def test_zone_population_equals_an_independent_count_as_of_the_zones_day(session, ob):
    from cityops.outbreak import zones
    from cityops.outbreak.schemas import ZoneIn
    from cityops.registry.models import Building, Household
    from cityops.security.principal import SYSTEM

    b = session.execute(select(Building).where(Building.street_code == STREET, Building.valid_to.is_(None))
                        .order_by(Building.code)).scalars().first()
    assert b is not None
    poly = Point(b.lon, b.lat).buffer(0.004)  # a drawn zone of ~400 m around a building
    day = D(2026, 6, 1)
    z = zones.create_zone(session, SYSTEM, ob["id"], ZoneIn(level="sealed", geometry=mapping(poly), start_on=day))
    nb, nh, nr = _independent(session, poly, day)
    assert nh > 0 and nr > 0
    assert (z["population"]["buildings"], z["population"]["households"], z["population"]["residents"]) == (nb, nh, nr)
    # a household moving in later is not counted as of the zone's day, but is today
    session.add(Household(entity_id=None, valid_from=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), code="OB-TEST-HH-1",
                          building_code=b.code, room="999", address="测试", kind="family", grid_code=b.grid_code,
                          community_code=b.community_code, street_code=b.street_code, source="test"))
    session.flush()
    from cityops.outbreak import rules
    from cityops.outbreak.models import Zone

    zz = session.get(Zone, z["id"])
    again = zones.populations(session, [zz], rules.get("covid19-v9"))[0]
    assert again["households"] == nh == _independent(session, poly, day)[1]
    today = zones.populations(session, [zz], rules.get("covid19-v9"), day=D(2026, 11, 2))[0]
    assert today["households"] == nh + 1 == _independent(session, poly, D(2026, 11, 2))[1]
    session.rollback()


def test_zone_from_a_building_is_its_grid_and_the_neighbours(session, ob):
    from cityops.outbreak import zones
    from cityops.outbreak.schemas import ZoneIn
    from cityops.registry.models import Building
    from cityops.security.principal import SYSTEM

    b = session.execute(select(Building).where(Building.street_code == STREET, Building.valid_to.is_(None))
                        .order_by(Building.code)).scalars().first()
    z = zones.create_zone(session, SYSTEM, ob["id"], ZoneIn(level="sealed", building_code=b.code,
                                                            start_on=D(2026, 6, 1)))
    grids = z["built_from"]["grids"]
    assert b.grid_code in grids and len(grids) >= 2
    geoms = {c: g for c, g in _grids(session, "310117")}
    assert all(geoms[c].buffer(1e-6).intersects(geoms[b.grid_code]) for c in grids)
    others = [c for c, g in geoms.items() if c not in grids and g.buffer(-1e-6).intersects(geoms[b.grid_code])]
    assert others == []
    session.rollback()
