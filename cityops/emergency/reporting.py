"""Information reporting (信息报告): flat notification at intake, reporting deadlines as timers with a
once-only escalation, reports made, and the measure the proposal's complaint is about — the time
from the first report to the responsible department and to the command level that must know.

Flat, not in sequence: at intake the district command, the responsible departments and the street
are notified in ONE ``notify_many`` call inside the intake's transaction (each notification and its
``notification.created`` event exist exactly when the incident does), and every recipient is
recorded as an ``IncidentNotice`` row — the history the reach figures are read from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cityops import clock
from cityops.db import bulk_insert, insert_rows
from cityops.emergency import reach, rules, scopes
from cityops.emergency.models_command import Incident, IncidentNotice, ReportDeadline
from cityops.errors import InvalidInput, Problem
from cityops.jobs import service as jobs
from cityops.lifecycle import service as lifecycle
from cityops.security import audit
from cityops.security.principal import SYSTEM, Principal

TZ = ZoneInfo("Asia/Shanghai")
DEADLINE_TIMER = "emergency.report_due"
DEADLINE_REF = "em_report_deadline"
NOTICES = IncidentNotice.__table__
DEADLINES = ReportDeadline.__table__


def _departments(session: Session) -> dict[str, Any]:
    from cityops.cases import service as cases

    return cases.departments(session)


def _local(at: dt.datetime) -> str:
    return at.astimezone(TZ).strftime("%m-%d %H:%M")


def notify_flat(session: Session, inc: Incident, kind: rules.Kind, at: dt.datetime) -> int:
    """Notify every flat-reporting recipient of a new incident at once; returns how many."""
    cfg = rules.reporting()
    depts = _departments(session)
    tag = "【演练】" if inc.exercise else ""
    sev = rules.SEVERITY_LABELS[inc.severity][0]
    title = f"{tag}突发事件接报：{inc.title}"[:200]
    body = (f"{kind.category.zh}·{kind.subtype.zh}，{sev}（{inc.severity}级），区划 {inc.area_code}；"
            f"首报 {_local(inc.reported_at)}，接报 {_local(at)}。请按职责立即处置。")
    link = f"/emergency/incidents/{inc.id}"
    severity = "critical" if inc.severity in ("I", "II") else "urgent"
    items: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []

    def add(note: dict[str, Any], kind_: str, level: str, code: str, name: str | None) -> None:
        items.append(dict(title=title, body=body, link=link, severity=severity, **note))
        notices.append(dict(incident_id=inc.id, kind=kind_, level=level, recipient_code=code[:40],
                            recipient_name=(name or code)[:120], channel="in_app", origin="intake", notified_at=at,
                            acknowledged_at=None, acknowledged_by=None))

    for r in cfg.flat_recipients:
        if r.kind == "command" and r.role:
            add({"role": r.role, "area_code": inc.area_code}, "command", r.level, r.role, r.zh)
        elif r.kind == "department":
            for d in dict.fromkeys(kind.subtype.departments):
                add({"department_code": d}, "department", "department", d, depts[d].name if d in depts else d)
        elif r.kind == "street" and inc.street_code:
            if r.role:
                add({"role": r.role, "area_code": inc.street_code}, "street", "street", inc.street_code, r.zh)
            centre = f"jz{inc.street_code}"
            if r.street_centre and centre in depts:
                add({"department_code": centre}, "street", "street", centre, depts[centre].name)
    with clock.pinned(at):  # the notifications carry the intake's moment
        ids = jobs.notify_many(session, items)
    for n, nid in zip(notices, ids, strict=True):
        n["notification_id"] = nid
    bulk_insert(session, NOTICES, notices)
    return len(items)


def arm_deadlines(session: Session, inc: Incident) -> list[int]:
    """The reporting deadlines of the incident's severity, each with its timer (one INSERT each)."""
    due = [(d, inc.reported_at + dt.timedelta(minutes=d.minutes))
           for d in rules.reporting().deadlines if inc.severity in d.severities]
    ids = insert_rows(session, DEADLINES, [
        dict(incident_id=inc.id, rule_code=d.code, name=d.zh, kind=d.kind, channel=d.channel, level=d.level, due_at=at,
             done_at=None, done_by=None, content=None, escalated_at=None) for d, at in due])
    jobs.schedule_new_timers(session, DEADLINE_TIMER, DEADLINE_REF,
                             [(i, at, {"incident_id": inc.id}) for i, (_d, at) in zip(ids, due, strict=True)])
    return ids


