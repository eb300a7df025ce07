"""Performance evaluation (综合评价, GB/T 30428.4 style) computed from the case timeline.

Subjects: the posts 监督员 / 受理员 / 值班长 / 派遣员 (per account, from the actions they took),
专业部门 (per lead department), areas (street / community / grid) and the 12345 hotline metrics
(per department). Any period of Asia/Shanghai dates, any area; always narrowed to the cases the
caller may see. Every figure is an SQL aggregation over ``case_event`` / ``case_step`` /
``case_department`` / ``case_file`` (GROUP BY, correlated EXISTS) — nothing loops over cases in
Python. Weights, count step functions and grade bands are versioned data
(``evaluation_scheme``, default in ``data/evaluation_default.json``). The exact definition of
every indicator is in docs/evaluation.md; tests/test_evaluation_formulas.py recomputes them
independently in plain Python over the same rows.

Conventions: a rate is a fraction (0..1, None when its denominator is 0); rate scores are the
rate on a 0-100 scale (100 - rate for the "bad" rates listed as ``inverse``); a composite is
``sum(points) + sum(weight_i * score_i)`` with the weights of missing indicators spread
proportionally over the present ones (None when none is present); grades by the bands.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from cityops.cases import evaluation_facts as facts
from cityops.cases import places, sla
from cityops.cases import reference as ref
from cityops.cases.evaluation_models import EvaluationScheme
from cityops.cases.models import Case, CaseDepartment, CaseEvent, CaseStep
from cityops.cases.queries import CASE_SCOPE, area_filter
from cityops.db import database_key
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.exports import SafeWriter
from cityops.security import audit, scope
from cityops.security.principal import Principal

TZ = ZoneInfo("Asia/Shanghai")
DATA = Path(__file__).resolve().parent / "data"
MAX_DAYS = 1096
PUBLIC_SOURCES = ("public", "hotline", "open311")

# subject -> (zh, en, scheme subject)
SUBJECTS: dict[str, tuple[str, str, str]] = {
    "supervisor": ("监督员", "supervisors", "supervisor"),
    "intake_operator": ("受理员", "intake operators", "intake_operator"),
    "shift_lead": ("值班长", "shift leads", "shift_lead"),
    "dispatcher": ("派遣员", "dispatchers", "dispatcher"),
    "department": ("专业部门", "departments", "department"),
    "street": ("街镇", "streets / towns", "area"),
    "community": ("居村", "communities", "area"),
    "grid": ("单元网格", "unit grids", "area"),
    "hotline": ("12345 热线", "12345 hotline", "hotline"),
}
POSTS = ("supervisor", "intake_operator", "shift_lead", "dispatcher")
AREA_LEVELS = {"street": Case.street_code, "community": Case.community_code, "grid": Case.grid_code}

# indicator key -> (zh, en, kind) ; kind: count / rate / hours / score
LABELS: dict[str, tuple[str, str, str]] = {
    "reports": ("上报数", "reports", "count"), "valid_reports": ("有效上报数", "valid reports", "count"),
    "valid_report_rate": ("有效上报率", "valid report rate", "rate"),
    "area_registered": ("辖区立案数", "registered in own area", "count"),
    "area_public_first": ("辖区公众首报数", "first reported by the public", "count"),
    "missed_report_rate": ("漏报率", "missed report rate", "rate"),
    "verified": ("核实数", "verifications", "count"), "verified_ontime": ("按时核实数", "verified on time", "count"),
    "ontime_verify_rate": ("按时核实率", "on-time verification rate", "rate"),
    "inspected": ("核查数", "inspections", "count"), "inspected_ontime": ("按时核查数", "inspected on time", "count"),
    "ontime_inspect_rate": ("按时核查率", "on-time inspection rate", "rate"),
    "accepted": ("受理数", "accepted", "count"), "accept_count_score": ("受理数得分", "intake volume score", "score"),
    "verify_issued": ("核实派发数", "verification tasks issued", "count"),
    "verify_issued_ontime": ("核实按时派发数", "issued on time", "count"),
    "verify_issue_ontime_rate": ("核实按时派发率", "verification issued on time", "rate"),
    "inspect_issued": ("核查派发数", "inspection tasks issued", "count"),
    "inspect_issued_ontime": ("核查按时派发数", "issued on time", "count"),
    "inspect_issue_ontime_rate": ("核查按时派发率", "inspection issued on time", "rate"),
    "registered": ("立案数", "registered", "count"), "register_due": ("应立案数", "registrations timed", "count"),
    "register_ontime": ("按时立案数", "registered on time", "count"),
    "ontime_register_rate": ("按时立案率", "on-time registration rate", "rate"),
    "accurate_registered": ("准确立案数", "registered and not voided", "count"),
    "accurate_register_rate": ("准确立案率", "accurate registration rate", "rate"),
    "closed": ("结案数", "closed", "count"), "close_due": ("应结案环节数", "closures timed", "count"),
    "close_ontime": ("按时结案数", "closed on time", "count"), "ontime_close_rate": ("按时结案率", "on-time closure rate", "rate"),
    "dispatched": ("派遣数", "dispatched", "count"), "dispatch_count_score": ("派遣数得分", "dispatch volume score", "score"),
    "dispatch_due": ("应派遣数", "dispatch tasks", "count"), "dispatch_ontime": ("按时派遣数", "dispatched on time", "count"),
    "ontime_dispatch_rate": ("按时派遣率", "on-time dispatch rate", "rate"),
    "accurate_dispatched": ("准确派遣数", "accurate dispatches", "count"),
    "accurate_dispatch_rate": ("准确派遣率", "accurate dispatch rate", "rate"),
    "assigned": ("立案数（派至本部门）", "cases assigned", "count"),
    "assigned_count_points": ("立案数得分", "case volume points", "score"),
    "ack_due": ("应签收数", "acknowledgements due", "count"), "ack_ontime": ("按时签收数", "acknowledged on time", "count"),
    "ack_rate": ("及时签收率", "on-time acknowledgement rate", "rate"),
    "handle_due": ("应处置数", "handling due", "count"), "handle_ontime": ("按时处置数", "handled on time", "count"),
    "ontime_handle_rate": ("按时处置率", "on-time handling rate", "rate"),
    "handled": ("处置数", "handled (reported back)", "count"), "overdue": ("超期数", "overdue", "count"),
    "avg_handle_hours": ("平均处置时长（小时）", "mean handling time (h)", "hours"),
    "open_overdue": ("超期未结数", "overdue and still open", "count"),
    "close_expected": ("应结案数", "due for closure", "count"), "close_rate": ("结案率", "closure rate", "rate"),
    "reworks": ("返工数", "reworks", "count"), "rework_rate": ("返工率", "rework rate", "rate"),
    "sendbacks": ("退单（回退）数", "sent back", "count"), "sendback_rate": ("回退率", "send-back rate", "rate"),
    "reported": ("上报数", "reported", "count"), "self_handled": ("自行处置数", "self-handled", "count"),
    "closed_ontime": ("按期结案数", "closed on time", "count"),
    "ontime_complete_rate": ("按时办结率", "completed on time", "rate"),
    "evaluated": ("回访数", "followed up", "count"), "satisfied": ("满意数", "satisfied", "count"),
    "satisfaction_rate": ("回访满意率", "satisfaction rate", "rate"),
    "reopened": ("重办数", "re-handled", "count"), "redo_rate": ("重办率", "re-handling rate", "rate"),
    "score": ("综合得分", "composite score", "score"), "grade": ("等级", "grade", "grade"),
}

# per subject: the counts (from SQL) and the rates (numerator, denominator) shown, in order
SPEC: dict[str, dict[str, Any]] = {
    "supervisor": {"counts": ["reports", "valid_reports", "area_registered", "area_public_first", "verified",
                              "verified_ontime", "inspected", "inspected_ontime"],
                   "rates": {"valid_report_rate": ("valid_reports", "reports"),
                             "missed_report_rate": ("area_public_first", "area_registered"),
                             "ontime_verify_rate": ("verified_ontime", "verified"),
                             "ontime_inspect_rate": ("inspected_ontime", "inspected")}},
    "intake_operator": {"counts": ["accepted", "verify_issued", "verify_issued_ontime", "inspect_issued",
                                   "inspect_issued_ontime"],
                        "rates": {"verify_issue_ontime_rate": ("verify_issued_ontime", "verify_issued"),
                                  "inspect_issue_ontime_rate": ("inspect_issued_ontime", "inspect_issued")}},
    "shift_lead": {"counts": ["registered", "register_due", "register_ontime", "accurate_registered", "closed",
                              "close_due", "close_ontime"],
                   "rates": {"ontime_register_rate": ("register_ontime", "register_due"),
                             "accurate_register_rate": ("accurate_registered", "registered"),
                             "ontime_close_rate": ("close_ontime", "close_due")}},
    "dispatcher": {"counts": ["dispatched", "dispatch_due", "dispatch_ontime", "accurate_dispatched"],
                   "rates": {"ontime_dispatch_rate": ("dispatch_ontime", "dispatch_due"),
                             "accurate_dispatch_rate": ("accurate_dispatched", "dispatched")}},
    "department": {"counts": ["assigned", "ack_due", "ack_ontime", "handle_due", "handle_ontime", "handled", "overdue",
                              "closed", "open_overdue", "close_expected", "reworks", "sendbacks"],
                   "rates": {"ack_rate": ("ack_ontime", "ack_due"), "ontime_handle_rate": ("handle_ontime", "handle_due"),
                             "close_rate": ("closed", "close_expected"), "rework_rate": ("reworks", "handled"),
                             "sendback_rate": ("sendbacks", "assigned")},
                   "hours": ["avg_handle_hours"]},
    "area": {"counts": ["reported", "registered", "closed", "closed_ontime", "self_handled", "open_overdue",
                        "close_expected", "handled", "handle_due", "handle_ontime", "overdue", "reworks"],
             "rates": {"close_rate": ("closed", "close_expected"), "ontime_close_rate": ("closed_ontime", "closed"),
                       "ontime_handle_rate": ("handle_ontime", "handle_due"), "rework_rate": ("reworks", "handled")},
             "hours": ["avg_handle_hours"]},
    "hotline": {"counts": ["assigned", "ack_due", "ack_ontime", "handle_due", "handle_ontime", "evaluated", "satisfied",
                           "sendbacks", "closed", "reopened"],
                "rates": {"ack_rate": ("ack_ontime", "ack_due"), "ontime_complete_rate": ("handle_ontime", "handle_due"),
                          "satisfaction_rate": ("satisfied", "evaluated"), "sendback_rate": ("sendbacks", "assigned"),
                          "redo_rate": ("reopened", "closed")}},
}


# ================================================================ schemes (versioned data)


@dataclass(frozen=True)
class Scheme:
    id: int | None
    code: str
    version: int
    name: str
    definition: dict[str, Any]


def default_definition() -> dict[str, Any]:
    with open(DATA / "evaluation_default.json", encoding="utf-8") as fh:
        return dict(json.load(fh))


INDICATORS_BY_SCHEME_SUBJECT = {
    "supervisor": set(SPEC["supervisor"]["rates"]),
    "intake_operator": set(SPEC["intake_operator"]["rates"]) | {"accept_count_score"},
    "shift_lead": set(SPEC["shift_lead"]["rates"]),
    "dispatcher": set(SPEC["dispatcher"]["rates"]) | {"dispatch_count_score"},
    "department": set(SPEC["department"]["rates"]) | {"assigned_count_points"},
    "area": set(SPEC["area"]["rates"]),
    "hotline": set(SPEC["hotline"]["rates"]),
}
COUNT_OF = {"accepted", "dispatched", "assigned"}


def _max_band_score(sf: Any) -> float:
    bands = sf.get("bands") if isinstance(sf, dict) else None
    if not isinstance(bands, list):
        return 0.0
    scores = [float(b["score"]) for b in bands if isinstance(b, dict) and isinstance(b.get("score"), int | float)
              and not isinstance(b.get("score"), bool) and math.isfinite(b["score"])]
    return max(scores, default=0.0)


def scheme_problems(doc: Any) -> list[Problem]:
    """Everything wrong with a scheme document (all listed)."""
    if not isinstance(doc, dict):
        return [Problem("a scheme is a JSON object", ["body"])]
    probs: list[Problem] = []
    for k, n in (("code", 40), ("name", 200)):
        if not isinstance(doc.get(k), str) or not doc[k].strip() or len(doc[k]) > n:
            probs.append(Problem(f"{k} must be 1-{n} characters", ["body", k]))
    if doc.get("valid_from") is not None:
        try:
            vf = dt.datetime.fromisoformat(str(doc["valid_from"]))
            if vf.tzinfo is None:
                probs.append(Problem("valid_from needs a time-zone offset", ["body", "valid_from"]))
        except ValueError:
            probs.append(Problem("valid_from is not an ISO-8601 date-time", ["body", "valid_from"]))
    days = doc.get("count_period_days", 30)
    if isinstance(days, bool) or not isinstance(days, int | float) or not 1 <= days <= 366:
        probs.append(Problem("count_period_days must be a number from 1 to 366", ["body", "count_period_days"]))
    sv = doc.get("satisfied_values", ["satisfied"])
    if not isinstance(sv, list) or not sv or any(v not in ("satisfied", "basically_satisfied", "unsatisfied") for v in sv):
        probs.append(Problem("satisfied_values: a non-empty list of satisfied / basically_satisfied / unsatisfied",
                             ["body", "satisfied_values"]))
    grades = doc.get("grades")
    if not isinstance(grades, list) or not grades:
        probs.append(Problem("grades: a non-empty list of {grade, min}", ["body", "grades"]))
    else:
        mins = []
        for i, g in enumerate(grades):
            if not isinstance(g, dict) or not isinstance(g.get("grade"), str) or not g["grade"].strip() \
                    or isinstance(g.get("min"), bool) or not isinstance(g.get("min"), int | float) \
                    or not math.isfinite(g["min"]):
                probs.append(Problem("a grade band is {grade: text, min: number}", ["body", "grades", i]))
            else:
                mins.append(float(g["min"]))
        if mins and (mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins)):
            probs.append(Problem("grade bands must be in strictly descending order of min", ["body", "grades"]))
        if mins and mins[-1] > 0:
            probs.append(Problem("the last grade band must start at 0 (every score gets a grade)", ["body", "grades"]))
    sfs = doc.get("step_functions") or {}
    if not isinstance(sfs, dict):
        probs.append(Problem("step_functions must be an object", ["body", "step_functions"]))
        sfs = {}
    for name, sf in sfs.items():
        loc: list[str | int] = ["body", "step_functions", name]
        if name not in ("accept_count_score", "dispatch_count_score", "assigned_count_points"):
            probs.append(Problem(f"unknown step function {name!r}", loc))
            continue
        if not isinstance(sf, dict) or not isinstance(sf.get("of"), str) or sf["of"] not in COUNT_OF \
                or not isinstance(sf.get("bands"), list) or not sf["bands"]:
            probs.append(Problem(f"a step function is {{of: {'/'.join(sorted(COUNT_OF))}, bands: [...]}}", loc))
            continue
        for j, b in enumerate(sf["bands"]):
            ok = isinstance(b, dict) and isinstance(b.get("score"), int | float) and not isinstance(b.get("score"), bool)
            ok = ok and all(isinstance(b.get(k), int | float) and not isinstance(b.get(k), bool)
                            and math.isfinite(b[k]) for k in ("min", "max") if b.get(k) is not None)
            if not ok or not 0 <= float(b["score"]) <= 100:
                probs.append(Problem("a band is {min?, max?, score 0-100}", [*loc, "bands", j]))
    subjects = doc.get("subjects")
    if not isinstance(subjects, dict):
        return [*probs, Problem("subjects must be an object", ["body", "subjects"])]
    for subj, known in INDICATORS_BY_SCHEME_SUBJECT.items():
        s = subjects.get(subj)
        loc = ["body", "subjects", subj]
        if not isinstance(s, dict):
            probs.append(Problem(f"subjects.{subj} is missing", loc))
            continue
        w = s.get("weights", {})
        if not isinstance(w, dict):
            probs.append(Problem("weights must be an object indicator -> weight", [*loc, "weights"]))
            continue
        for k, v in w.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and not math.isfinite(v):
                probs.append(Problem("a weight is a finite number", [*loc, "weights", k]))
            elif k not in known:
                probs.append(Problem(f"unknown indicator {k!r} for {subj}; known: {', '.join(sorted(known))}",
                                     [*loc, "weights", k]))
            elif isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                probs.append(Problem("a weight is a number >= 0", [*loc, "weights", k]))
            elif k.endswith("_points"):
                probs.append(Problem("point indicators go in 'points', not in 'weights'", [*loc, "weights", k]))
        points = s.get("points", [])
        if not isinstance(points, list) or any(not isinstance(p, str) or p not in known or not p.endswith("_points")
                                               or p not in sfs for p in points):
            probs.append(Problem("points: a list of *_points step functions of this subject", [*loc, "points"]))
            points = []
        for k in w:
            if k.endswith("_score") and k not in sfs:
                probs.append(Problem(f"{k} needs a step function of that name", [*loc, "weights", k]))
        inv = s.get("inverse", [])
        if not isinstance(inv, list) or any(not isinstance(k, str) or k not in known for k in inv):
            probs.append(Problem("inverse: a list of this subject's indicators", [*loc, "inverse"]))
        total = sum(float(v) for v in w.values() if isinstance(v, int | float) and math.isfinite(v)) * 100
        total += sum(_max_band_score(sfs.get(p)) for p in points)
        if total > 100.0001:
            probs.append(Problem(f"the composite of {subj} could exceed 100 ({total:g}): lower the weights", [*loc]))
    return probs


def _scheme_out(s: EvaluationScheme) -> dict[str, Any]:
    return {"id": s.id, "code": s.code, "version": s.version, "name": s.name, "status": s.status,
            "valid_from": s.valid_from, "created_at": s.created_at, "created_by": s.created_by,
            "definition": s.definition}


def list_schemes(session: Session) -> list[dict[str, Any]]:
    rows = list(session.scalars(select(EvaluationScheme).order_by(EvaluationScheme.code, EvaluationScheme.version))) \
        if table_ready(session) else []
    if not rows:
        d = default_definition()
        return [{"id": None, "code": d["code"], "version": d["version"], "name": d["name"], "status": "built-in",
                 "valid_from": d["valid_from"], "created_at": None, "created_by": None, "definition": d}]
    return [_scheme_out(s) for s in rows]


def save_scheme(session: Session, principal: Principal, doc: Any) -> dict[str, Any]:
    """A new version of a scheme (all problems listed; nothing written on any). Commits."""
    probs = scheme_problems(doc)
    if probs:
        raise InvalidInput(probs)
    last = session.scalar(select(func.max(EvaluationScheme.version)).where(EvaluationScheme.code == doc["code"]))
    version = int(last or 0) + 1
    valid_from = dt.datetime.fromisoformat(doc["valid_from"]) if doc.get("valid_from") else sla.now()
    definition = {**doc, "version": version}
    row = EvaluationScheme(code=doc["code"], version=version, name=doc["name"], status="published",
                           valid_from=valid_from, definition=definition, source=doc.get("source"),
                           created_at=sla.now(), created_by=principal.username)
    session.add(row)
    session.flush()
    audit.record(session, principal, "evaluation.scheme", "evaluation_scheme", row.id,
                 detail={"code": row.code, "version": version})
    return _scheme_out(row)


def seed_default(session: Session, principal: Principal) -> bool:
    """Store the default scheme as version 1 when no scheme exists (does not commit)."""
    if session.scalar(select(EvaluationScheme.id).limit(1)) is not None:
        return False
    d = default_definition()
    session.add(EvaluationScheme(code=d["code"], version=int(d["version"]), name=d["name"], status="published",
                                 valid_from=dt.datetime.fromisoformat(d["valid_from"]), definition=d,
                                 source=d.get("source"), created_at=sla.now(), created_by=principal.username))
    session.flush()
    return True


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 0,
              progress: Any = None) -> None:
    """Demo seeding hook (cityops.demo.seed): the default scheme as data (skipped, with the
    built-in default still in force, when the table is not migrated yet)."""
    from cityops.security.principal import SYSTEM

    if not table_ready(session):
        import logging

        logging.getLogger(__name__).warning("evaluation_scheme table missing (run `cityops db upgrade` after the "
                                            "migrations are regenerated); the built-in default scheme is used")
        return
    seed_default(session, SYSTEM)
    if not small:  # the worker keeps the daily facts (the small test district builds them on demand)
        facts.arm(session)


_READY: set[str] = set()


def table_ready(session: Session) -> bool:
    """Whether the evaluation_scheme table exists (a database migrated before it was added has
    none: the built-in default scheme is used then)."""
    key = database_key(session)
    if key in _READY:
        return True
    from sqlalchemy import inspect

    if inspect(session.connection()).has_table(EvaluationScheme.__tablename__):
        _READY.add(key)
        return True
    return False


def scheme_for(session: Session, end: dt.datetime, version: int | None = None, code: str | None = None) -> Scheme:
    """The scheme in force for a period ending at ``end`` (latest published version with
    valid_from before it), or the given version; the built-in default when the table is empty."""
    if not table_ready(session):
        if version is not None:
            raise NotFound([Problem("no evaluation schemes are stored yet (run `cityops db upgrade`)",
                                    ["query", "scheme_version"], "not_found")])
        d = default_definition()
        return Scheme(None, d["code"], int(d["version"]), d["name"], d)
    stmt = select(EvaluationScheme).where(EvaluationScheme.status == "published")
    if code:
        stmt = stmt.where(EvaluationScheme.code == code)
    if version is not None:
        if not code:
            code = scheme_for(session, end).code
            stmt = stmt.where(EvaluationScheme.code == code)
        row = session.scalar(stmt.where(EvaluationScheme.version == version).order_by(EvaluationScheme.id.desc()))
        if row is None:
            raise NotFound([Problem(f"no published evaluation scheme version {version}", ["query", "scheme_version"],
                                    "not_found")])
    else:
        row = session.scalar(stmt.where(EvaluationScheme.valid_from < end)
                             .order_by(EvaluationScheme.valid_from.desc(), EvaluationScheme.version.desc()).limit(1))
    if row is None:
        d = default_definition()
        return Scheme(None, d["code"], int(d["version"]), d["name"], d)
    return Scheme(row.id, row.code, row.version, row.name, row.definition)


# ================================================================ scores and grades


def step_score(bands: list[dict[str, Any]], value: float) -> float:
    for b in bands:
        lo, hi = b.get("min"), b.get("max")
        if (lo is None or value >= float(lo)) and (hi is None or value <= float(hi)):
            return float(b["score"])
    return 0.0


def grade_of(grades: list[dict[str, Any]], score: float | None) -> str | None:
    if score is None:
        return None
    for g in grades:
        if score >= float(g["min"]) - 1e-9:
            return str(g["grade"])
    return str(grades[-1]["grade"])


def composite(values: dict[str, Any], subject_def: dict[str, Any], step_values: dict[str, float]) -> float | None:
    """sum(points) + sum(w * score) with missing indicators' weights spread over the present ones."""
    weights: dict[str, float] = {k: float(v) for k, v in subject_def.get("weights", {}).items()}
    inverse = set(subject_def.get("inverse", []))
    present: list[tuple[float, float]] = []
    for k, w in weights.items():
        if k in step_values:
            present.append((w, step_values[k]))
            continue
        r = values.get(k)
        if r is None:
            continue
        s = 100.0 * float(r)
        present.append((w, max(0.0, 100.0 - s) if k in inverse else min(100.0, s)))
    if not present:
        return None
    total_w = sum(weights.values())
    have_w = sum(w for w, _ in present)
    weighted = sum(w * s for w, s in present) * (total_w / have_w if have_w else 0.0)
    points = sum(step_values.get(p, 0.0) for p in subject_def.get("points", []))
    return round(points + weighted, 2)


