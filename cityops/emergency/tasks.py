"""Plan activation and the department tasks it creates (set-based), the task lifecycle, to-do reads.

Activating plans for an incident at a response level creates exactly that level's tasks (a task
is identified by its key and owner department); raising the level adds the difference, lowering it
retires the difference (tasks already done stay done). All of it runs inside ONE transition of the
incident's table (``respond`` / ``adjust_level`` / ``activate_plan`` / ``resume_response``), so each
change is one timeline row, one audit row and one outbox event, whatever the number of tasks; the
rows themselves are multi-row INSERTs / one UPDATE, their deadlines one multi-row timer INSERT, the
departments' to-do notifications one ``notify_many``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from cityops.db import insert_rows
from cityops.emergency import machines, plans, rules
from cityops.emergency.models_command import EmergencyTask, Incident, Plan, PlanActivation, PlanVersion
from cityops.emergency.scopes import TASK_SCOPE
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.lifecycle import Context
from cityops.lifecycle import service as lifecycle
from cityops.security import scope
from cityops.security.principal import SYSTEM, Principal

TASK_TIMER, TASK_REF = "emergency.task_due", "em_task"
TASKS = EmergencyTask.__table__
LIVE = ("open", "acknowledged", "in_progress")


def _departments(session: Session) -> dict[str, Any]:
    from cityops.cases import service as cases

    return cases.departments(session)


def _streets_of(inc: Incident, depts: dict[str, Any]) -> list[str]:
    """The street/town centres an incident's street tasks go to: its street's, or every street's
    inside its area when it covers more than one street."""
    if inc.street_code:
        return [f"jz{inc.street_code}"] if f"jz{inc.street_code}" in depts else []
    return sorted(c for c, d in depts.items() if d.kind == "street_centre" and d.area_code
                  and d.area_code.startswith(inc.area_code))


def _targets(doc: plans.PlanDoc, level: str, inc: Incident, depts: dict[str, Any]) -> dict[tuple[str, str], plans.PlanTask]:
    out: dict[tuple[str, str], plans.PlanTask] = {}
    streets: list[str] | None = None
    for key, t in plans.tasks_for(doc, level).items():
        if t.department == plans.STREET:
            streets = streets if streets is not None else _streets_of(inc, depts)
            for s in streets:
                out[(key, s)] = t
        else:
            out[(key, t.department)] = t
    return out


def _task_area(inc: Incident, owner: str, depts: dict[str, Any]) -> str:
    d = depts.get(owner)
    if d is not None and d.kind == "street_centre" and d.area_code and not inc.area_code.startswith(d.area_code):
        return str(d.area_code)
    return inc.area_code


def _activate(session: Session, principal: Principal, inc: Incident, code: str, level: str,
              at: dt.datetime) -> PlanActivation:
    plan, v = plans.get_version(session, code)
    if not plan.active:
        raise Conflict([Problem(f"预案 {code} 已停用 plan {code} is not active", ["body", "plan"], "conflict")])
    a = PlanActivation(incident_id=inc.id, plan_id=plan.id, plan_version_id=v.id, level=level, active=True,
                       activated_at=at, activated_by=principal.username[:80])
    session.add(a)
    session.flush()
    return a


def apply_level(ctx: Context) -> None:
    """Effect ``apply_level``: bring the incident's plans and tasks to the requested level."""
    s, inc, at = ctx.session, ctx.obj, ctx.at
    assert ctx.transition is not None
    action, body = ctx.transition.action, (ctx.body or {})
    old = inc.response_level
    new = old if action == "activate_plan" else (body.get("level") or old)  # a plan joins at the level in force
    if new not in rules.LEVELS:
        raise InvalidInput([Problem("需给出响应级别 a response level is needed", ["body", "level"], "missing")])
    acts = list(s.scalars(select(PlanActivation).where(PlanActivation.incident_id == inc.id)
                          .order_by(PlanActivation.id)))
    active = [a for a in acts if a.active]
    codes_of = {pid: code for pid, code in s.execute(select(Plan.id, Plan.code)
                                                     .where(Plan.id.in_({a.plan_id for a in acts} or {0})))}
    added_plans: list[str] = []
    wanted = body.get("plans")
    if action == "activate_plan":
        wanted = [str(body.get("plan"))]
    if wanted is not None and (not isinstance(wanted, list) or not all(isinstance(c, str) for c in wanted)):
        raise InvalidInput([Problem("plans 须为预案代码列表 plans must be a list of plan codes", ["body", "plans"])])
    if action == "resume_response" and not wanted:
        for a in acts:
            a.active, a.deactivated_at = True, None
        active = acts
    if wanted:
        active_codes = {codes_of.get(a.plan_id) for a in active}
        for code in wanted:
            if code in active_codes:
                if action == "activate_plan":
                    raise Conflict([Problem(f"预案 {code} 已启动 plan {code} is already active for this incident",
                                            ["body", "plan"], "conflict")])
                continue
            active.append(_activate(s, ctx.principal, inc, code, new, at))
            added_plans.append(code)
    elif not active and action == "respond":
        for p, _v in plans.matching_plans(s, inc.category, inc.subtype, inc.area_code):
            active.append(_activate(s, ctx.principal, inc, p.code, new, at))
            added_plans.append(p.code)
    depts = _departments(s)
    existing: dict[int, dict[tuple[str, str], tuple[int, str]]] = defaultdict(dict)
    if active:
        for tid, aid, key, owner, state in s.execute(
                select(EmergencyTask.id, EmergencyTask.activation_id, EmergencyTask.task_key,
                       EmergencyTask.owner_department_code, EmergencyTask.state)
                .where(EmergencyTask.activation_id.in_([a.id for a in active]), EmergencyTask.state != "retired")):
            existing[aid][(key, owner)] = (tid, state)
    versions = {v.id: v for v in s.scalars(select(PlanVersion).where(
        PlanVersion.id.in_({a.plan_version_id for a in active} or {0})))}
    new_rows: list[dict[str, Any]] = []
    retire_ids: list[int] = []
    retire_from = set(machines.from_states(machines.task_table(), "retire"))
    for a in active:
        target = _targets(plans.doc_of(versions[a.plan_version_id]), new, inc, depts)
        have = existing.get(a.id, {})
        for (key, owner), t in target.items():
            if (key, owner) in have:
                continue
            due = at + dt.timedelta(minutes=t.deadline_minutes)
            new_rows.append(dict(incident_id=inc.id, activation_id=a.id, task_key=key, level=new, group_code=t.group,
                                 title=t.title, description=t.description, owner_department_code=owner,
                                 area_code=_task_area(inc, owner, depts), state="open", exercise=inc.exercise,
                                 created_at=at, due_at=due, yellow_at=at + (due - at) * 0.8, acknowledged_at=None,
                                 done_at=None, retired_at=None, overdue_at=None))
        retire_ids += [tid for k, (tid, state) in have.items() if k not in target and state in retire_from]
        a.level = new
    ids = insert_rows(s, TASKS, new_rows)
    jobs.schedule_new_timers(s, TASK_TIMER, TASK_REF, [(i, r["due_at"], {"incident_id": inc.id})
                                                       for i, r in zip(ids, new_rows, strict=True)])
    if retire_ids:
        s.execute(update(EmergencyTask).where(EmergencyTask.id.in_(retire_ids),
                                              EmergencyTask.state.in_(sorted(retire_from)))
                  .values(state="retired", retired_at=at))
    _notify_departments(s, inc, new_rows, retire_ids, old, new, depts)
    from cityops.emergency import mobilisation

    mob = mobilisation.apply(s, inc, new, at)
    inc.response_level = new
    codes_of = {pid: code for pid, code in s.execute(select(Plan.id, Plan.code)
                                                     .where(Plan.id.in_({a.plan_id for a in active} or {0})))}
    ctx.data.update({"level_from": old, "level_to": new, "plans": sorted({codes_of[a.plan_id] for a in active}),
                     "plans_added": added_plans, "tasks_added": len(new_rows), "tasks_retired": len(retire_ids),
                     "departments": len({r["owner_department_code"] for r in new_rows}), **mob})


