"""Routes of emergency planning: supply allocation, evacuation, coverage (thin wrappers)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from cityops.emergency import schemas, service
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/emergency")
TAGS: list[str | Enum] = ["emergency-planning"]


@router.post("/allocate", tags=TAGS, response_model=schemas.AllocateOut,
             summary="物资调度优化 Optimal multi-commodity dispatch from warehouses to demand points")
def allocate(body: schemas.AllocateIn, principal: Principal = require("emergency.plan"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.allocate(session, principal, body)


@router.post("/evacuate", tags=TAGS, response_model=schemas.EvacuateOut,
             summary="疏散安置优化 Assign the population of affected grids to shelters")
def evacuate(body: schemas.EvacuateIn, principal: Principal = require("emergency.plan"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.evacuate(session, principal, body)


@router.post("/coverage", tags=TAGS, response_model=schemas.CoverageOut,
             summary="覆盖分析 Grids farther than X minutes from every team / warehouse of a kind")
def coverage(body: schemas.CoverageIn, principal: Principal = require("emergency.plan"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.coverage(session, principal, body)
