"""Reads of cases, always narrowed to what the principal may see.

Scope: ``CASE_SCOPE`` through ``cityops.security.scope`` (the one rule: a department account sees
the cases its department handles now, as lead or co-handler, within its area when that is below
the district; an area account the cases in its area). Anything else is 404. Filters map onto the composite indexes of ``case_file`` (area by equality on the
street / community / grid column, state, category, source, lead department, due_at for
overdue, reported_at for time ranges and the default order).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement, True_

from cityops.cases import places, sla
from cityops.cases import reference as ref
from cityops.cases.models import (
    Case,
    CaseDepartment,
    CaseEvent,
    CaseReport,
    CaseStep,
    Escalation,
    RoutingDecision,
    case_no,
    parse_case_no,
)
from cityops.config import get_settings
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.exports import SafeDictWriter
from cityops.geo import geojson as gj
from cityops.security import audit, scope
from cityops.security.masking import mask_name, mask_phone
from cityops.security.principal import Principal
from cityops.security.scope import Located, ScopedKind

TZ = ZoneInfo("Asia/Shanghai")
SORTS = {
    "-reported_at": (Case.reported_at.desc(), Case.id.desc()), "reported_at": (Case.reported_at.asc(), Case.id.asc()),
    "due_at": (Case.due_at.asc(), Case.id.asc()), "-due_at": (Case.due_at.desc(), Case.id.desc()),
    "-id": (Case.id.desc(),), "id": (Case.id.asc(),),
}


# Where a case is: its street (9), community (12) and grid (15) codes (equality on the column of
# the area's level, so that the composite indexes of ``case_file`` serve filter and order).
CASE_PLACE = Located(street=Case.street_code, community=Case.community_code, grid=Case.grid_code)


def area_filter(code: str) -> ColumnElement[bool]:
    """Cases inside an area (a filter the caller chose; the scope is ``CASE_SCOPE``)."""
    if len(code) == 6 and code == get_settings().district_code:
        return true()
    return CASE_PLACE.within(code)


def department_filter(code: str) -> ColumnElement[bool]:
    """Cases the department handles now, as lead or co-handler."""
    return Case.id.in_(select(CaseDepartment.case_id).where(CaseDepartment.department_code == code,
                                                             CaseDepartment.released_at.is_(None)))


# The scope of cases (``cityops.security.scope``): departments handle cases.
CASE_SCOPE = ScopedKind("case", CASE_PLACE, handled_by=department_filter)


def readable_statement(session: Session, principal: Principal) -> Select[Any]:
    return select(Case).where(scope.clause(principal, CASE_SCOPE))


def active_departments(session: Session, case_id: int) -> list[CaseDepartment]:
    """The departments handling a case now (lead first)."""
    return list(session.scalars(select(CaseDepartment).where(CaseDepartment.case_id == case_id,
                                                             CaseDepartment.released_at.is_(None))
                                .order_by(CaseDepartment.role.desc(), CaseDepartment.id)))


def handled_case_ids(session: Session, department_code: str) -> list[int]:
    """Ids of the cases ``department_code`` handles now (the snapshot's rendering of the scope)."""
    return list(session.scalars(select(CaseDepartment.case_id).where(
        CaseDepartment.department_code == department_code, CaseDepartment.released_at.is_(None))))


def get_case(session: Session, principal: Principal, case_ref: str | int, *, for_update: bool = False) -> Case:
    """The case by id or case number, if ``principal`` may see it (else 404)."""
    cid = case_ref if isinstance(case_ref, int) else parse_case_no(str(case_ref))
    if cid is None:
        raise NotFound([Problem(f"no case {case_ref}", ["path", "case"], "not_found")])
    stmt = readable_statement(session, principal).where(Case.id == cid)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    case: Case | None = session.scalar(stmt)
    if case is None:
        raise NotFound([Problem(f"案件不存在或无权查看 no case {case_ref} (or not in your scope)", ["path", "case"], "not_found")])
    return case


# ---------------------------------------------------------------- filters


@dataclass
class CaseFilter:
    area: str | None = None
    state: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    kind: str | None = None
    source: list[str] = field(default_factory=list)
    department: str | None = None
    urgency: list[str] = field(default_factory=list)
    sla: str | None = None
    overdue: bool | None = None
    open: bool | None = None
    date_from: dt.datetime | None = None
    date_to: dt.datetime | None = None
    text: str | None = None
    bbox: tuple[float, float, float, float] | None = None


def _category_ids(session: Session, codes: list[str]) -> list[int]:
    cat = ref.catalogue(session)
    ids: set[int] = set()
    for info in cat.by_id.values():
        if info.code in codes:
            ids.add(info.id)
            ids.update(cat.crosswalk.get(info.id, []))
    return sorted(ids)


def full_case_no(text: str | None) -> int | None:
    """The case id when ``text`` is a whole case number (which finds the case whatever the other
    filters say), else None."""
    t = (text or "").strip()
    return parse_case_no(t) if t.isdigit() and len(t) >= 15 else None


def apply_filters(session: Session, stmt: Any, f: CaseFilter, at: dt.datetime) -> Any:
    if full_case_no(f.text) is not None:
        # a full case number finds the case whatever the other filters say (a closed case too)
        return stmt.where(Case.id == full_case_no(f.text))
    if f.area:
        stmt = stmt.where(area_filter(f.area))
    if f.state:
        stmt = stmt.where(Case.state.in_(f.state) if len(f.state) > 1 else Case.state == f.state[0])
    if f.open is True:
        stmt = stmt.where(Case.state.in_(ref.OPEN_STATES))
    elif f.open is False:
        stmt = stmt.where(Case.state.not_in(ref.OPEN_STATES))
    if f.category:
        stmt = stmt.where(Case.category_id.in_(_category_ids(session, f.category) or [-1]))
    if f.kind:
        stmt = stmt.where(Case.kind == f.kind)
    if f.source:
        stmt = stmt.where(Case.source.in_(f.source))
    if f.department:
        stmt = stmt.where(department_filter(f.department))
    if f.urgency:
        stmt = stmt.where(Case.urgency.in_(f.urgency))
    if f.sla:
        stmt = stmt.where(sla.sla_clause(f.sla, at))
    if f.overdue is True:
        stmt = stmt.where(Case.due_at <= at)
    elif f.overdue is False:
        stmt = stmt.where(or_(Case.due_at.is_(None), Case.due_at > at))
    if f.date_from:
        stmt = stmt.where(Case.reported_at >= f.date_from)
    if f.date_to:
        stmt = stmt.where(Case.reported_at < f.date_to)
    if f.bbox:
        w, s, e, n = f.bbox
        stmt = stmt.where(Case.lat.between(s, n), Case.lon.between(w, e))
    if f.text:
        t = f.text.strip()
        cid = parse_case_no(t) if t.isdigit() else None
        # LIKE wildcards in the text are literal (q=% matches a percent sign, not everything)
        conds = [Case.title.contains(t, autoescape=True), Case.description.contains(t, autoescape=True),
                 Case.address.contains(t, autoescape=True), Case.external_id == t]
        if cid is not None:
            conds.append(Case.id == cid)
        stmt = stmt.where(or_(*conds))
    return stmt


def parse_filter(*, area: str | None = None, state: str | None = None, category: str | None = None,
                 kind: str | None = None, source: str | None = None, department: str | None = None,
                 urgency: str | None = None, sla_state: str | None = None, overdue: bool | None = None,
                 open_: bool | None = None, date_from: dt.datetime | None = None, date_to: dt.datetime | None = None,
                 text: str | None = None, bbox: str | None = None) -> CaseFilter:
    """Query-string values (comma-separated lists) -> CaseFilter, with clear 422s."""
    probs = []

    def split(v: str | None) -> list[str]:
        return [x.strip() for x in (v or "").split(",") if x.strip()]

    states = split(state)
    bad = [s for s in states if s not in ref.STATES]
    if bad:
        probs.append(Problem(f"unknown state {', '.join(bad)}; states: {', '.join(ref.STATES)}", ["query", "state"]))
    urg = split(urgency)
    if any(u not in ref.URGENCIES for u in urg):
        probs.append(Problem(f"urgency must be among {', '.join(ref.URGENCIES)}", ["query", "urgency"]))
    if sla_state is not None and sla_state not in ("green", "yellow", "red", "none"):
        probs.append(Problem("sla must be green, yellow, red or none", ["query", "sla"]))
    if kind is not None and kind not in ref.KINDS:
        probs.append(Problem(f"kind must be one of {', '.join(ref.KINDS)}", ["query", "kind"]))
    if area is not None and (not area.isdigit() or not 1 <= len(area) <= 15):
        probs.append(Problem("area must be an area code prefix (digits)", ["query", "area"]))
    box = None
    if bbox:
        try:
            parts = [float(x) for x in bbox.split(",")]
            if len(parts) != 4 or not (parts[0] < parts[2] and parts[1] < parts[3]):
                raise ValueError
            box = (parts[0], parts[1], parts[2], parts[3])
        except ValueError:
            probs.append(Problem("bbox is west,south,east,north in degrees with west<east, south<north", ["query", "bbox"]))
    for name, v in (("date_from", date_from), ("date_to", date_to)):
        if v is not None and v.tzinfo is None:
            probs.append(Problem(f"{name} needs a time-zone offset", ["query", name]))
    if probs:
        raise InvalidInput(probs)
    return CaseFilter(area=area, state=states, category=split(category), kind=kind, source=split(source),
                      department=department, urgency=urg, sla=sla_state, overdue=overdue, open=open_,
                      date_from=date_from, date_to=date_to, text=text, bbox=box)


# ---------------------------------------------------------------- outputs


def summary(c: Case, at: dt.datetime, names: dict[str, str] | None = None, depts: dict[str, Any] | None = None,
            cats: dict[int, Any] | None = None) -> dict[str, Any]:
    cat = (cats or {}).get(c.category_id)
    d = (depts or {}).get(c.lead_department_code or "")
    return {
        "id": c.id, "case_no": case_no(c.id, c.reported_at), "state": c.state,
        "state_label": ref.STATES.get(c.state, {}).get("zh", c.state), "source": c.source, "channel": c.channel,
        "category_code": c.category_code, "category_name": cat.name_zh if cat else c.category_code, "kind": c.kind,
        "title": c.title, "address": c.address, "lon": c.lon, "lat": c.lat, "grid_code": c.grid_code,
        "community_code": c.community_code, "street_code": c.street_code,
        "street_name": (names or {}).get(c.street_code), "urgency": c.urgency, "reporter_count": c.reporter_count,
        "lead_department_code": c.lead_department_code, "lead_department_name": d.name if d else None,
        "reported_at": c.reported_at, "closed_at": c.closed_at, "sla_step": c.sla_step, "due_at": c.due_at,
        "yellow_at": c.yellow_at, "sla": sla.sla_of(c.due_at, c.yellow_at, at), "overdue_count": c.overdue_count,
        "external_id": c.external_id, "version": c.version,
    }


def _ctx(session: Session) -> tuple[dict[str, str], dict[str, Any], dict[int, Any]]:
    return places.area_names(session), ref.departments(session), ref.catalogue(session).by_id


def list_cases(session: Session, principal: Principal, f: CaseFilter, *, page: int = 1, page_size: int = 50,
               sort: str = "-reported_at", with_total: bool = True) -> dict[str, Any]:
    if sort not in SORTS:
        raise InvalidInput([Problem(f"sort must be one of {', '.join(SORTS)}", ["query", "sort"])])
    if page * page_size > 200_000:
        raise InvalidInput([Problem("page * page_size may not exceed 200,000: narrow the filters", ["query", "page"])])
    at = sla.now()
    dept = _driving_department(principal, f, sort)
    if dept is None:
        stmt = apply_filters(session, readable_statement(session, principal), f, at)
        order: tuple[Any, ...] = SORTS[sort]
        total_stmt: Any = None
    else:
        stmt, order, total_stmt = _department_statement(session, principal, f, dept, sort, at)
    total = -1
    if with_total:
        if total_stmt is None:
            total_stmt = select(func.count()).select_from(stmt.order_by(None).with_only_columns(Case.id).subquery())
        total = session.scalar(total_stmt) or 0
    rows: Any = []
    if total == -1 or total > (page - 1) * page_size:
        # (with the total known, a page past the end is not read: an empty selective filter would
        # otherwise walk the whole scope in the sort order looking for a first match)
        rows = session.scalars(stmt.order_by(*order).offset((page - 1) * page_size).limit(page_size)).all()
    names, depts, cats = _ctx(session)
    return {"total": total, "page": page, "page_size": page_size,
            "items": [summary(c, at, names, depts, cats) for c in rows]}


def _driving_department(principal: Principal, f: CaseFilter, sort: str) -> str | None:
    """The department whose cases a list in report-time order walks through ``case_department``'s
    index (``ix_case_department_dept_active``): the filter's department, else a department account's
    own. None: the list walks ``case_file`` (area scopes, other sorts, a full case number)."""
    if sort not in ("-reported_at", "reported_at"):
        return None
    if full_case_no(f.text) is not None:
        return None
    return f.department or scope.rule(principal, CASE_SCOPE).department


def _department_statement(session: Session, principal: Principal, f: CaseFilter, dept: str, sort: str,
                          at: dt.datetime) -> tuple[Any, tuple[Any, ...], Any]:
    """(page statement, its order, the total's statement or None) for the cases ``dept`` handles:
    the same rows as the scope's ``case_file.id IN (...)`` form, but a page is the first rows of the
    department's index in report-time order and, with no other condition, the total is counted on
    that index alone (no sort of the department's cases, no probe of ``case_file`` per case)."""
    cd = CaseDepartment
    rest = dataclasses.replace(f, department=None)
    scoped = scope.clause(principal, CASE_SCOPE, joined_department=dept)
    handled = and_(cd.department_code == dept, cd.released_at.is_(None))
    stmt = apply_filters(session, select(Case).join(cd, cd.case_id == Case.id).where(handled, scoped), rest, at)
    order = ((cd.case_reported_at.desc(), cd.case_id.desc()) if sort == "-reported_at"
             else (cd.case_reported_at.asc(), cd.case_id.asc()))
    if rest == CaseFilter() and isinstance(scoped, True_):
        total: Any = select(func.count()).select_from(cd).where(handled)
    elif session.get_bind().dialect.name == "sqlite":
        # SQLite has no statistics: it would drive the count through the department's index and probe
        # ``case_file`` once per handled case. ``department_code || ''`` keeps that index out, so the
        # filter's own index (state, due, ...) drives and each match probes the covering
        # ``ix_case_department_case_active``. PostgreSQL chooses by its statistics.
        probe = and_(cd.case_id == Case.id, cd.department_code.concat("") == dept, cd.released_at.is_(None))
        total = apply_filters(session, select(func.count()).select_from(Case).join(cd, probe).where(scoped), rest, at)
    else:
        total = None
    return stmt, order, total


def count_cases(session: Session, principal: Principal, f: CaseFilter) -> dict[str, Any]:
    at = sla.now()
    base = apply_filters(session, select(Case.state, sla.sla_expr(at).label("sla"), func.count())
                         .where(scope.clause(principal, CASE_SCOPE)), f, at)
    by_state: dict[str, int] = {}
    by_sla: dict[str, int] = {"green": 0, "yellow": 0, "red": 0, "none": 0}
    for state, s, n in session.execute(base.group_by(Case.state, "sla")).all():
        by_state[state] = by_state.get(state, 0) + n
        by_sla[s] = by_sla.get(s, 0) + n
    return {"total": sum(by_state.values()), "by_state": by_state, "by_sla": by_sla,
            "open": sum(v for k, v in by_state.items() if k in ref.OPEN_STATES)}


def _mask_reporter(name: str | None, phone: str | None) -> dict[str, Any]:
    return {"reporter_name": mask_name(name), "reporter_phone": mask_phone(phone)}


def detail(session: Session, principal: Principal, case: Case) -> dict[str, Any]:
    """The case as the detail page shows it (without the allowed actions: ``service.case_detail``)."""
    at = sla.now()
    names, depts, cats = _ctx(session)
    out = summary(case, at, names, depts, cats)
    cat = cats.get(case.category_id)
    out.update({
        "description": case.description, "community_name": names.get(case.community_code),
        "grid_name": names.get(case.grid_code), "layer_codes": case.layer_codes, "appeal_type": case.appeal_type,
        **_mask_reporter(case.reporter_name, case.reporter_phone),
        "proposed_department_code": case.proposed_department_code,
        "verification_result": case.verification_result, "inspection_result": case.inspection_result,
        "satisfaction": case.satisfaction, "extension_pending": case.extension_pending,
        "self_handled": case.self_handled, "duplicate_of_id": case.duplicate_of_id, "closure_reason": case.closure_reason,
        "counters": {k: getattr(case, k) for k in ("rework_count", "sendback_count", "extension_count", "reopen_count",
                                                    "oversee_count", "overdue_count", "reporter_count")},
        "category": {"code": case.category_code, "name": cat.name_zh if cat else None, "name_en": cat.name_en if cat else None,
                     "kind": case.kind, "registration_criteria": cat.registration_criteria if cat else None,
                     "closure_criteria": cat.closure_criteria if cat else None,
                     "rule": cat.rule if cat else None},
        "timestamps": {k: getattr(case, k) for k in ("reported_at", "accepted_at", "verifying_at", "verified_at",
                                                      "registered_at", "not_registered_at", "dispatched_at",
                                                      "acknowledged_at", "sent_back_at", "handled_at", "inspecting_at",
                                                      "inspected_at", "closed_at", "evaluated_at", "suspended_at",
                                                      "voided_at", "reopened_at", "escalated_at")},
        "departments": [{"department_code": d.department_code, "name": depts[d.department_code].name
                         if d.department_code in depts else d.department_code, "role": d.role,
                         "assigned_at": d.assigned_at, "feedback_at": d.feedback_at}
                        for d in active_departments(session, case.id)],
        "steps": [step_out(s, at) for s in session.scalars(select(CaseStep).where(CaseStep.case_id == case.id)
                                                             .order_by(CaseStep.id))],
        "timeline": timeline(session, case.id),
        "reports": [{"id": r.id, "is_primary": r.is_primary, "source": r.source, "channel": r.channel,
                     "external_id": r.external_id, "description": r.description, "lon": r.lon, "lat": r.lat,
                     "distance_m": r.distance_m, "media": r.media, "reported_at": r.reported_at,
                     **_mask_reporter(r.reporter_name, r.reporter_phone)}
                    for r in session.scalars(select(CaseReport).where(CaseReport.case_id == case.id).order_by(CaseReport.id))],
        "routing": [{"at": r.at, "action": r.action, "rule": r.rule, "explanation": r.explanation,
                     "proposed_department_code": r.proposed_department_code, "proposed_co_codes": r.proposed_co_codes,
                     "chosen_department_code": r.chosen_department_code, "chosen_co_codes": r.chosen_co_codes,
                     "overridden": r.overridden, "actor": r.actor, "note": r.note}
                    for r in session.scalars(select(RoutingDecision).where(RoutingDecision.case_id == case.id)
                                             .order_by(RoutingDecision.id))],
        "escalations": [{"rule": e.rule_code, "trigger": e.trigger, "level": e.level, "at": e.at, "message": e.message,
                         "step_id": e.step_id}
                        for e in session.scalars(select(Escalation).where(Escalation.case_id == case.id).order_by(Escalation.id))],
    })
    return out


def step_out(s: CaseStep, at: dt.datetime) -> dict[str, Any]:
    label = ref.STEP_LABELS.get(s.step, (s.step, s.step))
    state = ("done" if s.status == "done" else s.status) if s.status != "open" else sla.sla_of(s.due_at, s.yellow_at, at)
    return {"id": s.id, "step": s.step, "label": label[0], "label_en": label[1], "round": s.round,
            "department_code": s.department_code, "status": s.status, "started_at": s.started_at, "due_at": s.due_at,
            "yellow_at": s.yellow_at, "finished_at": s.finished_at, "limit": {"value": s.limit_value, "unit": s.limit_unit},
            "on_time": s.on_time, "overdue_at": s.overdue_at, "sla": state, "extended": s.extended}


def timeline(session: Session, case_id: int) -> list[dict[str, Any]]:
    out = []
    for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)):
        out.append({"id": e.id, "at": e.at, "actor": e.actor, "actor_roles": e.actor_roles,
                    "department_code": e.department_code, "action": e.action,
                    "action_label": ref.ACTIONS.get(e.action, {}).get("zh", _EVENT_LABELS.get(e.action, e.action)),
                    "from_state": e.from_state, "to_state": e.to_state, "note": e.note, "reason": e.reason,
                    "data": e.data, "attachments": e.attachments})
    return out


