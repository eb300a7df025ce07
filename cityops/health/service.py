"""Public-health services (plain functions ``(session, principal, ...)``): the analyst's detection and scan,
sentinel sites, daily counts (all or nothing, bad rows named), case reports (scoped and masked), signals
(scoped; actions through the transition table) and the CIDARS KPIs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput, NotFound, Problem
from cityops.health import detection, kpi, scan, signals
from cityops.health.models import (
    CASE_REPORT_SCOPE,
    SIGNAL_SCOPE,
    SITE_KINDS,
    SITE_SCOPE,
    SYNDROMES,
    CaseReport,
    DailyCount,
    SentinelSite,
    Signal,
)
from cityops.security import scope
from cityops.security.principal import Principal
from cityops.security.privacy import F, declare_fields, mask_record

CASE_FIELDS = declare_fields("health_case_report", [
    F("name", "姓名", "name", "general", True, "name"),
    F("id_number", "身份证号", "ID number", "important", True, "id_number"),
    F("phone", "联系电话", "phone", "general", True, "phone"),
    F("address", "现住址", "address", "general", True, "address"),
    F("disease", "病种", "disease"),
    F("gender", "性别", "gender"),
    F("age", "年龄", "age"),
])


def _nulls(a: np.ndarray) -> list[Any]:
    return [None if (isinstance(v, float) and np.isnan(v)) else v for v in a.tolist()]


# ------------------------------------------------------------------------------------------ analyst


def detect(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/health/detect``: every series through ``detection.run``; ``t`` 1-based, NA -> null."""
    method = body["method"]
    control = dict(body.get("control") or {})
    out = []
    for i, s in enumerate(body["series"]):
        params = dict(control)
        params["freq"] = s.get("freq") or 52
        if s.get("start") is not None:
            params["start"] = s["start"]
        if s.get("dates") is not None:
            if method == "farringtonFlexible":
                params["dates"] = [dt.date.fromisoformat(str(d)) for d in s["dates"]]
        if "limit54" in params and params["limit54"] is not None:
            params["limit54"] = tuple(params["limit54"])
        try:
            r = detection.run(method, np.asarray(s["observed"], dtype=float)[None, :], **params)
        except detection.ParameterError as e:
            loc: list[str | int] = ["body", *e.field.split(".")]
            if e.field.startswith("series"):
                loc = ["body", "series", i, *e.field.split(".")[1:]]
            raise InvalidInput([Problem(e.reason, loc)]) from e
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as e:
            raise InvalidInput([Problem(f"控制参数无效 invalid control parameters: {str(e)[:200]}",
                                        ["body", "control"])]) from e
        item: dict[str, Any] = {"id": s["id"], "t": r.t.tolist(), "upperbound": _nulls(r.upperbound[0]),
                                "alarm": [None if np.isnan(a) else int(a) for a in r.alarm[0]]}
        for k, v in r.extras.items():
            item[k] = _nulls(np.asarray(v[0], dtype=float))
        out.append(item)
    return {"method": method, "results": out}


