"""Worker handler of smart dispatch: ``classify.retrain`` trains a new model version on the
corpus + every correction so far, evaluates it on the held-out split and promotes it only if it
is not worse (``cityops.ai.models_service.retrain``). Queued by ``POST /api/v1/classify/models/retrain``
or ``cityops classify train --queue``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cityops.ai import models_service
from cityops.ai.service import RETRAIN_TOPIC
from cityops.jobs.service import handler
from cityops.security.principal import Principal

WORKER = Principal(username="classify-worker", kind="system", roles=frozenset({"system"}))


@handler(RETRAIN_TOPIC)
def on_retrain(session: Session, payload: dict[str, Any]) -> None:
    models_service.retrain(session, WORKER)
