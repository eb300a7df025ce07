"""Worker timer of security: ``audit.anchor_head`` anchors the audit chain's head every
``CITYOPS_AUDIT_ANCHOR_MINUTES`` (file beside the database + the outbox event ``audit.anchor``)
and re-arms itself (``cityops.security.anchors``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cityops.jobs.registry import handler
from cityops.security import anchors


@handler(anchors.TIMER)
def anchor_chain_head(session: Session, payload: dict[str, Any]) -> None:
    anchors.write_anchor(session)
    anchors.arm(session)
