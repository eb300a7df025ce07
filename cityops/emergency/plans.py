"""Plans (预案) as structured, versioned data.

A plan document (JSON or YAML; its JSON Schema is ``plan_schema()``, generated from the Pydantic
models below, which also validate every import) has a type (总体/专项/部门/基层/单位), a scope
(categories, subtypes, areas) and response levels I–IV; each level names its start conditions, its
command structure (指挥部, working groups, roles) and each department's tasks with deadlines. A level
may ``inherit`` a lower level (its tasks and command), as higher responses do everything the lower
ones do and more. Every import of a changed document is a new immutable version; activations keep
the version they were created from. Review and drill reminders are timers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.emergency import rules
from cityops.emergency.models_command import Plan, PlanVersion
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.lifecycle import service as lifecycle
from cityops.security import audit
from cityops.security.principal import Principal

PLAN_TYPES = {"overall": ("总体预案", "overall plan"), "special": ("专项预案", "special-topic plan"),
              "department": ("部门预案", "departmental plan"), "grassroots": ("基层组织预案", "grassroots plan"),
              "unit": ("企事业单位预案", "enterprise / institution plan")}
STREET = "@street"  # task owner placeholder: the street/town centre of each street the incident covers
REVIEW_TIMER, DRILL_TIMER, PLAN_REF = "emergency.plan_review", "emergency.plan_drill", "em_plan"
KEY = r"^[A-Za-z0-9_.-]{1,60}$"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanTask(_M):
    key: str = Field(pattern=KEY, description="stable within the plan: the same key at two levels is one task")
    department: str = Field(min_length=1, max_length=40, description="owner department code, or @street")
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    deadline_minutes: float = Field(gt=0, le=60 * 24 * 30)
    group: str | None = Field(default=None, max_length=40, description="working group code")


class Group(_M):
    code: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=100)
    lead_department: str = Field(min_length=1, max_length=40)
    members: list[str] = []
    duties: str | None = None


class Role(_M):
    code: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=100)
    holder: str = Field(min_length=1, max_length=100)
    department: str | None = None


class Command(_M):
    headquarters: str = Field(min_length=1, max_length=100)
    commander: str = Field(min_length=1, max_length=100)
    deputies: list[str] = []
    office: str | None = None
    groups: list[Group] = []
    roles: list[Role] = []


class LevelSpec(_M):
    inherits: rules.Level | None = None
    start_conditions: list[str] = []
    measures: list[str] = []
    command: Command | None = None
    tasks: list[PlanTask] = []


class PlanScope(_M):
    categories: list[str] = Field(min_length=1)
    subtypes: list[str] = []
    areas: list[str] = []


class Reminders(_M):
    review_every_days: int = Field(default=1095, ge=30, le=3650)
    drill_every_days: int = Field(default=1095, ge=30, le=3650)
    remind_days_before: int = Field(default=30, ge=0, le=365)
    last_review: dt.date | None = None
    last_drill: dt.date | None = None


class PlanDoc(_M):
    """A contingency plan (预案) document, format ``cityops-plan/1``."""

    format: Literal["cityops-plan/1"] = "cityops-plan/1"
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{2,60}$")
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    type: Literal["overall", "special", "department", "grassroots", "unit"]
    edition: str = Field(min_length=1, max_length=40)
    issued_by: str = Field(min_length=1, max_length=100)
    owner_department: str = Field(min_length=1, max_length=40)
    effective_from: dt.date | None = None
    scope: PlanScope
    levels: dict[rules.Level, LevelSpec] = Field(min_length=1)
    reminders: Reminders = Field(default_factory=Reminders)
    sections: dict[str, str] = {}

    @model_validator(mode="after")
    def _structure(self) -> PlanDoc:
        for lv, spec in self.levels.items():
            seen, cur = {lv}, spec.inherits
            while cur is not None:
                if cur in seen or cur not in self.levels:
                    raise ValueError(f"level {lv}: inherits a missing level or loops ({cur})")
                if rules.level_rank(cur) < rules.level_rank(lv):
                    raise ValueError(f"level {lv} may only inherit a lower level (not {cur})")
                seen.add(cur)
                cur = self.levels[cur].inherits
            keys = [t.key for t in spec.tasks]
            dup = sorted({k for k in keys if keys.count(k) > 1})
            if dup:
                raise ValueError(f"level {lv}: task key(s) {', '.join(dup)} appear twice")
        return self


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of plan documents (what import validates)."""
    s = PlanDoc.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["$id"] = "https://cityops.example/schemas/cityops-plan-1.json"
    return s


