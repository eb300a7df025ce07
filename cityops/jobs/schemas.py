"""Request and response bodies of the jobs API (notifications, webhooks, job status)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["info", "warning", "urgent", "critical"]
DeliveryStatus = Literal["pending", "delivered", "dead", "skipped"]
OutboxStatus = Literal["pending", "done", "dead"]


class NotificationOut(BaseModel):
    id: int
    created_at: dt.datetime
    title: str
    body: str
    link: str | None = None
    severity: str
    read: bool
    read_at: dt.datetime | None = None


class NotificationPage(BaseModel):
    total: int
    unread: int
    page: int
    page_size: int
    items: list[NotificationOut]


class UnreadCount(BaseModel):
    unread: int


class MarkedCount(BaseModel):
    marked: int


class WebhookIn(BaseModel):
    url: str = Field(..., max_length=500, description="http(s) URL receiving POSTs")
    topics: list[str] = Field(..., min_length=1, max_length=50,
                              description="topics or patterns: notification.created, case.*, *")
    secret: str | None = Field(None, max_length=120, description="whsec_<base64>; generated when omitted")
    active: bool = True
    description: str | None = Field(None, max_length=200)


class WebhookPatch(BaseModel):
    url: str | None = Field(None, max_length=500)
    topics: list[str] | None = Field(None, min_length=1, max_length=50)
    active: bool | None = None
    description: str | None = Field(None, max_length=200)
    secret: str | None = Field(None, max_length=120)
    rotate_secret: bool = False


class WebhookOut(BaseModel):
    id: int
    url: str
    topics: list[str]
    active: bool
    description: str | None = None
    created_by: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    disabled_reason: str | None = None
    secret_hint: str
    secret: str | None = Field(None, description="only in the answer that created or rotated it")


class DeliveryOut(BaseModel):
    id: int
    uid: str
    subscription_id: int
    event_id: int
    topic: str
    status: str
    attempts: int
    max_attempts: int
    run_at: dt.datetime
    last_error: str | None = None
    response_code: int | None = None
    created_at: dt.datetime
    last_attempt_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None


class DeliveryPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[DeliveryOut]


class OutboxOut(BaseModel):
    id: int
    topic: str
    status: str
    attempts: int
    max_attempts: int
    run_at: dt.datetime
    created_at: dt.datetime
    done_at: dt.datetime | None = None
    last_error: str | None = None
    dedupe_key: str | None = None
    claimed_by: str | None = None
    lease_until: dt.datetime | None = None


class OutboxPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[OutboxOut]


class JobStats(BaseModel):
    outbox: dict[str, int]
    timers: dict[str, int]
    deliveries: dict[str, int]
