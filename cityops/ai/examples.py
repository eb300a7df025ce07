"""Labelled examples for training: dispatchers' corrections and the department overrides recorded at
dispatch (harvested from the case engine's routing decisions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.ai.models import AiExample
from cityops.cases import reference as ref
from cityops.cases import service as cases


def _version_code(session: Session) -> str | None:
    return ref.active_catalogue_code(session)


def harvest_overrides(session: Session) -> int:
    """Copy the department overrides recorded at dispatch (routing decisions with ``overridden``)
    that are not examples yet into labelled examples. Returns how many were added."""
    done = set(session.scalars(select(AiExample.routing_decision_id).where(AiExample.routing_decision_id.is_not(None))))
    rows = [r for r in cases.routing_overrides(session) if r["routing_decision_id"] not in done]
    for r in rows:
        session.add(AiExample(source="routing_override", case_id=r["case_id"], routing_decision_id=r["routing_decision_id"],
                              text=r["text"], channel=r["channel"], category_code=r["category_code"],
                              catalogue_version=_version_code(session), department_code=r["department_code"],
                              street_code=r["street_code"], community_code=r["community_code"], grid_code=r["grid_code"],
                              fields=["department"], actor=r["actor"]))
    session.flush()
    return len(rows)


def list_examples(session: Session, *, after_id: int = 0, limit: int = 100_000) -> list[AiExample]:
    return list(session.scalars(select(AiExample).where(AiExample.id > after_id).order_by(AiExample.id).limit(limit)))


def example_out(e: AiExample) -> dict[str, Any]:
    return {"id": e.id, "created_at": e.created_at, "source": e.source, "case_id": e.case_id, "text": e.text,
            "channel": e.channel, "category_code": e.category_code, "department_code": e.department_code,
            "street_code": e.street_code, "community_code": e.community_code, "grid_code": e.grid_code,
            "fields": e.fields, "actor": e.actor}