def tasks_for(doc: PlanDoc, level: str) -> dict[str, PlanTask]:
    """The tasks of a level (with those of the levels it inherits; the higher level's entry for a key wins)."""
    chain: list[LevelSpec] = []
    cur: str | None = level
    while cur is not None and cur in doc.levels:
        spec = doc.levels[cur]
        chain.append(spec)
        cur = spec.inherits
    out: dict[str, PlanTask] = {}
    for spec in reversed(chain):
        for t in spec.tasks:
            out[t.key] = t
    return out


def command_for(doc: PlanDoc, level: str) -> Command | None:
    cur: str | None = level
    while cur is not None and cur in doc.levels:
        spec = doc.levels[cur]
        if spec.command is not None:
            return spec.command
        cur = spec.inherits
    return None


# ---------------------------------------------------------------- import / export


def parse_text(text: str, fmt: str | None = None) -> Any:
    """A JSON or YAML document (``fmt`` json / yaml, or guessed: JSON first)."""
    if fmt not in (None, "json", "yaml"):
        raise InvalidInput([Problem("format 须为 json 或 yaml", ["query", "format"], "value_error")])
    if fmt in (None, "json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if fmt == "json":
                raise InvalidInput([Problem(f"JSON 无法解析 unreadable JSON: {exc.msg} (line {exc.lineno})",
                                            ["body"], "value_error")])
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput([Problem(f"YAML 无法解析 unreadable YAML{where}: {exc}", ["body"], "value_error")])


def validate_doc(session: Session, raw: Any) -> PlanDoc:
    """Schema, then the references the schema cannot check (departments, categories, areas); every
    problem named, nothing written."""
    from cityops.cases import service as cases
    from cityops.geo import service as geo

    try:
        doc = PlanDoc.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(rules.pydantic_problems(exc, ["body"]))
    depts = set(cases.departments(session))
    probs: list[Problem] = []

    def dept(code: str | None, loc: list[str | int], allow_street: bool = False) -> None:
        if code is None or (allow_street and code == STREET):
            return
        if code not in depts:
            probs.append(Problem(f"未知部门 unknown department {code!r}", loc, "unknown"))

    dept(doc.owner_department, ["body", "owner_department"])
    cats = {c.code: c for c in rules.categories().categories}
    for i, c in enumerate(doc.scope.categories):
        if c not in cats:
            probs.append(Problem(f"未知事件类别 unknown category {c!r}", ["body", "scope", "categories", i], "unknown"))
    subs = {s.code for c in doc.scope.categories if c in cats for s in cats[c].subtypes}
    for i, s in enumerate(doc.scope.subtypes):
        if s not in subs:
            probs.append(Problem(f"子类不属于所列类别 subtype {s!r} is not in the plan's categories",
                                 ["body", "scope", "subtypes", i], "unknown"))
    for i, a in enumerate(doc.scope.areas):
        try:
            geo.get_area(session, a)
        except NotFound:
            probs.append(Problem(f"未知区划 unknown area {a!r}", ["body", "scope", "areas", i], "unknown"))
    for lv, spec in doc.levels.items():
        for j, t in enumerate(spec.tasks):
            dept(t.department, ["body", "levels", lv, "tasks", j, "department"], allow_street=True)
        if spec.command:
            for j, g in enumerate(spec.command.groups):
                dept(g.lead_department, ["body", "levels", lv, "command", "groups", j, "lead_department"])
                for k, m in enumerate(g.members):
                    dept(m, ["body", "levels", lv, "command", "groups", j, "members", k], allow_street=True)
            for j, r in enumerate(spec.command.roles):
                dept(r.department, ["body", "levels", lv, "command", "roles", j, "department"])
        cmd = command_for(doc, lv)
        groups = {g.code for g in cmd.groups} if cmd else set()
        for j, t in enumerate(spec.tasks):
            if t.group and t.group not in groups:
                probs.append(Problem(f"未知工作组 unknown working group {t.group!r} (level {lv}'s command has "
                                     f"{', '.join(sorted(groups)) or 'none'})", ["body", "levels", lv, "tasks", j, "group"],
                                     "unknown"))
    if probs:
        raise InvalidInput(probs)
    return doc


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _due(last: dt.date | None, every_days: int, before_days: int, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    base = dt.datetime.combine(last, dt.time(9), rules_tz()) if last else at
    due = (base + dt.timedelta(days=every_days)).astimezone(dt.UTC)
    return due, max(at, due - dt.timedelta(days=before_days))


def rules_tz() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def import_plan(session: Session, principal: Principal, raw: Any) -> dict[str, Any]:
    """Validate and store a plan document as the plan's next version (unchanged: no new version)."""
    doc = validate_doc(session, raw)
    data = doc.model_dump(mode="json")
    digest = _digest(data)
    at = jobs.now()
    plan = session.scalar(select(Plan).where(Plan.code == doc.code).with_for_update())
    created = plan is None
    if plan is None:
        plan = Plan(code=doc.code, name=doc.name, plan_type=doc.type, created_at=at, updated_at=at)
        session.add(plan)
        session.flush()
    else:
        cur = session.get(PlanVersion, plan.current_version_id) if plan.current_version_id else None
        if cur is not None and cur.digest == digest:
            return {"code": plan.code, "version": cur.version, "created": False, "changed": False}
    n = (session.scalar(select(func.max(PlanVersion.version)).where(PlanVersion.plan_id == plan.id)) or 0) + 1
    v = PlanVersion(plan_id=plan.id, version=n, label=doc.edition, doc=data, digest=digest, imported_at=at,
                    imported_by=principal.username[:80])
    session.add(v)
    session.flush()
    plan.name, plan.name_en, plan.plan_type = doc.name, doc.name_en, doc.type
    plan.owner_department_code, plan.current_version_id, plan.active, plan.updated_at = (
        doc.owner_department, v.id, True, at)
    r = doc.reminders
    review_due, review_at = _due(r.last_review or (doc.effective_from or None), r.review_every_days,
                                 r.remind_days_before, at)
    drill_due, drill_at = _due(r.last_drill or (plan.last_drill_at.date() if plan.last_drill_at else None),
                               r.drill_every_days, r.remind_days_before, at)
    plan.next_review_at, plan.next_drill_at = review_due, drill_due
    jobs.schedule_timer(session, REVIEW_TIMER, PLAN_REF, plan.id, review_at, {"due_at": review_due.isoformat()})
    jobs.schedule_timer(session, DRILL_TIMER, PLAN_REF, plan.id, drill_at, {"due_at": drill_due.isoformat()})
    lifecycle.add_entry(session, principal, "plan", plan.id, "import", at=at, note=f"{doc.name}（{doc.edition}）",
                        data={"version": n, "digest": digest[:12]})
    audit.record(session, principal, "plan.import", "plan", plan.id, detail={"code": plan.code, "version": n})
    session.flush()
    return {"code": plan.code, "version": n, "created": created, "changed": True}


def get_version(session: Session, code: str, version: int | None = None) -> tuple[Plan, PlanVersion]:
    plan = session.scalar(select(Plan).where(Plan.code == code))
    if plan is None:
        raise NotFound([Problem(f"未找到预案 plan {code} not found", ["path", "code"], "not_found")])
    vid = plan.current_version_id
    stmt = (select(PlanVersion).where(PlanVersion.plan_id == plan.id, PlanVersion.version == version)
            if version is not None else select(PlanVersion).where(PlanVersion.id == vid))
    v = session.scalar(stmt)
    if v is None:
        raise NotFound([Problem(f"预案 {code} 无版本 {version}", ["query", "version"], "not_found")])
    return plan, v


def doc_of(v: PlanVersion) -> PlanDoc:
    return PlanDoc.model_validate(v.doc)


def export_plan(session: Session, code: str, fmt: str = "json", version: int | None = None) -> tuple[str, str]:
    """(text, media type) of a plan version as JSON or YAML (re-importable)."""
    _plan, v = get_version(session, code, version)
    if fmt == "yaml":
        return yaml.safe_dump(v.doc, allow_unicode=True, sort_keys=False), "application/yaml"
    if fmt != "json":
        raise InvalidInput([Problem("format 须为 json 或 yaml", ["query", "format"], "value_error")])
    return json.dumps(v.doc, ensure_ascii=False, indent=1), "application/json"


def plan_summary(plan: Plan, v: PlanVersion | None, lang: str = "zh") -> dict[str, Any]:
    doc = doc_of(v) if v is not None else None
    return {"code": plan.code, "name": plan.name, "name_en": plan.name_en, "type": plan.plan_type,
            "type_name": PLAN_TYPES[plan.plan_type][1 if lang == "en" else 0], "active": plan.active,
            "owner_department": plan.owner_department_code, "version": v.version if v else None,
            "edition": v.label if v else None, "imported_at": v.imported_at if v else None,
            "scope": doc.scope.model_dump() if doc else None,
            "levels": {lv: len(tasks_for(doc, lv)) for lv in rules.LEVELS if lv in doc.levels} if doc else {},
            "next_review_at": plan.next_review_at, "next_drill_at": plan.next_drill_at,
            "last_drill_at": plan.last_drill_at}


def list_plans(session: Session, lang: str = "zh") -> list[dict[str, Any]]:
    rows = session.execute(select(Plan, PlanVersion).outerjoin(PlanVersion, PlanVersion.id == Plan.current_version_id)
                           .order_by(Plan.plan_type, Plan.code)).all()
    return [plan_summary(p, v, lang) for p, v in rows]


def plan_detail(session: Session, code: str, version: int | None = None, lang: str = "zh") -> dict[str, Any]:
    plan, v = get_version(session, code, version)
    doc = doc_of(v)
    versions = session.execute(select(PlanVersion.version, PlanVersion.label, PlanVersion.imported_at,
                                      PlanVersion.imported_by).where(PlanVersion.plan_id == plan.id)
                               .order_by(PlanVersion.version)).all()
    out = plan_summary(plan, v, lang)
    out["doc"] = v.doc
    out["versions"] = [dict(r._mapping) for r in versions]
    out["tasks_by_level"] = {lv: [t.model_dump() for t in tasks_for(doc, lv).values()]
                             for lv in rules.LEVELS if lv in doc.levels}
    from cityops.cases import service as cases

    depts = cases.departments(session)
    en = lang == "en"
    out["department_names"] = {c: ((d.name_en or d.name) if en else d.name) for c, d in depts.items()}
    out["department_names"][STREET] = "属地街镇城运中心" if not en else "the street/town centre"
    cats = {c.code: c for c in rules.categories().categories}
    subs = {s.code: s for c in cats.values() for s in c.subtypes}
    out["scope_names"] = [*((cats[c].en if en else cats[c].zh) for c in doc.scope.categories if c in cats),
                          *((subs[s].en if en else subs[s].zh) for s in doc.scope.subtypes if s in subs)]
    from cityops.emergency.machines import label_timeline

    out["timeline"] = label_timeline(lifecycle.timeline(session, "plan", plan.id), None, lang)
    return out


def matching_plans(session: Session, category: str, subtype: str, area_code: str) -> list[tuple[Plan, PlanVersion]]:
    """Active plans whose scope covers an incident: special / departmental / grassroots plans of its
    kind and place first; the overall plan only when none fits."""
    rows = session.execute(select(Plan, PlanVersion).join(PlanVersion, PlanVersion.id == Plan.current_version_id)
                           .where(Plan.active.is_(True)).order_by(Plan.code)).all()
    fit = []
    for p, v in rows:
        sc = v.doc.get("scope", {})
        if category not in sc.get("categories", []):
            continue
        if sc.get("subtypes") and subtype not in sc["subtypes"]:
            continue
        areas = sc.get("areas") or []
        if areas and not any(area_code.startswith(a) or a.startswith(area_code) for a in areas):
            continue
        fit.append((p, v))
    specific = [(p, v) for p, v in fit if p.plan_type != "overall"]
    return specific or fit


def record_drill(session: Session, principal: Principal, code: str, body: dict[str, Any]) -> dict[str, Any]:
    """A drill (演练) held: re-arms the drill reminder from its date."""
    plan, v = get_version(session, code)
    held = body.get("held_on")
    try:
        day = dt.date.fromisoformat(str(held)) if held else jobs.now().astimezone(rules_tz()).date()
    except ValueError:
        raise InvalidInput([Problem("held_on 须为日期 YYYY-MM-DD", ["body", "held_on"], "value_error")])
    at = jobs.now()
    r = doc_of(v).reminders
    due, remind = _due(day, r.drill_every_days, r.remind_days_before, at)
    plan.last_drill_at = dt.datetime.combine(day, dt.time(9), rules_tz()).astimezone(dt.UTC)
    plan.next_drill_at = due
    jobs.schedule_timer(session, DRILL_TIMER, PLAN_REF, plan.id, remind, {"due_at": due.isoformat()})
    lifecycle.add_entry(session, principal, "plan", plan.id, "drill", at=at, note=str(body.get("note") or "")[:2000],
                        data={"held_on": day.isoformat(), "incident": body.get("incident")})
    audit.record(session, principal, "plan.drill", "plan", plan.id, detail={"held_on": day.isoformat()})
    session.flush()
    return plan_summary(plan, v)


def fire_reminder(session: Session, payload: dict[str, Any]) -> str:
    """Timer handler body (review / drill): tell the owner department and the emergency command;
    a reminder before the due date re-arms itself for the due date."""
    from cityops.security.principal import SYSTEM

    plan = session.get(Plan, int(payload["ref_id"]))
    if plan is None or not plan.active:
        return "skipped"
    review = payload["kind"] == REVIEW_TIMER
    due = dt.datetime.fromisoformat(payload["due_at"])
    at = jobs.now()
    what = "修订评估" if review else "演练"
    title = f"预案{what}提醒：{plan.name}"[:200]
    body = f"预案「{plan.name}」应于 {due.astimezone(rules_tz()):%Y-%m-%d} 前完成{what}。"
    notes: list[dict[str, Any]] = [dict(role="emergency_commander", title=title, body=body,
                                        link=f"/emergency/plans/{plan.code}", severity="warning")]
    if plan.owner_department_code:
        notes.append(dict(department_code=plan.owner_department_code, title=title, body=body,
                          link=f"/emergency/plans/{plan.code}", severity="warning"))
    jobs.notify_many(session, notes)
    lifecycle.add_entry(session, SYSTEM, "plan", plan.id, "review_reminder" if review else "drill_reminder", at=at,
                        note=title, data={"due_at": due})
    if at < due:
        jobs.schedule_timer(session, payload["kind"], PLAN_REF, plan.id, due, {"due_at": due.isoformat()})
    return "reminded"