def _notify_departments(s: Session, inc: Incident, added: list[dict[str, Any]], retired: list[int], old: str | None,
                        new: str, depts: dict[str, Any]) -> None:
    tag = "【演练】" if inc.exercise else ""
    per_dept = Counter(r["owner_department_code"] for r in added)
    gone: Counter[str] = Counter()
    if retired:
        gone = Counter(o for (o,) in s.execute(select(EmergencyTask.owner_department_code)
                                               .where(EmergencyTask.id.in_(retired))))
    change = f"{rules.LEVEL_LABELS[old][0]}→{rules.LEVEL_LABELS[new][0]}" if old and old != new else rules.LEVEL_LABELS[new][0]
    notes = []
    for d in sorted(set(per_dept) | set(gone)):
        parts = ([f"新增任务 {per_dept[d]} 项"] if per_dept[d] else []) + ([f"撤销任务 {gone[d]} 项"] if gone[d] else [])
        notes.append(dict(department_code=d, title=f"{tag}应急响应{change}：{inc.title}"[:200],
                          body=f"事件 {inc.code}，{'，'.join(parts)}。请在「应急任务」中接收并按时限完成。",
                          link=f"/emergency/tasks?incident={inc.id}",
                          severity="critical" if new in ("I", "II") else "urgent"))
    jobs.notify_many(s, notes)


