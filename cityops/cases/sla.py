"""SLA of case steps: deadlines from the category's time limits and the working calendar, timers
(rows of cityops.jobs), the case's earliest due/yellow time, and flat escalation.

A step (accept, verify, register, dispatch, acknowledge, handle, inspect, close, evaluate) is a
``case_step`` row with ``due_at`` and ``yellow_at`` (the moment ``yellow_fraction`` of the time
limit is used). The case carries the earliest due/yellow of its open steps, so "overdue" and
"yellow" are index range queries: red = ``due_at <= now``, yellow = ``yellow_at <= now``.
One timer per step (kind ``case.sla``: yellow phase, then re-armed for the red phase) fires
through the worker; a restart
loses none (they are rows) and fires the overdue ones at the next pass. Each escalation has a
unique key, so it exists exactly once however often or by how many workers the pass runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, insert, literal, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cityops.cases import reference as ref
from cityops.cases import workcal
from cityops.cases.models import Case, CaseEvent, CaseStep, Escalation, table
from cityops.db import bulk_insert, insert_rows
from cityops.jobs import service as jobs

# one timer row per step: it fires at yellow_at (phase "yellow"), then re-arms itself for due_at
# (phase "red"); a worker that was down past both does both at once
TIMER = "case.sla"
# steps whose deadline drives the case's SLA colour and counts as overdue (evaluation does not)
SLA_STEPS = frozenset(ref.STEPS) - {"evaluate"}

STEPS_T = table(CaseStep)
INSERT_STEP = insert(STEPS_T).returning(STEPS_T.c.id)
CASES_T = table(Case)
EVENTS_T = table(CaseEvent)


def now() -> dt.datetime:
    return jobs.now()


def sla_of(due_at: dt.datetime | None, yellow_at: dt.datetime | None, at: dt.datetime) -> str:
    if due_at is None:
        return "none"
    if due_at <= at:
        return "red"
    if yellow_at is not None and yellow_at <= at:
        return "yellow"
    return "green"


def sla_expr(at: dt.datetime) -> ColumnElement[str]:
    """SQL form of ``sla_of`` over the case columns."""
    return sql_case((Case.due_at.is_(None), literal("none")), (Case.due_at <= at, literal("red")),
                    (Case.yellow_at <= at, literal("yellow")), else_=literal("green"))


def sla_clause(state: str, at: dt.datetime) -> ColumnElement[bool]:
    if state == "red":
        return Case.due_at <= at
    if state == "yellow":
        return (Case.yellow_at <= at) & (Case.due_at > at)
    if state == "green":
        return (Case.due_at > at) & ((Case.yellow_at > at) | Case.yellow_at.is_(None))
    return Case.due_at.is_(None)


def deadline(session: Session, cat: ref.CategoryInfo, step: str, urgency: str, start: dt.datetime,
             calendar_id: int | None = None) -> tuple[dt.datetime, dt.datetime, float, str, int | None]:
    """(due_at, yellow_at, limit value, unit, calendar id) of ``step`` started at ``start``."""
    value, unit = cat.limit(step, urgency)
    if calendar_id is None:
        calendar_id, cal = ref.active_calendar(session)
    else:
        cal = ref.calendar_by_id(session, calendar_id)
    frac = float(ref.policy(session).get("yellow_fraction", 0.8))
    due = workcal.add_working_time(start, value, unit, cal)
    yellow = workcal.add_working_time(start, value * frac, unit, cal)
    return due, yellow, value, unit, calendar_id


def start_step(session: Session, case_id: int, cat: ref.CategoryInfo, step: str, urgency: str, at: dt.datetime,
               department_code: str | None = None, round_: int = 1) -> tuple[int, dt.datetime, dt.datetime]:
    due, yellow, value, unit, cal_id = deadline(session, cat, step, urgency, at)
    sid = int(session.execute(INSERT_STEP, dict(
        case_id=case_id, step=step, round=round_, department_code=department_code, status="open", started_at=at,
        due_at=due, yellow_at=yellow, limit_value=value, limit_unit=unit, calendar_id=cal_id, extended=0,
    )).scalar_one())
    arm_timers(session, sid, case_id, step, due, yellow)
    return sid, due, yellow


def arm_timers(session: Session, step_id: int, case_id: int, step: str, due: dt.datetime, yellow: dt.datetime) -> None:
    if step not in SLA_STEPS:
        return
    phase = "yellow" if yellow < due else "red"
    payload = {"case_id": case_id, "step_id": step_id, "step": step, "phase": phase}
    jobs.schedule_timer(session, TIMER, "case_step", step_id, yellow if phase == "yellow" else due, payload)


def arm_timers_many(session: Session, steps: list[tuple[int, int, str, dt.datetime, dt.datetime]]) -> None:
    """``arm_timers`` for many new steps (step id, case id, step, due, yellow) in one INSERT."""
    timers = []
    for step_id, case_id, step, due, yellow in steps:
        if step not in SLA_STEPS:
            continue
        phase = "yellow" if yellow < due else "red"
        timers.append((step_id, yellow if phase == "yellow" else due,
                       {"case_id": case_id, "step_id": step_id, "step": step, "phase": phase}))
    jobs.schedule_new_timers(session, TIMER, "case_step", timers)


def open_steps(session: Session, case_id: int) -> list[CaseStep]:
    return list(session.scalars(select(CaseStep).where(CaseStep.case_id == case_id, CaseStep.status == "open")
                                .order_by(CaseStep.id)))


def close_steps(session: Session, case_id: int, names: tuple[str, ...] | list[str], at: dt.datetime,
                status: str = "done") -> list[CaseStep]:
    """Finish (done) or cancel the open/paused steps named (``*`` = all)."""
    if not names:
        return []
    stmt = select(CaseStep).where(CaseStep.case_id == case_id, CaseStep.status.in_(("open", "paused")))
    if "*" not in names:
        stmt = stmt.where(CaseStep.step.in_(list(names)))
    steps = list(session.scalars(stmt))
    for s in steps:
        s.status = status
        s.finished_at = at
        s.on_time = (s.overdue_at is None and at <= s.due_at) if status == "done" else None
        jobs.cancel_timers(session, "case_step", s.id)
        if status == "done" and s.step in SLA_STEPS and at > s.due_at and s.overdue_at is None:
            # finished late before the red timer got to it: count it as overdue once
            s.overdue_at = at
            session.execute(update(CASES_T).where(CASES_T.c.id == case_id)
                            .values(overdue_count=CASES_T.c.overdue_count + 1))
    session.flush()
    return steps


def refresh_case_sla_values(session: Session, case_id: int) -> tuple[str | None, dt.datetime | None, dt.datetime | None]:
    """(step, due_at, yellow_at): the earliest due and earliest yellow of the open SLA steps."""
    rows = session.execute(select(CaseStep.step, CaseStep.due_at, CaseStep.yellow_at)
                           .where(CaseStep.case_id == case_id, CaseStep.status == "open",
                                  CaseStep.step.in_(sorted(SLA_STEPS)))).all()
    if not rows:
        return None, None, None
    first = min(rows, key=lambda r: r.due_at)
    return first.step, first.due_at, min(r.yellow_at for r in rows)


def refresh_case_sla(session: Session, case_id: int) -> None:
    """Copy the earliest due/yellow of the open SLA steps onto the case row (Core update)."""
    step, due, yellow = refresh_case_sla_values(session, case_id)
    session.execute(update(CASES_T).where(CASES_T.c.id == case_id).values(sla_step=step, due_at=due, yellow_at=yellow))


def pause_steps(session: Session, case_id: int, at: dt.datetime) -> int:
    n = 0
    for s in open_steps(session, case_id):
        cal = ref.calendar_for(session, s.calendar_id)
        s.paused_remaining_s = max(0.0, workcal.remaining_amount_seconds(at, s.due_at, s.limit_unit, cal))
        s.paused_at = at
        s.status = "paused"
        jobs.cancel_timers(session, "case_step", s.id)
        n += 1
    session.flush()
    return n


def resume_steps(session: Session, case_id: int, at: dt.datetime) -> int:
    n = 0
    frac = float(ref.policy(session).get("yellow_fraction", 0.8))
    for s in session.scalars(select(CaseStep).where(CaseStep.case_id == case_id, CaseStep.status == "paused")):
        cal = ref.calendar_for(session, s.calendar_id)
        remaining = s.paused_remaining_s or 0.0
        s.due_at = workcal.add_seconds(at, remaining, s.limit_unit, cal)
        total = workcal.amount_seconds(s.limit_value, s.limit_unit, cal)
        used = max(0.0, total - remaining)
        s.yellow_at = workcal.add_seconds(at, max(0.0, total * frac - used), s.limit_unit, cal)
        s.status = "open"
        s.paused_at = None
        arm_timers(session, s.id, case_id, s.step, s.due_at, s.yellow_at)
        n += 1
    session.flush()
    return n


def extend_step(session: Session, case_id: int, step: str, value: float, unit: str) -> CaseStep | None:
    """Move the open ``step``'s deadline by an approved extension (延期)."""
    s = session.scalar(select(CaseStep).where(CaseStep.case_id == case_id, CaseStep.step == step,
                                              CaseStep.status == "open").order_by(CaseStep.id.desc()).limit(1))
    if s is None:
        return None
    cal = ref.calendar_for(session, s.calendar_id)
    s.due_at = workcal.add_working_time(s.due_at, value, unit, cal)
    frac = float(ref.policy(session).get("yellow_fraction", 0.8))
    if s.limit_unit.startswith("natural_"):
        total = (s.due_at - s.started_at).total_seconds()
    else:
        total = workcal.working_seconds_between(s.started_at, s.due_at, cal)
    s.yellow_at = min(s.due_at, workcal.add_seconds(s.started_at, total * frac, s.limit_unit, cal))
    s.extended += 1
    arm_timers(session, s.id, case_id, s.step, s.due_at, s.yellow_at)
    session.flush()
    return s


