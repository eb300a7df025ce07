"""Console data: what the district console, the workstation and the briefing show.

Plain functions taking a Session and the acting Principal. Every query starts from
``readable_cases(principal)`` (area prefix on the case's grid code and, for department
accounts, the department), so a street or community account never sees another's cases.
The figures are computed from the case tables of ``cityops.cases`` with aggregate SQL that
works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cityops.cases import queries as case_queries
from cityops.cases import reference as case_ref
from cityops.cases import sla as case_sla
from cityops.cases.models import Case, CaseEvent, Category, Department, parse_case_no
from cityops.console import charts, i18n
from cityops.console.i18n import period_start
from cityops.db import database_key
from cityops.errors import CityOpsError, InvalidInput, NotFound, Problem
from cityops.exports import SafeWriter
from cityops.geo.models import Area
from cityops.security import scope
from cityops.security.principal import Principal

# ---------------------------------------------------------------------------------------------- labels

# states after which a case is no longer worked on (closed / evaluated / voided / not registered):
# the case engine's own table of states says which are open
TERMINAL_STATES = tuple(k for k, v in case_ref.STATES.items() if not v.get("open"))
STATE_LABELS: dict[str, tuple[str, str]] = {k: (v["zh"], v["en"]) for k, v in case_ref.STATES.items()}

SOURCE_LABELS: dict[str, tuple[str, str]] = {
    "supervisor": ("监督员上报", "Supervisor"),
    "public": ("市民上报", "Citizen"),
    "hotline": ("12345热线", "12345 hotline"),
    "video_ai": ("视频智能发现", "Video AI"),
    "iot": ("物联感知", "IoT sensor"),
    "referral": ("上级交办", "Referral"),
    "media": ("媒体曝光", "Media"),
    "open311": ("Open311", "Open311"),
}

ACTION_LABELS: dict[str, tuple[str, str]] = {
    **{k: (v["zh"], v["en"]) for k, v in case_ref.ACTIONS.items()},
    "link_report": ("关联上报", "linked report"), "self_handle": ("自行处置", "fixed on the spot"),
    "report": ("上报", "reported"), "accept": ("受理", "accepted"), "request_verification": ("派发核实", "sent to verify"),
    "verify": ("核实", "verified"), "register": ("立案", "registered"), "not_register": ("不予立案", "not registered"),
    "dispatch": ("派遣", "dispatched"), "acknowledge": ("签收", "acknowledged"), "send_back": ("退单", "sent back"),
    "reassign": ("改派", "reassigned"), "handle": ("处置反馈", "handled"), "feedback": ("处置反馈", "handled"),
    "request_inspection": ("派发核查", "sent to inspect"), "inspect": ("核查", "inspected"),
    "inspect_pass": ("核查通过", "inspection passed"), "inspect_fail": ("核查不通过", "inspection failed"),
    "close": ("结案", "closed"), "rework": ("返工", "rework"), "evaluate": ("评价", "evaluated"),
    "void": ("作废", "voided"), "suspend": ("挂账", "suspended"), "resume": ("恢复办理", "resumed"),
    "oversee": ("督办", "overseen"), "urge": ("催办", "chased"), "request_extension": ("申请延期", "extension requested"),
    "approve_extension": ("批准延期", "extension approved"), "reject_extension": ("驳回延期", "extension rejected"),
    "reopen": ("重新办理", "reopened"), "link": ("合并上报", "linked report"), "escalate": ("升级", "escalated"),
    "overdue": ("超期", "overdue"), "yellow": ("临期预警", "due soon"), "warn": ("临期预警", "due-soon warning"),
    "comment": ("会商", "consultation"),
    **{k: (v["zh"], v["en"]) for k, v in case_ref.ACTIONS.items()},
}

SLA_ORDER = ("red", "yellow", "green", "none")


def label(table: dict[str, tuple[str, str]], key: str | None, lang: str) -> str:
    if key is None:
        return ""
    pair = table.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]


def state_label(state: str | None, lang: str = "zh") -> str:
    return label(STATE_LABELS, state, lang)


# ---------------------------------------------------------------------------------------------- scope

def _scope_clause(principal: Principal) -> ColumnElement[bool]:
    """What ``principal`` may read of the cases: the one scope rule (``cityops.security.scope``)
    over the case engine's kind, so the console never shows more (or less) than the case API."""
    return scope.clause(principal, case_queries.CASE_SCOPE)


def scope_info(session: Session, principal: Principal) -> dict[str, Any]:
    code = principal.area_code if principal.area_code and len(principal.area_code) > 6 else None
    return {
        "area_code": code,
        "street": code[:9] if code and len(code) >= 9 else None,
        "community": code[:12] if code and len(code) >= 12 else None,
        "grid": code if code and len(code) >= 15 else None,
        "department": principal.department_code,
        "name": area_names(session).get(code, (None,))[0] if code else None,
    }


