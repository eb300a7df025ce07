"""Incidents (突发事件): one intake for every channel, duplicates merged, scoped reads, lifecycle.

``open_incident`` is THE intake: phone reports (the duty office), a case a dispatcher escalates,
vital-signs warnings and public-health signals all call it. In the same transaction it writes the
incident (or links the report to an open incident of the same kind and place), notifies the
district command, the responsible departments and the street at once (flat reporting,
``reporting.notify_flat``), and arms the information-reporting deadlines (timers).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

import shapely
import shapely.geometry
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from cityops.emergency import machines, reporting, rules, scopes
from cityops.emergency.models_command import Incident, IncidentIntake
from cityops.emergency.scopes import INCIDENT_SCOPE
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.geo import geojson
from cityops.jobs import service as jobs
from cityops.lifecycle import Context
from cityops.lifecycle import service as lifecycle
from cityops.security import audit, scope
from cityops.security.masking import mask_name
from cityops.security.principal import Principal, code_prefix_clause

TZ = ZoneInfo("Asia/Shanghai")
SOURCE_TYPES: dict[str, tuple[str, str]] = {
    "phone": ("电话报告", "phone report"), "case": ("案件升级", "escalated case"),
    "vital_signs": ("城市体征预警", "vital-signs warning"), "health_signal": ("公共卫生监测信号", "public-health signal"),
    "app": ("系统登记", "registered in the console"), "sensor": ("物联感知", "sensor"),
}
OPEN_STATES = ("reported", "initial_response", "responding")
FINAL_STATES = ("closed", "merged", "dismissed")


@dataclass(frozen=True)
class IntakeResult:
    incident_id: int
    code: str
    created: bool
    merged: bool
    duplicate_source: bool = False
    notified: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def now() -> dt.datetime:
    return jobs.now()


# ---------------------------------------------------------------- place


@dataclass
class Place:
    area_code: str
    street_code: str | None
    community_code: str | None
    grid_code: str | None
    lon: float | None
    lat: float | None
    geom: Any


def _geometry(geometry: Any, loc: list[str | int]) -> Any:
    if geometry is None:
        return None
    if isinstance(geometry, shapely.Geometry):
        g = geometry
    else:
        try:
            g = shapely.geometry.shape(geometry)
        except Exception as exc:  # noqa: BLE001 - any unreadable GeoJSON is bad input
            raise InvalidInput([Problem(f"无法读取的几何 unreadable GeoJSON geometry: {exc}", loc, "value_error")])
    if g.is_empty or not g.is_valid:
        raise InvalidInput([Problem("几何为空或无效 the geometry is empty or invalid", loc, "value_error")])
    return g


def locate(session: Session, *, area: str | None, geometry: Any, lon: float | None, lat: float | None,
           loc: list[str | int]) -> Place:
    """The codes of the most precise area known from a point, an area code and/or a geometry."""
    from cityops.config import get_settings
    from cityops.geo import service as geo

    g = _geometry(geometry, [*loc, "geometry"])
    if (lon is None) != (lat is None):
        raise InvalidInput([Problem("经纬度须同时给出 lon and lat go together", [*loc, "lat"], "missing")])
    if lon is None and g is not None:
        p = g.representative_point()
        lon, lat = float(p.x), float(p.y)
    codes: dict[str, str | None] = {"street": None, "community": None, "grid": None}
    if lon is not None and lat is not None:
        hit = geo.locate_one(session, lat, lon)
        if not hit.get("inside"):
            raise InvalidInput([Problem("地点不在本区范围内 the place is outside the district", [*loc, "lat"],
                                        "outside")])
        codes = {"street": hit.get("street_code"), "community": hit.get("community_code"), "grid": hit.get("grid_code")}
    if area is not None:
        if not area.isdigit() or len(area) not in (6, 9, 12, 15):
            raise InvalidInput([Problem("区划代码须为6/9/12/15位数字 an area code has 6, 9, 12 or 15 digits",
                                        [*loc, "area"], "value_error")])
        try:
            geo.get_area(session, area)
        except NotFound:
            raise InvalidInput([Problem(f"未知区划 unknown area {area}", [*loc, "area"], "unknown")])
        if not area.startswith(get_settings().district_code):
            raise InvalidInput([Problem("区划不在本区 the area is outside the district", [*loc, "area"], "outside")])
        if codes["street"] is None:
            codes = {"street": area[:9] if len(area) >= 9 else None, "community": area[:12] if len(area) >= 12 else None,
                     "grid": area if len(area) == 15 else None}
    if codes["street"] is None and area is None:
        raise InvalidInput([Problem("需给出地点：经纬度、区划代码或范围 a place is needed: lon/lat, area or geometry",
                                    [*loc, "area"], "missing")])
    if area is not None and len(area) < 15 and not (codes["grid"] and codes["grid"].startswith(area)):
        # an area given without a point inside it: the incident sits at that area's level
        most = area
        codes = {"street": area[:9] if len(area) >= 9 else None, "community": area[:12] if len(area) >= 12 else None,
                 "grid": None}
    else:
        most = codes["grid"] or codes["community"] or codes["street"] or str(area)
    return Place(most, codes["street"], codes["community"], codes["grid"], lon, lat, g)


# ---------------------------------------------------------------- intake


def _code(inc_id: int, at: dt.datetime) -> str:
    return f"E{at.astimezone(TZ).strftime('%Y%m%d')}{inc_id:05d}"


def _duplicate_of(session: Session, kind: rules.Kind, place: Place, reported_at: dt.datetime,
                  exercise: bool) -> Incident | None:
    cfg = rules.reporting().merge
    a = place.area_code
    prefixes = [a[:n] for n in (6, 9, 12, 15) if n <= len(a)]
    stmt = (select(Incident).where(Incident.state.in_(OPEN_STATES), Incident.category == kind.category.code,
                                   Incident.exercise.is_(exercise),
                                   Incident.reported_at >= reported_at - dt.timedelta(hours=cfg.window_hours),
                                   or_(code_prefix_clause(Incident.area_code, a), Incident.area_code.in_(prefixes)))
            .order_by(Incident.reported_at.desc()).limit(1).with_for_update())
    if cfg.same_subtype:
        stmt = stmt.where(Incident.subtype == kind.subtype.code)
    return session.scalar(stmt)


def open_incident(session: Session, principal: Principal, source_type: str, source_ref: str | int | None,
                  category: str, severity: str, area: str | None = None, title: str = "",
                  description: str | None = None, *, geometry: Any = None, subtype: str | None = None,
                  event_type: str | None = None, lon: float | None = None, lat: float | None = None,
                  reported_at: dt.datetime | None = None, reporter: str | None = None, address: str | None = None,
                  exercise: bool = False, loc: list[str | int] | None = None) -> IntakeResult:
    """The one intake of incidents (does not commit: the caller's unit of work does).

    ``source_type``: phone / case / vital_signs / health_signal / app / sensor; ``source_ref`` the
    caller's id (a linked source is linked at most once: the same one again returns its incident);
    ``category`` a category code with ``subtype``, or a subtype code alone; ``severity`` I–IV; the
    place from ``lon``/``lat``, ``area`` (an area code) and/or ``geometry`` (GeoJSON or shapely).
    A report of the same kind inside or around the place of an open incident within the merge
    window joins it (``merged``) instead of opening another one."""
    base = loc or ["body"]
    at = now()
    if source_type not in SOURCE_TYPES:
        raise InvalidInput([Problem(f"未知来源 unknown source_type {source_type!r}; one of {', '.join(SOURCE_TYPES)}",
                                    [*base, "source_type"], "unknown")])
    if severity not in rules.LEVELS:
        raise InvalidInput([Problem(f"事件分级须为 I–IV severity must be one of {', '.join(rules.LEVELS)}",
                                    [*base, "severity"], "value_error")])
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise InvalidInput([Problem("标题须为1–200字 the title must be 1-200 characters", [*base, "title"], "value_error")])
    kind = rules.resolve_kind(category, subtype, base)
    place = locate(session, area=area, geometry=geometry, lon=lon, lat=lat, loc=base)
    if not scope.allows(principal, INCIDENT_SCOPE, area_code=place.area_code,
                        departments=[principal.department_code] if principal.department_code else []):
        raise InvalidInput([Problem("地点不在你的辖区 the place is outside your area", [*base, "area"], "outside")])
    first = reported_at or at
    if first.tzinfo is None:
        raise InvalidInput([Problem("时间须带时区 reported_at needs a time zone", [*base, "reported_at"], "value_error")])
    if first > at + dt.timedelta(minutes=5):
        raise InvalidInput([Problem("报告时间不能晚于现在 reported_at is in the future", [*base, "reported_at"], "value_error")])
    ref = None if source_ref is None else str(source_ref)[:80]
    if ref is not None:
        got = session.execute(select(IncidentIntake.incident_id, Incident.code)
                              .join(Incident, Incident.id == IncidentIntake.incident_id)
                              .where(IncidentIntake.source_type == source_type, IncidentIntake.source_ref == ref)).first()
        if got is not None:
            return IntakeResult(got.incident_id, got.code, created=False, merged=False, duplicate_source=True)
    intake = dict(source_type=source_type, source_ref=ref, title=title, description=description,
                  area_code=place.area_code, lon=place.lon, lat=place.lat, reporter=reporter, reported_at=first,
                  received_at=at, actor=principal.username[:80])
    dup = _duplicate_of(session, kind, place, first, exercise)
    if dup is not None:
        session.add(IncidentIntake(incident_id=dup.id, is_primary=False, **intake))
        dup.report_count += 1
        if first < dup.reported_at:
            dup.reported_at = first
        dup.updated_at = at
        lifecycle.add_entry(session, principal, "incident", dup.id, "report_merged", at=at, from_state=dup.state,
                            to_state=dup.state, note=f"{SOURCE_TYPES[source_type][0]}：{title}",
                            data={"source_type": source_type, "source_ref": ref})
        jobs.enqueue(session, "incident.report_merged", {"id": dup.id, "code": dup.code, "source_type": source_type})
        audit.record(session, principal, "incident.report", "incident", dup.id, detail={"merged": True})
        session.flush()
        return IntakeResult(dup.id, dup.code, created=False, merged=True)
    inc = Incident(code=f"tmp-{id(intake)}-{at.timestamp()}"[:24], title=title, description=description,
                   category=kind.category.code, subtype=kind.subtype.code, event_type=event_type, severity=severity,
                   state="reported", exercise=exercise, area_code=place.area_code, street_code=place.street_code,
                   community_code=place.community_code, grid_code=place.grid_code, lon=place.lon, lat=place.lat,
                   geom=place.geom, address=address, source_type=source_type, source_ref=ref, reported_at=first,
                   opened_at=at, created_by=principal.username[:80], rules_version=rules.reporting().version,
                   updated_at=at)
    session.add(inc)
    session.flush()
    inc.code = _code(inc.id, at)
    session.add(IncidentIntake(incident_id=inc.id, is_primary=True, **intake))
    lifecycle.add_entry(session, principal, "incident", inc.id, "report", at=at, to_state="reported",
                        note=f"{SOURCE_TYPES[source_type][0]}：{title}",
                        data={"source_type": source_type, "source_ref": ref, "severity": severity})
    n = reporting.notify_flat(session, inc, kind, at)
    reporting.arm_deadlines(session, inc)
    jobs.enqueue(session, "incident.opened", {"id": inc.id, "code": inc.code, "category": inc.category,
                                              "subtype": inc.subtype, "severity": severity, "area_code": inc.area_code,
                                              "exercise": exercise, "at": at})
    audit.record(session, principal, "incident.report", "incident", inc.id,
                 detail={"source_type": source_type, "source_ref": ref})
    session.flush()
    return IntakeResult(inc.id, inc.code, created=True, merged=False, notified=n)


# ---------------------------------------------------------------- reads


readable = scopes.readable_incidents
get_incident = scopes.get_incident


def check_area_param(principal: Principal, area: str | None) -> None:
    """An ``?area=`` must lie inside (or contain) the principal's area, else 404."""
    if area is None:
        return
    if not area.isdigit() or len(area) > 15:
        raise InvalidInput([Problem("area 须为区划代码 area must be an area code", ["query", "area"], "value_error")])
    mine = scope.rule(principal, INCIDENT_SCOPE).area
    if mine and not (area.startswith(mine) or mine.startswith(area)):
        raise NotFound([Problem(f"未找到区划 area {area} not found", ["query", "area"], "not_found")])


def street_names(session: Session) -> dict[str, str]:
    from cityops.geo import service as geo

    return {code: name for code, _lvl, name, _p in geo.area_names(session, ("street",))}


def summary(inc: Incident, names: dict[str, str], lang: str = "zh") -> dict[str, Any]:
    cat, sub = rules.kind_label(inc.category, inc.subtype, lang)
    return {"id": inc.id, "code": inc.code, "title": inc.title, "category": inc.category, "subtype": inc.subtype,
            "category_name": cat, "subtype_name": sub, "event_type": inc.event_type, "severity": inc.severity,
            "severity_name": rules.SEVERITY_LABELS[inc.severity][1 if lang == "en" else 0],
            "response_level": inc.response_level, "state": inc.state,
            "state_name": machines.INCIDENT.states[inc.state]["en" if lang == "en" else "zh"],
            "exercise": inc.exercise, "area_code": inc.area_code, "street_code": inc.street_code,
            "street_name": names.get(inc.street_code or ""), "community_code": inc.community_code,
            "grid_code": inc.grid_code, "lon": inc.lon, "lat": inc.lat, "source_type": inc.source_type,
            "reported_at": inc.reported_at, "opened_at": inc.opened_at, "report_count": inc.report_count,
            "merged_into_id": inc.merged_into_id}


def list_incidents(session: Session, principal: Principal, *, state: list[str] | None = None,
                   open_only: bool = False, area: str | None = None, exercise: bool | None = None,
                   page: int = 1, page_size: int = 50, lang: str = "zh") -> dict[str, Any]:
    check_area_param(principal, area)
    stmt = readable(principal)
    if state:
        unknown = [s for s in state if s not in machines.INCIDENT.states]
        if unknown:
            raise InvalidInput([Problem(f"未知状态 unknown state {unknown[0]!r}", ["query", "state"], "unknown")])
        stmt = stmt.where(Incident.state.in_(state))
    if open_only:
        stmt = stmt.where(Incident.state.in_(OPEN_STATES))
    if area:
        located = INCIDENT_SCOPE.located
        assert located is not None
        stmt = stmt.where(located.within(area) if len(area) > 6 else Incident.area_code.startswith(area))
    if exercise is not None:
        stmt = stmt.where(Incident.exercise.is_(exercise))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Incident.opened_at.desc(), Incident.id.desc())
                           .offset((page - 1) * page_size).limit(page_size)).all()
    names = street_names(session)
    return {"total": total, "page": page, "page_size": page_size, "items": [summary(r, names, lang) for r in rows]}


