"""Routes: the in-app inbox, webhook subscriptions and deliveries, job status. Thin: parse, call
one service function, return."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.orm import Session

from cityops.jobs import schemas, service, webhooks
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1")

BIG = 2**62


# ---- in-app inbox -----------------------------------------------------------------------------

@router.get("/notifications", response_model=schemas.NotificationPage, tags=["notifications"],
            summary="我的消息 My notifications (newest first)")
def list_notifications(
    unread: bool | None = Query(None, description="true: unread only; false: read only"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=500),
    principal: Principal = require("notification.read"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    return service.list_notifications(session, principal, unread=unread, page=page, page_size=page_size)


@router.get("/notifications/unread-count", response_model=schemas.UnreadCount, tags=["notifications"],
            summary="未读数 Unread count")
def unread_count(principal: Principal = require("notification.read"),
                 session: Session = UnitOfWork) -> dict[str, int]:
    return {"unread": service.unread_count(session, principal)}


@router.post("/notifications/read-all", response_model=schemas.MarkedCount, tags=["notifications"],
             summary="全部已读 Mark all read")
def read_all(principal: Principal = require("notification.read"),
             session: Session = UnitOfWork) -> dict[str, int]:
    return {"marked": service.mark_all_read(session, principal)}


@router.post("/notifications/{notification_id}/read", response_model=schemas.NotificationOut,
             tags=["notifications"], summary="标为已读 Mark read")
def read_one(notification_id: int = Path(..., ge=1, le=BIG), principal: Principal = require("notification.read"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.mark_read(session, principal, notification_id)


# ---- webhooks ---------------------------------------------------------------------------------

@router.get("/webhooks", response_model=list[schemas.WebhookOut], tags=["webhooks"],
            summary="推送订阅列表 List webhook subscriptions")
def list_webhooks(principal: Principal = require("webhook.manage"),
                  session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return webhooks.list_subscriptions(session)


@router.post("/webhooks", response_model=schemas.WebhookOut, status_code=201, tags=["webhooks"],
             summary="新建推送订阅 Create a subscription (the secret is shown once)")
def create_webhook(body: schemas.WebhookIn, principal: Principal = require("webhook.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return webhooks.create_subscription(session, principal, url=body.url, topics=body.topics, secret=body.secret,
                                        active=body.active, description=body.description)


@router.get("/webhooks/deliveries", response_model=schemas.DeliveryPage, tags=["webhooks"],
            summary="推送记录（含死信）Deliveries, dead letters included")
def list_deliveries(
    status: schemas.DeliveryStatus | None = Query(None),
    subscription_id: int | None = Query(None, ge=1, le=2**31 - 1),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=500),
    principal: Principal = require("webhook.manage"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    total, items = webhooks.list_deliveries(session, status=status, subscription_id=subscription_id, page=page,
                                            page_size=page_size)
    return {"total": total, "page": page, "page_size": page_size, "items": items}


@router.post("/webhooks/deliveries/{delivery_id}/retry", response_model=schemas.DeliveryOut, tags=["webhooks"],
             summary="重新推送 Retry a dead delivery")
def retry_delivery(delivery_id: int = Path(..., ge=1, le=BIG), principal: Principal = require("webhook.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return webhooks.retry_delivery(session, principal, delivery_id)


@router.get("/webhooks/{sub_id}", response_model=schemas.WebhookOut, tags=["webhooks"],
            summary="推送订阅详情 One subscription")
def get_webhook(sub_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("webhook.manage"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return webhooks.subscription_out(webhooks.get_subscription(session, sub_id))


@router.patch("/webhooks/{sub_id}", response_model=schemas.WebhookOut, tags=["webhooks"],
              summary="修改推送订阅 Update a subscription (rotate_secret shows the new secret once)")
def update_webhook(body: schemas.WebhookPatch, sub_id: int = Path(..., ge=1, le=2**31 - 1),
                   principal: Principal = require("webhook.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return webhooks.update_subscription(session, principal, sub_id, url=body.url, topics=body.topics,
                                        active=body.active, description=body.description,
                                        rotate_secret=body.rotate_secret, secret=body.secret)


@router.delete("/webhooks/{sub_id}", status_code=204, tags=["webhooks"], summary="删除推送订阅 Delete a subscription")
def delete_webhook(sub_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("webhook.manage"),
                   session: Session = UnitOfWork) -> Response:
    webhooks.delete_subscription(session, principal, sub_id)
    return Response(status_code=204)


# ---- job status -------------------------------------------------------------------------------

@router.get("/jobs/stats", response_model=schemas.JobStats, tags=["webhooks"],
            summary="后台任务状态 Outbox, timer and delivery counts by status")
def job_stats(principal: Principal = require("webhook.manage"),
              session: Session = UnitOfWork) -> dict[str, Any]:
    return service.stats(session)


@router.get("/jobs/outbox", response_model=schemas.OutboxPage, tags=["webhooks"],
            summary="发件箱（含死信）Outbox items, dead letters included")
def list_outbox(
    status: schemas.OutboxStatus | None = Query(None),
    topic: str | None = Query(None, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(50, ge=1, le=500),
    principal: Principal = require("webhook.manage"),
    session: Session = UnitOfWork,
) -> dict[str, Any]:
    total, items = service.list_outbox(session, status=status, topic=topic, page=page, page_size=page_size)
    return {"total": total, "page": page, "page_size": page_size, "items": items}