def check_area_param(principal: Principal, area: str | None) -> None:
    """A requested area must be a code, and (for area-scoped accounts) inside one's own area;
    anything else is a 404 like any out-of-scope object."""
    if area is None:
        return
    if not area.isdigit() or len(area) not in (6, 9, 12, 15):
        raise InvalidInput([Problem("区域代码应为 6/9/12/15 位数字 area must be a 6, 9, 12 or 15 digit code",
                                    ["query", "area"])])
    own = principal.area_code
    if principal.kind == "system" or principal.is_district_wide or own is None:
        return
    if not (area.startswith(own) or own.startswith(area)):
        raise NotFound([Problem(f"区域不存在或不在您的辖区 no area {area} in your scope", ["query", "area"], "not_found")])


# ---------------------------------------------------------------------------------------------- area cache

@dataclass
class _AreaCache:
    stamp: tuple[Any, ...]
    names: dict[str, tuple[str, str | None, str, float, float, float]]  # code -> name, name_en, level, km², lon, lat


_area_cache: dict[str, _AreaCache] = {}
_area_lock = threading.Lock()


_area_checked: dict[str, float] = {}
AREA_CHECK_S = 5.0  # areas change rarely: look whether they did at most this often


def _areas(session: Session) -> _AreaCache:
    import time

    key = database_key(session)
    hit = _area_cache.get(key)
    if hit is not None and time.monotonic() - _area_checked.get(key, 0.0) < AREA_CHECK_S:
        return hit
    stamp = tuple(session.execute(select(func.count(), func.max(Area.valid_from)).select_from(Area)
                                  .where(Area.valid_to.is_(None))).one())
    _area_checked[key] = time.monotonic()
    if hit is not None and hit.stamp == stamp:
        return hit
    with _area_lock:
        rows = session.execute(select(Area.code, Area.name, Area.name_en, Area.level, Area.area_m2, Area.geom)
                               .where(Area.valid_to.is_(None))).all()
        names = {}
        for r in rows:
            c = r.geom.representative_point() if r.geom is not None else None
            names[r.code] = (r.name, r.name_en, r.level, (r.area_m2 or 0) / 1e6, c.x if c else 0.0, c.y if c else 0.0)
        built = _AreaCache(stamp, names)
        _area_cache[key] = built
        return built


def area_names(session: Session) -> dict[str, tuple[str, str | None, str, float, float, float]]:
    return _areas(session).names


def area_name(session: Session, code: str | None, lang: str = "zh") -> str:
    if not code:
        return ""
    n = area_names(session).get(code)
    if n is None:
        return code
    return (n[1] or n[0]) if lang == "en" else n[0]


# ---------------------------------------------------------------------------------------------- filters

@dataclass
class Filters:
    period: str = "open"  # open / today / 24h / 7d / 30d / all
    area: str | None = None
    street: str | None = None
    community: str | None = None
    category: str | None = None
    state: str | None = None
    sla: str | None = None
    source: str | None = None
    department: str | None = None
    q: str | None = None

    def validate(self) -> None:
        problems = []
        if self.period not in ("open", "today", "24h", "7d", "30d", "all"):
            problems.append(Problem("period 应为 open/today/24h/7d/30d/all", ["query", "period"]))
        for name, n in (("street", 9), ("community", 12)):
            v = getattr(self, name)
            if v is not None and (not v.isdigit() or len(v) != n):
                problems.append(Problem(f"{name} 应为 {n} 位区划代码 must be a {n}-digit code", ["query", name]))
        if self.sla is not None and self.sla not in ("green", "yellow", "red", "none"):
            problems.append(Problem("sla 应为 green/yellow/red/none", ["query", "sla"]))
        if problems:
            raise InvalidInput(problems)


def sla_expr(now: dt.datetime) -> Any:
    """The SLA colour of a case at ``now`` as SQL: red (overdue), yellow (>= 80 % elapsed), green."""
    return case_sla.sla_expr(now)


def sla_of(c: Any, now: dt.datetime) -> str:
    if c.due_at is None or c.state in TERMINAL_STATES:
        return "none"
    if c.due_at <= now:
        return "red"
    if c.yellow_at is not None and c.yellow_at <= now:
        return "yellow"
    return "green"


def is_open() -> ColumnElement[bool]:
    return Case.state.not_in(TERMINAL_STATES)


def _category_ids(session: Session, code: str) -> list[int]:
    return list(session.scalars(select(Category.id).where(Category.code == code)))