def record_report(session: Session, principal: Principal, ref: str | int, body: dict[str, Any]) -> dict[str, Any]:
    """A report made (首报/续报/终报 by phone or in writing to a command level): fulfils the open
    deadlines it answers, records that the level now knows, one timeline row."""
    inc = scopes.get_incident(session, principal, ref, for_update=True)
    cfg = rules.reporting()
    level, channel = body.get("level"), body.get("channel")
    probs = []
    if level not in cfg.command_levels:
        probs.append(Problem(f"level 须为 one of {', '.join(cfg.command_levels)}", ["body", "level"], "value_error"))
    if channel not in ("phone", "written"):
        probs.append(Problem("channel 须为 phone 或 written", ["body", "channel"], "value_error"))
    kind = body.get("kind") or "initial"
    if kind not in ("initial", "follow_up", "final"):
        probs.append(Problem("kind 须为 initial / follow_up / final (首报/续报/终报)", ["body", "kind"], "value_error"))
    if probs:
        raise InvalidInput(probs)
    at = clock.now()
    content = str(body.get("content") or "")[:4000] or None
    # a written report also answers a phone deadline of the same level; a phone one only phone
    channels = ("phone", "written") if channel == "written" else ("phone",)
    due = session.scalars(select(ReportDeadline).where(ReportDeadline.incident_id == inc.id,
                                                       ReportDeadline.level == level, ReportDeadline.kind == kind,
                                                       ReportDeadline.channel.in_(channels),
                                                       ReportDeadline.done_at.is_(None))).all()
    for d in due:
        d.done_at, d.done_by, d.content = at, principal.username[:80], content
        jobs.cancel_timers(session, DEADLINE_REF, d.id, kind=DEADLINE_TIMER)
    name = cfg.command_levels[str(level)].zh
    bulk_insert(session, NOTICES, [dict(incident_id=inc.id, kind="command", level=level, recipient_code=level,
                                        recipient_name=name, channel=channel, origin="report", notified_at=at,
                                        notification_id=None, acknowledged_at=None, acknowledged_by=None)])
    lifecycle.add_entry(session, principal, "incident", inc.id, "info_report", at=at, from_state=inc.state,
                        to_state=inc.state, note=content,
                        data={"level": level, "channel": channel, "kind": kind, "fulfils": [d.rule_code for d in due]})
    jobs.enqueue(session, "incident.info_report", {"id": inc.id, "code": inc.code, "level": level, "channel": channel,
                                                   "kind": kind, "at": at})
    audit.record(session, principal, "incident.info_report", "incident", inc.id, detail={"level": level, "kind": kind})
    session.flush()
    return {"incident_id": inc.id, "fulfilled": [d.rule_code for d in due], "deadlines": deadlines_out(session, inc)}