def detail(session: Session, principal: Principal, inc: Incident, lang: str = "zh") -> dict[str, Any]:
    from cityops.emergency import mobilisation, tasks

    out = summary(inc, street_names(session), lang)
    out["description"] = inc.description
    out["address"] = inc.address
    out["geometry"] = geojson.geometry(inc.geom)
    out["summary"] = inc.summary
    intakes = session.scalars(select(IncidentIntake).where(IncidentIntake.incident_id == inc.id)
                              .order_by(IncidentIntake.reported_at, IncidentIntake.id)).all()
    out["intakes"] = [{"source_type": i.source_type, "source_name": SOURCE_TYPES.get(i.source_type, ("", ""))[0],
                       "source_ref": i.source_ref, "title": i.title, "description": i.description,
                       "reporter": mask_name(i.reporter) if i.reporter else None, "reported_at": i.reported_at,
                       "received_at": i.received_at, "primary": i.is_primary} for i in intakes]
    out["deadlines"] = reporting.deadlines_out(session, inc)
    out["notices"] = reporting.notices_out(session, inc.id)
    out["plans"] = tasks.activations_out(session, inc.id)
    out["task_counts"] = tasks.counts(session, principal, inc.id)
    out["mobilisation"] = mobilisation.counts(session, principal, inc.id)
    out["actions"] = lifecycle.allowed_actions(session, principal, machines.incident_table(), inc)
    return out