def where_clauses(session: Session, principal: Principal, f: Filters, now: dt.datetime,
                  *, with_period: bool = True) -> list[ColumnElement[bool]]:
    f.validate()
    check_area_param(principal, f.area)
    w: list[ColumnElement[bool]] = [_scope_clause(principal)]
    if f.area and len(f.area) > 6:
        w.append(case_queries.area_filter(f.area))
    if f.street:
        w.append(Case.street_code == f.street)
    if f.community:
        w.append(Case.community_code == f.community)
    if f.category:
        w.append(Case.category_code == f.category)
    if f.state:
        w.append(Case.state == f.state)
    if f.source:
        w.append(Case.source == f.source)
    if f.department:
        w.append(Case.lead_department_code == f.department)
    q = (f.q or "").strip()
    if q.isdigit() and len(q) >= 15:  # a case number: that case, in any period (a closed one too)
        w.append(Case.id == (parse_case_no(q) or -1))
        return w
    if f.q:
        q = f.q.strip()[:50]  # wildcards literal
        w.append(or_(Case.title.contains(q, autoescape=True), Case.description.contains(q, autoescape=True),
                     Case.address.contains(q, autoescape=True)))
    if f.sla:
        w.extend([is_open(), case_sla.sla_clause(f.sla, now)])
    if with_period:
        if f.period == "open":
            w.append(is_open())
        elif f.period != "all":
            w.append(Case.reported_at >= period_start(f.period, now))
    return w


# ---------------------------------------------------------------------------------------------- meta

def meta(session: Session, principal: Principal, lang: str = "zh") -> dict[str, Any]:
    """Everything the filter forms and layer boxes need, narrowed to the principal's area."""
    scope = scope_info(session, principal)
    prefix = scope["area_code"]
    names = area_names(session)
    streets = [{"code": c, "name": v[0], "name_en": v[1]} for c, v in sorted(names.items())
               if v[2] == "street" and (prefix is None or c.startswith(prefix[:9]))]
    communities = [{"code": c, "name": v[0], "name_en": v[1]} for c, v in sorted(names.items())
                   if v[2] == "community" and (prefix is None or c.startswith(prefix[:12]) or prefix.startswith(c))]
    cats = []
    seen: set[str] = set()
    for row in session.execute(select(Category.code, Category.name_zh, Category.name_en, Category.major_name,
                                      Category.kind, Category.version_id)
                               .where(Category.enabled.is_(True), Category.version_id == _active_version_id(session))
                               .order_by(Category.kind, Category.major_code, Category.minor_code)):
        if row.code in seen:
            continue
        seen.add(row.code)
        kind = "部件" if row.kind == "component" else "事件"
        cats.append({"code": row.code, "name": row.name_zh, "name_en": row.name_en,
                     "group": f"{kind}·{row.major_name or ''}", "group_en": row.kind})
    states = [{"code": k, "name": v[0], "name_en": v[1]} for k, v in STATE_LABELS.items()]
    sources = [{"code": k, "name": v[0], "name_en": v[1]} for k, v in SOURCE_LABELS.items()]
    deps = [{"code": d.code, "name": d.name, "name_en": d.name_en}
            for d in session.scalars(select(Department).where(Department.active.is_(True)).order_by(Department.kind, Department.code))]
    return {"scope": scope, "streets": streets, "communities": communities, "categories": cats, "states": states,
            "sources": sources, "departments": deps, "layers": list_layers(session, principal),
            "can_export": principal.can("case.export"), "can_act": principal.can("case.act"),
            "can_report": principal.can("case.report")}


def _active_version_id(session: Session) -> int | None:
    return case_ref.active_version_id(session)


def category_names(session: Session) -> dict[str, tuple[str, str | None]]:
    """code -> (zh, en) of every catalogue version, the active version winning (the case engine's
    cached catalogue: no query on most calls)."""
    cat = case_ref.catalogue(session)
    out: dict[str, tuple[str, str | None]] = {}
    for vid, infos in cat.by_version.items():
        if vid == cat.active_id:
            continue
        for code, info in infos.items():
            out.setdefault(code, (info.name_zh, info.name_en))
    for code, info in cat.by_version.get(cat.active_id or -1, {}).items():
        out[code] = (info.name_zh, info.name_en)
    return out


def department_names(session: Session) -> dict[str, tuple[str, str | None]]:
    return {c: (n, e) for c, n, e in session.execute(select(Department.code, Department.name, Department.name_en))}


# ---------------------------------------------------------------------------------------------- layers

