"""Scoped reads of vital signs: warnings (list, one, timeline), series from the rollups, and the
board's aggregates. Every read is narrowed with ``cityops.security.scope``; an area asked for
outside the principal's area is 404."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput, NotFound, Problem
from cityops.indicators import catalogue as catalog
from cityops.indicators.models import (
    DEVICE_SCOPE,
    LEVELS,
    OPEN_STATES,
    WARNING_SCOPE,
    AreaRollup,
    Device,
    DeviceRollup,
    EarlyWarning,
    Series,
)
from cityops.lifecycle import service as lifecycle
from cityops.security import scope
from cityops.security.principal import Principal

STEPS = {"1m": 60, "60": 60, "1h": 3600, "3600": 3600, "1d": 86400, "86400": 86400}
STATE_FILTERS = {"open": OPEN_STATES, "all": None, **{s: (s,) for s in (*OPEN_STATES, "lifted")}}


def check_area(principal: Principal, area: str | None, kind: scope.ScopedKind = WARNING_SCOPE) -> None:
    """An ``?area=`` outside the principal's area names nothing for them: 404."""
    if not area:
        return
    if not area.isdigit() or len(area) not in (6, 9, 12, 15):
        raise InvalidInput([Problem("area 须为6/9/12/15位区划代码 area must be a 6/9/12/15-digit area code",
                                    ["query", "area"])])
    r = scope.rule(principal, kind)
    if r.nothing or (r.area is not None and not (area.startswith(r.area) or r.area.startswith(area))):
        raise NotFound([Problem(f"没有区域 no area {area}", ["query", "area"], "not_found")])


def _area_clause(area: str) -> Any:
    col = EarlyWarning.area_code
    return and_(col >= area[:len(area)], col < area + ":") if len(area) <= 15 else col == area


def warning_out(w: EarlyWarning, cat: catalog.Catalogue | None, names: dict[str, str] | None = None) -> dict[str, Any]:
    rule = cat.rules.get(w.rule_code) if cat else None
    return {"id": w.id, "rule": w.rule_code, "rule_name": rule.name_zh if rule else w.rule_code,
            "rule_name_en": rule.name_en if rule else w.rule_code, "rule_kind": w.rule_kind,
            "indicator": w.indicator_code, "category": w.category, "area_code": w.area_code,
            "area_name": (names or {}).get(w.area_code), "area_level": w.area_level, "level": w.level,
            "max_level": w.max_level, "state": w.state, "raised_at": w.raised_at, "level_at": w.level_at,
            "lifted_at": w.lifted_at, "owner_department_code": w.owner_department_code, "title": w.title,
            "description": w.description, "lon": w.lon, "lat": w.lat, "subjects": dict(w.subjects or {}),
            "case": {"id": w.case_id, "case_no": w.case_no} if w.case_id else None,
            "catalogue_version": w.catalogue_version}