_EVENT_LABELS = {"report": "上报", "link_report": "重复上报（已关联）", "escalate": "升级督办", "warn": "临期预警",
                 "signal": "感知信号", "merge_in": "合并重复案件", "self_handle": "自行处置", "consult": "会商",
                 "link": "关联（已升级为突发事件）"}


# ---------------------------------------------------------------- exports, map, aggregates

CSV_FIELDS = ["case_no", "state", "state_label", "source", "category_code", "category_name", "title", "address", "lon",
              "lat", "street_code", "street_name", "community_code", "grid_code", "urgency", "reporter_count",
              "reporter_name", "reporter_phone", "lead_department_code", "lead_department_name", "reported_at",
              "due_at", "sla", "closed_at", "overdue_count", "external_id"]


def export_csv(session: Session, rows: Session, principal: Principal, f: CaseFilter,
               limit: int = 200_000) -> Iterator[str]:
    """CSV of the cases in scope (reporter masked), in chunks; audited in ``session`` (the request's
    unit of work, committed before the first byte is sent), read from ``rows`` while streaming."""
    at = sla.now()
    stmt = apply_filters(rows, readable_statement(rows, principal), f, at).order_by(*SORTS["-reported_at"]).limit(limit)
    audit.record(session, principal, "case.export", "case", None, detail={"filter": {k: str(v) for k, v in vars(f).items() if v}})
    names, depts, cats = _ctx(rows)

    def gen() -> Iterator[str]:
        buf = io.StringIO()
        w = SafeDictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")  # spreadsheet-safe cells, CRLF
        buf.write("\ufeff")
        w.writeheader()
        n = 0
        for c in rows.execute(stmt.execution_options(yield_per=2000)).scalars():
            row = summary(c, at, names, depts, cats) | _mask_reporter(c.reporter_name, c.reporter_phone)
            for k in ("reported_at", "due_at", "closed_at"):
                row[k] = row[k].astimezone(TZ).isoformat() if row[k] else ""
            w.writerow(row)
            n += 1
            if n % 1000 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return gen()


