"""Routes of smart dispatch (thin: parse, call one service function, return)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session

from cityops.ai import models_service, schemas, service
from cityops.security.deps import public_route, require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1")


@router.post("/cases/classify", tags=["classify"], response_model=schemas.ClassifyOut,
             summary="智能派单：文本分类与地点识别 Classify a complaint text (category, department, place)")
def classify(body: schemas.ClassifyIn, principal: Principal = require("classify.use"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.classify(session, body.text, body.channel)


@router.post("/public/classify", tags=["classify"], response_model=schemas.ClassifyOut,
             summary="市民上报时的类别建议（限流） Category suggestion while a citizen types (rate-limited)",
             dependencies=[Depends(public_route)])
def public_classify(body: schemas.ClassifyIn, request: Request, session: Session = UnitOfWork) -> dict[str, Any]:
    from cityops.security.service import client_ip

    return service.public_classify(session, body.text, source_ip=client_ip(request))


@router.get("/cases/{case_id}/proposal", tags=["classify"], summary="案件的智能派单建议 The proposal stored with a case")
def case_proposal(case_id: int = Path(..., ge=1, le=2**62), principal: Principal = require("case.read"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return service.case_proposal(session, principal, case_id)


@router.post("/classify/corrections", tags=["classify"], status_code=201,
             summary="派遣员确认或纠正建议（记为训练样本） Confirm or correct a proposal (a labelled example)")
def correct(body: schemas.CorrectionIn, principal: Principal = require("classify.correct"),
            session: Session = UnitOfWork) -> dict[str, Any]:
    return service.submit_correction(session, principal, body)


@router.get("/classify/models", tags=["classify"], summary="模型版本 Model versions")
def versions(principal: Principal = require("classify.manage"), session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": models_service.list_versions(session)}


@router.post("/classify/models/retrain", tags=["classify"], status_code=202,
             summary="排队重新训练（后台任务） Queue a retraining job for the worker")
def retrain(principal: Principal = require("classify.manage"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.queue_retrain(session, principal)


@router.post("/classify/models/promote", tags=["classify"], summary="发布模型版本 Promote a version (if not worse)")
def promote(body: schemas.VersionIn, principal: Principal = require("classify.manage"),
            session: Session = UnitOfWork) -> dict[str, Any]:
    return service.promote_version(session, principal, body.version, body.force)


@router.post("/classify/models/rollback", tags=["classify"], summary="回滚到上一版本 Roll back to the previous version")
def rollback(principal: Principal = require("classify.manage"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.rollback_version(session, principal)