def list_layers(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The grid layers of 多格合一 (the grid base's own list, ``/api/v1/layers``)."""
    from cityops.geo import layers as geo_layers

    return [{"key": g["key"], "name": g["name"], "name_en": g.get("name_en"), "is_unified": g.get("is_unified", False),
             "count": g.get("feature_count", 0)} for g in geo_layers.list_layers(session, principal)]


# ---------------------------------------------------------------------------------------------- KPIs

def _rate(on_time: int | None, total: int | None) -> float | None:
    return (on_time or 0) / total if total else None


ENGINES = ("auto", "sql", "snapshot")


def _snapshot(session: Session, f: Filters | None, engine: str) -> Any:
    """The in-memory snapshot when it can answer (``engine`` auto/snapshot), else None (SQL)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    if engine == "sql" or (f is not None and (f.q or f.period == "all")):
        return None
    from cityops.console import snapshot

    return snapshot.current(session)


def _raw_kpis_sql(session: Session, principal: Principal, f: Filters, now: dt.datetime
                  ) -> tuple[tuple[int, int, int, int, int], list[tuple[str, int, int]]]:
    w = where_clauses(session, principal, f, now, with_period=False)
    day0, day1 = i18n.local_day_bounds(now.astimezone(i18n.TZ).date())
    since = now - dt.timedelta(days=30)
    open_ = is_open()
    closed_recent = and_(Case.closed_at.is_not(None), Case.closed_at >= since)
    row = session.execute(select(
        func.sum(case((and_(Case.reported_at >= day0, Case.reported_at < day1), 1), else_=0)),
        func.sum(case((and_(Case.closed_at >= day0, Case.closed_at < day1), 1), else_=0)),
        func.sum(case((open_, 1), else_=0)),
        func.sum(case((and_(open_, Case.due_at <= now), 1), else_=0)),
        func.sum(case((and_(open_, Case.due_at > now, Case.yellow_at <= now), 1), else_=0)),
    ).where(*w)).one()
    by = session.execute(select(
        Case.street_code, func.count(), func.sum(case((Case.overdue_count == 0, 1), else_=0)))
        .where(*w, closed_recent).group_by(Case.street_code)).all()
    return (tuple(int(x or 0) for x in row), [(str(c), int(n or 0), int(o or 0)) for c, n, o in by])  # type: ignore[return-value]


def ontime_by_street(session: Session, principal: Principal, f: Filters, now: dt.datetime
                     ) -> list[tuple[str, int, int]] | None:
    """(street, closed, closed on time) over the last 30 Shanghai days, from the evaluation itself
    (``cityops.cases.evaluation``, 按期结案率 of the areas): the console and the evaluation page show
    the same figure. The page's area filter applies; None when no evaluation scheme is in force."""
    from cityops.cases import evaluation

    area = f.community or f.street or (f.area if f.area and len(f.area) > 6 else None)
    today = now.astimezone(i18n.TZ).date()
    try:
        res = evaluation.evaluate(session, principal, "street", date_from=today - dt.timedelta(days=29),
                                  date_to=today, area=area, now=now)
    except CityOpsError:
        return None
    return [(str(i["code"]), int(i["closed"]), int(i["closed_ontime"])) for i in res["items"] if i["closed"]]


_ontime_cache: dict[tuple[Any, ...], tuple[float, list[tuple[str, int, int]] | None]] = {}


def _ontime_live(session: Session, principal: Principal, f: Filters, now: dt.datetime
                 ) -> list[tuple[str, int, int]] | None:
    """``ontime_by_street`` for the live console (no ``now`` given): a 30-day rate moves slowly, so
    it is remembered for ``console_ontime_ttl_s`` (settings) per database, scope, area filter and day, instead of
    re-evaluating on every KPI poll (the evaluation's own cache ends with every new case event)."""
    import time

    from cityops.config import get_settings
    from cityops.db import database_key

    key = (database_key(session), principal.area_code, principal.department_code, f.community, f.street, f.area,
           now.astimezone(i18n.TZ).date())
    hit = _ontime_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < get_settings().console_ontime_ttl_s:
        return hit[1]
    out = ontime_by_street(session, principal, f, now)
    if len(_ontime_cache) > 512:
        _ontime_cache.clear()
    _ontime_cache[key] = (time.monotonic(), out)
    return out


def kpis(session: Session, principal: Principal, f: Filters, now: dt.datetime | None = None,
         engine: str = "auto") -> dict[str, Any]:
    """Today's intake and closures, open / due soon / overdue, and the 按期结案率 of the last 30
    Shanghai days as the evaluation counts it (closures with no step overdue before them), overall
    and by street."""
    live = now is None
    now = now or case_sla.now()
    f.validate()
    check_area_param(principal, f.area)
    snap = _snapshot(session, f, engine)
    if snap is None:
        row, by = _raw_kpis_sql(session, principal, f, now)
    else:
        from cityops.console import fast

        row, by = fast.raw_kpis(session, snap, principal, f, now)
    by = (_ontime_live if live else ontime_by_street)(session, principal, f, now) or by
    names = area_names(session)
    by_street: list[dict[str, Any]] = []
    tot_closed = tot_ontime = 0
    for code, closed, ontime in by:
        tot_closed += closed
        tot_ontime += ontime
        by_street.append({"code": code, "name": names.get(code, (code,))[0], "closed": closed,
                          "ontime": ontime, "rate": _rate(ontime, closed)})
    # every street in scope appears, also those without closures
    scope = scope_info(session, principal)
    have = {s["code"] for s in by_street}
    for code, v in names.items():
        if v[2] == "street" and code not in have and (scope["street"] is None or code == scope["street"]) \
                and (f.street is None or code == f.street):
            by_street.append({"code": code, "name": v[0], "closed": 0, "ontime": 0, "rate": None})
    by_street.sort(key=lambda s: (s["rate"] is None, -(s["rate"] or 0), s["code"]))
    return {
        "at": now.isoformat(),
        "intake_today": row[0], "closed_today": row[1], "open": row[2], "overdue": row[3], "yellow": row[4],
        "ontime_rate": _rate(tot_ontime, tot_closed), "closed_30d": tot_closed,
        "by_street": by_street,
    }


# ---------------------------------------------------------------------------------------------- map

POINT_LIMIT = 3000


def parse_bbox(bbox: str | None) -> tuple[float, float, float, float] | None:
    if not bbox:
        return None
    try:
        w, s, e, n = (float(x) for x in bbox.split(","))
    except ValueError:
        raise InvalidInput([Problem("bbox 应为 west,south,east,north 四个数 bbox must be west,south,east,north",
                                    ["query", "bbox"])])
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90) or w > e or s > n:
        raise InvalidInput([Problem("bbox 超出范围或顺序错误 bbox out of range or not west<east, south<north",
                                    ["query", "bbox"])])
    return w, s, e, n


def _raw_map_sql(session: Session, principal: Principal, f: Filters, bbox: tuple[float, float, float, float] | None,
                 zoom: int, now: dt.datetime, point_limit: int) -> tuple[int, list[Any] | None, list[Any] | None]:
    w = where_clauses(session, principal, f, now)
    if bbox is not None:
        w += [Case.lon >= bbox[0], Case.lon <= bbox[2], Case.lat >= bbox[1], Case.lat <= bbox[3]]
    total = session.scalar(select(func.count()).select_from(Case).where(*w)) or 0
    sla = sla_expr(now)
    if total <= point_limit:
        rows = session.execute(select(Case.id, Case.lon, Case.lat, sla, Case.state, Case.category_code)
                               .where(*w).order_by(Case.id.desc()).limit(point_limit)).all()
        return total, [tuple(r) for r in rows], None
    col = Case.street_code if zoom <= 11 else Case.community_code if zoom <= 13 else Case.grid_code
    red = func.sum(case((sla == "red", 1), else_=0))
    yellow = func.sum(case((sla == "yellow", 1), else_=0))
    green = func.sum(case((sla == "green", 1), else_=0))
    rows = session.execute(select(col, func.count(), red, yellow, green, func.avg(Case.lon), func.avg(Case.lat))
                           .where(*w).group_by(col)).all()
    return total, None, [(c, int(n), int(r or 0), int(y or 0), int(g or 0), float(lo), float(la))
                         for c, n, r, y, g, lo, la in rows]


def map_data(session: Session, principal: Principal, f: Filters, bbox: tuple[float, float, float, float] | None,
             zoom: int, lang: str = "zh", now: dt.datetime | None = None,
             point_limit: int = POINT_LIMIT, engine: str = "auto") -> dict[str, Any]:
    """Cases for the map: the points themselves when there are at most ``point_limit`` in view
    (the browser clusters them), otherwise clusters made here by area (street / community / grid
    by zoom) with counts by SLA colour, so that 100,000 open cases draw as fast as 100."""
    now = now or case_sla.now()
    f.validate()
    check_area_param(principal, f.area)
    snap = _snapshot(session, f, engine)
    if snap is None:
        total, pts, clusters = _raw_map_sql(session, principal, f, bbox, zoom, now, point_limit)
    else:
        from cityops.console import fast

        total, pts, clusters = fast.raw_map(session, snap, principal, f, bbox, zoom, now, point_limit)
    if pts is not None:
        cats = category_names(session)
        items = []
        for cid, lon, lat, sla, state, cat in pts:
            cn = cats.get(cat)
            items.append([cid, round(lon, 6), round(lat, 6), sla, state_label(state, lang),
                          ((cn[1] or cn[0]) if lang == "en" else cn[0]) if cn else cat])
        return {"mode": "points", "total": total, "items": items}
    names = area_names(session)
    out: list[dict[str, Any]] = []
    for code, n, r, y, g, lon, lat in clusters or []:
        nm = names.get(code)
        out.append({"code": code, "name": ((nm[1] or nm[0]) if lang == "en" else nm[0]) if nm else code,
                    "count": n, "red": r, "yellow": y, "green": g, "lon": round(lon, 6), "lat": round(lat, 6)})
    out.sort(key=lambda c: c["code"])
    return {"mode": "clusters", "total": total, "level": "street" if zoom <= 11 else "community" if zoom <= 13 else "grid",
            "items": out}


def choropleth(session: Session, principal: Principal, f: Filters, level: str, metric: str,
               now: dt.datetime | None = None, engine: str = "auto") -> dict[str, Any]:
    """Per-area values: case count, density (cases per km²) or overdue count."""
    if level not in ("street", "community", "grid"):
        raise InvalidInput([Problem("level 应为 street/community/grid", ["query", "level"])])
    if metric not in ("count", "density", "overdue"):
        raise InvalidInput([Problem("metric 应为 count/density/overdue", ["query", "metric"])])
    now = now or case_sla.now()
    f.validate()
    check_area_param(principal, f.area)
    snap = _snapshot(session, f, engine)
    if snap is None:
        w = where_clauses(session, principal, f, now)
        col = {"street": Case.street_code, "community": Case.community_code, "grid": Case.grid_code}[level]
        agg = func.sum(case((and_(is_open(), Case.due_at <= now), 1), else_=0)) if metric == "overdue" else func.count()
        rows: list[tuple[str, float]] = [(str(c), float(v or 0)) for c, v in
                                         session.execute(select(col, agg).where(*w).group_by(col)).all()]
    else:
        from cityops.console import fast

        rows = fast.raw_choropleth(session, snap, principal, f, level, metric, now)
    names = area_names(session)
    values: dict[str, float] = {}
    for code, v in rows:
        if metric == "density":
            km2 = names.get(code, (None, None, None, 0.0))[3]
            v = v / km2 if km2 else 0.0
        values[code] = round(v, 3)
    return {"level": level, "metric": metric, "values": values, "breaks": charts.breaks(list(values.values()))}


# ---------------------------------------------------------------------------------------------- to-do

TODO_KINDS: dict[str, Callable[[dt.datetime], ColumnElement[bool]]] = {
    "to_verify": lambda now: Case.state == "verifying",
    "to_check": lambda now: Case.state == "inspecting",
    "overdue": lambda now: and_(is_open(), Case.due_at <= now),
    "to_sign": lambda now: and_(Case.state == "dispatched", Case.acknowledged_at.is_(None)),
}


def todo(session: Session, principal: Principal, area: str | None, lang: str = "zh", limit: int = 20,
         now: dt.datetime | None = None, engine: str = "auto") -> dict[str, Any]:
    """Today's to-do of a workstation: to verify (核实), to inspect (核查), overdue, awaiting sign-off (签收)."""
    now = now or case_sla.now()
    check_area_param(principal, area)
    snap = _snapshot(session, None, engine)
    raw: dict[str, tuple[int, list[int]]] = {}
    if snap is None:
        base = [_scope_clause(principal)]
        if area and len(area) > 6:
            base.append(case_queries.area_filter(area))
        for key, cond in TODO_KINDS.items():
            w = [*base, cond(now)]
            n = session.scalar(select(func.count()).select_from(Case).where(*w)) or 0
            ids = list(session.scalars(select(Case.id).where(*w).order_by(Case.due_at.is_(None), Case.due_at, Case.id)
                                       .limit(limit)))
            raw[key] = (int(n), ids)
    else:
        from cityops.console import fast

        raw = fast.raw_todo(session, snap, principal, area, now, limit)
    wanted = sorted({i for _, ids in raw.values() for i in ids})
    rows = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(wanted)))} if wanted else {}
    cats = category_names(session)
    return {key: {"count": n, "items": [case_brief(rows[i], cats, lang, now) for i in ids if i in rows]}
            for key, (n, ids) in raw.items()}


