"""The mobilisation ladder (动员层级) tied to the response levels (``data/mobilisation.json``).

Each response level calls up pools of forces — professional teams, social and volunteer teams,
enterprises under agreement, logistics firms — and names residents' rights and duties. When an
incident's level is set or changed, the difference is called up or stood down (like the tasks):
departments of the district get an in-app notification, partners outside the platform an outbox
event ``emergency.mobilisation.callup`` (webhooks carry it to their systems), residents' duties go
to the street and community workstations. Every call-up waits for its acknowledgement.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cityops.db import insert_rows
from cityops.emergency import rules
from cityops.emergency.models_command import Incident, MobilisationCallup
from cityops.emergency.scopes import MOBILISATION_SCOPE
from cityops.errors import Conflict, Forbidden, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.lifecycle import service as lifecycle
from cityops.security import audit, scope
from cityops.security.principal import Principal

CALLS = MobilisationCallup.__table__
LIVE = ("called", "acknowledged")


def apply(session: Session, inc: Incident, level: str, at: dt.datetime) -> dict[str, int]:
    """Call up what ``level`` calls for and is not called yet; stand down what it no longer calls."""
    from cityops.config import get_settings

    target = {(c.pool, c.org_code): c for c in rules.ladder_calls(level)}
    have = {(r.pool, r.org_code): r.id for r in session.execute(
        select(MobilisationCallup.id, MobilisationCallup.pool, MobilisationCallup.org_code)
        .where(MobilisationCallup.incident_id == inc.id, MobilisationCallup.state.in_(LIVE)))}
    district = get_settings().district_code
    rows = []
    for key, c in target.items():
        if key in have:
            continue
        rows.append(dict(incident_id=inc.id, level=level, pool=c.pool, org_code=c.org_code, org_name=c.org_name,
                         department_code=c.department_code, duty=c.duty, area_code=inc.area_code, state="called",
                         exercise=inc.exercise, called_at=at, acknowledged_at=None, acknowledged_by=None,
                         stood_down_at=None, _area=c.area))
    gone = [rid for key, rid in have.items() if key not in target]
    areas = [r.pop("_area") for r in rows]
    ids = insert_rows(session, CALLS, rows)
    if gone:
        session.execute(update(MobilisationCallup).where(MobilisationCallup.id.in_(gone))
                        .values(state="stood_down", stood_down_at=at))
    tag = "【演练】" if inc.exercise else ""
    spec = rules.ladder().levels[level]  # type: ignore[index]
    notes: list[dict[str, Any]] = []
    partners: list[dict[str, Any]] = []
    for rid, r, area in zip(ids, rows, areas, strict=True):
        title = f"{tag}动员令（{rules.LEVEL_LABELS[level][0]}）：{inc.title}"[:200]
        body = f"{r['org_name']}：{r['duty']}（批准：{spec.approval}）。请确认收到。"
        link = f"/emergency/incidents/{inc.id}"
        if r["department_code"]:
            notes.append(dict(department_code=r["department_code"], title=title, body=body, link=link, severity="urgent"))
        elif r["pool"] == "residents":
            where = district if area == "district" or not inc.street_code else (
                inc.street_code if area == "street" else inc.area_code)
            for role in ("street_operator", "community_operator"):
                notes.append(dict(role=role, area_code=where, title=f"{tag}居民动员：{inc.title}"[:200],
                                  body=f"{r['duty']}（请组织入户告知）", link=link, severity="urgent"))
        else:
            partners.append({"id": rid, "incident_id": inc.id, "incident_code": inc.code, "level": level,
                             "pool": r["pool"], "org_code": r["org_code"], "org_name": r["org_name"], "duty": r["duty"],
                             "approval": spec.approval, "exercise": inc.exercise, "at": at})
    jobs.notify_many(session, notes)
    jobs.enqueue_many(session, "emergency.mobilisation.callup", partners)
    return {"mobilised": len(rows), "stood_down": len(gone)}


def stand_down_all(session: Session, inc: Incident, at: dt.datetime) -> dict[str, int]:
    n = jobs.rowcount(session.execute(update(MobilisationCallup).where(MobilisationCallup.incident_id == inc.id,
                                                                       MobilisationCallup.state.in_(LIVE))
                                      .values(state="stood_down", stood_down_at=at)))
    return {"stood_down": n}


def callup_out(c: MobilisationCallup, lang: str = "zh") -> dict[str, Any]:
    pool = rules.ladder().pools.get(c.pool)
    return {"id": c.id, "incident_id": c.incident_id, "level": c.level, "pool": c.pool,
            "pool_name": (pool.en if lang == "en" else pool.zh) if pool else c.pool, "org_code": c.org_code,
            "org_name": c.org_name, "department_code": c.department_code, "duty": c.duty, "state": c.state,
            "called_at": c.called_at, "acknowledged_at": c.acknowledged_at, "acknowledged_by": c.acknowledged_by,
            "stood_down_at": c.stood_down_at, "exercise": c.exercise}


def list_callups(session: Session, principal: Principal, *, incident: int | None = None, state: str | None = None,
                 lang: str = "zh") -> list[dict[str, Any]]:
    stmt = select(MobilisationCallup).where(scope.clause(principal, MOBILISATION_SCOPE))
    if incident is not None:
        stmt = stmt.where(MobilisationCallup.incident_id == incident)
    if state:
        stmt = stmt.where(MobilisationCallup.state == state)
    rows = session.scalars(stmt.order_by(MobilisationCallup.called_at, MobilisationCallup.id)).all()
    order = {k: p.order for k, p in rules.ladder().pools.items()}
    return sorted((callup_out(c, lang) for c in rows), key=lambda x: (x["state"] == "stood_down", order.get(x["pool"], 9)))


def counts(session: Session, principal: Principal, incident_id: int) -> dict[str, int]:
    rows = session.execute(select(MobilisationCallup.state, func.count())
                           .where(scope.clause(principal, MOBILISATION_SCOPE),
                                  MobilisationCallup.incident_id == incident_id)
                           .group_by(MobilisationCallup.state)).all()
    return dict(Counter({s: n for s, n in rows}))


def acknowledge(session: Session, principal: Principal, callup_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """A call-up acknowledged (by the department itself, or recorded by the command for a partner)."""
    c = session.scalar(select(MobilisationCallup).where(scope.clause(principal, MOBILISATION_SCOPE),
                                                        MobilisationCallup.id == callup_id).with_for_update())
    if c is None:
        raise NotFound([Problem(f"未找到动员记录 call-up {callup_id} not found", ["path", "callup_id"], "not_found")])
    if c.state != "called":
        raise Conflict([Problem(f"当前状态为「{c.state}」，不能确认 a call-up in state {c.state} cannot be acknowledged; "
                                f"allowed now: none", ["path", "callup_id"], "illegal_transition",
                                {"state": c.state, "allowed_actions": []})], state=c.state, allowed_actions=[])
    if c.department_code and principal.department_code not in (None, c.department_code):
        raise Forbidden([Problem("只能确认发给本部门的动员 only the department called up may acknowledge it",
                                 ["principal"], "forbidden")])
    at = jobs.now()
    c.state, c.acknowledged_at, c.acknowledged_by = "acknowledged", at, principal.username[:80]
    lifecycle.add_entry(session, principal, "incident", c.incident_id, "mobilisation_ack", at=at,
                        note=f"{c.org_name} 确认动员", data={"callup": c.id, "note": body.get("note")})
    jobs.enqueue(session, "emergency.mobilisation.ack", {"id": c.id, "incident_id": c.incident_id,
                                                         "org_code": c.org_code})
    audit.record(session, principal, "mobilisation.ack", "mobilisation", c.id)
    session.flush()
    return callup_out(c)
