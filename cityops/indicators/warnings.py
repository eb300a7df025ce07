"""Early warnings (预警): raised by the rules, one open per (rule, area), level raised or lowered
with a timeline row, acknowledged -> handled -> lifted through the lifecycle table
(``data/warning_lifecycle.json``), notifications through the outbox to the owner department and
the area's duty staff, and — when the rule says so — ONE case in the closed loop, created
through ``cityops.cases.service`` and linked both ways (the warning keeps the case id, the case's
signal and its timeline name the warning and the readings that raised it).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.indicators.catalogue import AREA_LEVELS, Catalogue, RuleDef
from cityops.indicators.engine import Change
from cityops.indicators.models import LEVEL_ZH, LEVELS, OPEN_STATES, EarlyWarning
from cityops.jobs import service as jobs
from cityops.lifecycle import Machine
from cityops.lifecycle import service as lifecycle
from cityops.lifecycle.machine import Context, requirement_field
from cityops.logging import log
from cityops.security import audit
from cityops.security.principal import SYSTEM, Principal

HERE = Path(__file__).resolve().parent
OBJECT = "warning"
SEVERITY = {0: "info", 1: "warning", 2: "urgent", 3: "critical"}
LEVEL_EN = {"blue": "blue", "yellow": "yellow", "orange": "orange", "red": "red"}


def _stamp(ctx: Context) -> None:
    ctx.obj.updated_at = ctx.at
    t = ctx.transition
    if t is not None and t.to_state == "lifted":
        ctx.obj.lifted_at = ctx.at


def _release(ctx: Context) -> None:
    """A lifted warning frees its (rule, area): the rules start again from no level there."""
    ctx.data["released"] = True


MACHINE = Machine(
    name=OBJECT,
    states={"raised": {"zh": "已发布", "en": "raised"}, "acknowledged": {"zh": "已签收", "en": "acknowledged"},
            "handled": {"zh": "已处置", "en": "handled"}, "lifted": {"zh": "已解除", "en": "lifted"}},
    actions={"acknowledge": {"zh": "签收", "en": "acknowledge"}, "handle": {"zh": "处置", "en": "handle"},
             "lift": {"zh": "解除", "en": "lift"}},
    default_permission="warning.act",
    requirements={"note": requirement_field("note", "需填写处置情况 needs a note of what was done"),
                  "reason": requirement_field("reason", "需填写解除原因 needs a reason")},
    effects={"stamp": _stamp, "release": _release},
)


@lru_cache
def table() -> Any:
    return MACHINE.load_file(HERE / "data" / "warning_lifecycle.json")


def area_names(session: Session) -> dict[str, str]:
    from cityops.geo import service as geo

    return geo.indexes(session).names


def _title(rule: RuleDef, area_name: str, level: int) -> str:
    return f"{area_name}{rule.name_zh}（{LEVEL_ZH[LEVELS[level]]}）"[:200]


def _describe(rule: RuleDef, c: Change, unit: str) -> str:
    parts = [f"{rule.name_zh} {rule.name_en}: 设备 device {c.device}"]
    if c.stat is not None:
        parts.append(f"统计值 value {c.stat:.2f}{unit}")
    return "；".join(parts)


def _trigger(c: Change) -> dict[str, Any]:
    """What raised the warning, as stored: JSON has no NaN (PostgreSQL refuses it), a gap is null."""
    return {"device": c.device, "t": c.t_ms, "stat": c.stat,
            "readings": [[t, v if v == v else None] for t, v in c.readings[-60:]]}


def _readings_text(c: Change, unit: str, limit: int = 12) -> str:
    from cityops.console.i18n import local_time

    rows = [r for r in c.readings if r[1] == r[1]][-limit:]
    if not rows:
        return ""
    body = "，".join(f"{local_time(dt.datetime.fromtimestamp(t / 1000, dt.UTC))} {v:g}{unit}" for t, v in rows)
    return f"触发读数 triggering readings ({c.device}): {body}"


class Warnings:
    """The open warnings of one evaluator (rule, area) -> (id, level), kept in step with the table."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], tuple[int, int]] = {}

    def load(self, session: Session) -> list[EarlyWarning]:
        rows = list(session.scalars(select(EarlyWarning).where(EarlyWarning.state.in_(OPEN_STATES))))
        self.open = {(w.rule_code, w.area_code): (w.id, w.level_rank) for w in rows}
        return rows

    def lifted_by_people(self, session: Session) -> list[tuple[str, str]]:
        """Open warnings of ours that someone lifted meanwhile (the rules then start again there)."""
        if not self.open:
            return []
        ids = {wid: key for key, (wid, _l) in self.open.items()}
        gone = session.scalars(select(EarlyWarning.id).where(EarlyWarning.id.in_(list(ids)),
                                                             EarlyWarning.state == "lifted")).all()
        out = [ids[g] for g in gone]
        for key in out:
            self.open.pop(key, None)
        return out

    def reconcile(self, session: Session, cat: Catalogue, decided: Any, subjects: Any) -> list[int]:
        """Write what the rules decided for (rule, area): raise, change level or lift. Returns the
        ids of warnings whose rule asks for a case at the level reached (the caller opens them)."""
        if not decided:
            return []
        names = area_names(session)
        at_now = jobs.now()
        want_case: list[int] = []
        notes: list[list[dict[str, Any]]] = []
        items = list(decided.items()) if isinstance(decided, dict) else list(decided)
        for (rcode, area), (level, c) in items:
            rule = cat.rules.get(rcode)
            if rule is None:
                continue
            ind = cat.indicators.get(rule.indicator or "")
            unit = ind.unit if ind else ""
            at = dt.datetime.fromtimestamp(c.t_ms / 1000, dt.UTC)
            devs = dict(subjects(rcode, area))
            hit = self.open.get((rcode, area))
            if hit is None and level < 0:
                continue
            if hit is None:
                w = EarlyWarning(
                    rule_code=rcode, rule_kind=rule.kind, catalogue_version=cat.version, indicator_code=rule.indicator,
                    category=rule.category, area_code=area, area_level=rule.area_level,
                    street_code=area[:9] if len(area) >= 9 else None, community_code=area[:12] if len(area) >= 12 else None,
                    grid_code=area if len(area) == 15 else None, owner_department_code=rule.owner_department_code,
                    level=LEVELS[level], level_rank=level, max_level=LEVELS[level], state="raised", raised_at=at,
                    level_at=at, updated_at=at_now, subjects=devs,
                    trigger=_trigger(c),
                    lon=c.lon, lat=c.lat, title=_title(rule, names.get(area, area), level),
                    description=_describe(rule, c, unit))
                session.add(w)
                session.flush()
                self.open[(rcode, area)] = (w.id, level)
                lifecycle.add_entry(session, SYSTEM, OBJECT, w.id, "raise", at=at, to_state="raised",
                                    note=_readings_text(c, unit) or w.description,
                                    data={"level": LEVELS[level], "device": c.device, "stat": c.stat})
                audit.record(session, SYSTEM, "warning.raise", OBJECT, w.id, detail={"rule": rcode, "area": area,
                                                                                      "level": LEVELS[level]})
                jobs.enqueue(session, "warning.raised", {"id": w.id, "rule": rcode, "area_code": area,
                                                         "level": LEVELS[level], "at": at})
                notes.append(self._note(w, rule, "发布", level))
                if rule.auto_case and level >= rule.auto_case_rank:
                    want_case.append(w.id)
                continue
            wid, old = hit
            got = session.get(EarlyWarning, wid, with_for_update=True)
            if got is None or got.state == "lifted":
                self.open.pop((rcode, area), None)
                continue
            w = got
            w.subjects = devs
            if level < 0:
                lifecycle.perform(session, SYSTEM, table(), w, "lift",
                                  {"reason": "解除条件满足 the rule's lift condition holds"}, at=max(at, w.level_at))
                self.open.pop((rcode, area), None)
                notes.append(self._note(w, rule, "解除", old))
                continue
            if level == old:
                continue
            w.level, w.level_rank, w.level_at, w.updated_at = LEVELS[level], level, at, at_now
            if level > RANK_OF(w.max_level):
                w.max_level = LEVELS[level]
            w.title = _title(rule, names.get(area, area), level)
            self.open[(rcode, area)] = (wid, level)
            action = "level_raised" if level > old else "level_lowered"
            lifecycle.add_entry(session, SYSTEM, OBJECT, wid, action, at=at, from_state=w.state, to_state=w.state,
                                note=(_readings_text(c, unit) if level > old else None)
                                or f"{LEVEL_ZH[LEVELS[old]]} → {LEVEL_ZH[LEVELS[level]]}",
                                data={"from": LEVELS[old], "to": LEVELS[level], "device": c.device, "stat": c.stat})
            jobs.enqueue(session, "warning.level", {"id": wid, "rule": rcode, "area_code": area, "from": LEVELS[old],
                                                    "to": LEVELS[level], "at": at})
            if level > old:
                notes.append(self._note(w, rule, "升级", level))
                w.trigger = _trigger(c)
                if rule.auto_case and level >= rule.auto_case_rank and w.case_id is None:
                    want_case.append(wid)
        if notes:
            jobs.notify_many(session, [n for pair in notes for n in pair])
        session.flush()
        return want_case

    @staticmethod
    def _note(w: EarlyWarning, rule: RuleDef, what: str, level: int) -> list[dict[str, Any]]:
        title = f"{what}：{w.title}"[:200]
        body = f"{w.description or ''}"
        link = f"/vitals?warning={w.id}"
        sev = SEVERITY.get(level, "info")
        out = []
        if w.owner_department_code:
            out.append(dict(department_code=w.owner_department_code, title=title, body=body, link=link, severity=sev))
        street = w.area_code[:9] if len(w.area_code) >= 9 else w.area_code
        out.append(dict(role="shift_lead", area_code=street, title=title, body=body, link=link, severity=sev))
        out.append(dict(role="street_operator", area_code=street, title=title, body=body, link=link, severity=sev))
        return out


