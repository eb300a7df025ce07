"""Follow-up of contacts by the community stations, the transmission chain of a case and the
GeoJSON of exposure places.

* ``due_today``: contacts in quarantine / health monitoring on a day (a daily check each) and the
  tests due that day by the rule set (``categorise.tests_due``), minus what a station recorded, per
  community — derived from the categories, so a recomputed graph moves the list with it;
* the daily timer (``FOLLOWUP_TIMER``, 20:00 Shanghai) tells each community station how many checks
  and tests of the day are still open, then arms itself for the next day while the outbreak is active;
* ``chain``: the people a case was exposed to (its sources) and exposed (contacts, their contacts).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, Problem
from cityops.geo import geojson
from cityops.outbreak import categorise as cat
from cityops.outbreak import persons, rules
from cityops.outbreak.days import FOLLOWUP_TIMER, TZ, local_day
from cityops.outbreak.models import Exposure, FollowUp, Outbreak, OutbreakCase, TrackedPerson
from cityops.outbreak.schemas import FollowUpIn
from cityops.outbreak.scopes import EXPOSURE_SCOPE, PERSON_SCOPE, get_case, get_outbreak, get_person
from cityops.security import audit, scope
from cityops.security.principal import SYSTEM, Principal


def due_today(session: Session, principal: Principal, ob_ref: str | int, day: dt.date | None = None, *,
              community: str | None = None, lang: str = "zh", limit: int = 2000) -> dict[str, Any]:
    ob = get_outbreak(session, ob_ref)
    rs = rules.get(ob.rule_set)
    d = day or local_day(clock.now())
    stmt = select(TrackedPerson.id, TrackedPerson.cat_key, TrackedPerson.community_code).where(
        TrackedPerson.outbreak_id == ob.id, TrackedPerson.category.in_(("close", "secondary")),
        TrackedPerson.monitoring_end >= d, scope.clause(principal, PERSON_SCOPE))
    if community:
        stmt = stmt.where(TrackedPerson.community_code == community)
    people = session.execute(stmt.order_by(TrackedPerson.community_code, TrackedPerson.id)).all()
    if not people:
        return {"day": d, "total": 0, "communities": []}
    u = cat.unpack(np.fromiter((p[1] or 0 for p in people), dtype=np.int64, count=len(people)))
    codes, last, qend, mend = u.category, u.last_exposure, u.quarantine_end, u.monitoring_end
    check = cat.under_management(codes, last, mend, d.toordinal())
    test = cat.tests_due(codes, last, qend, d.toordinal(), rs)
    done = {(pid, kind) for pid, kind in session.execute(select(FollowUp.person_id, FollowUp.kind).where(
        FollowUp.day == d, FollowUp.person_id.in_(select(TrackedPerson.id).where(TrackedPerson.outbreak_id == ob.id))))}
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    counts: dict[str | None, int] = defaultdict(int)
    listed: list[tuple[int, str | None, list[str], int]] = []
    total = 0
    for k, p in enumerate(people):
        pid = int(p[0])
        todo = [kind for kind, flag in (("check", check[k]), ("test", test[k])) if flag and (pid, kind) not in done]
        if not todo:
            continue
        total += 1
        counts[p[2]] += 1
        if total <= limit:
            listed.append((pid, p[2], todo, int(d.toordinal() - last[k])))
    objs = {o.id: o for o in session.scalars(select(TrackedPerson).where(
        TrackedPerson.id.in_([x[0] for x in listed])))} if listed else {}
    for pid, com, todo, qday in listed:
        groups[com].append({**persons.person_dict(objs[pid], principal, lang), "due": todo, "quarantine_day": qday})
    names = _names(session)
    return {"day": d, "total": total, "communities": [
        {"community_code": c, "community_name": names.get(c or ""), "items": groups.get(c, []), "count": n}
        for c, n in sorted(counts.items(), key=lambda kv: kv[0] or "")]}


def _names(session: Session) -> dict[str, str]:
    from cityops.geo import service as geo

    return geo.indexes(session).names


def record(session: Session, principal: Principal, ob_ref: str | int, body: FollowUpIn) -> dict[str, Any]:
    ob = get_outbreak(session, ob_ref)
    p = get_person(session, principal, body.person_id)
    if p.outbreak_id != ob.id or p.category not in ("close", "secondary"):
        raise Conflict([Problem("该人员不在随访管理中 the person is not a contact under follow-up",
                                ["body", "person_id"], "conflict")])
    d = body.day or local_day(clock.now())
    if session.scalar(select(FollowUp.id).where(FollowUp.person_id == p.id, FollowUp.day == d,
                                                FollowUp.kind == body.kind)) is not None:
        raise Conflict([Problem("当日已记录 already recorded for that day", ["body", "day"], "conflict")])
    row = FollowUp(person_id=p.id, day=d, kind=body.kind, result=body.result, note=body.note,
                   community_code=p.community_code, done_at=clock.now(), done_by=principal.username)
    session.add(row)
    session.flush()
    audit.record(session, principal, "ob_followup.record", "ob_person", p.id, detail={"kind": body.kind,
                                                                                     "result": body.result})
    return {"id": row.id, "person_id": p.id, "day": d, "kind": row.kind, "result": row.result}


def fire_followup(session: Session, payload: dict[str, Any]) -> None:
    """The daily follow-up timer: one notice per community with open checks/tests, then re-arm."""
    from cityops.jobs import service as jobs

    ob = session.get(Outbreak, int(payload["outbreak_id"]))
    if ob is None or ob.state != "active":
        return
    now = clock.now()
    got = due_today(session, SYSTEM, ob.id, local_day(now), limit=0)
    for c in got["communities"]:
        if c["community_code"]:
            jobs.notify(session, role="community_operator", area_code=c["community_code"],
                        title=f"今日随访未完成 {c['count']} 人"[:200],
                        body=f"{ob.title}：{c['community_name'] or c['community_code']} 今日尚有 {c['count']} 名密接/次密接"
                             f"未完成健康监测或核酸检测。", link=f"/outbreak?outbreak={ob.id}", severity="warning")
    nxt = (now.astimezone(TZ).replace(hour=20, minute=0, second=0, microsecond=0) + dt.timedelta(days=1))
    jobs.schedule_timer(session, FOLLOWUP_TIMER, "ob_outbreak", ob.id, nxt.astimezone(dt.UTC), {"outbreak_id": ob.id})


# ---------------------------------------------------------------- chain and places


def chain(session: Session, principal: Principal, case_ref: str | int, lang: str = "zh") -> dict[str, Any]:
    """The contact graph around one case: who it was exposed to, its contacts and their contacts
    (nodes outside the principal's scope are left out)."""
    c = get_case(session, principal, case_ref)
    root = c.person_id
    e1 = session.execute(select(Exposure).where(or_(Exposure.source_id == root, Exposure.person_id == root))).scalars().all()
    first = {e.person_id for e in e1 if e.source_id == root}
    e2 = session.execute(select(Exposure).where(Exposure.source_id.in_(sorted(first)))).scalars().all() if first else []
    edges = list({e.id: e for e in [*e1, *e2]}.values())
    ids = {root} | {e.person_id for e in edges} | {e.source_id for e in edges}
    visible = {p.id: p for p in session.scalars(select(TrackedPerson).where(TrackedPerson.id.in_(sorted(ids)),
                                                                            scope.clause(principal, PERSON_SCOPE)))}
    case_of = dict(session.execute(select(OutbreakCase.person_id, OutbreakCase.code).where(
        OutbreakCase.person_id.in_(sorted(visible)))).tuples().all())
    audit.record(session, principal, "read", "ob_chain", c.id, detail={"nodes": len(visible)})
    nodes = [{**persons.person_dict(p, principal, lang), "case_code": case_of.get(p.id), "root": p.id == root}
             for p in visible.values()]
    links = [{"source": e.source_id, "target": e.person_id, "kind": e.kind, "start_at": e.start_at, "end_at": e.end_at,
              "place": e.place_name} for e in edges if e.source_id in visible and e.person_id in visible]
    return {"case": c.code, "root": root, "nodes": nodes, "links": links,
            "hidden": len(ids - set(visible))}


def places_geojson(session: Session, principal: Principal, ob_ref: str | int) -> dict[str, Any]:
    """Exposure places (points with how many exposures happened there), in the principal's scope."""
    ob = get_outbreak(session, ob_ref)
    rows = session.execute(select(Exposure.place_kind, Exposure.place_code, Exposure.place_name, Exposure.lon,
                                  Exposure.lat, Exposure.grid_code, Exposure.end_at).where(
        Exposure.outbreak_id == ob.id, Exposure.lon.is_not(None), scope.clause(principal, EXPOSURE_SCOPE))).all()
    agg: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r.place_kind, r.place_code, round(r.lon, 6), round(r.lat, 6))
        a = agg.setdefault(key, {"kind": r.place_kind, "code": r.place_code, "name": r.place_name,
                                 "grid_code": r.grid_code, "exposures": 0, "last": r.end_at, "lon": r.lon, "lat": r.lat})
        a["exposures"] += 1
        a["last"] = max(a["last"], r.end_at)
    feats = [{"type": "Feature", "geometry": geojson.point(a.pop("lon"), a.pop("lat")),
              "properties": {**a, "last": a["last"].isoformat()}} for a in agg.values()]
    return {"type": "FeatureCollection", "features": feats}