def incident_timeline(session: Session, principal: Principal, ref: str | int, lang: str = "zh") -> list[dict[str, Any]]:
    inc = get_incident(session, principal, ref)
    return machines.label_timeline(lifecycle.timeline(session, "incident", inc.id), machines.INCIDENT, lang)


# ---------------------------------------------------------------- lifecycle


def act(session: Session, principal: Principal, ref: str | int, action: str, body: dict[str, Any],
        lang: str = "zh") -> dict[str, Any]:
    """Take ``action`` on an incident in the principal's scope (the transition table decides)."""
    inc = get_incident(session, principal, ref, for_update=True)
    at = now()
    lifecycle.perform(session, principal, machines.incident_table(), inc, action, body, at=at,
                      event={"code": inc.code, "area_code": inc.area_code, "exercise": inc.exercise})
    inc.updated_at = at
    if action == "end_response":
        inc.ended_at = at
    if action == "close":
        inc.closed_at = at
        inc.summary = str(body.get("summary"))[:4000]
    session.flush()
    return detail(session, principal, inc, lang)


def merge_effect(ctx: Context) -> None:
    """Effect ``merge``: this incident's reports join the target incident (kept open)."""
    src: Incident = ctx.obj
    target = get_incident(ctx.session, ctx.principal, str(ctx.body.get("target")), for_update=True)
    if target.id == src.id or target.state not in OPEN_STATES:
        raise Conflict([Problem(f"只能合并到另一个在办事件 merge into another open incident (target {target.code} is "
                                f"{target.state})", ["body", "target"], "conflict")])
    n = jobs.rowcount(ctx.session.execute(update(IncidentIntake).where(IncidentIntake.incident_id == src.id)
                                          .values(incident_id=target.id, is_primary=False, merged_from_id=src.id)))
    target.report_count += n
    if src.reported_at < target.reported_at:
        target.reported_at = src.reported_at
    src.merged_into_id = target.id
    lifecycle.add_entry(ctx.session, ctx.principal, "incident", target.id, "absorb", at=ctx.at, from_state=target.state,
                        to_state=target.state, note=f"合并事件 {src.code}", data={"from": src.code, "reports": n})
    ctx.data.update({"merged_into": target.code, "reports": n})