def fire_deadline(session: Session, payload: dict[str, Any]) -> str:
    """Timer handler body: a reporting deadline passed. Escalates once — the row's ``escalated_at``
    is set by a conditional UPDATE, so a second firing (another worker, a restart, a re-armed
    timer) finds it set and does nothing."""
    did = int(payload["ref_id"])
    at = jobs.now()
    res = session.execute(update(ReportDeadline).where(ReportDeadline.id == did, ReportDeadline.done_at.is_(None),
                                                       ReportDeadline.escalated_at.is_(None),
                                                       ReportDeadline.due_at <= at)
                          .values(escalated_at=at))
    if not jobs.rowcount(res):
        return "skipped"
    d = session.get(ReportDeadline, did)
    inc = session.get(Incident, d.incident_id) if d is not None else None
    if d is None or inc is None:
        return "skipped"
    cfg = rules.reporting().escalation
    tag = "【演练】" if inc.exercise else ""
    title = f"{tag}信息报告超时：{inc.code}「{d.name}」"[:200]
    late = int((at - d.due_at).total_seconds() // 60)
    body = f"{inc.title}：{d.name}时限 {_local(d.due_at)} 已过{f'（{late} 分钟）' if late else ''}，尚未报告。请立即报告。"
    jobs.notify_many(session, [dict(role=r, area_code=inc.area_code, title=title, body=body,
                                    link=f"/emergency/incidents/{inc.id}", severity=cfg.severity) for r in cfg.roles])
    lifecycle.add_entry(session, SYSTEM, "incident", inc.id, "report_overdue", at=at, from_state=inc.state,
                        to_state=inc.state, note=title, data={"rule": d.rule_code, "due_at": d.due_at})
    jobs.enqueue(session, "incident.report_overdue", {"id": inc.id, "code": inc.code, "rule": d.rule_code,
                                                      "due_at": d.due_at, "at": at})
    return "escalated"


# ---------------------------------------------------------------- reads


def deadlines_out(session: Session, inc: Incident) -> list[dict[str, Any]]:
    at = jobs.now()
    rows = session.scalars(select(ReportDeadline).where(ReportDeadline.incident_id == inc.id)
                           .order_by(ReportDeadline.due_at, ReportDeadline.id)).all()
    english = {d.code: d.en for d in rules.reporting().deadlines}
    out = []
    for d in rows:
        status = ("done" if d.done_at is not None else "escalated" if d.escalated_at is not None
                  else "overdue" if d.due_at <= at else "pending")
        out.append({"id": d.id, "rule_code": d.rule_code, "name": d.name, "name_en": english.get(d.rule_code),
                    "kind": d.kind, "channel": d.channel,
                    "level": d.level, "due_at": d.due_at, "done_at": d.done_at, "done_by": d.done_by,
                    "escalated_at": d.escalated_at, "status": status,
                    "on_time": None if d.done_at is None else d.done_at <= d.due_at})
    return out


def notices_out(session: Session, incident_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(IncidentNotice).where(IncidentNotice.incident_id == incident_id)
                           .order_by(IncidentNotice.notified_at, IncidentNotice.id)).all()
    return [{"kind": n.kind, "level": n.level, "recipient_code": n.recipient_code, "recipient_name": n.recipient_name,
             "channel": n.channel, "origin": n.origin, "notified_at": n.notified_at,
             "acknowledged_at": n.acknowledged_at} for n in rows]


def incident_reach_rows(session: Session, principal: Principal, start: dt.datetime, end: dt.datetime, *,
                        include_exercise: bool = False, incident_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Per incident in scope first reported in [start, end): one department row and one row per
    command level its severity requires (seconds from the first report; None if not reached)."""
    cfg = rules.reporting()
    stmt = scopes.readable_incidents(principal).where(Incident.state.not_in(("merged", "dismissed")))
    if incident_ids is not None:
        stmt = stmt.where(Incident.id.in_(incident_ids))
    else:
        stmt = stmt.where(Incident.reported_at >= start, Incident.reported_at < end)
    if not include_exercise:
        stmt = stmt.where(Incident.exercise.is_(False))
    incs = session.scalars(stmt.order_by(Incident.reported_at)).all()
    if not incs:
        return []
    firsts = session.execute(select(IncidentNotice.incident_id, IncidentNotice.kind, IncidentNotice.level,
                                    func.min(IncidentNotice.notified_at))
                             .where(IncidentNotice.incident_id.in_([i.id for i in incs]),
                                    IncidentNotice.kind.in_(("department", "command")))
                             .group_by(IncidentNotice.incident_id, IncidentNotice.kind, IncidentNotice.level)).all()
    first: dict[tuple[int, str], dt.datetime] = {}
    for iid, kind, level, when in firsts:
        key = (iid, "department" if kind == "department" else level)
        first[key] = min(first.get(key, when), when)
    out = []
    for i in incs:
        levels = ["department", *rules.required_command_levels(i.severity)]
        for lv in levels:
            at = first.get((i.id, lv))
            target = cfg.department_target_s if lv == "department" else cfg.command_levels[lv].target_s
            out.append({"object_type": "incident", "id": i.id, "ref": i.code, "channel": i.source_type,
                        "measure": "department" if lv == "department" else "command", "level": lv,
                        "reported_at": i.reported_at, "reached_at": at, "target_s": target,
                        "seconds": None if at is None else (at - i.reported_at).total_seconds()})
    return out


def case_reach_rows(session: Session, principal: Principal, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The same rows for cases, read from the case timeline through ``cityops.cases.service``."""
    from cityops.cases import service as cases

    cfg = rules.reporting()
    out = []
    for c in cases.case_reach(session, principal, start, end):
        for measure, level, at in (("department", "department", c["department_at"]),
                                   ("command", c["command_level"], c["command_at"])):
            target = cfg.department_target_s if measure == "department" else cfg.command_levels["district"].target_s
            out.append({"object_type": "case", "id": c["case_id"], "ref": str(c["case_id"]), "channel": c["channel"],
                        "measure": measure, "level": level, "reported_at": c["reported_at"], "reached_at": at,
                        "target_s": target,
                        "seconds": None if at is None else (at - c["reported_at"]).total_seconds()})
    return out


def reach_dashboard(session: Session, principal: Principal, start: dt.datetime, end: dt.datetime, *,
                    kinds: tuple[str, ...] = ("incident", "case"), include_exercise: bool = False,
                    slowest: int = 10) -> dict[str, Any]:
    """The flat-reporting dashboard: per object type, channel, measure and level, how many, how
    fast (median / p90 / max seconds), how many within target and how many not reached yet."""
    rows: list[dict[str, Any]] = []
    if "incident" in kinds:
        rows += incident_reach_rows(session, principal, start, end, include_exercise=include_exercise)
    if "case" in kinds:
        rows += case_reach_rows(session, principal, start, end)
    groups = reach.aggregate({"group": (r["object_type"], r["channel"], r["measure"], r["level"]),
                              "seconds": r["seconds"], "target_s": r["target_s"]} for r in rows)
    for g in groups:
        g.update(dict(zip(("object_type", "channel", "measure", "level"), g.pop("group"), strict=True)))
    late = sorted((r for r in rows if r["seconds"] is not None), key=lambda r: -r["seconds"])[:slowest]
    return {"from": start, "to": end, "groups": groups, "slowest": late, "rows": len(rows),
            "rules_version": rules.reporting().version}
