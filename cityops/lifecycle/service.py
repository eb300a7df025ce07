"""Perform an action of a lifecycle table, and read timelines.

``perform`` is the whole change for lifecycles that need nothing beyond their table: check
(``Table.check``), effects and state (``Table.apply``, which writes the timeline row through the
machine's writer — ``write_timeline`` by default), one audit row and one outbox event
``<machine>.transition`` — all in the caller's transaction (the request's unit of work commits).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.jobs import service as jobs
from cityops.lifecycle.machine import Context, Table, Transition
from cityops.lifecycle.models import TimelineEntry
from cityops.security import audit
from cityops.security.principal import Principal


def _object_id(obj: Any) -> str:
    return str(obj.id)


def add_entry(session: Session, principal: Principal, object_type: str, object_id: object, action: str, *,
              at: dt.datetime | None = None, from_state: str | None = None, to_state: str | None = None,
              note: str | None = None, data: dict[str, Any] | None = None) -> None:
    """One timeline row (a state change, or a notable step such as a warning's level raised)."""
    session.add(TimelineEntry(
        object_type=object_type, object_id=str(object_id), at=at or dt.datetime.now(dt.UTC),
        actor=principal.username[:120], actor_account_id=principal.account_id,
        actor_roles=principal.role_label()[:200], department_code=principal.department_code, action=action,
        from_state=from_state, to_state=to_state, note=note, data=jobs.jsonable(data or {})))


def write_timeline(ctx: Context, from_state: str, to_state: str) -> None:
    """The default ``Machine.timeline`` writer."""
    t = ctx.transition
    assert t is not None
    body = ctx.body
    note = body.get("note") if isinstance(body, dict) else getattr(body, "note", None)
    reason = body.get("reason") if isinstance(body, dict) else getattr(body, "reason", None)
    add_entry(ctx.session, ctx.principal, ctx.extra.get("object_type") or _machine_name(ctx), _object_id(ctx.obj),
              t.action, at=ctx.at, from_state=from_state, to_state=to_state, note=note or reason,
              data={**ctx.data, **({"reason": reason} if reason and note else {})})


def _machine_name(ctx: Context) -> str:
    return str(ctx.extra.get("machine", "object"))


def perform(session: Session, principal: Principal, table: Table, obj: Any, action: str, body: Any = None, *,
            at: dt.datetime | None = None, event: dict[str, Any] | None = None,
            audit_detail: dict[str, Any] | None = None) -> tuple[Transition, str, str]:
    """Check and apply ``action`` on ``obj`` (already read through the principal's scope)."""
    name = table.machine.name
    ctx = Context(session, principal, obj, body, at or dt.datetime.now(dt.UTC),
                  extra={"machine": name, "object_type": name})
    t = table.check(ctx, action)
    from_state, to_state = table.apply(ctx, t)
    if table.machine.timeline is None:  # the generic timeline
        write_timeline(ctx, from_state, to_state)
    oid = _object_id(obj)
    audit.record(session, principal, f"{name}.{action}", name, oid,
                 detail={"from": from_state, "to": to_state, **(audit_detail or {})})
    jobs.enqueue(session, f"{name}.transition", {"id": oid, "action": action, "from_state": from_state,
                                                 "to_state": to_state, "actor": principal.username, "at": ctx.at,
                                                 **ctx.data, **(event or {})})
    session.flush()
    return t, from_state, to_state


def allowed_actions(session: Session, principal: Principal, table: Table, obj: Any) -> list[dict[str, Any]]:
    """What ``principal`` may do with ``obj`` now (for the UI's buttons and 409 answers)."""
    return table.allowed_out(Context(session, principal, obj, extra={"machine": table.machine.name}))


def timeline(session: Session, object_type: str, object_id: object) -> list[dict[str, Any]]:
    rows = session.scalars(select(TimelineEntry).where(TimelineEntry.object_type == object_type,
                                                       TimelineEntry.object_id == str(object_id))
                           .order_by(TimelineEntry.id))
    return [{"at": r.at, "actor": r.actor, "actor_roles": r.actor_roles, "department_code": r.department_code,
             "action": r.action, "from_state": r.from_state, "to_state": r.to_state, "note": r.note,
             "data": r.data} for r in rows]


__all__ = ["perform", "allowed_actions", "timeline", "add_entry", "write_timeline"]