def case_brief(c: Case, cats: dict[str, tuple[str, str | None]], lang: str, now: dt.datetime) -> dict[str, Any]:
    cn = cats.get(c.category_code)
    return {"id": c.id, "case_no": c.case_no, "title": c.title,
            "category": ((cn[1] or cn[0]) if lang == "en" else cn[0]) if cn else c.category_code,
            "state": c.state, "state_label": state_label(c.state, lang), "sla": sla_of(c, now),
            "reported_at": c.reported_at.isoformat() if c.reported_at else None,
            "due_at": c.due_at.isoformat() if c.due_at else None,
            "street_code": c.street_code, "community_code": c.community_code, "grid_code": c.grid_code}


# ---------------------------------------------------------------------------------------------- feed

def feed(session: Session, principal: Principal, area: str | None, lang: str = "zh", limit: int = 20) -> list[dict[str, Any]]:
    """The latest timeline rows of cases in scope, newest first."""
    check_area_param(principal, area)
    w = [_scope_clause(principal)]
    if area and len(area) > 6:
        w.append(case_queries.area_filter(area))
    # the latest rows written (by id: index order), shown newest first by their own time
    rows = session.execute(select(CaseEvent.id, CaseEvent.case_id, CaseEvent.action, CaseEvent.at, CaseEvent.to_state,
                                  Case.reported_at, Case.category_code, Case.street_code)
                           .join(Case, Case.id == CaseEvent.case_id).where(*w)
                           .order_by(CaseEvent.id.desc()).limit(limit * 3)).all()
    rows = sorted(rows, key=lambda r: (r.at, r.id), reverse=True)[:limit]
    cats = category_names(session)
    out = []
    for r in rows:
        cn = cats.get(r.category_code)
        out.append(feed_item(r.case_id, r.reported_at, r.action, r.at, lang,
                             ((cn[1] or cn[0]) if lang == "en" else cn[0]) if cn else r.category_code,
                             area_name(session, r.street_code, lang), to_state=r.to_state))
    return out