def geojson(session: Session, principal: Principal, f: CaseFilter, cap: int | None = None) -> dict[str, Any]:
    at = sla.now()
    cap = min(cap or int(ref.policy(session).get("geojson_cap", 5000)), int(ref.policy(session).get("geojson_cap", 5000)))
    stmt = apply_filters(session, select(Case.id, Case.reported_at, Case.lon, Case.lat, Case.state, Case.category_code,
                                         Case.title, Case.urgency, Case.due_at, Case.yellow_at, Case.street_code,
                                         Case.grid_code, Case.lead_department_code, Case.reporter_count)
                         .where(scope.clause(principal, CASE_SCOPE)), f, at)
    rows = session.execute(stmt.order_by(Case.reported_at.desc(), Case.id.desc()).limit(cap + 1)).all()
    cats = {c.code: c for c in ref.catalogue(session).by_id.values()}
    feats = []
    for r in rows[:cap]:
        cat = cats.get(r.category_code)
        feats.append({"type": "Feature", "id": r.id, "geometry": gj.point(r.lon, r.lat),
                      "properties": {"id": r.id, "case_no": case_no(r.id, r.reported_at), "state": r.state,
                                     "state_label": ref.STATES.get(r.state, {}).get("zh", r.state),
                                     "category_code": r.category_code, "category_name": cat.name_zh if cat else None,
                                     "title": r.title, "urgency": r.urgency, "sla": sla.sla_of(r.due_at, r.yellow_at, at),
                                     "street_code": r.street_code, "grid_code": r.grid_code,
                                     "lead_department_code": r.lead_department_code, "reporter_count": r.reporter_count,
                                     "reported_at": r.reported_at.isoformat()}})
    return {"type": "FeatureCollection", "features": feats, "truncated": len(rows) > cap, "cap": cap}