# ================================================================ periods


def period(date_from: dt.date | None, date_to: dt.date | None, now: dt.datetime | None = None
           ) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    """[start, end) in UTC of the local (Asia/Shanghai) dates from..to inclusive; default: the
    last 30 days up to today."""
    today = (now or sla.now()).astimezone(TZ).date()
    d_to = date_to or today
    d_from = date_from or (d_to - dt.timedelta(days=29))
    probs = []
    if d_from > d_to:
        probs.append(Problem("from is after to", ["query", "from"]))
    if (d_to - d_from).days + 1 > MAX_DAYS:
        probs.append(Problem(f"the period may span at most {MAX_DAYS} days", ["query", "to"]))
    if probs:
        raise InvalidInput(probs)
    start = dt.datetime(d_from.year, d_from.month, d_from.day, tzinfo=TZ).astimezone(dt.UTC)
    nxt = d_to + dt.timedelta(days=1)
    end = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=TZ).astimezone(dt.UTC)
    return d_from, d_to, start, end


# ================================================================ SQL building blocks

E = CaseEvent
Cond = Any  # a function of a CaseStep alias returning a condition


def _n(cond: ColumnElement[bool]) -> Any:
    """count of rows meeting ``cond`` inside an aggregate."""
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _role(role: str) -> ColumnElement[bool]:
    return literal(",").concat(func.coalesce(E.actor_roles, "")).concat(",").like(f"%,{role},%")