def stand_down(ctx: Context) -> None:
    """Effect ``stand_down`` (response ended): unfinished tasks are retired, plans deactivated,
    call-ups stood down."""
    s, inc, at = ctx.session, ctx.obj, ctx.at
    retire_from = sorted(machines.from_states(machines.task_table(), "retire"))
    n = jobs.rowcount(s.execute(update(EmergencyTask).where(EmergencyTask.incident_id == inc.id,
                                                            EmergencyTask.state.in_(retire_from))
                                .values(state="retired", retired_at=at)))
    s.execute(update(PlanActivation).where(PlanActivation.incident_id == inc.id, PlanActivation.active.is_(True))
              .values(active=False, deactivated_at=at))
    from cityops.emergency import mobilisation

    ctx.data.update({"tasks_retired": n, **mobilisation.stand_down_all(s, inc, at)})


def stamp_effect(ctx: Context) -> None:
    """Effect ``stamp``: the task's time of the action."""
    t: EmergencyTask = ctx.obj
    assert ctx.transition is not None
    a = ctx.transition.action
    if a == "acknowledge":
        t.acknowledged_at = ctx.at
    elif a == "complete":
        t.done_at = ctx.at
        t.acknowledged_at = t.acknowledged_at or ctx.at
        ctx.data["on_time"] = ctx.at <= t.due_at
    elif a == "retire":
        t.retired_at = ctx.at
    elif a == "reopen":
        t.done_at = None


# ---------------------------------------------------------------- reads and actions


def sla(t: EmergencyTask, at: dt.datetime) -> str:
    if t.state == "done":
        return "done"
    if t.state == "retired":
        return "retired"
    if at >= t.due_at:
        return "red"
    return "yellow" if at >= t.yellow_at else "green"


def task_out(t: EmergencyTask, at: dt.datetime, depts: dict[str, Any], lang: str = "zh") -> dict[str, Any]:
    d = depts.get(t.owner_department_code)
    return {"id": t.id, "incident_id": t.incident_id, "task_key": t.task_key, "level": t.level, "group": t.group_code,
            "title": t.title, "description": t.description, "owner_department_code": t.owner_department_code,
            "owner_department_name": ((d.name_en or d.name) if lang == "en" else d.name) if d else t.owner_department_code,
            "state": t.state, "state_name": machines.TASK.states[t.state]["en" if lang == "en" else "zh"],
            "sla": sla(t, at), "created_at": t.created_at, "due_at": t.due_at, "acknowledged_at": t.acknowledged_at,
            "done_at": t.done_at, "retired_at": t.retired_at, "overdue_at": t.overdue_at, "exercise": t.exercise,
            "on_time": None if t.done_at is None else t.done_at <= t.due_at}


def readable(principal: Principal) -> Any:
    return select(EmergencyTask).where(scope.clause(principal, TASK_SCOPE))


def list_tasks(session: Session, principal: Principal, *, incident: int | None = None, department: str | None = None,
               state: list[str] | None = None, open_only: bool = False, page: int = 1, page_size: int = 100,
               lang: str = "zh") -> dict[str, Any]:
    """Tasks in the principal's scope (a department: its own tasks — its to-do)."""
    stmt = readable(principal)
    if incident is not None:
        stmt = stmt.where(EmergencyTask.incident_id == incident)
    if department:
        stmt = stmt.where(EmergencyTask.owner_department_code == department)
    if state:
        bad = [x for x in state if x not in machines.TASK.states]
        if bad:
            raise InvalidInput([Problem(f"未知状态 unknown state {bad[0]!r}", ["query", "state"], "unknown")])
        stmt = stmt.where(EmergencyTask.state.in_(state))
    if open_only:
        stmt = stmt.where(EmergencyTask.state.in_(LIVE))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(EmergencyTask.due_at, EmergencyTask.id)
                           .offset((page - 1) * page_size).limit(page_size)).all()
    at, depts = jobs.now(), _departments(session)
    return {"total": total, "page": page, "page_size": page_size, "items": [task_out(t, at, depts, lang) for t in rows]}


def by_department(session: Session, principal: Principal, incident_id: int, lang: str = "zh") -> list[dict[str, Any]]:
    """The command view's board: the incident's tasks grouped by owner department, worst SLA first."""
    rows = session.scalars(readable(principal).where(EmergencyTask.incident_id == incident_id)
                           .order_by(EmergencyTask.owner_department_code, EmergencyTask.due_at)).all()
    at, depts = jobs.now(), _departments(session)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in rows:
        groups[t.owner_department_code].append(task_out(t, at, depts, lang))
    rank = {"red": 0, "yellow": 1, "green": 2, "done": 3, "retired": 4}
    out = []
    for code, items in groups.items():
        c = Counter(i["sla"] for i in items)
        worst = min((i["sla"] for i in items), key=lambda x: rank[x])
        out.append({"department_code": code, "department_name": items[0]["owner_department_name"], "worst": worst,
                    "counts": dict(c), "tasks": items})
    return sorted(out, key=lambda g: (rank[g["worst"]], g["department_code"]))