LEVEL_COLUMN = {"street": Case.street_code, "community": Case.community_code, "grid": Case.grid_code}


def local_midnight(at: dt.datetime) -> dt.datetime:
    loc = at.astimezone(TZ)
    return dt.datetime(loc.year, loc.month, loc.day, tzinfo=TZ).astimezone(dt.UTC)


def aggregate(session: Session, principal: Principal, *, level: str = "street", parent: str | None = None,
              date_from: dt.datetime | None = None, date_to: dt.datetime | None = None,
              f: CaseFilter | None = None) -> dict[str, Any]:
    """Per street / community / grid: intake in the period, open, yellow, red (overdue now), closed
    in the period, closed on time (no step overdue), 按期结案率; plus the KPI strip (today)."""
    if level not in LEVEL_COLUMN:
        raise InvalidInput([Problem("level must be street, community or grid", ["query", "level"])])
    at = sla.now()
    date_to = date_to or at
    date_from = date_from or (local_midnight(at) - dt.timedelta(days=29))
    col = LEVEL_COLUMN[level]
    in_scope = scope.clause(principal, CASE_SCOPE)
    extra: list[ColumnElement[bool]] = [in_scope]
    if parent:
        extra.append(area_filter(parent))
    base_f = f or CaseFilter()

    def grouped(stmt: Any) -> dict[str, int]:
        stmt = apply_filters(session, stmt.where(*extra), base_f, at)
        return {k: int(n) for k, n in session.execute(stmt.group_by(col)).all()}

    intake = grouped(select(col, func.count()).where(Case.reported_at >= date_from, Case.reported_at < date_to))
    open_ = grouped(select(col, func.count()).where(Case.state.in_(ref.OPEN_STATES)))
    red = grouped(select(col, func.count()).where(Case.due_at <= at))
    yellow = grouped(select(col, func.count()).where(Case.yellow_at <= at, Case.due_at > at))
    closed = grouped(select(col, func.count()).where(Case.closed_at >= date_from, Case.closed_at < date_to))
    on_time = grouped(select(col, func.count()).where(Case.closed_at >= date_from, Case.closed_at < date_to,
                                                      Case.overdue_count == 0))
    names, _, _ = _ctx(session)
    keys = sorted(set(intake) | set(open_) | set(red) | set(closed))
    items = []
    for k in keys:
        c = closed.get(k, 0)
        items.append({"code": k, "name": names.get(k), "intake": intake.get(k, 0), "open": open_.get(k, 0),
                      "yellow": yellow.get(k, 0), "red": red.get(k, 0), "closed": c, "closed_on_time": on_time.get(k, 0),
                      "on_time_rate": round(on_time.get(k, 0) / c, 4) if c else None})
    today = local_midnight(at)
    def one(cond: ColumnElement[bool]) -> int:
        return int(session.scalar(apply_filters(session, select(func.count()).select_from(Case).where(*extra, cond),
                                                base_f, at)) or 0)

    tot_closed = sum(closed.values())
    kpi = {"today_intake": one(Case.reported_at >= today), "today_closed": one(Case.closed_at >= today),
           "open": sum(open_.values()), "overdue": sum(red.values()), "yellow": sum(yellow.values()),
           "period_closed": tot_closed, "period_closed_on_time": sum(on_time.values()),
           "on_time_rate": round(sum(on_time.values()) / tot_closed, 4) if tot_closed else None}
    return {"level": level, "parent": parent, "date_from": date_from, "date_to": date_to, "at": at, "kpi": kpi,
            "items": items}