def run_scan(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/health/scan``: dates (ISO) become day numbers; clusters most likely first."""
    cases = body["cases"]
    times = [c["time"] for c in cases]
    as_dates = any(isinstance(t, str) for t in times)

    def tnum(v: Any, where: list[str | int]) -> int:
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v).toordinal()
            except ValueError as e:
                raise InvalidInput([Problem("日期格式错误 not an ISO date", where)]) from e
        if not -10**9 <= int(v) <= 10**9:
            raise InvalidInput([Problem("时间超出范围 time out of range (|t| <= 1e9)", where)])
        return int(v)

    conv = [{**c, "time": tnum(c["time"], ["body", "cases", i, "time"])} for i, c in enumerate(cases)]
    end = body.get("study_end")
    try:
        res = scan.scan(conv, body["locations"], study_end=None if end is None else tnum(end, ["body", "study_end"]),
                        max_spatial_share=body.get("max_spatial_share", 0.5),
                        max_temporal_share=body.get("max_temporal_share", 0.5), min_cases=body.get("min_cases", 2),
                        replications=body.get("replications", 999), seed=body.get("seed", 1))
    except scan.ScanInputError as e:
        raise InvalidInput([Problem(e.reason, ["body", *e.field.split(".")])]) from e
    except (ValueError, OverflowError, MemoryError) as e:
        raise InvalidInput([Problem(f"扫描参数无效 invalid scan input: {str(e)[:200]}", ["body"])]) from e

    def tout(v: int) -> Any:
        return dt.date.fromordinal(v).isoformat() if as_dates else v

    return {"total_cases": res.total_cases, "replications": res.replications, "clusters": [
        {"location_ids": c.location_ids, "centre": {"x": c.centre[0], "y": c.centre[1], "location_id": c.centre_id},
         "radius": c.radius, "time_start": tout(c.time_start), "time_end": tout(c.time_end), "observed": c.observed,
         "expected": c.expected, "llr": c.llr, "p_value": c.p_value} for c in res.clusters]}


# ------------------------------------------------------------------------------------------ sites and counts


def site_out(s: SentinelSite) -> dict[str, Any]:
    return {"code": s.code, "name": s.name, "kind": s.kind, "kind_zh": SITE_KINDS.get(s.kind, (s.kind,))[0],
            "lon": s.lon, "lat": s.lat, "grid_code": s.grid_code, "street_code": s.street_code}


def put_sites(session: Session, principal: Principal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Create or update sentinel sites (all or nothing); the point places the site in its grid."""
    from cityops.geo import service as geo

    probs: list[Problem] = []
    first_at: dict[str, int] = {}
    for i, r in enumerate(rows):
        if r["code"] in first_at:
            probs.append(Problem(f"与第 {first_at[r['code']]} 项重复 duplicate of item {first_at[r['code']]}",
                                 ["body", i, "code"]))
        first_at.setdefault(r["code"], i)
        if r.get("kind") not in SITE_KINDS:
            probs.append(Problem(f"未知哨点类型 unknown kind; one of {', '.join(SITE_KINDS)}", ["body", i, "kind"]))
    hits = geo.locate_many(session, np.array([float(r["lon"]) for r in rows]),
                           np.array([float(r["lat"]) for r in rows]), with_layers=False) if rows else []
    for i, h in enumerate(hits):
        if not h.get("inside"):
            probs.append(Problem("点位不在本区范围内 the point is outside the district", ["body", i, "lon"], "outside"))
    if probs:
        raise InvalidInput(probs)
    have = {s.code: s for s in session.scalars(select(SentinelSite).where(
        SentinelSite.code.in_([r["code"] for r in rows])))}
    for r, h in zip(rows, hits, strict=True):
        s = have.get(r["code"]) or SentinelSite(code=r["code"])
        s.name, s.kind, s.lon, s.lat = r["name"], r["kind"], float(r["lon"]), float(r["lat"])
        s.grid_code, s.community_code, s.street_code = h["grid_code"], h["community_code"], h["street_code"]
        session.add(s)
    session.flush()
    return {"sites": len(rows)}


def list_sites(session: Session, principal: Principal) -> list[dict[str, Any]]:
    q = select(SentinelSite).where(scope.clause(principal, SITE_SCOPE)).order_by(SentinelSite.code)
    return [site_out(s) for s in session.scalars(q)]


def put_counts(session: Session, principal: Principal, rows: list[dict[str, Any]],
               loc: str = "body") -> dict[str, Any]:
    """Daily counts ``{site, day, syndrome, count, visits?}``: validated whole, then upserted; all or nothing."""
    sites = {s.code: s for s in session.scalars(select(SentinelSite))}
    probs: list[Problem] = []
    clean = []
    seen: dict[tuple[int, dt.date, str], int] = {}
    for i, r in enumerate(rows):
        at: list[str | int] = [loc, i]
        site = sites.get(str(r.get("site")))
        if site is None:
            probs.append(Problem("未知哨点 unknown site", [*at, "site"]))
        if r.get("syndrome") not in SYNDROMES:
            probs.append(Problem(f"未知症状 unknown syndrome; one of {', '.join(SYNDROMES)}", [*at, "syndrome"]))
        try:
            day = dt.date.fromisoformat(str(r.get("day")))
        except ValueError:
            probs.append(Problem("日期格式错误 day must be YYYY-MM-DD", [*at, "day"]))
            continue
        try:
            n = int(str(r.get("count")))
            if n < 0 or n > 10**9:
                raise ValueError
        except ValueError:
            probs.append(Problem("计数须为非负整数 count must be a non-negative integer", [*at, "count"]))
            continue
        visits = r.get("visits")
        if visits not in (None, ""):
            try:
                visits = int(str(visits))
                if visits < n or visits > 10**9:
                    raise ValueError
            except ValueError:
                probs.append(Problem("就诊数须为不小于计数的整数 visits must be an integer >= count", [*at, "visits"]))
                continue
        else:
            visits = None
        if site is not None:
            key = (site.id, day, str(r["syndrome"]))
            if key in seen:
                probs.append(Problem(f"与第 {seen[key]} 行重复 duplicate of row {seen[key]}", [*at, "day"]))
                continue
            seen[key] = i
            clean.append((site, day, str(r["syndrome"]), n, visits))
    if probs:
        raise InvalidInput(probs)
    have = {(c.site_id, c.day, c.syndrome): c for c in session.scalars(select(DailyCount).where(
        DailyCount.site_id.in_({s.id for s, *_ in clean})))} if clean else {}
    for site, day, syn, n, visits in clean:
        c = have.get((site.id, day, syn)) or DailyCount(site_id=site.id, day=day, syndrome=syn)
        c.count, c.visits, c.street_code = n, visits, site.street_code
        session.add(c)
    session.flush()
    return {"counts": len(clean)}


def parse_counts_csv(data: bytes) -> list[dict[str, Any]]:
    import csv
    import io

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput([Problem("文件须为 UTF-8 the file must be UTF-8", ["file"])]) from e
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"site", "day", "syndrome", "count"}
    if not rows or not need <= set(rows[0]):
        raise InvalidInput([Problem(f"缺少列 missing columns: {sorted(need)}", ["file"])])
    return rows