def list_warnings(session: Session, principal: Principal, *, state: str = "open", area: str | None = None,
                  level: str | None = None, min_level: str | None = None, rule: str | None = None,
                  indicator: str | None = None, category: str | None = None, page: int = 1,
                  page_size: int = 50) -> dict[str, Any]:
    if state not in STATE_FILTERS:
        raise InvalidInput([Problem(f"state 须为 {'/'.join(STATE_FILTERS)}", ["query", "state"])])
    for name, v in (("level", level), ("min_level", min_level)):
        if v is not None and v not in LEVELS:
            raise InvalidInput([Problem(f"{name} 须为 {'|'.join(LEVELS)}", ["query", name])])
    check_area(principal, area)
    stmt = select(EarlyWarning).where(scope.clause(principal, WARNING_SCOPE))
    states = STATE_FILTERS[state]
    if states is not None:
        stmt = stmt.where(EarlyWarning.state.in_(states))
    if area:
        stmt = stmt.where(_area_clause(area) if len(area) >= 9 else EarlyWarning.area_code.startswith(area))
    if level:
        stmt = stmt.where(EarlyWarning.level == level)
    if min_level:
        stmt = stmt.where(EarlyWarning.level_rank >= LEVELS.index(min_level))
    if rule:
        stmt = stmt.where(EarlyWarning.rule_code == rule)
    if indicator:
        stmt = stmt.where(EarlyWarning.indicator_code == indicator)
    if category:
        stmt = stmt.where(EarlyWarning.category == category)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(EarlyWarning.level_rank.desc(), EarlyWarning.raised_at.desc(),
                                         EarlyWarning.id.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    cat = _cat(session)
    names = _names(session)
    return {"total": total, "page": page, "page_size": page_size, "items": [warning_out(w, cat, names) for w in rows]}


def _cat(session: Session) -> catalog.Catalogue | None:
    try:
        return catalog.active(session)
    except NotFound:
        return None


def _names(session: Session) -> dict[str, str]:
    from cityops.geo import service as geo

    return geo.indexes(session).names


def get_warning(session: Session, principal: Principal, warning_id: int, *, for_update: bool = False) -> EarlyWarning:
    w = None
    if 0 < warning_id < 2**31:
        stmt = select(EarlyWarning).where(EarlyWarning.id == warning_id, scope.clause(principal, WARNING_SCOPE))
        if for_update:
            stmt = stmt.with_for_update()
        w = session.scalar(stmt)
    if w is None:
        raise NotFound([Problem(f"没有预警 no warning {warning_id}", ["path", "warning_id"], "not_found")])
    return w


def warning_detail(session: Session, principal: Principal, warning_id: int) -> dict[str, Any]:
    from cityops.indicators.warnings import table

    w = get_warning(session, principal, warning_id)
    out = warning_out(w, _cat(session), _names(session))
    out["trigger"] = dict(w.trigger or {})
    out["timeline"] = lifecycle.timeline(session, "warning", w.id)
    out["actions"] = lifecycle.allowed_actions(session, principal, table(), w)
    return out


def warnings_for_case(session: Session, case_id: int) -> list[int]:
    """The warnings that opened a case (the case -> warning direction of the link)."""
    return list(session.scalars(select(EarlyWarning.id).where(EarlyWarning.case_id == case_id)))


# ------------------------------------------------------------------------------------ series

def _step(step: str | int | None) -> int:
    s = str(step or "1h")
    if s not in STEPS:
        raise InvalidInput([Problem("step 须为 1m/1h/1d（或 60/3600/86400） step must be 1m, 1h or 1d", ["query", "step"])])
    return STEPS[s]


def _ms(t: dt.datetime | None, default: dt.datetime) -> int:
    v = t or default
    if v.tzinfo is None:
        raise InvalidInput([Problem("时间须带时区偏移 times need an offset", ["query", "from"])])
    return int(v.timestamp() * 1000)


def series(session: Session, principal: Principal, *, indicator: str, area: str | None = None,
           device: str | None = None, start: dt.datetime | None = None, end: dt.datetime | None = None,
           step: str | None = None) -> dict[str, Any]:
    """Buckets (t, n, mean, min, max, sum, last) of an indicator over an area (rollups) or one
    device (1m: its raw readings; 1h: its hour rollups; 1d: its hours folded by day)."""
    cat = catalog.active(session)
    if indicator not in cat.indicators:
        raise InvalidInput([Problem(f"未知指标 unknown indicator {indicator!r}", ["query", "indicator"])])
    res = _step(step)
    now = dt.datetime.now(dt.UTC)
    hi = _ms(end, now)
    lo = _ms(start, now - dt.timedelta(seconds=res * 48))
    if hi < lo:
        raise InvalidInput([Problem("from 须早于 to from must be before to", ["query", "from"])])
    if (hi - lo) // (res * 1000) > 10_000:
        raise InvalidInput([Problem("最多10000个时段 at most 10,000 buckets; use a larger step", ["query", "step"])])
    points: list[dict[str, Any]] = []
    if device:
        d = session.scalar(select(Device).where(Device.code == device, scope.clause(principal, DEVICE_SCOPE)))
        sid = session.scalar(select(Series.id).where(Series.device_id == d.id, Series.indicator_code == indicator)) \
            if d is not None else None
        if sid is None:
            raise NotFound([Problem(f"没有设备指标 no series {device}/{indicator}", ["query", "device"], "not_found")])
        if res == 60:
            rows = session.execute(text(
                "SELECT r.ts, r.value FROM indicator_reading r WHERE r.series_id = :s AND r.ts >= :a AND r.ts < :b "
                "AND r.rev = (SELECT max(x.rev) FROM indicator_reading x WHERE x.ts = r.ts AND x.series_id = r.series_id) "
                "ORDER BY r.ts"), {"s": sid, "a": lo, "b": hi}).all()
            by: dict[int, list[float]] = {}
            for t, v in rows:
                by.setdefault(int(t) // 60000 * 60000, []).append(float(v))
            for t, vs in sorted(by.items()):
                points.append(_point(t, len(vs), sum(vs), min(vs), max(vs), vs[-1]))
        else:
            rows2 = session.execute(select(DeviceRollup).where(
                DeviceRollup.series_id == sid, DeviceRollup.res == 3600, DeviceRollup.bucket >= lo // 3_600_000 * 3_600_000,
                DeviceRollup.bucket < hi).order_by(DeviceRollup.bucket)).scalars().all()
            folded: dict[int, list[Any]] = {}
            for r in rows2:
                b = r.bucket // (res * 1000) * (res * 1000)
                f = folded.get(b)
                if f is None:
                    folded[b] = [r.n, r.sum, r.min, r.max, r.last, r.last_ts]
                else:
                    f[0] += r.n
                    f[1] += r.sum
                    f[2] = min(f[2], r.min)
                    f[3] = max(f[3], r.max)
                    if r.last_ts >= f[5]:
                        f[4], f[5] = r.last, r.last_ts
            for b, f in sorted(folded.items()):
                points.append(_point(b, f[0], f[1], f[2], f[3], f[4]))
        return {"indicator": indicator, "device": device, "step": res, "from": lo, "to": hi, "points": points}
    area = area or principal.area_code or "310117"
    check_area(principal, area, DEVICE_SCOPE)
    rl = scope.rule(principal, DEVICE_SCOPE)
    if rl.area is not None and not area.startswith(rl.area):  # a wider area: only the principal's own part
        area = rl.area
    rows3 = session.execute(select(AreaRollup).where(
        AreaRollup.area_code == area, AreaRollup.indicator_code == indicator, AreaRollup.res == res,
        AreaRollup.bucket >= lo // (res * 1000) * (res * 1000), AreaRollup.bucket < hi).order_by(AreaRollup.bucket)).scalars()
    for x in rows3:
        points.append(_point(x.bucket, x.n, x.sum, x.min, x.max, x.last))
    return {"indicator": indicator, "area": area, "step": res, "from": lo, "to": hi, "points": points}


def _point(t: int, n: int, s: float, mi: float, ma: float, last: float) -> dict[str, Any]:
    return {"t": dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat(), "n": n, "mean": s / n if n else None,
            "min": mi, "max": ma, "sum": s, "last": last}


# ------------------------------------------------------------------------------------ board

def board(session: Session, principal: Principal) -> dict[str, Any]:
    """Per category the highest open level per street, the open warnings, silent devices and
    per indicator the district's last hours (sparklines) — all in the principal's scope."""
    cat = catalog.active(session)
    rows = session.scalars(select(EarlyWarning).where(scope.clause(principal, WARNING_SCOPE),
                                                      EarlyWarning.state.in_(OPEN_STATES))).all()
    names = _names(session)
    by_street: dict[str, dict[str, str]] = {}
    for w in rows:
        street = (w.street_code or w.area_code)[:9]
        cur = by_street.setdefault(street, {}).get(w.category)
        if cur is None or LEVELS.index(w.level) > LEVELS.index(cur):
            by_street[street][w.category] = w.level
    silent = [{"warning_id": w.id, "area_code": w.area_code, "area_name": names.get(w.area_code),
               "devices": sorted(w.subjects or {}), "level": w.level, "since": w.raised_at}
              for w in rows if w.rule_kind == "silence"]
    area = principal.area_code if principal.area_code and not principal.is_district_wide else "310117"
    now = dt.datetime.now(dt.UTC)
    since = int((now - dt.timedelta(hours=6)).timestamp() * 1000)
    spark: dict[str, list[float | None]] = {}
    for code in cat.indicators:
        pts = session.execute(select(AreaRollup.bucket, AreaRollup.sum, AreaRollup.n).where(
            AreaRollup.area_code == area[:9] if len(area) >= 9 else AreaRollup.area_code == area,
            AreaRollup.indicator_code == code, AreaRollup.res == 60, AreaRollup.bucket >= since)
            .order_by(AreaRollup.bucket)).all()
        # 5-minute means over the last 6 hours
        bins: dict[int, list[float]] = {}
        for b, s, n in pts:
            k = int(b) // 300_000
            acc = bins.setdefault(k, [0.0, 0])
            acc[0] += float(s)
            acc[1] += int(n)
        spark[code] = [round(v[0] / v[1], 3) if v[1] else None for _k, v in sorted(bins.items())][-72:]
    return {"categories": cat.categories, "indicators": [indicator_out(cat, i) for i in cat.indicators.values()],
            "streets": by_street, "warnings": [warning_out(w, cat, names) for w in sorted(
                rows, key=lambda x: (-x.level_rank, x.raised_at), reverse=False)][:200],
            "silent": silent, "sparklines": spark, "area": area,
            "street_names": {code: names.get(code, code) for code in by_street}}


def indicator_out(cat: catalog.Catalogue, ind: catalog.IndicatorDef) -> dict[str, Any]:
    rules = [r for r in cat.rules.values() if ind.code in r.indicators]
    return {"code": ind.code, "name_zh": ind.name_zh, "name_en": ind.name_en, "category": ind.category,
            "category_en": cat.categories.get(ind.category), "unit": ind.unit, "kind": ind.kind,
            "definition": ind.definition, "source": ind.source, "interval_s": ind.interval_s,
            "aggregation": ind.aggregation, "level": ind.level, "owner_department_code": ind.owner_department_code,
            "baseline": ind.baseline,
            "rules": [{"code": r.code, "kind": r.kind, "name_zh": r.name_zh, "name_en": r.name_en,
                       "area_level": r.area_level, "bands": r.raw.get("bands", []), "lift": r.raw.get("lift"),
                       "auto_case": r.auto_case, "reference": r.reference} for r in rules]}


def indicators(session: Session) -> dict[str, Any]:
    cat = catalog.active(session)
    return {"version": cat.version, "categories": cat.categories,
            "items": [indicator_out(cat, i) for i in cat.indicators.values()],
            "rules": [{"code": r.code, "kind": r.kind, "name_zh": r.name_zh, "name_en": r.name_en,
                       "indicators": list(r.indicators), "category": r.category, "area_level": r.area_level,
                       "owner_department_code": r.owner_department_code, **{k: v for k, v in r.raw.items() if k in (
                           "bands", "lift", "auto_case", "all_of", "level", "weeks", "z", "direction", "reference")}}
                      for r in cat.rules.values()]}