def feed_item(case_id: int, reported_at: dt.datetime | None, action: str | None, at: dt.datetime | None, lang: str,
              category: str | None, place: str | None, *, to_state: str | None = None, kind: str | None = None) -> dict[str, Any]:
    from cityops.cases.models import case_no

    act = label(ACTION_LABELS, action, lang) if action else ""
    if to_state and not act:
        act = state_label(to_state, lang)
    return {"case_id": case_id, "case_no": case_no(case_id, reported_at), "action": action, "label": act,
            "detail": " ".join(x for x in (place, category) if x), "at": at.isoformat() if at else None,
            "kind": kind or ("created" if action in ("report", "create", "intake") else "changed")}


def workstation_context(session: Session, principal: Principal, area: str | None, lang: str) -> dict[str, Any]:
    """Which area a workstation shows: the account's own street/community, or (for district-wide
    accounts, and street accounts looking at one of their communities) the one picked."""
    own = principal.area_code if principal.area_code and len(principal.area_code) > 6 else None
    if area is not None:
        check_area_param(principal, area)
        if own and len(area) < len(own):
            area = own
    names = area_names(session)
    code = area or own
    if code is None:  # district-wide: the first street until one is picked
        code = next((c for c, v in sorted(names.items()) if v[2] == "street"), None) or ""
    if code not in names:
        raise NotFound([Problem(f"区域不存在 no area {code}", ["query", "area"], "not_found")])
    base = own or ""
    pick = [{"code": c, "name": ("　" if v[2] == "community" else "") + ((v[1] or v[0]) if lang == "en" else v[0])}
            for c, v in sorted(names.items())
            if v[2] in ("street", "community") and c.startswith(base) and (len(c) == 9 or c[:9] == code[:9])]
    if own and len(own) >= 12:
        pick = []
    n = names[code]
    return {"scope_code": code, "scope_name": (n[1] or n[0]) if lang == "en" else n[0], "pick_scope": pick}


