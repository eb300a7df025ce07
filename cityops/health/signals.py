"""Signals (预警信号) and their response workflow: a detection alarm or a school ILI cluster rule becomes one
signal per (method, syndrome, area, period); the response follows the transition table
``data/signal_lifecycle.json`` (初步核实 -> 现场调查 -> 排除 / 疑似事件 / 确认暴发); the verification deadline
is a timer (``cityops.jobs``): a signal still unverified when it fires escalates once (timeline row,
notifications to the district CDC duty roles). CIDARS KPIs in :mod:`cityops.health.kpi`."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.health.models import Signal
from cityops.jobs import service as jobs
from cityops.lifecycle import Machine
from cityops.lifecycle import service as lifecycle
from cityops.lifecycle.machine import Context, Table, requirement_field
from cityops.security import audit
from cityops.security.principal import SYSTEM, Principal

HERE = Path(__file__).resolve().parent
OBJECT = "health_signal"
SHANGHAI = ZoneInfo("Asia/Shanghai")
VERIFY_TIMER = "health.signal_verify_due"
VERIFY_HOURS = 24.0  # CIDARS: respond (初步核实) within 24 h
SCHOOL_RULES = ((30, "school_ili_30", 2.0), (10, "school_ili_10", 24.0))  # weekly ILI in one school -> hours


def _stamp(ctx: Context) -> None:
    s: Signal = ctx.obj
    t = ctx.transition
    assert t is not None
    if s.verified_at is None:
        s.verified_at = ctx.at
        jobs.cancel_timers(ctx.session, OBJECT, s.id, VERIFY_TIMER)
    if t.to_state == "investigating":
        s.investigated_at = ctx.at
    if t.to_state == "closed":
        s.closed_at = ctx.at
    if isinstance(ctx.body, dict) and ctx.body.get("note"):
        s.note = str(ctx.body["note"])[:2000]
    s.officer = ctx.principal.username


def _outcome(name: str) -> Any:
    def effect(ctx: Context) -> None:
        ctx.obj.outcome = name
        ctx.data["outcome"] = name

    return effect


MACHINE = Machine(
    name=OBJECT,
    states={"new": {"zh": "待核实", "en": "new"}, "verifying": {"zh": "初步核实", "en": "verifying"},
            "investigating": {"zh": "现场调查", "en": "investigating"}, "closed": {"zh": "已结案", "en": "closed"}},
    actions={"verify": {"zh": "开始核实", "en": "verify"}, "investigate": {"zh": "现场调查", "en": "investigate"},
             "exclude": {"zh": "排除", "en": "exclude"}, "suspect": {"zh": "判定疑似事件", "en": "suspected event"},
             "confirm": {"zh": "确认暴发", "en": "confirm outbreak"}},
    default_permission="signal.act",
    state_attr="status",
    requirements={"note": requirement_field("note", "需填写核实或调查情况 needs a note")},
    effects={"stamp": _stamp, "excluded": _outcome("excluded"), "suspected": _outcome("suspected"),
             "confirmed": _outcome("confirmed")},
)


@lru_cache
def table() -> Table:
    return MACHINE.load_file(HERE / "data" / "signal_lifecycle.json")


def raise_signal(session: Session, *, method: str, syndrome: str, area_code: str, area_level: str,
                 period_end: dt.date, observed: float, threshold: float | None, params: dict[str, Any],
                 site_id: int | None = None, rule: str | None = None, verify_hours: float = VERIFY_HOURS,
                 at: dt.datetime | None = None) -> Signal | None:
    """One signal per (method, syndrome, area, period end); None if it exists. Arms the deadline timer."""
    exists = session.scalar(select(Signal.id).where(Signal.method == method, Signal.syndrome == syndrome,
                                                    Signal.area_code == area_code, Signal.period_end == period_end))
    if exists is not None:
        return None
    now = at or clock.now()
    s = Signal(method=method, syndrome=syndrome, area_code=area_code, area_level=area_level, site_id=site_id,
               period_end=period_end, observed=float(observed),
               threshold=None if threshold is None else float(threshold), params=params, rule=rule, status="new",
               created_at=now, verify_due_at=now + dt.timedelta(hours=verify_hours))
    session.add(s)
    session.flush()
    lifecycle.add_entry(session, SYSTEM, OBJECT, s.id, "raise",
                        data={"method": method, "syndrome": syndrome, "observed": observed, "threshold": threshold})
    jobs.schedule_timer(session, VERIFY_TIMER, OBJECT, s.id, s.verify_due_at)
    jobs.notify(session, role="cdc_analyst", title=f"预警信号：{syndrome} {area_code}",
                body=f"{method} 观察值 {observed:g} 阈值 {threshold if threshold is not None else '-'}",
                link=f"/health/signals/{s.id}", severity="warning")
    return s


def fire_verify_due(session: Session, payload: dict[str, Any]) -> None:
    """The verification deadline passed: escalate once if the signal is still unverified."""
    s = session.get(Signal, int(payload["ref_id"]), with_for_update=True)
    if s is None or s.status != "new" or s.verified_at is not None or s.escalated_at is not None:
        return
    now = clock.now()
    s.escalated_at = now
    lifecycle.add_entry(session, SYSTEM, OBJECT, s.id, "escalate",
                        data={"due_at": s.verify_due_at.isoformat(), "reason": "未在核实时限内响应 not verified in time"})
    for role in ("cdc_analyst", "district_commander"):
        jobs.notify(session, role=role, title=f"预警信号超时未核实：{s.syndrome} {s.area_code}",
                    body=f"信号 {s.id} 核实时限 {s.verify_due_at.astimezone(SHANGHAI):%m-%d %H:%M} 已过",
                    link=f"/health/signals/{s.id}", severity="urgent")
    audit.record(session, SYSTEM, "health_signal.escalate", OBJECT, s.id)


def act(session: Session, principal: Principal, s: Signal, action: str, body: Any) -> dict[str, Any]:
    _t, frm, to = lifecycle.perform(session, principal, table(), s, action, body, at=clock.now())
    return {"id": s.id, "from": frm, "to": to, "status": s.status, "outcome": s.outcome}
