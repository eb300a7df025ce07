"""Outbreak mode (战时模式) per disease x area: switching it on opens an outbreak linked to the
signal that caused it (by a holder of ``outbreak.command``, with a reason, audited, one timeline row);
switching it off ends it and keeps every record; it may be switched on again. Reads of the
outbreak list and detail; the figures inside are scoped (``cityops.outbreak.scopes``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, InvalidInput, Problem
from cityops.lifecycle import service as lifecycle
from cityops.outbreak import machines, rules
from cityops.outbreak.days import FOLLOWUP_TIMER, TZ, local_day
from cityops.outbreak.models import Outbreak, OutbreakCase, TrackedPerson, Zone
from cityops.outbreak.schemas import OutbreakIn
from cityops.outbreak.scopes import CASE_SCOPE, PERSON_SCOPE, ZONE_SCOPE, get_outbreak
from cityops.security import audit, scope
from cityops.security.principal import Principal

OBJECT = "ob_outbreak"


def _area_name(session: Session, code: str) -> str | None:
    from cityops.geo import service as geo

    return geo.indexes(session).names.get(code)


def open_outbreak(session: Session, principal: Principal, body: OutbreakIn) -> dict[str, Any]:
    """Switch outbreak mode on for ``body.disease`` in ``body.area_code``."""
    rs = rules.get(body.rule_set) if body.rule_set else rules.default_for(body.disease)
    if rs.disease != body.disease:
        raise InvalidInput([Problem(f"规则集 {rs.code} 适用于 {rs.disease}，不是 {body.disease} the rule set is for "
                                    f"another disease", ["body", "rule_set"], "value_error")])
    name = _area_name(session, body.area_code)
    if name is None:
        raise InvalidInput([Problem(f"未知的区域代码 unknown area {body.area_code}", ["body", "area_code"], "value_error")])
    if principal.area_code and not principal.is_district_wide and not body.area_code.startswith(principal.area_code):
        raise InvalidInput([Problem("区域超出账号范围 the area is outside the account's area", ["body", "area_code"],
                                    "value_error")])
    dup = session.scalar(select(Outbreak).where(Outbreak.disease == body.disease, Outbreak.area_code == body.area_code,
                                                Outbreak.state == "active"))
    if dup is not None:
        raise Conflict([Problem(f"该区域已处于战时模式 outbreak {dup.code} is already active here",
                                ["body", "area_code"], "conflict", {"outbreak": dup.code})])
    now = clock.now()
    seq = int(session.scalar(select(func.count()).select_from(Outbreak)) or 0) + 1
    ob = Outbreak(code=f"OB{local_day(now):%Y%m%d}-{seq:03d}", disease=body.disease,
                  title=body.title or f"{name}{rs.disease_zh}疫情处置", area_code=body.area_code,
                  street_code=body.area_code[:9] if len(body.area_code) >= 9 else None, rule_set=rs.code,
                  rules_version=rs.version, state="active", signal_type=body.signal_type, signal_ref=body.signal_ref,
                  reason=body.reason, opened_at=now, opened_by=principal.username, exercise=body.exercise)
    session.add(ob)
    session.flush()
    lifecycle.add_entry(session, principal, OBJECT, ob.id, "open", at=now, to_state="active", note=body.reason,
                        data={"rule_set": rs.code, "signal_type": body.signal_type, "signal_ref": body.signal_ref})
    audit.record(session, principal, "ob_outbreak.open", OBJECT, ob.id,
                 detail={"disease": ob.disease, "area": ob.area_code, "rule_set": rs.code, "reason": body.reason,
                         "signal": body.signal_ref})
    _schedule_followup(session, ob, now)
    return outbreak_dict(session, principal, ob)


def _schedule_followup(session: Session, ob: Outbreak, now: dt.datetime) -> None:
    """The daily follow-up timer of the outbreak (``cityops.outbreak.jobs``): 20:00 Shanghai."""
    from cityops.jobs import service as jobs

    local = now.astimezone(TZ)
    at = local.replace(hour=20, minute=0, second=0, microsecond=0)
    if at <= local:
        at += dt.timedelta(days=1)
    jobs.schedule_timer(session, FOLLOWUP_TIMER, OBJECT, ob.id, at.astimezone(dt.UTC), {"outbreak_id": ob.id})


def act(session: Session, principal: Principal, ref: str | int, action: str, reason: str | None) -> dict[str, Any]:
    """Switch an outbreak off (``end``) or on again (``resume``), by the lifecycle table."""
    ob = get_outbreak(session, ref, for_update=True)
    if action == "resume":
        dup = session.scalar(select(Outbreak.code).where(Outbreak.disease == ob.disease, Outbreak.area_code == ob.area_code,
                                                         Outbreak.state == "active", Outbreak.id != ob.id))
        if dup:
            raise Conflict([Problem(f"该区域已有启用的疫情 {dup} is active here", ["path", "action"], "conflict")])
    lifecycle.perform(session, principal, machines.outbreak_table(), ob, action, {"reason": reason},
                      at=clock.now(), audit_detail={"reason": reason})
    if action == "resume":
        _schedule_followup(session, ob, clock.now())
    else:
        from cityops.jobs import service as jobs

        jobs.cancel_timers(session, OBJECT, ob.id)
    return outbreak_dict(session, principal, ob)


def outbreak_dict(session: Session, principal: Principal, ob: Outbreak) -> dict[str, Any]:
    rs = rules.get(ob.rule_set)
    cases = session.execute(select(OutbreakCase.classification, func.count()).where(
        OutbreakCase.outbreak_id == ob.id, scope.clause(principal, CASE_SCOPE)).group_by(OutbreakCase.classification)).all()
    contacts = session.execute(select(TrackedPerson.category, func.count()).where(
        TrackedPerson.outbreak_id == ob.id, TrackedPerson.category.in_(("close", "secondary")),
        scope.clause(principal, PERSON_SCOPE)).group_by(TrackedPerson.category)).all()
    zones = session.execute(select(Zone.state, func.count()).where(
        Zone.outbreak_id == ob.id, scope.clause(principal, ZONE_SCOPE)).group_by(Zone.state)).all()
    return {
        "id": ob.id, "code": ob.code, "title": ob.title, "disease": ob.disease, "disease_zh": rs.disease_zh,
        "area_code": ob.area_code, "area_name": _area_name(session, ob.area_code), "state": ob.state,
        "state_label": machines.OUTBREAK.state_label(ob.state), "rule_set": ob.rule_set, "rule_set_name": rs.name_zh,
        "rules_version": ob.rules_version, "signal_type": ob.signal_type, "signal_ref": ob.signal_ref,
        "reason": ob.reason, "opened_at": ob.opened_at, "opened_by": ob.opened_by, "ended_at": ob.ended_at,
        "exercise": ob.exercise, "recomputed_at": ob.recomputed_at,
        "cases": {str(k): int(v) for k, v in cases}, "contacts": {str(k): int(v) for k, v in contacts},
        "zones": {str(k): int(v) for k, v in zones},
    }


def list_outbreaks(session: Session, principal: Principal, *, state: str | None = None) -> list[dict[str, Any]]:
    stmt = select(Outbreak).order_by(Outbreak.opened_at.desc())
    if state:
        stmt = stmt.where(Outbreak.state == state)
    return [outbreak_dict(session, principal, ob) for ob in session.scalars(stmt.limit(200))]


def detail(session: Session, principal: Principal, ref: str | int) -> dict[str, Any]:
    ob = get_outbreak(session, ref)
    out = outbreak_dict(session, principal, ob)
    out["timeline"] = lifecycle.timeline(session, OBJECT, ob.id)
    out["allowed_actions"] = lifecycle.allowed_actions(session, principal, machines.outbreak_table(), ob)
    return out


def rule_set_dict(code: str) -> dict[str, Any]:
    return rules.get(code).model_dump()


__all__ = ["TZ", "clock", "local_day", "open_outbreak", "act", "detail", "list_outbreaks", "outbreak_dict",
           "rule_set_dict"]