# ---------------------------------------------------------------- escalation


def _insert_ignore(session: Session, table: Any, values: dict[str, Any], key_cols: list[str]) -> int | None:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    stmt = dialect_insert(table).values(**values).on_conflict_do_nothing(index_elements=key_cols)
    got = session.execute(stmt.returning(table.c.id)).scalar_one_or_none()
    return int(got) if got is not None else None


def _targets(rule: ref.RuleInfo, case: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in rule.targets:
        target: dict[str, Any] = {"role": t["role"]}
        if t.get("department") == "lead":
            if not case.get("lead_department_code"):
                continue
            target["department_code"] = case["lead_department_code"]
        area = t.get("area")
        if area:
            col = {"street": "street_code", "community": "community_code", "grid": "grid_code"}.get(area)
            target["area_code"] = case.get(col) if col else None
        out.append(target)
    return out


_TITLES = {
    "overdue": "超期督办：案件 {no}（{label}环节已超时限）",
    "yellow": "临期预警：案件 {no}（{label}环节已用时限80%）",
    "urgent_reported": "紧急案件上报：{no}",
    "urgent_dispatched": "紧急案件已派遣：{no}",
}
MARK_ESCALATED = update(CASES_T).where(CASES_T.c.id == bindparam("cid")).values(escalated_at=bindparam("at"))


def _plans(session: Session, case: dict[str, Any], trigger: str, at: dt.datetime, step_id: int | None,
           step: str | None, key_suffix: str | None) -> list[tuple[ref.RuleInfo, dict[str, Any]]]:
    """The escalation rows the rules of ``trigger`` call for (rule, row values)."""
    out = []
    for rule in ref.escalation_rules(session):
        if rule.trigger != trigger:
            continue
        if rule.steps is not None and step not in rule.steps:
            continue
        if rule.urgencies is not None and case.get("urgency") not in rule.urgencies:
            continue
        suffix = str(step_id) if step_id is not None else (key_suffix or "0")
        label = ref.STEP_LABELS.get(step or "", ("", ""))[0]
        title = _TITLES.get(trigger, "案件 {no}").format(no=case["case_no"], label=label)
        out.append((rule, {"key": f"{rule.code}:{case['id']}:{suffix}", "case_id": case["id"], "step_id": step_id,
                           "rule_code": rule.code, "trigger": trigger, "level": rule.level, "at": at,
                           "targets": _targets(rule, case), "message": title[:300]}))
    return out


def _after(session: Session, fired: list[tuple[ref.RuleInfo, dict[str, Any], dict[str, Any], str | None]]) -> None:
    """Notifications, the case's escalated_at and the timeline rows of new escalation rows."""
    notes, events, marks = [], [], []
    for rule, row, case, step in fired:
        severity = "warning" if rule.level == "warning" else (
            "critical" if case.get("urgency") == "critical" else "urgent")
        body = f"{case.get('title') or ''}｜{rule.name}"
        title = row["message"][:200]
        for t in row["targets"]:
            notes.append(dict(role=t.get("role"), area_code=t.get("area_code"), department_code=t.get("department_code"),
                              title=title, body=body, link=f"/cases/{case['id']}", severity=severity))
        if rule.level == "escalation":
            marks.append({"cid": case["id"], "at": row["at"]})
        events.append(dict(case_id=case["id"], at=row["at"], actor="system", actor_roles="system",
                           action="escalate" if rule.level == "escalation" else "warn", from_state=case.get("state"),
                           to_state=case.get("state"), note=row["message"][:2000],
                           data={"rule": rule.code, "trigger": row["trigger"], "step": step, "targets": row["targets"]},
                           attachments=[]))
    if notes:
        jobs.notify_many(session, notes)
    if marks:
        session.execute(MARK_ESCALATED, marks)
    if events:
        bulk_insert(session, EVENTS_T, events)


def escalate(session: Session, case: dict[str, Any], trigger: str, at: dt.datetime, *, step_id: int | None = None,
             step: str | None = None, key_suffix: str | None = None) -> list[int]:
    """Fire the escalation rules of ``trigger`` for a case (a dict with id, case_no, title, urgency,
    lead_department_code, street/community/grid codes). Each (rule, case, step or suffix) happens
    at most once: the row's key is unique; notifications go out only with a new row."""
    created: list[int] = []
    fired = []
    for rule, row in _plans(session, case, trigger, at, step_id, step, key_suffix):
        eid = _insert_ignore(session, table(Escalation), row, ["key"])
        if eid is not None:
            created.append(eid)
            fired.append((rule, row, case, step))
    _after(session, fired)
    return created


def escalate_new_cases(session: Session, cases: list[tuple[dict[str, Any], dt.datetime]], trigger: str) -> list[int]:
    """``escalate`` for (case, time) of cases created in this transaction (no escalation row of
    theirs can exist yet, so no unique-key check is needed): one multi-row INSERT per table."""
    plans = [(rule, row, case) for case, at in cases for rule, row in _plans(session, case, trigger, at, None, None, None)]
    if not plans:
        return []
    ids = insert_rows(session, table(Escalation), [dict(row) for _r, row, _c in plans])
    _after(session, [(rule, row, case, None) for rule, row, case in plans])
    return ids


def case_brief(session: Session, case_id: int) -> dict[str, Any] | None:
    row = session.execute(select(Case.id, Case.reported_at, Case.title, Case.urgency, Case.state,
                                 Case.lead_department_code, Case.street_code, Case.community_code, Case.grid_code)
                          .where(Case.id == case_id)).first()
    if row is None:
        return None
    from cityops.cases.models import case_no

    d = dict(row._mapping)
    d["case_no"] = case_no(d["id"], d["reported_at"])
    return d


def fire_timer(session: Session, payload: dict[str, Any]) -> str:
    """Timer handler body (idempotent): yellow phase -> warning, then re-armed for due_at; red
    phase (or a late yellow one) -> the step is marked overdue once and the flat escalation fires."""
    at = now()
    step_id = int(payload.get("step_id") or payload.get("ref_id") or 0)
    s = session.get(CaseStep, step_id)
    if s is None or s.status != "open":
        return "stale"
    brief = case_brief(session, s.case_id)
    if payload.get("phase", "yellow") == "yellow" and s.yellow_at <= at and brief:
        escalate(session, brief, "yellow", at, step_id=s.id, step=s.step)
    if s.due_at > at:
        # not overdue yet (or the deadline moved): wait for the red phase
        jobs.schedule_timer(session, TIMER, "case_step", s.id, s.due_at,
                            {"case_id": s.case_id, "step_id": s.id, "step": s.step, "phase": "red"})
        return "yellow"
    first = session.execute(update(STEPS_T).where(STEPS_T.c.id == s.id, STEPS_T.c.overdue_at.is_(None))
                            .values(overdue_at=at)).rowcount  # type: ignore[attr-defined]
    if first:
        session.execute(update(CASES_T).where(CASES_T.c.id == s.case_id)
                        .values(overdue_count=CASES_T.c.overdue_count + 1))
    if brief:
        escalate(session, brief, "overdue", at, step_id=s.id, step=s.step)
    session.expire(s)
    return "red"