def _step_at(step: str, *extra: Cond) -> ColumnElement[bool]:
    """EXISTS a ``step`` of the event's case that was running at the event's instant (started at or
    before it, not finished before it) and meets the conditions ``extra(s)``."""
    s = aliased(CaseStep)
    return exists().where(s.case_id == E.case_id, s.step == step, s.started_at <= E.at,
                          or_(s.finished_at.is_(None), s.finished_at >= E.at), *[c(s) for c in extra])


def _done(s: Any) -> ColumnElement[bool]:
    # ``status || ''``: not a term an index can serve, so that the correlated EXISTS of ``_step_at``
    # looks steps up by case (ix_case_step_case_id) — on ``status = 'done'`` SQLite's planner took
    # ix_case_step_status_due, i.e. every finished step, once per event (the 60 s of issue 9)
    return s.status.concat("") == "done"  # type: ignore[no-any-return]


def _ontime(s: Any) -> ColumnElement[bool]:
    return s.on_time.is_(True)  # type: ignore[no-any-return]


def _issued_in_time(s: Any) -> ColumnElement[bool]:
    return s.due_at >= E.at  # type: ignore[no-any-return]


def _in(col: Any, start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    return and_(col >= start, col < end)


def _hours(session: Session, a: Any, b: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", b - a) / 3600.0
    return (func.julianday(b) - func.julianday(a)) * 24.0


def _lead_at(*, inclusive: bool = True) -> Any:
    """The lead department of the event's case at the event's instant (inclusive of a release at
    that very instant: send_back / reopen release the lead as they happen)."""
    cd = aliased(CaseDepartment)
    cond = [cd.case_id == E.case_id, cd.role == "lead", cd.assigned_at <= E.at,
            or_(cd.released_at.is_(None), cd.released_at >= E.at if inclusive else cd.released_at > E.at)]
    return cd, and_(*cond)


@dataclass
class Ctx:
    session: Session
    principal: Principal
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    area: str | None
    scheme: Scheme

    @property
    def scope(self) -> ColumnElement[bool]:
        conds = [scope.clause(self.principal, CASE_SCOPE)]
        if self.area:
            conds.append(area_filter(self.area))
        return and_(*conds)

    @property
    def due_end(self) -> dt.datetime:
        return min(self.end, self.now)


# While set (``evaluation_facts.build_day``), every aggregation is also grouped by the case's street
# and keyed "key<SEP>street": the daily facts are the same SQL, over one day, split by street.
SPLIT: ContextVar[bool] = ContextVar("evaluation_split", default=False)
SEP = facts.SEP


def _rows(session: Session, stmt: Any) -> dict[str, dict[str, Any]]:
    split = SPLIT.get()
    if split:
        stmt = stmt.add_columns(Case.street_code.label("_street")).group_by(Case.street_code)
    out: dict[str, dict[str, Any]] = {}
    for r in session.execute(stmt).mappings():
        d = dict(r)
        key = d.pop("key")
        street = d.pop("_street", None)
        if key is None:
            continue
        k = f"{key}{SEP}{street or ''}" if split else str(key)
        out[k] = {k2: (float(v or 0.0) if k2.endswith("_hours") else int(v or 0)) for k2, v in d.items()}
    return out


def _merge(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in parts:
        for k, v in p.items():
            out.setdefault(k, {}).update(v)
    return out


# ================================================================ posts


def _events(ctx: Ctx, role: str, actions: tuple[str, ...]) -> Any:
    return (select().select_from(E).join(Case, Case.id == E.case_id)
            .where(ctx.scope, _in(E.at, ctx.start, ctx.end), _role(role), E.action.in_(actions)))


def _supervisor(ctx: Ctx) -> dict[str, dict[str, Any]]:
    done, ontime = _done, _ontime
    base = _events(ctx, "supervisor", ("report", "verify", "inspect")).group_by(E.actor)
    is_report, is_verify, is_inspect = E.action == "report", E.action == "verify", E.action == "inspect"
    stmt = base.add_columns(
        E.actor.label("key"),
        _n(is_report).label("reports"),
        _n(and_(is_report, or_(Case.registered_at.is_not(None), Case.self_handled.is_(True)))).label("valid_reports"),
        _n(and_(is_verify, _step_at("verify", done))).label("verified"),
        _n(and_(is_verify, _step_at("verify", done, ontime))).label("verified_ontime"),
        _n(and_(is_inspect, _step_at("inspect", done))).label("inspected"),
        _n(and_(is_inspect, _step_at("inspect", done, ontime))).label("inspected_ontime"))
    rows = _rows(ctx.session, stmt)
    # 漏报率: cases registered in the period inside the supervisor's own area, and of them those
    # first reported by the public (citizen / hotline / Open311)
    from cityops.security.models import Account

    if rows or SPLIT.get():
        from cityops.security.models import AccountRole

        reg = aliased(CaseEvent)
        # the day's facts count every supervisor's area (a supervisor idle that day may act on
        # another day of the period); the live path only those who acted in the period
        who = (Account.id.in_(select(AccountRole.account_id).where(AccountRole.role_code == "supervisor"))
               if SPLIT.get() else Account.username.in_(sorted({k.split(SEP)[0] for k in rows})))
        stmt2 = (select(Account.username.label("key"), func.count().label("area_registered"),
                        _n(Case.source.in_(PUBLIC_SOURCES)).label("area_public_first"))
                 .select_from(reg).join(Case, Case.id == reg.case_id)
                 .join(Account, and_(Case.grid_code >= Account.area_code,
                                     Case.grid_code < Account.area_code.concat(":")))
                 .where(ctx.scope, reg.action == "register", _in(reg.at, ctx.start, ctx.end),
                        who)
                 .group_by(Account.username))
        rows = _merge(rows, _rows(ctx.session, stmt2))
    return rows


def _intake_operator(ctx: Ctx) -> dict[str, dict[str, Any]]:
    rv, ri = E.action == "request_verification", E.action == "request_inspection"
    # the register step runs from 受理 until the verification task is issued (it is cancelled then)
    stmt = _events(ctx, "intake_operator", ("accept", "request_verification", "request_inspection")).add_columns(
        E.actor.label("key"),
        _n(E.action == "accept").label("accepted"),
        _n(and_(rv, _step_at("register"))).label("verify_issued"),
        _n(and_(rv, _step_at("register", _issued_in_time))).label("verify_issued_ontime"),
        _n(and_(ri, _step_at("inspect"))).label("inspect_issued"),
        _n(and_(ri, _step_at("inspect", _issued_in_time))).label("inspect_issued_ontime")).group_by(E.actor)
    return _rows(ctx.session, stmt)


def _shift_lead(ctx: Ctx) -> dict[str, dict[str, Any]]:
    done, ontime = _done, _ontime
    reg, cl = E.action == "register", E.action == "close"
    stmt = _events(ctx, "shift_lead", ("register", "close")).add_columns(
        E.actor.label("key"),
        _n(reg).label("registered"),
        _n(and_(reg, _step_at("register", done))).label("register_due"),
        _n(and_(reg, _step_at("register", done, ontime))).label("register_ontime"),
        _n(and_(reg, Case.voided_at.is_(None))).label("accurate_registered"),
        _n(cl).label("closed"),
        _n(and_(cl, _step_at("close", done))).label("close_due"),
        _n(and_(cl, _step_at("close", done, ontime))).label("close_ontime")).group_by(E.actor)
    return _rows(ctx.session, stmt)


def _dispatcher(ctx: Ctx) -> dict[str, dict[str, Any]]:
    done, ontime = _done, _ontime
    f, g = aliased(CaseEvent), aliased(CaseEvent)
    # mis-dispatched: a later 退单 or 返工 on the case before any new dispatch
    redispatched = (select(g.id).where(g.case_id == E.case_id, g.id > E.id, g.id < f.id,
                                       g.action.in_(("dispatch", "reassign"))).correlate_except(g).exists())
    bad = (select(f.id).where(f.case_id == E.case_id, f.id > E.id, f.action.in_(("send_back", "rework")),
                              ~redispatched).correlate_except(f).exists())
    stmt = _events(ctx, "dispatcher", ("dispatch", "reassign")).add_columns(
        E.actor.label("key"),
        func.count().label("dispatched"),
        _n(_step_at("dispatch", done)).label("dispatch_due"),
        _n(_step_at("dispatch", done, ontime)).label("dispatch_ontime"),
        _n(~bad).label("accurate_dispatched")).group_by(E.actor)
    return _rows(ctx.session, stmt)


# ================================================================ departments, areas, hotline


def _step_population(ctx: Ctx, step: str, group: Any, extra: list[Cond],
                     prefix: str) -> dict[str, dict[str, Any]]:
    """Steps due in the period: finished in it, or still open with a deadline that passed in it."""
    s = aliased(CaseStep)
    finished = and_(s.status == "done", _in(s.finished_at, ctx.start, ctx.end))
    open_late = and_(s.status.in_(("open", "paused")), s.due_at >= ctx.start, s.due_at < ctx.due_end)
    g = group(s) if callable(group) else group
    cols = [g.label("key"), func.count().label(f"{prefix}_due"),
            _n(and_(finished, s.on_time.is_(True))).label(f"{prefix}_ontime")]
    if step == "handle":
        cols += [_n(finished).label("handled"),
                 func.coalesce(func.sum(case((finished, _hours(ctx.session, s.started_at, s.finished_at)), else_=0.0)),
                               0.0).label("handle_hours"),
                 func.count(func.distinct(case((open_late, s.case_id), else_=None))).label("open_overdue")]
    # the two halves are disjoint (done / open): counted apart, each on its own index, and added
    base = select(*cols).select_from(s).join(Case, Case.id == s.case_id).where(ctx.scope, s.step == step,
                                                                                 *[e(s) for e in extra]).group_by(g)
    return facts.add([_rows(ctx.session, base.where(finished)), _rows(ctx.session, base.where(open_late))])


def _event_counts(ctx: Ctx, actions: dict[str, str], group: Any, extra: list[ColumnElement[bool]],
                  by_lead: bool) -> dict[str, dict[str, Any]]:
    """Counts of timeline actions in the period, per lead department at the time (by_lead) or per
    the case column ``group``."""
    cols = [_n(E.action == a).label(name) for name, a in actions.items()]
    stmt = select().select_from(E).join(Case, Case.id == E.case_id)
    if by_lead:
        cd, cond = _lead_at()
        stmt = stmt.join(cd, cond)
        key = cd.department_code
    else:
        key = group
    stmt = stmt.add_columns(key.label("key"), *cols).where(
        ctx.scope, _in(E.at, ctx.start, ctx.end), E.action.in_(list(set(actions.values()))), *extra).group_by(key)
    return _rows(ctx.session, stmt)


def _assigned(ctx: Ctx, extra: list[ColumnElement[bool]]) -> dict[str, dict[str, Any]]:
    cd = aliased(CaseDepartment)
    stmt = (select(cd.department_code.label("key"), func.count().label("assigned")).select_from(cd)
            .join(Case, Case.id == cd.case_id)
            .where(ctx.scope, cd.role == "lead", _in(cd.assigned_at, ctx.start, ctx.end), *extra)
            .group_by(cd.department_code))
    return _rows(ctx.session, stmt)


def _department(ctx: Ctx) -> dict[str, dict[str, Any]]:
    dept = (lambda s: s.department_code)  # noqa: E731
    not_null = [lambda s: s.department_code.is_not(None)]
    rows = _merge(
        _assigned(ctx, []),
        _step_population(ctx, "acknowledge", dept, not_null, "ack"),
        _step_population(ctx, "handle", dept, not_null, "handle"),
        _event_counts(ctx, {"closed": "close", "reworks": "rework", "sendbacks": "send_back"}, None, [], True))
    for r in rows.values():
        r["close_expected"] = r.get("closed", 0) + r.get("open_overdue", 0)
        r["overdue"] = r.get("handle_due", 0) - r.get("handle_ontime", 0)
    return rows


def _area(ctx: Ctx, level: str) -> dict[str, dict[str, Any]]:
    col = AREA_LEVELS[level]
    s = aliased(CaseStep)
    early = exists().where(s.case_id == E.case_id, s.overdue_at.is_not(None), s.overdue_at <= E.at)
    reported = _rows(ctx.session, select(col.label("key"), func.count().label("reported"))
                     .where(ctx.scope, _in(Case.reported_at, ctx.start, ctx.end)).group_by(col))
    events = _rows(ctx.session, select().select_from(E).join(Case, Case.id == E.case_id).add_columns(
        col.label("key"), _n(E.action == "register").label("registered"), _n(E.action == "close").label("closed"),
        _n(and_(E.action == "close", ~early)).label("closed_ontime"),
        _n(E.action == "self_handle").label("self_handled"), _n(E.action == "rework").label("reworks"))
        .where(ctx.scope, _in(E.at, ctx.start, ctx.end),
               E.action.in_(("register", "close", "self_handle", "rework"))).group_by(col))
    rows = _merge(reported, events, _step_population(ctx, "handle", col, [], "handle"))
    for r in rows.values():
        r["close_expected"] = r.get("closed", 0) + r.get("open_overdue", 0)
        r["overdue"] = r.get("handle_due", 0) - r.get("handle_ontime", 0)
    return rows


def _hotline(ctx: Ctx) -> dict[str, dict[str, Any]]:
    hot = Case.source == "hotline"
    sat = ctx.scheme.definition.get("satisfied_values", ["satisfied", "basically_satisfied"])
    dept = (lambda s: s.department_code)  # noqa: E731
    not_null = [lambda s: s.department_code.is_not(None)]
    ev = _event_counts(ctx, {"evaluated": "evaluate", "sendbacks": "send_back", "closed": "close",
                             "reopened": "reopen"}, None, [hot], True)
    cd, cond = _lead_at()
    satisfied = _rows(ctx.session, select(cd.department_code.label("key"), func.count().label("satisfied"))
                      .select_from(E).join(Case, Case.id == E.case_id).join(cd, cond)
                      .where(ctx.scope, hot, E.action == "evaluate", _in(E.at, ctx.start, ctx.end),
                             Case.satisfaction.in_(sat)).group_by(cd.department_code))
    return _merge(_assigned(ctx, [hot]),
                  _step_population(ctx, "acknowledge", dept, [*not_null, lambda s: hot], "ack"),
                  _step_population(ctx, "handle", dept, [*not_null, lambda s: hot], "handle"), ev, satisfied)


# ================================================================ the evaluation


def _names(ctx: Ctx, subject: str, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    if subject in POSTS:
        from cityops.security.models import Account

        got = dict(ctx.session.execute(select(Account.username, Account.display_name)
                                       .where(Account.username.in_(keys or ["-"]))).all())
        return {k: (got.get(k) or k, None) for k in keys}
    if subject in ("department", "hotline"):
        depts = ref.departments(ctx.session)
        return {k: ((depts[k].name, depts[k].name_en) if k in depts else (k, None)) for k in keys}
    names = places.area_names(ctx.session)
    return {k: (names.get(k, k), None) for k in keys}


def _finish(row: dict[str, Any], spec: dict[str, Any], scheme: Scheme, subject_key: str, days: float) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(row.get(k, 0)) for k in spec["counts"]}
    for k, (num, den) in spec["rates"].items():
        d = out.get(den, 0)
        out[k] = round(out.get(num, 0) / d, 4) if d else None
    if "hours" in spec:
        h = out.get("handled", 0)
        out["avg_handle_hours"] = round(float(row.get("handle_hours", 0.0)) / h, 2) if h else None
    d = scheme.definition
    subj = d["subjects"][subject_key]
    steps: dict[str, float] = {}
    factor = float(d.get("count_period_days", 30)) / days if days else 1.0
    for name, sf in d.get("step_functions", {}).items():
        if name in subj.get("weights", {}) or name in subj.get("points", []):
            steps[name] = step_score(sf["bands"], int(row.get(sf["of"], 0)) * factor)
            out[name] = steps[name]
    out["score"] = composite(out, subj, steps)
    out["grade"] = grade_of(d["grades"], out["score"])
    return out


def evaluate(session: Session, principal: Principal, subject: str, *, date_from: dt.date | None = None,
             date_to: dt.date | None = None, area: str | None = None, scheme_version: int | None = None,
             scheme_code: str | None = None, now: dt.datetime | None = None, history: bool = False) -> dict[str, Any]:
    """Indicators, composite scores and grades of ``subject`` for the period and area (from the
    daily facts where they serve, else the history; ``history`` forces the history)."""
    if subject not in SUBJECTS:
        raise NotFound([Problem(f"unknown subject {subject!r}; subjects: {', '.join(SUBJECTS)}", ["path", "subject"],
                                "not_found")])
    if area is not None:
        if not area.isdigit() or len(area) not in (6, 9, 12, 15):
            raise InvalidInput([Problem("area must be a 6/9/12/15-digit area code", ["query", "area"])])
        mine = principal.area_code
        if principal.kind != "system" and not principal.is_district_wide and (mine is None or not (
                area.startswith(mine) or mine.startswith(area))):
            raise NotFound([Problem(f"区域 {area} 不存在或不在权限范围内 area {area} not found (or not in your scope)",
                                    ["query", "area"], "not_found")])
    explicit_now = now is not None
    now = now or sla.now()
    d_from, d_to, start, end = period(date_from, date_to, now)
    scheme = scheme_for(session, end, scheme_version, scheme_code)
    ctx = Ctx(session, principal, start, end, now, area, scheme)
    skey = SUBJECTS[subject][2]
    spec = SPEC[skey]
    raw = raw_counts(ctx, subject) if history else _cached(ctx, subject, d_from, d_to, explicit_now)
    days = float((d_to - d_from).days + 1)
    names = _names(ctx, subject, sorted(raw))
    items = []
    for key, row in raw.items():
        vals = _finish(row, spec, scheme, skey, days)
        n = names.get(key, (key, None))
        items.append({"code": key, "name": n[0], "name_en": n[1], **vals})
    items.sort(key=lambda x: (x["score"] is None, -(x["score"] or 0.0), x["code"]))
    rank = 0
    for it in items:
        if it["score"] is not None:
            rank += 1
            it["rank"] = rank
        else:
            it["rank"] = None
    total_row: dict[str, Any] = {}
    for row in raw.values():
        for k, v in row.items():
            total_row[k] = total_row.get(k, 0) + v
    total = {"code": "*", "name": "合计", "name_en": "total", **_finish(total_row, spec, scheme, skey, days)}
    if subject in POSTS:
        total.pop("score"), total.pop("grade")
    indicators = [*spec["counts"], *spec["rates"], *spec.get("hours", [])]
    indicators += [k for k in scheme.definition.get("step_functions", {})
                   if k in scheme.definition["subjects"][skey].get("weights", {})
                   or k in scheme.definition["subjects"][skey].get("points", [])]
    return {
        "subject": subject, "subject_label": SUBJECTS[subject][0], "subject_label_en": SUBJECTS[subject][1],
        "from": d_from.isoformat(), "to": d_to.isoformat(), "start": start, "end": end, "area": area,
        "computed_at": now,
        "scheme": {"code": scheme.code, "version": scheme.version, "name": scheme.name,
                   "weights": scheme.definition["subjects"][skey].get("weights", {}),
                   "points": scheme.definition["subjects"][skey].get("points", []),
                   "inverse": scheme.definition["subjects"][skey].get("inverse", []),
                   "grades": scheme.definition["grades"]},
        "indicators": [{"key": k, "label": LABELS[k][0], "label_en": LABELS[k][1], "kind": LABELS[k][2]}
                       for k in indicators],
        "items": items, "total": total,
    }


def raw_counts(ctx: Ctx, subject: str) -> dict[str, dict[str, Any]]:
    """The raw counts of ``subject`` over ``ctx``'s period, straight from the history (SQL)."""
    if subject in AREA_LEVELS:
        return _area(ctx, subject)
    return {"supervisor": _supervisor, "intake_operator": _intake_operator, "shift_lead": _shift_lead,
            "dispatcher": _dispatcher, "department": _department, "hotline": _hotline}[subject](ctx)


_RAW_CACHE: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
_RAW_LOCK = threading.Lock()


def _cached(ctx: Ctx, subject: str, d_from: dt.date, d_to: dt.date, explicit_now: bool) -> dict[str, dict[str, Any]]:
    """``_planned``, remembered while nothing it reads can have changed: the same database, scope,
    subject, period and scheme, no new case event, no newly built facts, the same minute (open
    steps turn overdue as time passes). Calls with an explicit ``now`` (tests, jobs) are not cached."""
    if explicit_now:
        return _planned(ctx, subject, d_from, d_to)
    from cityops.cases.evaluation_models import EvaluationFactDay

    p = ctx.principal
    version = ctx.session.execute(select(select(func.max(CaseEvent.id)).scalar_subquery(),
                                         select(func.max(EvaluationFactDay.built_at)).scalar_subquery(),
                                         select(func.count()).select_from(EvaluationFactDay).scalar_subquery())).one()
    key = (database_key(ctx.session), p.kind, p.area_code, p.department_code, subject, ctx.area, d_from, d_to,
           ctx.scheme.code, ctx.scheme.version, tuple(version), int(ctx.now.timestamp() // 60))
    with _RAW_LOCK:
        hit = _RAW_CACHE.get(key)
    if hit is not None:
        return {k: dict(v) for k, v in hit.items()}
    out = _planned(ctx, subject, d_from, d_to)
    with _RAW_LOCK:
        if len(_RAW_CACHE) > 256:
            _RAW_CACHE.clear()
        _RAW_CACHE[key] = {k: dict(v) for k, v in out.items()}
    return out


def _planned(ctx: Ctx, subject: str, d_from: dt.date, d_to: dt.date) -> dict[str, dict[str, Any]]:
    """The raw counts from the daily facts where they hold the period's days (built and not made
    stale since), and from the history for the other days (today always): the same numbers
    either way (tests/test_evaluation_facts.py), but a 30-day evaluation reads ~30 days of facts
    instead of the events of every case."""
    street = facts.street_of(ctx.principal, ctx.area)
    if street is None:
        return raw_counts(ctx, subject)
    today = ctx.now.astimezone(TZ).date()
    fact_days, live = facts.plan(ctx.session, d_from, d_to, today)
    parts = [facts.read(ctx.session, subject, fact_days, street)] if fact_days else []
    for a, b in live:
        _a, _b, start, end = period(a, b, ctx.now)
        # counted as the facts are (split by street, then summed), so that both halves agree
        token = SPLIT.set(True)
        try:
            split = raw_counts(Ctx(ctx.session, ctx.principal, start, end, ctx.now, ctx.area, ctx.scheme), subject)
        finally:
            SPLIT.reset(token)
        parts.append(facts.add([{k.split(SEP)[0]: v} for k, v in split.items()]))
    out = facts.add(parts)
    if subject == "supervisor":  # a supervisor's area counts ride on his own activity in the period, as live
        out = {k: v for k, v in out.items() if "reports" in v}
    return out


def daily_ontime_close(session: Session, principal: Principal, d_from: dt.date, d_to: dt.date,
                       now: dt.datetime | None = None) -> dict[dt.date, tuple[int, int]]:
    """(closed, closed on time) of each Shanghai day, as the areas' 按期结案率 counts them (the
    evaluation page's trend; the same figures as its tables)."""
    now = now or sla.now()
    _a, _b, _s, end = period(d_from, d_to, now)
    scheme = scheme_for(session, end)
    street = facts.street_of(principal, None)
    today = now.astimezone(TZ).date()
    if street is None:
        fact_days: list[dt.date] = []
        live = [(d_from, d_to)]
    else:
        fact_days, live = facts.plan(session, d_from, d_to, today)
    fields = ("closed", "closed_ontime")
    got = facts.read_by_day(session, "street", fact_days, street or "", fields)
    out = {d: (int(v["closed"]), int(v["closed_ontime"])) for d, v in got.items()}
    for a, b in live:
        d = a
        while d <= b:
            _x, _y, start, stop = period(d, d, now)
            rows = raw_counts(Ctx(session, principal, start, stop, now, None, scheme), "street")
            out[d] = (sum(int(r.get("closed", 0)) for r in rows.values()),
                      sum(int(r.get("closed_ontime", 0)) for r in rows.values()))
            d += dt.timedelta(days=1)
    return out


def to_csv(result: dict[str, Any], lang: str = "zh") -> str:
    """The evaluation as CSV (UTF-8 with BOM so that Excel opens the Chinese headers)."""
    buf = io.StringIO()
    w = SafeWriter(buf)  # spreadsheet-safe cells, CRLF
    keys = [i["key"] for i in result["indicators"]]
    col = 1 if lang == "en" else 0

    def lab(k: str) -> str:
        return LABELS[k][col]

    w.writerow(["排名 rank" if lang != "en" else "rank", "code", "名称" if lang != "en" else "name",
                *[lab(k) for k in keys], lab("score"), lab("grade")])
    for it in [*result["items"], result["total"]]:
        cells = []
        for k in keys:
            v = it.get(k)
            cells.append("" if v is None else f"{v * 100:.2f}%" if LABELS[k][2] == "rate" else v)
        w.writerow([it.get("rank") or "", it["code"], (it.get("name_en") or it["name"]) if lang == "en" else it["name"],
                    *cells, "" if it.get("score") is None else it["score"], it.get("grade") or ""])
    return "\ufeff" + buf.getvalue()


def console_rankings(session: Session, principal: Principal, *, start: dt.datetime, end: dt.datetime
                     ) -> dict[str, list[dict[str, Any]]]:
    """Departments, streets and workers (all four posts) ranked, for the console's evaluation page."""
    d_from = start.astimezone(TZ).date()
    d_to = (end - dt.timedelta(seconds=1)).astimezone(TZ).date()
    out: dict[str, list[dict[str, Any]]] = {}
    dept = evaluate(session, principal, "department", date_from=d_from, date_to=d_to)
    out["departments"] = [{"code": i["code"], "name": i["name"], "name_en": i["name_en"],
                           "rate": i["ontime_handle_rate"], "score": i["score"], "grade": i["grade"]}
                          for i in dept["items"]]
    streets = evaluate(session, principal, "street", date_from=d_from, date_to=d_to)
    out["streets"] = [{"code": i["code"], "name": i["name"], "name_en": i["name_en"],
                       "ontime_close_rate": i["ontime_close_rate"], "score": i["score"], "grade": i["grade"]}
                      for i in streets["items"]]
    workers = []
    rate_key = {"supervisor": "ontime_verify_rate", "intake_operator": "verify_issue_ontime_rate",
                "shift_lead": "ontime_close_rate", "dispatcher": "ontime_dispatch_rate"}
    for post in POSTS:
        res = evaluate(session, principal, post, date_from=d_from, date_to=d_to)
        for i in res["items"]:
            workers.append({"code": i["code"], "name": f"{i['name']}（{SUBJECTS[post][0]}）",
                            "name_en": f"{i['name']} ({SUBJECTS[post][1]})", "rate": i.get(rate_key[post]),
                            "score": i["score"], "grade": i["grade"]})
    out["workers"] = workers
    return out


def parse_date(v: str | None, name: str) -> dt.date | None:
    if v is None or not v.strip():
        return None
    try:
        return dt.date.fromisoformat(v.strip()[:10]) if len(v.strip()) >= 10 else dt.date.fromisoformat(v.strip())
    except ValueError:
        raise InvalidInput([Problem(f"{name} must be a date YYYY-MM-DD (Asia/Shanghai)", ["query", name])])