# ---------------------------------------------------------------- the public reporter's view


def public_status(session: Session, token: str) -> dict[str, Any]:
    case = session.scalar(select(Case).where(Case.tracking_token == token)) if token else None
    if case is None:
        raise NotFound([Problem("no report with this tracking token", ["path", "token"], "not_found")])
    events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                     CaseEvent.to_state.is_not(None),
                                                     CaseEvent.from_state.is_distinct_from(CaseEvent.to_state))
                             .order_by(CaseEvent.id))
    cat = ref.catalogue(session).by_id.get(case.category_id)
    return {"case_no": case_no(case.id, case.reported_at), "state": case.state,
            "state_label": ref.STATES.get(case.state, {}).get("zh", case.state),
            "category_name": cat.name_zh if cat else None, "reported_at": case.reported_at, "closed_at": case.closed_at,
            "satisfaction": case.satisfaction, "can_evaluate": case.state == "closed",
            "history": [{"at": e.at, "state": e.to_state, "state_label": ref.STATES.get(e.to_state or "", {}).get("zh")}
                        for e in events]}


def case_for_token(session: Session, token: str) -> Case:
    case = session.scalar(select(Case).where(Case.tracking_token == token)) if token else None
    if case is None:
        raise NotFound([Problem("no report with this tracking token", ["path", "token"], "not_found")])
    return case


__all__ = ["get_case", "readable_statement", "CASE_SCOPE", "handled_case_ids", "list_cases", "count_cases", "detail", "timeline",
           "geojson", "aggregate", "export_csv", "parse_filter", "CaseFilter", "and_"]
