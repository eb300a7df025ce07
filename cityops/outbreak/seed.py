"""Demo outbreak (战时演示): outbreak mode for COVID-19 over the district, a confirmed case in 岳阳街道
with its household and workplace contacts and their contacts, an asymptomatic case in 佘山镇, a 密接
who turned positive, a 封控区 built from the first case's building (its grid and the neighbours) and a
管控区 around the second. Everything through the outbreak services as the system."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.outbreak import service, tracing, zones
from cityops.outbreak.models import Outbreak
from cityops.outbreak.schemas import CaseIn, ExposureIn, ExposuresIn, OutbreakIn, PersonIn, PlaceIn, ZoneIn
from cityops.security.principal import SYSTEM

YUEYANG, SHESHAN = "310117001", "310117103"


def _people(session: Session, street: str, n: int) -> list[Any]:
    from cityops.registry import service as registry

    stmt = registry.query(session, SYSTEM, "persons", area_code=street).order_by(None).limit(n * 3)
    rows = [p for p in session.scalars(stmt) if p.household_code]
    return rows[:n]


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    if session.scalar(select(Outbreak.id).limit(1)) is not None:
        return
    yy, ss = _people(session, YUEYANG, 40), _people(session, SHESHAN, 12)
    if len(yy) < 30 or len(ss) < 8:
        return
    now = clock.now()
    today = service.local_day(now)
    tz = service.TZ

    def at(days_ago: int, hour: int) -> dt.datetime:
        return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(hour), tz)

    def who(p: Any) -> PersonIn:
        return PersonIn(id_number=p.id_number, name=p.name, phone=p.phone)

    ob = service.open_outbreak(session, SYSTEM, OutbreakIn(
        disease="covid19", area_code="310117", title="松江区新冠肺炎聚集性疫情（演示）", reason="演示：岳阳街道报告聚集性病例，区疾控研判后启用战时模式",
        signal_type="cluster", signal_ref="demo-cluster-1"))
    oid = ob["id"]
    a = tracing.report_case(session, SYSTEM, oid, CaseIn(person=who(yy[0]), classification="confirmed",
                                                         onset_on=today - dt.timedelta(days=5), reported_at=at(4, 9)))
    a_pid = a["person"]["id"]
    from cityops.registry import occupancy

    homes = occupancy.residences(session, [p.id_number for p in yy[:12]])
    home_a = homes.get(yy[0].id_number)
    work = PlaceIn(kind="point", name="岳阳街道某写字楼（演示）", lon=(home_a.lon or 121.22) + 0.004,
                   lat=(home_a.lat or 31.0) + 0.002) if home_a else None
    house = PlaceIn(kind="building", code=home_a.building_code, name="病例住所") if home_a and home_a.building_code \
        else None
    ex1 = [ExposureIn(source_id=a_pid, person=who(p), kind="household" if k < 3 else "work",
                      place=house if k < 3 else work, start_at=at(7 - k % 3, 8), end_at=at(6 - k % 3, 20))
           for k, p in enumerate(yy[1:11])]
    r1 = tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=ex1))
    close_ids = r1["person_ids"]
    canteen = PlaceIn(kind="point", name="岳阳街道某餐馆（演示）", lon=(home_a.lon or 121.22) - 0.003,
                      lat=(home_a.lat or 31.0) + 0.003) if home_a else None
    ex2 = [ExposureIn(source_id=close_ids[k % len(close_ids)], person=who(p), kind="meal", place=canteen,
                      start_at=at(4, 12), end_at=at(4, 13)) for k, p in enumerate(yy[11:26])]
    tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=ex2))
    b = tracing.report_case(session, SYSTEM, oid, CaseIn(person=who(ss[0]), classification="asymptomatic",
                                                         sampled_on=today - dt.timedelta(days=3), reported_at=at(2, 15),
                                                         found_in="screening"))
    tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=[
        ExposureIn(source_id=b["person"]["id"], person=who(p), kind="work", start_at=at(4, 9), end_at=at(3, 17))
        for p in ss[1:8]]))
    # a 密接 turned positive: their contacts become 密接, end dates move
    tracing.report_case(session, SYSTEM, oid, CaseIn(person_id=close_ids[3], classification="confirmed",
                                                     onset_on=today - dt.timedelta(days=2), reported_at=at(1, 10),
                                                     found_in="quarantine"))
    res = occupancy.residences(session, [yy[0].id_number, ss[0].id_number])
    ba, bb = res[yy[0].id_number].building_code, res[ss[0].id_number].building_code
    if ba:
        zones.create_zone(session, SYSTEM, oid, ZoneIn(level="sealed", name="岳阳街道封控区（病例楼栋所在网格及相邻网格）",
                                                       building_code=ba, neighbours=True, start_on=today - dt.timedelta(days=4)))
    if bb:
        zones.create_zone(session, SYSTEM, oid, ZoneIn(level="controlled", name="佘山镇管控区", building_code=bb,
                                                       neighbours=False, start_on=today - dt.timedelta(days=2)))
    session.flush()