# ---------------------------------------------------------------------------------------------- evaluation

EVAL_PERIODS = {"7d": ("近7天", "Last 7 days"), "30d": ("近30天", "Last 30 days"), "month": ("本月", "This month"),
                "last_month": ("上月", "Last month"), "90d": ("近90天", "Last 90 days")}


def eval_period(period: str, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of an evaluation period counted in Shanghai days."""
    if period not in EVAL_PERIODS:
        raise InvalidInput([Problem("period 应为 " + "/".join(EVAL_PERIODS), ["query", "period"])])
    now = now or case_sla.now()
    today = now.astimezone(i18n.TZ).date()
    end_day = today + dt.timedelta(days=1)
    if period == "month":
        start_day = today.replace(day=1)
    elif period == "last_month":
        end_day = today.replace(day=1)
        start_day = (end_day - dt.timedelta(days=1)).replace(day=1)
    else:
        start_day = end_day - dt.timedelta(days={"7d": 7, "30d": 30, "90d": 90}[period])
    return i18n.local_day_bounds(start_day)[0], i18n.local_day_bounds(end_day)[0]


def evaluation_charts(session: Session, principal: Principal, period: str, lang: str,
                      now: dt.datetime | None = None) -> dict[str, str]:
    """SVG charts of the evaluation page: daily 按期结案率, intake by source and by category."""
    from cityops.cases import evaluation

    start, end = eval_period(period, now)
    scope = _scope_clause(principal)
    first = start.astimezone(i18n.TZ).date()
    last = (end - dt.timedelta(seconds=1)).astimezone(i18n.TZ).date()
    try:  # the same 按期结案率 as the tables and the console (the evaluation's own daily counts)
        days = evaluation.daily_ontime_close(session, principal, first, last, now)
    except CityOpsError:
        days = {}
    labels, rates = [], []
    d = first
    while d <= last:
        labels.append(d.strftime("%m-%d"))
        n, ok = days.get(d, (0, 0))
        rates.append(ok / n if n else None)
        d += dt.timedelta(days=1)
    in_period = and_(Case.reported_at >= start, Case.reported_at < end)
    by_src = [(label(SOURCE_LABELS, s, lang), float(n)) for s, n in session.execute(
        select(Case.source, func.count()).where(scope, in_period).group_by(Case.source).order_by(func.count().desc()))]
    cats = category_names(session)
    by_cat = [((((cats[c][1] or cats[c][0]) if lang == "en" else cats[c][0]) if c in cats else c), float(n))
              for c, n in session.execute(select(Case.category_code, func.count()).where(scope, in_period)
                                          .group_by(Case.category_code).order_by(func.count().desc()).limit(12))]
    t = i18n.translate
    return {
        "trend": charts.line_chart(labels, [(t("kpi.ontime_rate", lang), rates)], t("eval.trend", lang), percent=True),
        "by_source": charts.hbar_chart(by_src, t("eval.by_source", lang), color="#2ecc71"),
        "by_category": charts.hbar_chart(by_cat, t("eval.by_category", lang)),
    }


def evaluation_rankings(session: Session, principal: Principal, period: str, lang: str,
                        now: dt.datetime | None = None) -> tuple[bool, str | None, dict[str, list[dict[str, Any]]]]:
    """Rankings of departments, streets and workers with A-E grades from the case engine's
    evaluation (``cityops.cases.evaluation``). Returns (available, reason, rankings)."""
    try:
        from cityops.cases import evaluation
    except ImportError as exc:
        return False, f"cityops.cases.evaluation: {exc}", {}
    fn = getattr(evaluation, "console_rankings", None) or getattr(evaluation, "rankings", None)
    if fn is None:
        return False, "cityops.cases.evaluation has no rankings function yet", {}
    start, end = eval_period(period, now)
    try:
        raw = fn(session, principal, start=start, end=end)
    except CityOpsError as exc:  # e.g. no evaluation scheme in force: say so on the page
        return False, str(exc), {}
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in ("departments", "streets", "workers"):
        rows = []
        for r in raw.get(kind, []):
            rate = r.get("ontime_close_rate", r.get("rate"))
            score = r.get("score")
            rows.append({"name": (r.get("name_en") or r.get("name")) if lang == "en" else r.get("name"),
                         "rate_text": "–" if rate is None else f"{rate * 100:.1f}%",
                         "score_text": "–" if score is None else f"{score:.1f}", "score": score,
                         "grade": r.get("grade") or "–", "code": r.get("code")})
        rows.sort(key=lambda x: (x["score"] is None, -(x["score"] or 0)))
        out[kind] = rows
    return True, None, out


def evaluation_csv(rows: list[dict[str, Any]], lang: str) -> str:
    import io

    buf = io.StringIO()
    w = SafeWriter(buf)  # spreadsheet-safe cells, CRLF
    t = i18n.translate
    w.writerow([t("eval.rank", lang), t("eval.name", lang), "code", t("kpi.ontime_rate", lang), t("eval.score", lang),
                t("eval.grade", lang)])
    for i, r in enumerate(rows, 1):
        w.writerow([i, r["name"], r.get("code") or "", r["rate_text"], r["score_text"], r["grade"]])
    return "\ufeff" + buf.getvalue()  # BOM: Excel opens UTF-8 Chinese correctly


# ---------------------------------------------------------------------------------------------- report page

def report_categories(session: Session) -> list[dict[str, Any]]:
    """The active catalogue's enabled categories for the report page's picker (public data)."""
    out = []
    for row in session.execute(select(Category.code, Category.name_zh, Category.name_en, Category.major_name,
                                      Category.kind, Category.registration_criteria)
                               .where(Category.enabled.is_(True), Category.version_id == _active_version_id(session))
                               .order_by(Category.kind, Category.major_code, Category.minor_code)):
        kind = case_ref.KIND_LABELS.get(row.kind, (row.kind, row.kind))
        out.append({"code": row.code, "name": row.name_zh, "name_en": row.name_en,
                    "group": f"{kind[0]} · {row.major_name or ''}", "group_en": kind[1],
                    "keywords": (row.registration_criteria or "")[:120]})
    return out


def my_reports(session: Session, principal: Principal, lang: str, limit: int = 30) -> list[dict[str, Any]]:
    """Cases this account reported (newest first), as far as it may still read them."""
    if principal.account_id is None:
        return []
    now = case_sla.now()
    cats = category_names(session)
    rows = session.scalars(select(Case).where(_scope_clause(principal), Case.reporter_account_id == principal.account_id)
                           .order_by(Case.id.desc()).limit(limit)).all()
    return [case_brief(c, cats, lang, now) for c in rows]


# ---------------------------------------------------------------------------------------------- panels

# Later modules fill the console's side panels: a module listed here that exists provides
# ``panel(session, principal, lang) -> {"items": [{"label", "detail", "level", "link", "at"}], "total"}``.
PANEL_PROVIDERS: dict[str, str] = {
    "warnings": "cityops.vitals.console",
    "incidents": "cityops.emergency.console",
    "resources": "cityops.resources.console",
}


def panels(session: Session, principal: Principal, lang: str) -> dict[str, Any]:
    import importlib

    out: dict[str, Any] = {}
    for key, module in PANEL_PROVIDERS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
                out[key] = {"available": False}
                continue
            raise
        out[key] = {"available": True, **mod.panel(session, principal, lang)}
    return out