# ------------------------------------------------------------------------------------------ case reports


def case_out(c: CaseReport, principal: Principal) -> dict[str, Any]:
    d = {"id": c.id, "disease": c.disease, "disease_class": c.disease_class, "name": c.name,
         "id_number": c.id_number, "phone": c.phone, "address": c.address, "gender": c.gender, "age": c.age,
         "onset_date": c.onset_date.isoformat() if c.onset_date else None,
         "reported_at": c.reported_at.isoformat(), "grid_code": c.grid_code, "street_code": c.street_code}
    out = mask_record(d, CASE_FIELDS, principal)
    out["masked"] = True
    return out


def list_case_reports(session: Session, principal: Principal, *, disease: str | None = None,
                      page: int = 1, page_size: int = 50) -> dict[str, Any]:
    q = select(CaseReport).where(scope.clause(principal, CASE_REPORT_SCOPE))
    if disease:
        q = q.where(CaseReport.disease == disease)
    rows = list(session.scalars(q.order_by(CaseReport.id).offset((page - 1) * page_size).limit(page_size)))
    return {"items": [case_out(c, principal) for c in rows], "page": page}


# ------------------------------------------------------------------------------------------ signals


def signal_out(s: Signal) -> dict[str, Any]:
    def iso(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {"id": s.id, "method": s.method, "syndrome": s.syndrome,
            "syndrome_zh": SYNDROMES.get(s.syndrome, (s.syndrome,))[0], "area_code": s.area_code,
            "area_level": s.area_level, "period_end": s.period_end.isoformat(), "observed": s.observed,
            "threshold": s.threshold, "rule": s.rule, "status": s.status,
            "status_zh": signals.MACHINE.state_label(s.status), "outcome": s.outcome,
            "created_at": iso(s.created_at), "verify_due_at": iso(s.verify_due_at), "verified_at": iso(s.verified_at),
            "investigated_at": iso(s.investigated_at), "closed_at": iso(s.closed_at),
            "escalated_at": iso(s.escalated_at), "officer": s.officer, "params": s.params}


def list_signals(session: Session, principal: Principal, *, status: str | None = None) -> list[dict[str, Any]]:
    q = select(Signal).where(scope.clause(principal, SIGNAL_SCOPE))
    if status:
        q = q.where(Signal.status == status)
    return [signal_out(s) for s in session.scalars(q.order_by(Signal.id.desc()).limit(500))]


def get_signal(session: Session, principal: Principal, signal_id: int) -> Signal:
    s = session.scalar(select(Signal).where(Signal.id == signal_id, scope.clause(principal, SIGNAL_SCOPE)))
    if s is None:
        raise NotFound([Problem("信号不存在 no such signal", ["path", "signal_id"])])
    return s


def signal_action(session: Session, principal: Principal, signal_id: int, action: str,
                  body: dict[str, Any] | None) -> dict[str, Any]:
    s = get_signal(session, principal, signal_id)
    return signals.act(session, principal, s, action, body or {})


def signal_kpis(session: Session, principal: Principal, since: dt.datetime | None = None) -> dict[str, Any]:
    q = select(Signal.created_at, Signal.verified_at, Signal.outcome).where(scope.clause(principal, SIGNAL_SCOPE))
    if since is not None:
        q = q.where(Signal.created_at >= since)
    return kpi.kpis(kpi.SignalTimes(a, b, c) for a, b, c in session.execute(q))


def curve(session: Session, principal: Principal, syndrome: str, day: dt.date, days: int = 90,
          method: str = "earsC2") -> dict[str, Any]:
    """District epidemic curve of ``syndrome``: daily counts in the principal's scope, the method's bound."""
    from sqlalchemy import func

    first = day - dt.timedelta(days=days - 1)
    q = (select(DailyCount.day, func.sum(DailyCount.count)).join(SentinelSite, SentinelSite.id == DailyCount.site_id)
         .where(DailyCount.syndrome == syndrome, DailyCount.day >= first, DailyCount.day <= day,
                scope.clause(principal, SITE_SCOPE)).group_by(DailyCount.day))
    y = np.zeros(days)
    for d, n in session.execute(q):
        y[(d - first).days] = int(n)
    labels = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    r = detection.run(method, y[None, :], freq=365)
    ub: list[float | None] = [None] * days
    al: list[int | None] = [None] * days
    for t, u, a in zip(r.t, r.upperbound[0], r.alarm[0], strict=True):
        ub[t - 1] = None if np.isnan(u) else float(u)
        al[t - 1] = None if np.isnan(a) else int(a)
    return {"syndrome": syndrome, "method": method, "days": labels, "observed": y.tolist(), "upperbound": ub,
            "alarm": al}


def page_data(session: Session, principal: Principal) -> dict[str, Any]:
    from cityops import clock
    from cityops.console.charts import line_chart

    today = clock.now().astimezone(signals.SHANGHAI).date()
    last = session.scalar(select(DailyCount.day).order_by(DailyCount.day.desc()).limit(1)) or today
    curves = []
    for syn in ("ili", "diarrhoea", "fever"):
        c = curve(session, principal, syn, last)
        curves.append(line_chart([d[5:] for d in c["days"]], [("观察 observed", c["observed"]),
                                                              ("上限 upper bound", c["upperbound"])],
                                 f"{SYNDROMES[syn][0]} {SYNDROMES[syn][1].split(' (')[0]}"))
    sigs = list_signals(session, principal)
    from cityops.lifecycle import service as lifecycle

    for s in sigs[:100]:
        obj = session.get(Signal, s["id"])
        s["actions"] = [a["action"] for a in lifecycle.allowed_actions(session, principal, signals.table(), obj)]
    return {"curves": curves, "signals": sigs[:100], "kpis": {k: (round(v, 3) if isinstance(v, float) else v)
                                                              for k, v in signal_kpis(session, principal).items()}}
