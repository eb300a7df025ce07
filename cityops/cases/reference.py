"""Reference data of the case engine, as versioned data: departments, the catalogue (versions,
categories, crosswalk), working calendars, the transition table, escalation rules and the intake
policy. Import/export (JSON, CSV) is all-or-nothing with every problem listed.

Reads used on the hot path (intake, actions) go through small in-process caches: catalogue
versions and calendar versions are immutable once imported, so they are cached by id; the
mutable bits (which version is active, departments, policy, rules, transitions) for a few
seconds, and are dropped at once in the process that changes them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.cases import workcal
from cityops.cases.models import (
    CalendarDay,
    Case,
    CatalogueVersion,
    Category,
    CategoryCrosswalk,
    Department,
    EscalationRule,
    PolicySetting,
    SignalFilter,
    WorkCalendarRow,
)
from cityops.db import database_key
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.lifecycle import Context, Machine
from cityops.lifecycle import service as lifecycle
from cityops.security import audit
from cityops.security.principal import Principal

DATA = Path(__file__).resolve().parent / "data"
STEPS = ("accept", "verify", "register", "dispatch", "acknowledge", "handle", "inspect", "close", "evaluate")
STEP_LABELS = {
    "accept": ("受理", "accept"), "verify": ("核实", "verify"), "register": ("立案", "register"),
    "dispatch": ("派遣", "dispatch"), "acknowledge": ("签收", "acknowledge"), "handle": ("处置", "handle"),
    "inspect": ("核查", "inspect"), "close": ("结案", "close"), "evaluate": ("评价回访", "evaluate"),
}
KINDS = ("component", "event", "matter")
KIND_LABELS = {"component": ("部件", "component"), "event": ("事件", "event"), "matter": ("事项", "matter")}
URGENCIES = ("normal", "urgent", "critical")
URGENCY_LABELS = {"normal": ("一般", "normal"), "urgent": ("紧急", "urgent"), "critical": ("特急", "critical")}
RULES = ("owner_first", "territory_first")
RULE_LABELS = {"owner_first": ("先属主后属地", "owner first, then territory"),
               "territory_first": ("先属地后属主", "territory first, then owner")}
DEPARTMENT_KINDS = ("district_department", "owner_unit", "maintenance_unit", "street_centre", "command_centre")
UNIT_ALIASES = {"工作时": "working_hour", "工作日": "working_day", "自然时": "natural_hour", "自然日": "natural_day",
                "小时": "natural_hour", "wh": "working_hour", "wd": "working_day", "h": "natural_hour", "d": "natural_day"}
# type-code length per standard (major + minor digits); other standard_refs: any digits
TYPE_CODE_LENGTH = {"GB/T 30428.2-2013": 4, "GB/T 47678.5-2026": 5}
KIND_DIGIT = {"component": "1", "event": "2", "matter": "2"}
TTL = 5.0


def _now() -> dt.datetime:
    return clock.now()


def _key(session: Session) -> str:
    return database_key(session)


class _TTLCache:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, name: str, loader: Any, ttl: float = TTL) -> Any:
        k = (_key(session), name)
        hit = self._data.get(k)
        t = time.monotonic()
        if hit is not None and (ttl <= 0 or t - hit[0] < ttl):
            return hit[1]
        value = loader()
        with self._lock:
            self._data[k] = (t, value)
        return value

    def drop(self, session: Session | None = None, name: str | None = None) -> None:
        with self._lock:
            if session is None:
                self._data.clear()
                return
            u = _key(session)
            for k in list(self._data):
                if k[0] == u and (name is None or k[1] == name):
                    self._data.pop(k, None)


CACHE = _TTLCache()


def invalidate(session: Session | None = None) -> None:
    CACHE.drop(session)


def _load_json(name: str) -> dict[str, Any]:
    with open(DATA / name, encoding="utf-8") as fh:
        return dict(json.load(fh))


# ================================================================ departments


@dataclass(frozen=True)
class DepartmentInfo:
    id: int
    code: str
    name: str
    name_en: str | None
    kind: str
    area_code: str | None
    active: bool


def departments(session: Session) -> dict[str, DepartmentInfo]:
    def load() -> dict[str, DepartmentInfo]:
        rows = session.execute(select(Department.id, Department.code, Department.name, Department.name_en,
                                      Department.kind, Department.area_code, Department.active)).all()
        return {r.code: DepartmentInfo(r.id, r.code, r.name, r.name_en, r.kind, r.area_code, r.active) for r in rows}

    return dict(CACHE.get(session, "departments", load))


def department_name(session: Session, code: str | None) -> str | None:
    if not code:
        return None
    d = departments(session).get(code)
    return d.name if d else code


def territory_department(street_code: str) -> str:
    return "jz" + street_code


def department_problems(row: dict[str, Any], loc: list[str | int]) -> list[Problem]:
    out = []
    code = row.get("code")
    if not isinstance(code, str) or not code or len(code) > 40 or not code.replace("_", "").isalnum():
        out.append(Problem("code must be 1-40 letters, digits or _", [*loc, "code"]))
    if not isinstance(row.get("name"), str) or not row["name"].strip() or len(row["name"]) > 100:
        out.append(Problem("name must be 1-100 characters", [*loc, "name"]))
    if row.get("kind", "district_department") not in DEPARTMENT_KINDS:
        out.append(Problem(f"kind must be one of {', '.join(DEPARTMENT_KINDS)}", [*loc, "kind"]))
    ac = row.get("area_code")
    if ac is not None and (not isinstance(ac, str) or not ac.isdigit() or len(ac) not in (6, 9, 12, 15)):
        out.append(Problem("area_code must be a 6/9/12/15-digit area code", [*loc, "area_code"]))
    return out


def upsert_departments(session: Session, principal: Principal, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Create or update departments by code (all-or-nothing)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            problems.append(Problem("each department must be an object", ["departments", i]))
            continue
        problems += department_problems(r, ["departments", i])
        if r.get("code") in seen:
            problems.append(Problem(f"department {r.get('code')} appears twice", ["departments", i, "code"]))
        seen.add(str(r.get("code")))
    if problems:
        raise InvalidInput(problems)
    existing = {d.code: d for d in session.scalars(select(Department))}
    created = updated = 0
    for r in rows:
        d = existing.get(r["code"])
        values = {"name": r["name"].strip(), "name_en": r.get("name_en"), "kind": r.get("kind", "district_department"),
                  "area_code": r.get("area_code"), "phone": r.get("phone"), "active": bool(r.get("active", True))}
        if d is None:
            session.add(Department(code=r["code"], **values))
            created += 1
        else:
            for k, v in values.items():
                setattr(d, k, v)
            updated += 1
    session.flush()
    audit.record(session, principal, "department.upsert", "department", None, detail={"created": created, "updated": updated})
    CACHE.drop(session, "departments")
    return {"created": created, "updated": updated}


def list_departments(session: Session, *, kind: str | None = None, area_prefix: str | None = None) -> list[Department]:
    stmt = select(Department).order_by(Department.kind, Department.code)
    if kind:
        stmt = stmt.where(Department.kind == kind)
    rows = list(session.scalars(stmt))
    if area_prefix:
        rows = [d for d in rows if d.area_code and (d.area_code.startswith(area_prefix) or area_prefix.startswith(d.area_code))]
    return rows


def seed_departments(session: Session, principal: Principal) -> dict[str, int]:
    return upsert_departments(session, principal, _load_json("departments.json")["departments"])


# ================================================================ catalogue


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    version_id: int
    code: str
    kind: str
    major_code: str
    minor_code: str
    type_code: str
    name_zh: str
    name_en: str | None
    time_limits: dict[str, dict[str, Any]]
    urgent_time_limits: dict[str, dict[str, Any]]
    urgency_default: str
    rule: str
    default_department_code: str | None
    co_department_codes: tuple[str, ...]
    area_overrides: tuple[tuple[str, str], ...]  # (prefix, department) longest prefix first
    registration_criteria: str | None = None
    closure_criteria: str | None = None
    enabled: bool = True

    def limit(self, step: str, urgency: str = "normal") -> tuple[float, str]:
        if urgency in ("urgent", "critical") and step in self.urgent_time_limits:
            lim = self.urgent_time_limits[step]
        else:
            lim = self.time_limits.get(step) or {"value": 1, "unit": "working_day"}
        return float(lim["value"]), str(lim["unit"])


@dataclass
class _Catalogue:
    active_id: int | None
    by_version: dict[int, dict[str, CategoryInfo]] = field(default_factory=dict)
    by_id: dict[int, CategoryInfo] = field(default_factory=dict)
    crosswalk: dict[int, list[int]] = field(default_factory=dict)  # category id -> equivalent ids


def _category_info(c: Category, v: CatalogueVersion) -> CategoryInfo:
    tl = {**(v.default_time_limits or {}), **(c.time_limits or {})}
    ul = {**(v.urgent_time_limits or {}), **(c.urgent_time_limits or {})}
    ov = sorted(((o["area_prefix"], o["department_code"]) for o in (c.area_overrides or [])), key=lambda t: -len(t[0]))
    return CategoryInfo(c.id, c.version_id, c.code, c.kind, c.major_code, c.minor_code, c.type_code, c.name_zh,
                        c.name_en, tl, ul, c.urgency_default, c.responsibility_rule, c.default_department_code,
                        tuple(c.co_department_codes or ()), tuple(ov), c.registration_criteria, c.closure_criteria,
                        c.enabled)


def active_version_id(session: Session, at: dt.datetime | None = None) -> int | None:
    at = at or _now()
    stmt = (select(CatalogueVersion.id).where(CatalogueVersion.status == "published",
                                              CatalogueVersion.valid_from <= at)
            .order_by(CatalogueVersion.valid_from.desc(), CatalogueVersion.id.desc()))
    rows = session.execute(stmt).all()
    for (vid,) in rows:
        v = session.get(CatalogueVersion, vid)
        if v is not None and (v.valid_to is None or v.valid_to > at):
            return int(vid)
    return int(rows[0][0]) if rows else None


def catalogue(session: Session) -> _Catalogue:
    def load() -> _Catalogue:
        cat = _Catalogue(active_version_id(session))
        versions = {v.id: v for v in session.scalars(select(CatalogueVersion))}
        for c in session.scalars(select(Category)):
            info = _category_info(c, versions[c.version_id])
            cat.by_version.setdefault(c.version_id, {})[c.code] = info
            cat.by_id[c.id] = info
        for a, b in session.execute(select(CategoryCrosswalk.from_category_id, CategoryCrosswalk.to_category_id)
                                    .where(CategoryCrosswalk.relation == "equivalent")):
            cat.crosswalk.setdefault(a, []).append(b)
            cat.crosswalk.setdefault(b, []).append(a)
        return cat

    return CACHE.get(session, "catalogue", load)  # type: ignore[no-any-return]


def category_by_id(session: Session, category_id: int) -> CategoryInfo:
    cat = catalogue(session)
    info = cat.by_id.get(category_id)
    if info is None:
        CACHE.drop(session, "catalogue")
        info = catalogue(session).by_id.get(category_id)
    if info is None:
        raise NotFound([Problem(f"no category with id {category_id}", ["category_id"], "not_found")])
    return info


def resolve_category(session: Session, code: str, loc: list[str | int] | None = None) -> CategoryInfo:
    """The category of the active catalogue for ``code`` (a code of the active version, or of any
    other version mapped to the active one through the crosswalk)."""
    loc = loc or ["category_code"]
    cat = catalogue(session)
    if cat.active_id is None:
        raise InvalidInput([Problem("no published catalogue: import one first (cityops cases seed-reference)", loc)])
    active = cat.by_version.get(cat.active_id, {})
    info = active.get(code)
    if info is None:
        for vid, cats in cat.by_version.items():
            if vid == cat.active_id or code not in cats:
                continue
            for other in cat.crosswalk.get(cats[code].id, []):
                o = cat.by_id.get(other)
                if o is not None and o.version_id == cat.active_id:
                    info = o
                    break
            if info is not None:
                break
    if info is None:
        raise InvalidInput([Problem(f"unknown category code {code!r} in the active catalogue (nor mapped to it)", loc)])
    if not info.enabled:
        raise InvalidInput([Problem(f"category {code} ({info.name_zh}) is disabled", loc)])
    return info


def _parse_limit(v: Any, loc: list[str | int]) -> tuple[dict[str, Any] | None, list[Problem]]:
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return None, []
        num = ""
        for ch in s:
            if ch.isdigit() or ch == ".":
                num += ch
            else:
                break
        word = s[len(num):].strip()
        try:
            v = {"value": float(num), "unit": UNIT_ALIASES.get(word, word)}
        except ValueError:
            return None, [Problem(f"time limit {s!r} is not like '4 working_hour' or '4工作时'", loc)]
    if not isinstance(v, dict):
        return None, [Problem("a time limit is {'value': number, 'unit': ...}", loc)]
    value: Any = v.get("value")
    unit: Any = UNIT_ALIASES.get(str(v.get("unit")), v.get("unit"))
    probs = []
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value <= 1000):
        probs.append(Problem("time limit value must be a number in (0, 1000]", [*loc, "value"]))
    if unit not in workcal.UNITS:
        probs.append(Problem(f"time limit unit must be one of {', '.join(workcal.UNITS)} (工作时/工作日/自然时)", [*loc, "unit"]))
    return ({"value": value, "unit": unit} if not probs else None), probs


def _limits(v: Any, loc: list[str | int]) -> tuple[dict[str, Any], list[Problem]]:
    if v is None:
        return {}, []
    if not isinstance(v, dict):
        return {}, [Problem("time limits must be an object step -> limit", loc)]
    out: dict[str, Any] = {}
    probs: list[Problem] = []
    for step, lim in v.items():
        if step not in STEPS:
            probs.append(Problem(f"unknown step {step!r}; steps: {', '.join(STEPS)}", [*loc, step]))
            continue
        parsed, p = _parse_limit(lim, [*loc, step])
        probs += p
        if parsed:
            out[step] = parsed
    return out, probs


def _check_version_meta(v: dict[str, Any], loc: list[str | int]) -> list[Problem]:
    probs = []
    for k, n in (("code", 60), ("name", 200), ("standard_ref", 60)):
        if not isinstance(v.get(k), str) or not v[k].strip() or len(v[k]) > n:
            probs.append(Problem(f"{k} must be 1-{n} characters", [*loc, k]))
    if v.get("status", "published") not in ("draft", "published", "retired"):
        probs.append(Problem("status must be draft, published or retired", [*loc, "status"]))
    for k in ("valid_from", "valid_to"):
        if v.get(k) is not None:
            try:
                d = dt.datetime.fromisoformat(str(v[k]))
                if d.tzinfo is None:
                    probs.append(Problem(f"{k} needs a time-zone offset (e.g. +08:00)", [*loc, k]))
            except ValueError:
                probs.append(Problem(f"{k} is not an ISO-8601 date-time", [*loc, k]))
    return probs


def _check_category(c: Any, i: int, standard_ref: str, depts: set[str], loc0: list[str | int]) -> tuple[dict[str, Any], list[Problem]]:
    loc: list[str | int] = [*loc0, i]
    if not isinstance(c, dict):
        return {}, [Problem("each category must be an object", loc)]
    probs: list[Problem] = []
    kind = c.get("kind")
    if kind not in KINDS:
        probs.append(Problem(f"kind must be one of {', '.join(KINDS)} (部件/事件/事项)", [*loc, "kind"]))
    s = {k: (str(c.get(k)).strip() if c.get(k) is not None else "") for k in ("code", "major_code", "minor_code", "type_code")}
    for k in ("major_code", "minor_code", "type_code", "code"):
        if not s[k].isdigit():
            probs.append(Problem(f"{k} must be digits", [*loc, k]))
    if s["type_code"] and s["type_code"] != s["major_code"] + s["minor_code"]:
        probs.append(Problem(f"type_code {s['type_code']} must be major_code + minor_code", [*loc, "type_code"]))
    want = TYPE_CODE_LENGTH.get(standard_ref)
    if want and len(s["type_code"]) != want:
        probs.append(Problem(f"{standard_ref} type codes have {want} digits (2 major + {want - 2} minor), got "
                             f"{len(s['type_code'])}", [*loc, "type_code"]))
    if want and kind in KIND_DIGIT and s["code"] != KIND_DIGIT[kind] + s["type_code"]:
        probs.append(Problem(f"code must be the kind digit ({KIND_DIGIT[kind]}) followed by the type code", [*loc, "code"]))
    if not isinstance(c.get("name_zh"), str) or not c["name_zh"].strip() or len(c["name_zh"]) > 100:
        probs.append(Problem("name_zh must be 1-100 characters", [*loc, "name_zh"]))
    if c.get("urgency_default", "normal") not in URGENCIES:
        probs.append(Problem(f"urgency_default must be one of {', '.join(URGENCIES)}", [*loc, "urgency_default"]))
    rule = c.get("responsibility_rule") or ("owner_first" if kind == "component" else "territory_first")
    if rule not in RULES:
        probs.append(Problem(f"responsibility_rule must be one of {', '.join(RULES)}", [*loc, "responsibility_rule"]))
    dd = c.get("default_department_code")
    if dd is not None and (not isinstance(dd, str) or dd not in depts):
        probs.append(Problem(f"unknown department {dd!r}", [*loc, "default_department_code"]))
    co = c.get("co_department_codes") or []
    if not isinstance(co, list):
        probs.append(Problem("co_department_codes must be a list", [*loc, "co_department_codes"]))
        co = []
    for j, d in enumerate(co):
        if not isinstance(d, str) or d not in depts:
            probs.append(Problem(f"unknown department {d!r}", [*loc, "co_department_codes", j]))
    ov = c.get("area_overrides") or []
    if not isinstance(ov, list):
        probs.append(Problem("area_overrides must be a list", [*loc, "area_overrides"]))
        ov = []
    for j, o in enumerate(ov):
        if not isinstance(o, dict) or not str(o.get("area_prefix", "")).isdigit() or not (6 <= len(str(o.get("area_prefix"))) <= 15):
            probs.append(Problem("area override needs area_prefix (6-15 digits)", [*loc, "area_overrides", j]))
        elif not isinstance(o.get("department_code"), str) or o.get("department_code") not in depts:
            probs.append(Problem(f"unknown department {o.get('department_code')!r}", [*loc, "area_overrides", j]))
    tl, p = _limits(c.get("time_limits"), [*loc, "time_limits"])
    probs += p
    ul, p = _limits(c.get("urgent_time_limits"), [*loc, "urgent_time_limits"])
    probs += p
    row = {"code": s["code"], "kind": kind, "major_code": s["major_code"], "major_name": c.get("major_name"),
           "minor_code": s["minor_code"], "type_code": s["type_code"], "name_zh": str(c.get("name_zh") or "").strip(),
           "name_en": c.get("name_en"), "registration_criteria": c.get("registration_criteria"),
           "closure_criteria": c.get("closure_criteria"), "time_limits": tl, "urgent_time_limits": ul,
           "urgency_default": c.get("urgency_default", "normal"), "responsibility_rule": rule,
           "default_department_code": dd, "co_department_codes": co, "area_overrides": ov,
           "code_note": c.get("code_note"), "is_local_extension": bool(c.get("is_local_extension", False)),
           "enabled": bool(c.get("enabled", True))}
    return row, probs


def import_catalogue(session: Session, principal: Principal, doc: Any) -> dict[str, Any]:
    """Import a ``cityops-catalogue/1`` document (versions + crosswalks). All-or-nothing."""
    if not isinstance(doc, dict) or not isinstance(doc.get("versions"), list):
        raise InvalidInput([Problem("a catalogue document has a 'versions' list", ["body", "versions"])])
    depts = set(departments(session))
    existing_codes = set(session.scalars(select(CatalogueVersion.code)))
    problems: list[Problem] = []
    parsed: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for vi, v in enumerate(doc["versions"]):
        loc: list[str | int] = ["versions", vi]
        if not isinstance(v, dict):
            problems.append(Problem("each version must be an object", loc))
            continue
        problems += _check_version_meta(v, loc)
        if isinstance(v.get("code"), str) and v.get("code") in existing_codes:
            problems.append(Problem(f"catalogue version {v.get('code')} exists already (versions are immutable: "
                                    "import under a new code)", [*loc, "code"], "conflict"))
        _, p = _limits(v.get("default_time_limits"), [*loc, "default_time_limits"])
        problems += p
        _, p = _limits(v.get("urgent_time_limits"), [*loc, "urgent_time_limits"])
        problems += p
        cats = v.get("categories")
        if not isinstance(cats, list) or not cats:
            problems.append(Problem("a version needs a non-empty 'categories' list", [*loc, "categories"]))
            continue
        rows: list[dict[str, Any]] = []
        seen_code: dict[str, int] = {}
        seen_type: dict[tuple[str, str], int] = {}
        for i, c in enumerate(cats):
            row, p = _check_category(c, i, str(v.get("standard_ref", "")), depts, [*loc, "categories"])
            problems += p
            if row:
                if row["code"] in seen_code:
                    problems.append(Problem(f"code {row['code']} repeats row {seen_code[row['code']]}",
                                            [*loc, "categories", i, "code"]))
                seen_code.setdefault(row["code"], i)
                tk = (str(row["kind"]), row["type_code"])
                if tk in seen_type:
                    problems.append(Problem(f"{row['kind']} type code {row['type_code']} repeats row {seen_type[tk]}",
                                            [*loc, "categories", i, "type_code"]))
                seen_type.setdefault(tk, i)
                rows.append(row)
        parsed.append((v, rows))
    # crosswalks refer to version codes (new or existing) and category codes
    new_cats = {str(v.get("code")): {r["code"] for r in rows} for v, rows in parsed}
    cw_in = doc.get("crosswalks") or []
    if not isinstance(cw_in, list):
        problems.append(Problem("crosswalks must be a list", ["crosswalks"]))
        cw_in = []
    old_cats: dict[str, dict[str, int]] = {}
    for vi, cw in enumerate(cw_in):
        loc = ["crosswalks", vi]
        if not isinstance(cw, dict) or not isinstance(cw.get("rows"), list):
            problems.append(Problem("a crosswalk has from_version, to_version and rows", loc))
            continue
        for side in ("from_version", "to_version"):
            vc = cw.get(side)
            if not isinstance(vc, str) or (vc not in new_cats and vc not in existing_codes):
                problems.append(Problem(f"unknown catalogue version {vc!r}", [*loc, side]))
            elif vc in existing_codes and vc not in old_cats:
                vid = session.scalar(select(CatalogueVersion.id).where(CatalogueVersion.code == vc))
                old_cats[vc] = dict(session.execute(select(Category.code, Category.id).where(Category.version_id == vid)).all())
        for ri, r in enumerate(cw["rows"]):
            if not isinstance(r, dict):
                problems.append(Problem("a crosswalk row is {from, to, relation}", [*loc, "rows", ri]))
                continue
            for side, vside in (("from", "from_version"), ("to", "to_version")):
                codes = new_cats.get(str(cw.get(vside))) or set(old_cats.get(str(cw.get(vside)), {}))
                if not isinstance(r.get(side), str) or r.get(side) not in codes:
                    problems.append(Problem(f"category {r.get(side)!r} is not in version {cw.get(vside)}", [*loc, "rows", ri, side]))
            if r.get("relation", "equivalent") not in ("equivalent", "broader", "narrower"):
                problems.append(Problem("relation must be equivalent, broader or narrower", [*loc, "rows", ri, "relation"]))
    if problems:
        raise InvalidInput(problems)
    ids: dict[str, dict[str, int]] = {k: dict(v) for k, v in old_cats.items()}
    created = []
    for v, rows in parsed:
        ver = CatalogueVersion(
            code=v["code"], name=v["name"], name_en=v.get("name_en"), standard_ref=v["standard_ref"],
            status=v.get("status", "published"),
            valid_from=dt.datetime.fromisoformat(v["valid_from"]) if v.get("valid_from") else _now(),
            valid_to=dt.datetime.fromisoformat(v["valid_to"]) if v.get("valid_to") else None,
            default_time_limits=_limits(v.get("default_time_limits"), [])[0],
            urgent_time_limits=_limits(v.get("urgent_time_limits"), [])[0], note=v.get("note"),
            imported_by=principal.username)
        session.add(ver)
        session.flush()
        objs = [Category(version_id=ver.id, **r) for r in rows]
        session.add_all(objs)
        session.flush()
        ids[ver.code] = {o.code: o.id for o in objs}
        created.append({"code": ver.code, "id": ver.id, "categories": len(objs)})
    n_cw = 0
    for cw in cw_in:
        a, b = ids[cw["from_version"]], ids[cw["to_version"]]
        for r in cw["rows"]:
            session.add(CategoryCrosswalk(from_category_id=a[r["from"]], to_category_id=b[r["to"]],
                                          relation=r.get("relation", "equivalent")))
            n_cw += 1
    session.flush()
    audit.record(session, principal, "catalogue.import", "catalogue_version", ",".join(str(c["code"]) for c in created),
                 detail={"versions": created, "crosswalk_rows": n_cw})
    CACHE.drop(session, "catalogue")
    return {"versions": created, "crosswalk_rows": n_cw}


CSV_COLUMNS = ["code", "kind", "major_code", "major_name", "minor_code", "type_code", "name_zh", "name_en",
               "registration_criteria", "closure_criteria", "urgency_default", "responsibility_rule",
               "default_department_code", "co_department_codes", "area_overrides",
               *[f"limit_{s}" for s in STEPS], *[f"urgent_limit_{s}" for s in STEPS], "code_note", "enabled"]


def catalogue_from_csv(text: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A one-version catalogue document from CSV (columns: CSV_COLUMNS; lists separated by ';',
    area overrides as prefix=department; limits like '4 working_hour' or '4工作时')."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ("code", "kind", "major_code", "minor_code", "type_code", "name_zh") if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput([Problem(f"CSV is missing the columns {', '.join(missing)}", ["body", "header"])])
    cats = []
    for r in reader:
        c: dict[str, Any] = {k: (r.get(k) or None) for k in ("code", "kind", "major_code", "major_name", "minor_code", "type_code",
                                                         "name_zh", "name_en", "registration_criteria", "closure_criteria",
                                                         "default_department_code", "code_note")}
        c["urgency_default"] = r.get("urgency_default") or "normal"
        c["responsibility_rule"] = r.get("responsibility_rule") or None
        c["co_department_codes"] = [x.strip() for x in (r.get("co_department_codes") or "").split(";") if x.strip()]
        c["area_overrides"] = [{"area_prefix": p.split("=", 1)[0].strip(), "department_code": p.split("=", 1)[1].strip() if "=" in p else ""}
                               for p in (r.get("area_overrides") or "").split(";") if p.strip()]
        c["time_limits"] = {s: r[f"limit_{s}"] for s in STEPS if r.get(f"limit_{s}")}
        c["urgent_time_limits"] = {s: r[f"urgent_limit_{s}"] for s in STEPS if r.get(f"urgent_limit_{s}")}
        c["enabled"] = (r.get("enabled") or "true").strip().lower() not in ("0", "false", "no", "否")
        cats.append(c)
    return {"versions": [{**meta, "categories": cats}]}


def _fmt_limit(lim: dict[str, Any] | None) -> str:
    if not lim:
        return ""
    v = lim["value"]
    return f"{int(v) if float(v).is_integer() else v} {lim['unit']}"


def export_catalogue(session: Session, version_code: str, fmt: str = "json") -> tuple[str, str]:
    """(content, media type) of one version as JSON (importable) or CSV."""
    v = session.scalar(select(CatalogueVersion).where(CatalogueVersion.code == version_code))
    if v is None:
        raise NotFound([Problem(f"no catalogue version {version_code}", ["path", "code"], "not_found")])
    cats = list(session.scalars(select(Category).where(Category.version_id == v.id).order_by(Category.code)))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for c in cats:
            row = {k: getattr(c, k, None) for k in CSV_COLUMNS if hasattr(c, k)}
            row["co_department_codes"] = ";".join(c.co_department_codes or [])
            row["area_overrides"] = ";".join(f"{o['area_prefix']}={o['department_code']}" for o in c.area_overrides or [])
            for s in STEPS:
                row[f"limit_{s}"] = _fmt_limit((c.time_limits or {}).get(s))
                row[f"urgent_limit_{s}"] = _fmt_limit((c.urgent_time_limits or {}).get(s))
            row["enabled"] = "true" if c.enabled else "false"
            w.writerow(row)
        return "\ufeff" + buf.getvalue(), "text/csv; charset=utf-8"
    doc = {"format": "cityops-catalogue/1", "versions": [version_out(v) | {"categories": [category_out(c) for c in cats]}]}
    links = session.execute(
        select(CategoryCrosswalk, Category.code, Category.version_id).join(Category, Category.id == CategoryCrosswalk.to_category_id)
        .where(CategoryCrosswalk.from_category_id.in_([c.id for c in cats]))).all()
    if links:
        by_id = {c.id: c.code for c in cats}
        groups: dict[int, list[dict[str, Any]]] = {}
        for link, to_code, to_vid in links:
            groups.setdefault(to_vid, []).append({"from": by_id[link.from_category_id], "to": to_code, "relation": link.relation})
        doc["crosswalks"] = [{"from_version": v.code, "to_version": session.get(CatalogueVersion, vid).code,  # type: ignore[union-attr]
                              "rows": rows} for vid, rows in groups.items()]
    return json.dumps(doc, ensure_ascii=False, indent=1, default=str), "application/json"


def version_out(v: CatalogueVersion) -> dict[str, Any]:
    return {"code": v.code, "name": v.name, "name_en": v.name_en, "standard_ref": v.standard_ref, "status": v.status,
            "valid_from": v.valid_from.isoformat() if v.valid_from else None,
            "valid_to": v.valid_to.isoformat() if v.valid_to else None,
            "default_time_limits": v.default_time_limits, "urgent_time_limits": v.urgent_time_limits, "note": v.note}


def category_out(c: Category) -> dict[str, Any]:
    return {k: getattr(c, k) for k in ("code", "kind", "major_code", "major_name", "minor_code", "type_code", "name_zh",
                                       "name_en", "registration_criteria", "closure_criteria", "time_limits",
                                       "urgent_time_limits", "urgency_default", "responsibility_rule",
                                       "default_department_code", "co_department_codes", "area_overrides", "code_note",
                                       "is_local_extension", "enabled")}


def list_versions(session: Session) -> list[dict[str, Any]]:
    active = active_version_id(session)
    counts = dict(session.execute(select(Category.version_id, func.count()).group_by(Category.version_id)).all())
    out = []
    for v in session.scalars(select(CatalogueVersion).order_by(CatalogueVersion.valid_from)):
        out.append(version_out(v) | {"id": v.id, "active": v.id == active, "categories": counts.get(v.id, 0)})
    return out


def list_categories(session: Session, version_code: str | None = None, *, kind: str | None = None,
                    q: str | None = None) -> list[dict[str, Any]]:
    if version_code:
        vid = session.scalar(select(CatalogueVersion.id).where(CatalogueVersion.code == version_code))
        if vid is None:
            raise NotFound([Problem(f"no catalogue version {version_code}", ["query", "version"], "not_found")])
    else:
        vid = active_version_id(session)
    v = session.get(CatalogueVersion, vid) if vid else None
    if v is None:
        return []
    stmt = select(Category).where(Category.version_id == vid).order_by(Category.code)
    if kind:
        stmt = stmt.where(Category.kind == kind)
    out = []
    for c in session.scalars(stmt):
        if q and q not in c.name_zh and q.lower() not in (c.name_en or "").lower() and not c.code.startswith(q):
            continue
        info = _category_info(c, v)
        out.append(category_out(c) | {"id": c.id, "version": v.code, "standard_ref": v.standard_ref,
                                      "effective_time_limits": info.time_limits})
    return out


def _valid_from(ctx: Context) -> None:
    at = (ctx.body or {}).get("valid_from")
    if at is not None:
        ctx.obj.valid_from = at


VERSION_MACHINE = Machine(
    name="catalogue_version",
    states={"draft": {"zh": "草稿", "en": "draft"}, "published": {"zh": "已发布", "en": "published"},
            "retired": {"zh": "已停用", "en": "retired"}},
    actions={"publish": {"zh": "发布", "en": "publish"}, "retire": {"zh": "停用", "en": "retire"}},
    default_permission="catalogue.write", effects={"valid_from": _valid_from}, state_attr="status")
VERSION_TABLE = VERSION_MACHINE.load_file(DATA / "catalogue_version_lifecycle.json")
STATUS_ACTIONS = {"published": "publish", "retired": "retire"}


def set_version_status(session: Session, principal: Principal, code: str, status: str,
                       valid_from: dt.datetime | None = None) -> dict[str, Any]:
    """Publish or retire a catalogue version through its lifecycle table (a version never goes back
    to draft; an illegal change is 409 naming the state and what is allowed)."""
    v = session.scalar(select(CatalogueVersion).where(CatalogueVersion.code == code))
    if v is None:
        raise NotFound([Problem(f"no catalogue version {code}", ["path", "code"], "not_found")])
    action = STATUS_ACTIONS.get(status)
    if action is None:
        raise InvalidInput([Problem("status must be published or retired (a version never goes back to draft)",
                                    ["query", "status"])])
    lifecycle.perform(session, principal, VERSION_TABLE, v, action, {"valid_from": valid_from},
                      audit_detail={"status": status})
    session.flush()
    CACHE.drop(session, "catalogue")
    return version_out(v) | {"id": v.id}


def seed_catalogue(session: Session, principal: Principal) -> dict[str, Any]:
    doc = _load_json("catalogue_default.json")
    have = set(session.scalars(select(CatalogueVersion.code)))
    doc["versions"] = [v for v in doc["versions"] if v["code"] not in have]
    if not doc["versions"]:
        return {"versions": [], "crosswalk_rows": 0}
    return import_catalogue(session, principal, doc)


# ================================================================ routing


@dataclass(frozen=True)
class RouteProposal:
    department_code: str | None
    co_department_codes: tuple[str, ...]
    rule: str
    explanation: str


def propose_route(session: Session, cat: CategoryInfo, grid_code: str, street_code: str) -> RouteProposal:
    """The responsible department by the catalogue rule and the location (area overrides first)."""
    depts = departments(session)

    def ok(code: str | None) -> bool:
        return bool(code) and code in depts and depts[code].active

    territory = territory_department(street_code)
    lead: str | None = None
    why = ""
    for prefix, dept in cat.area_overrides:
        if grid_code.startswith(prefix) and ok(dept):
            lead, why = dept, f"区域规则 area override {prefix} -> {dept}"
            break
    rule = cat.rule
    if lead is None:
        if rule == "owner_first":
            if ok(cat.default_department_code):
                lead, why = cat.default_department_code, "先属主：主管/权属单位 owner first"
            elif ok(territory):
                lead, why = territory, "先属主后属地：无权属单位，属地兜底 territorial fallback"
        else:
            if ok(territory):
                lead, why = territory, "先属地：街镇城运中心 territory first"
            elif ok(cat.default_department_code):
                lead, why = cat.default_department_code, "先属地后属主：属地无承办单位，转主管部门 owner after territory"
    co = [d for d in cat.co_department_codes if ok(d) and d != lead]
    if rule == "territory_first" and lead == territory and ok(cat.default_department_code) \
            and cat.default_department_code not in co:
        co.insert(0, cat.default_department_code)  # type: ignore[arg-type]
    return RouteProposal(lead, tuple(co), rule, why or "无可用承办单位 no department available")


# ================================================================ calendars


def calendar_problems(doc: Any) -> list[Problem]:
    if not isinstance(doc, dict):
        return [Problem("a calendar document is an object", ["body"])]
    probs = []
    if not isinstance(doc.get("code"), str) or not doc["code"].strip() or len(doc["code"]) > 40:
        probs.append(Problem("code must be 1-40 characters", ["body", "code"]))
    if not isinstance(doc.get("name"), str) or not doc["name"].strip():
        probs.append(Problem("name is required", ["body", "name"]))
    periods = doc.get("periods")
    if not isinstance(periods, list) or not periods:
        probs.append(Problem("periods must be a list of [start, end] HH:MM pairs", ["body", "periods"]))
        periods = []
    parsed = []
    for i, p in enumerate(periods):
        try:
            a, b = p
            parsed.append((workcal.parse_hhmm(a), workcal.parse_hhmm(b)))
        except (workcal.CalendarError, ValueError, TypeError, AttributeError) as exc:
            probs.append(Problem(f"period must be [HH:MM, HH:MM]: {exc}", ["body", "periods", i]))
    weekend = doc.get("weekend", [5, 6])
    if not isinstance(weekend, list) or any(not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 6 for w in weekend):
        probs.append(Problem("weekend is a list of weekday numbers 0 (Monday) .. 6 (Sunday)", ["body", "weekend"]))
        weekend = []
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(str(doc.get("timezone", "Asia/Shanghai")))
    except Exception:  # noqa: BLE001 - any failure means an unknown zone
        probs.append(Problem("unknown time zone", ["body", "timezone"]))
    days = doc.get("days", [])
    if not isinstance(days, list):
        probs.append(Problem("days must be a list", ["body", "days"]))
        days = []
    seen: dict[str, int] = {}
    for i, d in enumerate(days):
        if not isinstance(d, dict):
            probs.append(Problem("a day is {date, kind, name}", ["body", "days", i]))
            continue
        try:
            dt.date.fromisoformat(str(d.get("date")))
        except ValueError:
            probs.append(Problem("date must be YYYY-MM-DD", ["body", "days", i, "date"]))
        if d.get("kind") not in ("holiday", "workday"):
            probs.append(Problem("kind must be holiday or workday (调休 make-up working day)", ["body", "days", i, "kind"]))
        if str(d.get("date")) in seen:
            probs.append(Problem(f"date {d.get('date')} repeats row {seen[str(d.get('date'))]}", ["body", "days", i, "date"]))
        seen.setdefault(str(d.get("date")), i)
    if not probs:
        try:
            workcal.WorkCalendar(periods=tuple(parsed), weekend=frozenset(weekend))
        except workcal.CalendarError as exc:
            probs.append(Problem(str(exc), ["body", "periods"]))
    return probs


def import_calendar(session: Session, principal: Principal, doc: Any) -> dict[str, Any]:
    """A new version of the calendar ``code`` (older versions stay, inactive: cases keep theirs)."""
    probs = calendar_problems(doc)
    if probs:
        raise InvalidInput(probs)
    last = session.scalar(select(func.max(WorkCalendarRow.version)).where(WorkCalendarRow.code == doc["code"])) or 0
    for old in session.scalars(select(WorkCalendarRow).where(WorkCalendarRow.code == doc["code"])):
        old.active = False
    row = WorkCalendarRow(code=doc["code"], version=last + 1, name=doc["name"], name_en=doc.get("name_en"),
                          timezone=doc.get("timezone", "Asia/Shanghai"), periods=[list(p) for p in doc["periods"]],
                          weekend=list(doc.get("weekend", [5, 6])), active=True, source=doc.get("source"),
                          created_by=principal.username)
    session.add(row)
    session.flush()
    session.add_all([CalendarDay(calendar_id=row.id, day=dt.date.fromisoformat(d["date"]), kind=d["kind"],
                                 name=d.get("name"), name_en=d.get("name_en"), verified=bool(d.get("verified", True)),
                                 note=d.get("note")) for d in doc.get("days", [])])
    session.flush()
    audit.record(session, principal, "calendar.import", "work_calendar", f"{row.code}@{row.version}",
                 detail={"days": len(doc.get("days", []))})
    CACHE.drop(session, "calendar_active")
    return {"id": row.id, "code": row.code, "version": row.version, "days": len(doc.get("days", []))}


_cal_by_id: dict[tuple[str, int], workcal.WorkCalendar] = {}


def calendar_by_id(session: Session, calendar_id: int) -> workcal.WorkCalendar:
    k = (_key(session), calendar_id)
    cal = _cal_by_id.get(k)
    if cal is not None:
        return cal
    row = session.get(WorkCalendarRow, calendar_id)
    if row is None:
        raise NotFound([Problem(f"no calendar {calendar_id}", ["calendar_id"], "not_found")])
    days = session.execute(select(CalendarDay.day, CalendarDay.kind).where(CalendarDay.calendar_id == calendar_id)).all()
    cal = workcal.make_calendar(periods=[tuple(p) for p in row.periods], weekend=row.weekend,  # type: ignore[misc]
                                holidays=[d for d, k in days if k == "holiday"],
                                workdays=[d for d, k in days if k == "workday"], timezone=row.timezone,
                                name=f"{row.code}@{row.version}")
    _cal_by_id[k] = cal
    return cal


_DEFAULT_CAL = workcal.make_calendar(name="built-in 09:00-12:00, 13:00-18:00, Mon-Fri")


def active_calendar(session: Session) -> tuple[int | None, workcal.WorkCalendar]:
    """(calendar id, calendar) used for new deadlines; the built-in Mon-Fri calendar if none."""
    def load() -> int | None:
        return session.scalar(select(WorkCalendarRow.id).where(WorkCalendarRow.active.is_(True))
                              .order_by(WorkCalendarRow.id.desc()).limit(1))

    cid = CACHE.get(session, "calendar_active", load)
    if cid is None:
        return None, _DEFAULT_CAL
    return cid, calendar_by_id(session, cid)


def calendar_for(session: Session, calendar_id: int | None) -> workcal.WorkCalendar:
    return calendar_by_id(session, calendar_id) if calendar_id else active_calendar(session)[1]


def export_calendar(session: Session, calendar_id: int | None = None) -> dict[str, Any]:
    cid = calendar_id or active_calendar(session)[0]
    row = session.get(WorkCalendarRow, cid) if cid else None
    if row is None:
        raise NotFound([Problem("no working calendar", ["calendar"], "not_found")])
    days = session.scalars(select(CalendarDay).where(CalendarDay.calendar_id == row.id).order_by(CalendarDay.day))
    return {"id": row.id, "code": row.code, "version": row.version, "name": row.name, "name_en": row.name_en,
            "timezone": row.timezone, "periods": row.periods, "weekend": row.weekend, "active": row.active,
            "source": row.source,
            "days": [{"date": d.day.isoformat(), "kind": d.kind, "name": d.name, "name_en": d.name_en,
                      "verified": d.verified, **({"note": d.note} if d.note else {})} for d in days]}


def list_calendars(session: Session) -> list[dict[str, Any]]:
    return [{"id": r.id, "code": r.code, "version": r.version, "name": r.name, "active": r.active,
             "created_at": r.created_at} for r in session.scalars(select(WorkCalendarRow).order_by(WorkCalendarRow.id))]


def seed_calendar(session: Session, principal: Principal) -> dict[str, Any] | None:
    doc = _load_json("calendar_cn.json")
    if session.scalar(select(WorkCalendarRow.id).where(WorkCalendarRow.code == doc["code"]).limit(1)):
        return None
    return import_calendar(session, principal, doc)


# ================================================================ policy, rules, transitions


def default_policy() -> dict[str, Any]:
    return dict(_load_json("policy.json")["settings"])


POLICY_DEFAULTS = default_policy()


def policy(session: Session) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        got: dict[str, Any] = {k: v for k, v in session.execute(select(PolicySetting.key, PolicySetting.value)).all()}
        return {**POLICY_DEFAULTS, **got}

    return dict(CACHE.get(session, "policy", load))


_POLICY_TYPES: dict[str, Any] = {
    "dedupe_radius_m": (float, 0, 5000), "dedupe_window_hours": (float, 0, 24 * 365),
    "signal_window_minutes": (float, 0, 60 * 24 * 30), "signal_min_confidence": (float, 0, 1),
    "yellow_fraction": (float, 0.05, 0.99), "public_rate_per_minute": (float, 0, 100000),
    "max_media_bytes": (int, 1024, 200 * 1024 * 1024), "geojson_cap": (int, 1, 100000),
}


def set_policy(session: Session, principal: Principal, changes: dict[str, Any]) -> dict[str, Any]:
    probs = []
    for k, v in changes.items():
        if k not in POLICY_DEFAULTS:
            probs.append(Problem(f"unknown setting {k}", ["body", k]))
        elif k in _POLICY_TYPES:
            typ, lo, hi = _POLICY_TYPES[k]
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                probs.append(Problem(f"{k} must be a number in [{lo}, {hi}]", ["body", k]))
        elif not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            probs.append(Problem(f"{k} must be a list of strings", ["body", k]))
    if probs:
        raise InvalidInput(probs)
    for k, v in changes.items():
        row = session.get(PolicySetting, k)
        if row is None:
            session.add(PolicySetting(key=k, value=v, updated_by=principal.username))
        else:
            row.value, row.updated_by = v, principal.username
    session.flush()
    audit.record(session, principal, "case_policy.set", "case_policy", None, detail=changes)
    CACHE.drop(session, "policy")
    return policy(session)


@dataclass(frozen=True)
class RuleInfo:
    code: str
    name: str
    trigger: str
    steps: tuple[str, ...] | None
    urgencies: tuple[str, ...] | None
    targets: tuple[dict[str, str], ...]
    level: str


def escalation_rules(session: Session) -> list[RuleInfo]:
    def load() -> list[RuleInfo]:
        return [RuleInfo(r.code, r.name, r.trigger, tuple(r.steps) if r.steps else None,
                         tuple(r.urgencies) if r.urgencies else None, tuple(r.targets or ()), r.level)
                for r in session.scalars(select(EscalationRule).where(EscalationRule.enabled.is_(True))
                                         .order_by(EscalationRule.id))]

    return list(CACHE.get(session, "rules", load))


TRIGGERS = ("overdue", "yellow", "urgent_reported", "urgent_dispatched")


def replace_escalation_rules(session: Session, principal: Principal, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    probs = []
    for i, r in enumerate(rules):
        loc: list[str | int] = ["body", i]
        if not isinstance(r, dict):
            probs.append(Problem("a rule is an object", loc))
            continue
        if not isinstance(r.get("code"), str) or not r["code"] or len(r["code"]) > 40:
            probs.append(Problem("code must be 1-40 characters", [*loc, "code"]))
        if r.get("trigger") not in TRIGGERS:
            probs.append(Problem(f"trigger must be one of {', '.join(TRIGGERS)}", [*loc, "trigger"]))
        if r.get("level", "escalation") not in ("escalation", "warning"):
            probs.append(Problem("level must be escalation or warning", [*loc, "level"]))
        targets = r.get("targets")
        if not isinstance(targets, list) or not targets:
            probs.append(Problem("targets must be a non-empty list", [*loc, "targets"]))
        else:
            for j, t in enumerate(targets):
                if not isinstance(t, dict) or not isinstance(t.get("role"), str):
                    probs.append(Problem("a target is {role, department?: lead, area?: street|community|grid}", [*loc, "targets", j]))
                elif t.get("department") not in (None, "lead") or t.get("area") not in (None, "street", "community", "grid", "district"):
                    probs.append(Problem("department may be 'lead'; area one of street/community/grid/district", [*loc, "targets", j]))
        for k, allowed in (("steps", STEPS), ("urgencies", URGENCIES)):
            v = r.get(k)
            if v is not None and (not isinstance(v, list) or any(x not in allowed for x in v)):
                probs.append(Problem(f"{k} must be null or a list of {', '.join(allowed)}", [*loc, k]))
    codes = [str(r.get("code")) for r in rules if isinstance(r, dict)]
    if len(codes) != len(set(codes)):
        probs.append(Problem("rule codes must be unique", ["body"]))
    if probs:
        raise InvalidInput(probs)
    session.execute(delete(EscalationRule))
    for r in rules:
        session.add(EscalationRule(code=r["code"], name=r.get("name") or r["code"], trigger=r["trigger"], steps=r.get("steps"),
                                   urgencies=r.get("urgencies"), targets=r["targets"], level=r.get("level", "escalation"),
                                   enabled=bool(r.get("enabled", True))))
    session.flush()
    audit.record(session, principal, "escalation_rule.replace", "escalation_rule", None, detail={"rules": len(rules)})
    CACHE.drop(session, "rules")
    return [rule_out(r) for r in session.scalars(select(EscalationRule).order_by(EscalationRule.id))]


def rule_out(r: EscalationRule) -> dict[str, Any]:
    return {"code": r.code, "name": r.name, "trigger": r.trigger, "steps": r.steps, "urgencies": r.urgencies,
            "targets": r.targets, "level": r.level, "enabled": r.enabled}


def list_escalation_rules(session: Session) -> list[dict[str, Any]]:
    return [rule_out(r) for r in session.scalars(select(EscalationRule).order_by(EscalationRule.id))]


WORKFLOW = _load_json("workflow.json")
STATES: dict[str, dict[str, Any]] = WORKFLOW["states"]
ACTIONS: dict[str, dict[str, str]] = WORKFLOW["actions"]
OPEN_STATES = tuple(s for s, v in STATES.items() if v["open"])


def seed_policy(session: Session, principal: Principal) -> None:
    """Escalation rules and the default signal filter (if none yet); the transition table's rows are
    seeded by ``cityops.cases.transitions.seed_transitions``."""
    doc = _load_json("policy.json")
    if session.scalar(select(func.count()).select_from(EscalationRule)) == 0:
        replace_escalation_rules(session, principal, doc["escalation_rules"])
    if session.scalar(select(func.count()).select_from(SignalFilter)) == 0:
        for f in doc["signal_filters"]:
            session.add(SignalFilter(created_by=principal.username, **f))
    session.flush()


def seed_reference(session: Session, principal: Principal) -> dict[str, Any]:
    """Departments, default catalogue, calendar, rules, transitions (idempotent)."""
    out: dict[str, Any] = {"departments": seed_departments(session, principal)}
    out["catalogue"] = seed_catalogue(session, principal)
    out["calendar"] = seed_calendar(session, principal)
    seed_policy(session, principal)
    return out


def ensure_reference(session: Session) -> None:
    """Load the reference data when a database has none (fresh databases, tests)."""
    from cityops.security.principal import SYSTEM

    if session.scalar(select(CatalogueVersion.id).limit(1)) is None:
        seed_reference(session, SYSTEM)


def case_counts_by_category(session: Session) -> dict[int, int]:
    return dict(session.execute(select(Case.category_id, func.count()).group_by(Case.category_id)).all())


def conflict(msg: str, loc: list[str | int]) -> Conflict:
    return Conflict([Problem(msg, loc, "conflict")])


def active_catalogue_code(session: Session) -> str | None:
    """The code of the active catalogue version (e.g. GBT47678.5-2026-SJ), or None."""
    vid = catalogue(session).active_id
    if vid is None:
        return None
    return session.scalar(select(CatalogueVersion.code).where(CatalogueVersion.id == vid))
