"""Tables of the job machinery: outbox, timers, webhook subscriptions and deliveries, in-app inbox.

Claimable rows (outbox items, timers, webhook deliveries) share the lease columns: a worker sets
``claimed_by`` (a token unique per claim) and ``lease_until`` and commits before doing the work;
a row whose lease has run out is claimable again (the worker died), so nothing acknowledged is lost.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow

# BIGINT on PostgreSQL; INTEGER on SQLite so that the column is the rowid (auto-increment)
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

# statuses
PENDING = "pending"
DONE = "done"          # outbox item handled
FIRED = "fired"        # timer handled
CANCELLED = "cancelled"
DELIVERED = "delivered"
DEAD = "dead"          # gave up after max attempts (dead-letter); can be retried by hand
SKIPPED = "skipped"    # webhook subscription gone or deactivated before delivery


class OutboxItem(Base):
    """One side effect or event, written in the transaction of the change that causes it.

    Also the log behind the console's live stream (``service.events_since``): ids only grow
    (AUTOINCREMENT on SQLite, a sequence on PostgreSQL)."""

    __tablename__ = "job_outbox"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Timer(Base):
    """A deadline: fires the handler registered for ``kind`` once ``due_at`` has passed.

    One row per (kind, ref_type, ref_id): scheduling again moves it."""

    __tablename__ = "job_timer"
    __table_args__ = (UniqueConstraint("kind", "ref_type", "ref_id", name="uq_job_timer_kind_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100))
    ref_type: Mapped[str] = mapped_column(String(60))
    ref_id: Mapped[str] = mapped_column(String(80))
    ref_is_int: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # when a worker may next try it: due_at, moved later by backoff after a failed attempt
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    fired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookSubscription(Base):
    """An external receiver: POSTs of the events whose topic matches one of ``topics``
    (exact, or shell-style patterns such as ``case.*`` and ``*``), signed per Standard Webhooks."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))


class WebhookDelivery(Base):
    """One event for one subscription; retried with exponential backoff and jitter, then dead."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # the ``webhook-id`` header: the same on every retry, so receivers can drop duplicates
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscription.id", ondelete="CASCADE"),
                                                 index=True)
    event_id: Mapped[int] = mapped_column(BigInteger, index=True)  # job_outbox.id (kept after purges)
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int | None] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """An in-app inbox message. Recipients are resolved when the inbox is read: explicit accounts
    (``notification_recipient``) plus, when ``broadcast``, every account matching all of the given
    role / area / department (area: the account's area contains the notification's or lies in it)."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(12), default="info")
    broadcast: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str | None] = mapped_column(String(40))
    area_code: Mapped[str | None] = mapped_column(String(15), index=True)
    department_code: Mapped[str | None] = mapped_column(String(40))


class NotificationRecipient(Base):
    __tablename__ = "notification_recipient"

    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"),
                                                 primary_key=True)
    # account.id (no foreign key: the inbox outlives deleted accounts' rows in other tables)
    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)


class NotificationRead(Base):
    __tablename__ = "notification_read"

    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"),
                                                 primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    read_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# what workers look for: pending rows by due time (partial indexes on both backends)
Index("ix_job_outbox_due", OutboxItem.run_at, postgresql_where=OutboxItem.status == PENDING,
      sqlite_where=OutboxItem.status == PENDING)
Index("ix_job_outbox_status", OutboxItem.status, OutboxItem.created_at)
Index("ix_job_timer_due", Timer.run_at, postgresql_where=Timer.status == PENDING,
      sqlite_where=Timer.status == PENDING)
Index("ix_job_timer_ref", Timer.ref_type, Timer.ref_id)
Index("ix_webhook_delivery_due", WebhookDelivery.run_at, postgresql_where=WebhookDelivery.status == PENDING,
      sqlite_where=WebhookDelivery.status == PENDING)
Index("ix_webhook_delivery_status", WebhookDelivery.status, WebhookDelivery.created_at)
Index("ix_notification_role", Notification.role, Notification.created_at)