def counts(session: Session, principal: Principal, incident_id: int) -> dict[str, int]:
    at = jobs.now()
    late = func.sum(case((EmergencyTask.due_at <= at, 1), else_=0))
    rows = session.execute(select(EmergencyTask.state, func.count(), late)
                           .where(scope.clause(principal, TASK_SCOPE), EmergencyTask.incident_id == incident_id)
                           .group_by(EmergencyTask.state)).all()
    out: Counter[str] = Counter()
    for state, n, n_late in rows:
        out[state] += n
        if state in LIVE:
            out["overdue"] += int(n_late or 0)
    return dict(out)


def activations_out(session: Session, incident_id: int, lang: str = "zh") -> list[dict[str, Any]]:
    rows = session.execute(select(PlanActivation, Plan, PlanVersion)
                           .join(Plan, Plan.id == PlanActivation.plan_id)
                           .join(PlanVersion, PlanVersion.id == PlanActivation.plan_version_id)
                           .where(PlanActivation.incident_id == incident_id).order_by(PlanActivation.id)).all()
    out = []
    for a, p, v in rows:
        cmd = plans.command_for(plans.doc_of(v), a.level)
        out.append({"plan_code": p.code, "plan_name": p.name, "version": v.version, "edition": v.label, "level": a.level,
                    "active": a.active, "activated_at": a.activated_at, "activated_by": a.activated_by,
                    "command": cmd.model_dump() if cmd else None})
    return out


def get_task(session: Session, principal: Principal, task_id: int, *, for_update: bool = False) -> EmergencyTask:
    stmt = readable(principal).where(EmergencyTask.id == task_id)
    if for_update:
        stmt = stmt.with_for_update()
    t: EmergencyTask | None = session.scalar(stmt)
    if t is None:
        raise NotFound([Problem(f"未找到任务 task {task_id} not found", ["path", "task_id"], "not_found")])
    return t


def task_detail(session: Session, principal: Principal, task_id: int, lang: str = "zh") -> dict[str, Any]:
    t = get_task(session, principal, task_id)
    out = task_out(t, jobs.now(), _departments(session), lang)
    out["actions"] = lifecycle.allowed_actions(session, principal, machines.task_table(), t)
    out["timeline"] = machines.label_timeline(lifecycle.timeline(session, "emergency_task", t.id), machines.TASK, lang)
    return out


def act(session: Session, principal: Principal, task_id: int, action: str, body: dict[str, Any],
        lang: str = "zh") -> dict[str, Any]:
    t = get_task(session, principal, task_id, for_update=True)
    lifecycle.perform(session, principal, machines.task_table(), t, action, body,
                      event={"incident_id": t.incident_id, "owner_department_code": t.owner_department_code})
    session.flush()
    return task_detail(session, principal, task_id, lang)


def fire_task_due(session: Session, payload: dict[str, Any]) -> str:
    """Timer handler body: a task's deadline passed while it is still open — the owner department's
    leader and the emergency command are told once (``overdue_at`` is set by a conditional UPDATE)."""
    tid, at = int(payload["ref_id"]), jobs.now()
    res = session.execute(update(EmergencyTask).where(EmergencyTask.id == tid, EmergencyTask.state.in_(LIVE),
                                                      EmergencyTask.overdue_at.is_(None), EmergencyTask.due_at <= at)
                          .values(overdue_at=at))
    if not jobs.rowcount(res):
        return "skipped"
    t = session.get(EmergencyTask, tid)
    assert t is not None
    tag = "【演练】" if t.exercise else ""
    title = f"{tag}应急任务超时：{t.title}"[:200]
    session_notes = [dict(role="dept_leader", department_code=t.owner_department_code, title=title,
                          body="任务时限已过，请立即完成并反馈。", link=f"/emergency/tasks?incident={t.incident_id}",
                          severity="urgent"),
                     dict(role="emergency_commander", area_code=t.area_code, title=title,
                          body=f"责任部门 {t.owner_department_code} 未按时完成。", link=f"/emergency/incidents/{t.incident_id}",
                          severity="urgent")]
    jobs.notify_many(session, session_notes)
    lifecycle.add_entry(session, SYSTEM, "emergency_task", t.id, "overdue", at=at, from_state=t.state, to_state=t.state,
                        note=title)
    jobs.enqueue(session, "emergency_task.overdue", {"id": t.id, "incident_id": t.incident_id,
                                                     "owner_department_code": t.owner_department_code})
    return "escalated"
