"""Routes of public warnings (预警信息发布): drafts, the approval workflow, CAP 1.2 and JSON exports
of issued messages (public, as warnings are public information), the Atom feed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityops.emergency import alerts, machines
from cityops.emergency.schemas_command import ActionBody
from cityops.security.deps import public_route, require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/emergency/warnings", tags=["emergency"])
CAP_TYPE = "application/cap+xml; charset=utf-8"
WID = Path(..., ge=1, le=2**31 - 1)  # an INTEGER key (PostgreSQL int4)


def _lang(request: Request) -> str:
    from cityops.console.i18n import pick_lang

    return pick_lang(request)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("", summary="预警信息列表 Public warnings in scope")
def list_warnings(request: Request, state: str | None = Query(None, max_length=100,
                                                            pattern=machines.states_pattern(machines.WARNING),
                                                            description="预警状态（逗号分隔） warning states, comma-separated"),
                  status: str | None = Query(None, pattern=r"^(Actual|Exercise)$"),
                  incident: int | None = Query(None, ge=1, le=2**62), page: int = Query(1, ge=1, le=10_000),
                  page_size: int = Query(50, ge=1, le=500), principal: Principal = require("warning.read"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return alerts.list_warnings(session, principal, state=[s for s in (state or "").split(",") if s] or None,
                                status=status, incident=incident, page=page, page_size=page_size, lang=_lang(request))


@router.post("", status_code=201, summary="起草预警 Draft a warning")
def draft_warning(body: alerts.WarningIn, principal: Principal = require("warning.draft"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return alerts.draft(session, principal, body)


@router.get("/feed.atom", dependencies=[Depends(public_route)],
            summary="当前预警的 CAP 消息（Atom） Atom feed of the current CAP messages")
def atom_feed(request: Request, session: Session = UnitOfWork) -> Response:
    return Response(alerts.feed(session, _base(request)), media_type="application/atom+xml; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=30"})


@router.get("/{warning_id}.cap", dependencies=[Depends(public_route)],
            summary="已发布预警的 CAP 1.2 消息 The issued CAP 1.2 message (latest, or number seq)")
async def warning_cap(warning_id: int = WID, seq: int | None = Query(None, ge=1, le=10_000)) -> Response:
    xml = alerts.cached_cap(warning_id, seq)  # issued messages are immutable: no unit of work, a cached read
    if xml is None:
        xml = await run_in_threadpool(alerts.load_cap, warning_id, seq)
    return Response(xml, media_type=CAP_TYPE, headers={"Cache-Control": "public, max-age=30"})


@router.get("/{warning_id}.json", dependencies=[Depends(public_route)],
            summary="已发布预警的 CAP 消息（JSON） The issued CAP message as JSON")
def warning_json(warning_id: int = WID, seq: int | None = Query(None, ge=1, le=10_000),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return alerts.cap_json(session, warning_id, seq)


@router.get("/{warning_id}", summary="预警详情 Warning detail (messages, actions, timeline)")
def warning_detail(request: Request, warning_id: int = WID, principal: Principal = require("warning.read"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return alerts.detail(session, principal, alerts.get_warning(session, principal, warning_id), _lang(request))


@router.patch("/{warning_id}", summary="修改草稿 Edit a draft")
def edit_warning(body: alerts.WarningChanges, warning_id: int = WID, principal: Principal = require("warning.draft"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return alerts.edit_draft(session, principal, warning_id, body)


@router.get("/{warning_id}/cap-preview",
            summary="草稿的 CAP 预览（status Draft） A draft as CAP with status Draft")
def warning_preview(warning_id: int = WID, principal: Principal = require("warning.draft"),
                    session: Session = UnitOfWork) -> Response:
    return Response(alerts.cap_preview(session, principal, warning_id), media_type=CAP_TYPE)


@router.post("/{warning_id}/actions/{action}",
             summary="审核/发布/调整/解除（按流转表；审核人不得为起草人） Approve, publish, update, cancel")
def warning_action(body: ActionBody, warning_id: int = WID,
                   action: str = Path(..., min_length=1, max_length=40, pattern=r"^[a-z_]+$"),
                   principal: Principal = require("warning.draft"), session: Session = UnitOfWork) -> dict[str, Any]:
    return alerts.act(session, principal, warning_id, action, body.as_body())