def RANK_OF(name: str) -> int:
    return LEVELS.index(name) if name in LEVELS else -1


def open_case(session: Session, cat: Catalogue, warning_id: int) -> int | None:
    """The ONE case of a warning (category and department from the rule, the triggering device's
    place), through ``cityops.cases.service``: a sensor signal as the system, accepted with the
    triggering readings as its note, registered and dispatched to the department. In the caller's
    transaction; returns the case id (None when the case engine refused)."""
    from cityops.cases import schemas as cs
    from cityops.cases import service as cases
    from cityops.errors import CityOpsError

    w = session.get(EarlyWarning, warning_id, with_for_update=True)
    if w is None or w.case_id is not None or w.lon is None or w.lat is None:
        return w.case_id if w is not None else None
    rule = cat.rules.get(w.rule_code)
    if rule is None or not rule.auto_case:
        return None
    auto = rule.auto_case
    ind = cat.indicators.get(rule.indicator or "")
    unit = ind.unit if ind else ""
    trig = w.trigger or {}
    readings = [(int(t), float(v)) for t, v in trig.get("readings", []) if v == v]
    change = Change(w.rule_code, str(trig.get("device", "")), w.area_code, int(trig.get("t", 0)), -1, w.level_rank,
                    trig.get("stat"), readings)
    text = _readings_text(change, unit, limit=20)
    try:
        with session.begin_nested():
            sig = cs.SignalIn(source="iot", device_id=str(trig.get("device") or w.rule_code)[:60],
                              signal_type=f"{rule.name_zh}{LEVEL_ZH[w.level]}预警"[:60],
                              category_code=auto["category_code"], lat=w.lat, lon=w.lon,
                              observed_at=w.level_at, payload={"warning_id": w.id, "rule": w.rule_code,
                                                               "level": w.level, "readings": readings[-20:]},
                              signal_key=f"warning:{w.id}")
            _st, out, _r = cases.ingest_signal(session, SYSTEM, sig)
            case_id = out.get("case_id")
            if case_id is None or out.get("outcome") != "case_created":
                log.info("warning %s: the case engine did not open a case (%s)", w.id, out.get("outcome"))
                return None
            note = f"由预警 W{w.id}「{w.title}」自动立案 opened by warning W{w.id}。{text}"[:2000]
            cases.act(session, SYSTEM, case_id, "accept", cs.ActionIn(note=note))
            cases.act(session, SYSTEM, case_id, "register", cs.ActionIn(note="物联感知预警自动立案 registered from a sensor warning"))
            dept = auto.get("department_code")
            if dept:
                cases.act(session, SYSTEM, case_id, "dispatch", cs.ActionIn(
                    department_code=dept, note=f"预警规则 {rule.code} 派至 {dept} (智能派单 rule-based dispatch)"))
    except CityOpsError as exc:
        log.warning("warning %s: case not opened: %s", w.id, exc)
        return None
    w.case_id, w.case_no = int(case_id), out.get("case_no")
    lifecycle.add_entry(session, SYSTEM, OBJECT, w.id, "case_opened", at=jobs.now(), from_state=w.state,
                        to_state=w.state, note=f"已立案 case {w.case_no}", data={"case_id": w.case_id,
                                                                               "case_no": w.case_no})
    jobs.enqueue(session, "warning.case", {"id": w.id, "case_id": w.case_id, "case_no": w.case_no})
    return w.case_id


def perform(session: Session, principal: Principal, w: EarlyWarning, action: str, body: dict[str, Any]) -> None:
    """A person's action on a warning (already read through the principal's scope)."""
    lifecycle.perform(session, principal, table(), w, action, body, event={"rule": w.rule_code,
                                                                           "area_code": w.area_code})


def area_levels() -> dict[str, int]:
    return dict(AREA_LEVELS)
