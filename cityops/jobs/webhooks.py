"""Webhooks: subscriptions, fan-out of outbox events into deliveries, signed HTTP delivery.

Requests follow the Standard Webhooks specification (https://www.standardwebhooks.com/):

* ``webhook-id``        the delivery id (``dlv_...``), the same on every retry: receivers drop duplicates;
* ``webhook-timestamp`` Unix seconds of this attempt;
* ``webhook-signature`` ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the
  subscription secret (``whsec_<base64>``), computed by the ``standardwebhooks`` library;
* ``x-cityops-event`` the topic, ``x-cityops-attempt`` the attempt number (1-based).

The body is ``{"type": topic, "timestamp": ISO-8601 UTC, "event_id": outbox id, "data": payload}``.
A 2xx answer is success; 410 Gone disables the subscription; anything else (or no answer) is retried
with exponential backoff and jitter until ``max_attempts``, then the delivery is dead (visible via
``GET /api/v1/webhooks/deliveries?status=dead``, retried by hand with ``POST .../retry``).
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import json
import random
import re
import secrets
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from cityops import clock
from cityops.db import utcnow
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.jobs.models import DEAD, DELIVERED, PENDING, SKIPPED, WebhookDelivery, WebhookSubscription
from cityops.jobs.settings import get_job_settings
from cityops.security import audit
from cityops.security.principal import Principal

USER_AGENT = "cityops-webhooks/1"


# ---------------------------------------------------------------------------------------------
# signing


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check_secret(secret: str) -> str:
    if not secret.startswith("whsec_"):
        raise InvalidInput([Problem("secret must look like whsec_<base64>, at least 16 bytes", ["body", "secret"])])
    try:
        raw = base64.b64decode(secret[6:], validate=True)
    except ValueError:
        raise InvalidInput([Problem("secret is not valid base64 after whsec_", ["body", "secret"])])
    if len(raw) < 16:
        raise InvalidInput([Problem("secret must decode to at least 16 bytes", ["body", "secret"])])
    return secret


def sign(secret: str, msg_id: str, timestamp: dt.datetime, body: str) -> str:
    """The ``webhook-signature`` header value for a body (Standard Webhooks v1)."""
    return Webhook(secret).sign(msg_id, timestamp, body)


def topic_matches(patterns: list[str], topic: str) -> bool:
    return any(fnmatch.fnmatchcase(topic, p) for p in patterns)


# ---------------------------------------------------------------------------------------------
# subscriptions (require("webhook.manage") at the routes)


# topics are dotted names; subscriptions may use shell-style patterns (case.*, *, alert.?)
TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9_.:*?\[\]-]{1,100}$")


def _printable(value: str) -> bool:
    return value.isprintable()


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and _printable(url) and " " not in url
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput([Problem("url must be an absolute http(s) URL", ["body", "url"])])
    return url


def _check_text(value: str | None, loc: str) -> str | None:
    if value is not None and not _printable(value):
        raise InvalidInput([Problem("control characters are not allowed", ["body", loc])])
    return value


def _check_topics(topics: list[str]) -> list[str]:
    out: list[str] = []
    for i, t in enumerate(topics):
        t = t.strip()
        if not TOPIC_PATTERN.match(t):
            raise InvalidInput([Problem("topic must be 1-100 of A-Z a-z 0-9 _ . : - (patterns: * ? [ ])",
                                        ["body", "topics", i])])
        if t not in out:
            out.append(t)
    if not out:
        raise InvalidInput([Problem("at least one topic (or pattern such as case.* or *)", ["body", "topics"])])
    return out


def subscription_out(sub: WebhookSubscription, *, with_secret: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": sub.id, "url": sub.url, "topics": list(sub.topics or []), "active": sub.active,
        "description": sub.description, "created_by": sub.created_by, "created_at": sub.created_at,
        "updated_at": sub.updated_at, "disabled_reason": sub.disabled_reason,
        "secret_hint": sub.secret[:10] + "…",
    }
    if with_secret:
        d["secret"] = sub.secret
    return d


def _audit(session: Session, principal: Principal, action: str, oid: object, detail: dict[str, Any]) -> None:
    audit.record(session, principal, action, "webhook", oid, detail=detail)


def create_subscription(session: Session, principal: Principal, *, url: str, topics: list[str],
                        secret: str | None = None, active: bool = True,
                        description: str | None = None) -> dict[str, Any]:
    """Create a subscription; the answer carries the secret (the only time it is shown)."""
    sub = WebhookSubscription(url=_check_url(url), topics=_check_topics(topics),
                              secret=_check_secret(secret) if secret else new_secret(), active=active,
                              description=_check_text(description, "description"), created_by=principal.username,
                              created_at=utcnow(), updated_at=utcnow())
    session.add(sub)
    session.flush()
    _audit(session, principal, "webhook.create", sub.id, {"url": sub.url, "topics": sub.topics})
    return subscription_out(sub, with_secret=True)


def get_subscription(session: Session, sub_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, sub_id) if 0 < sub_id < 2**31 else None
    if sub is None:
        raise NotFound([Problem(f"webhook subscription {sub_id} not found", ["path", "sub_id"], "not_found")])
    return sub


def list_subscriptions(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)).all()
    return [subscription_out(s) for s in rows]


def update_subscription(session: Session, principal: Principal, sub_id: int, *, url: str | None = None,
                        topics: list[str] | None = None, active: bool | None = None,
                        description: str | None = None, rotate_secret: bool = False,
                        secret: str | None = None) -> dict[str, Any]:
    sub = get_subscription(session, sub_id)
    changed: dict[str, Any] = {}
    if url is not None:
        sub.url = changed["url"] = _check_url(url)
    if topics is not None:
        sub.topics = changed["topics"] = _check_topics(topics)
    if active is not None:
        sub.active = changed["active"] = active
        if active:
            sub.disabled_reason = None
    if description is not None:
        sub.description = changed["description"] = _check_text(description, "description")
    if secret is not None:
        sub.secret = _check_secret(secret)
        changed["secret"] = "replaced"
    elif rotate_secret:
        sub.secret = new_secret()
        changed["secret"] = "rotated"
    sub.updated_at = utcnow()
    _audit(session, principal, "webhook.update", sub.id, changed)
    return subscription_out(sub, with_secret="secret" in changed)


def delete_subscription(session: Session, principal: Principal, sub_id: int) -> None:
    sub = get_subscription(session, sub_id)
    _audit(session, principal, "webhook.delete", sub.id, {"url": sub.url})
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))
    session.delete(sub)


def delivery_out(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id, "uid": d.uid, "subscription_id": d.subscription_id, "event_id": d.event_id,
        "topic": d.topic, "status": d.status, "attempts": d.attempts, "max_attempts": d.max_attempts,
        "run_at": d.run_at, "last_error": d.last_error, "response_code": d.response_code,
        "created_at": d.created_at, "last_attempt_at": d.last_attempt_at, "delivered_at": d.delivered_at,
    }


def list_deliveries(session: Session, *, status: str | None = None, subscription_id: int | None = None,
                    page: int = 1, page_size: int = 50) -> tuple[int, list[dict[str, Any]]]:
    stmt = select(WebhookDelivery)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(WebhookDelivery.id.desc()).offset((page - 1) * page_size)
                           .limit(page_size)).all()
    return total, [delivery_out(d) for d in rows]


def retry_delivery(session: Session, principal: Principal, delivery_id: int) -> dict[str, Any]:
    """Put a dead (or skipped) delivery back in the queue with a fresh attempt budget."""
    d = session.get(WebhookDelivery, delivery_id) if 0 < delivery_id < 2**62 else None
    if d is None:
        raise NotFound([Problem(f"delivery {delivery_id} not found", ["path", "delivery_id"], "not_found")])
    if d.status == PENDING:
        return delivery_out(d)
    if d.status == DELIVERED:
        raise Conflict([Problem("delivery already succeeded", ["path", "delivery_id"], "conflict")])
    d.status, d.attempts, d.run_at = PENDING, 0, clock.now()
    d.claimed_by = d.lease_until = None
    _audit(session, principal, "webhook.redeliver", d.id, {"uid": d.uid})
    return delivery_out(d)


# ---------------------------------------------------------------------------------------------
# worker side


def active_subscriptions(session: Session) -> list[tuple[int, list[str]]]:
    rows = session.execute(select(WebhookSubscription.id, WebhookSubscription.topics)
                           .where(WebhookSubscription.active.is_(True))).all()
    return [(sid, list(topics or [])) for sid, topics in rows]


def fan_out(session: Session, event_id: int, topic: str, payload: dict[str, Any], now: dt.datetime,
            subs: list[tuple[int, list[str]]] | None = None) -> int:
    """Create one delivery per active subscription whose topics match (in the caller's transaction)."""
    if subs is None:
        subs = active_subscriptions(session)
    rows = [
        {"uid": f"dlv_{uuid.uuid4().hex}", "subscription_id": sid, "event_id": event_id, "topic": topic,
         "payload": payload, "status": PENDING, "run_at": now, "attempts": 0,
         "max_attempts": get_job_settings().webhook_max_attempts, "created_at": now}
        for sid, topics in subs if topic_matches(topics, topic)
    ]
    if rows:
        session.execute(insert(WebhookDelivery), rows)
    return len(rows)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempt`` failures: exponential with "equal jitter"
    (half fixed, half random), so retries of many deliveries spread out but never come at once."""
    d = min(cap, base * (2 ** max(0, attempt - 1)))
    r = (rng or random).random()
    return float(d / 2 + r * d / 2)


_local = threading.local()


def _client() -> httpx.Client:
    c = getattr(_local, "client", None)
    if c is None:
        s = get_job_settings()
        # TCP_NODELAY: the request goes out as headers + body; without it the body can wait for a
        # delayed ACK (~40 ms per request on Linux)
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        c = httpx.Client(timeout=s.webhook_timeout_seconds, follow_redirects=False, transport=transport,
                         headers={"user-agent": USER_AGENT})
        _local.client = c
    return c


@dataclass
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None
    gone: bool = False


def post(url: str, secret: str, uid: str, topic: str, event_id: int, payload: dict[str, Any], attempt: int,
         client: httpx.Client | None = None) -> AttemptResult:
    """One signed POST. Never raises for network or HTTP errors."""
    now = dt.datetime.now(dt.UTC)
    body = json.dumps({"type": topic, "timestamp": now.isoformat(), "event_id": event_id, "data": payload},
                      ensure_ascii=False, separators=(",", ":"))
    headers = {
        "content-type": "application/json; charset=utf-8",
        "webhook-id": uid,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign(secret, uid, now, body),
        "x-cityops-event": topic,
        "x-cityops-attempt": str(attempt),
    }
    try:
        r = (client or _client()).post(url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return AttemptResult(False, None, f"{type(exc).__name__}: {exc}"[:1000])
    if 200 <= r.status_code < 300:
        return AttemptResult(True, r.status_code, None)
    text = r.text[:300] if r.content else ""
    return AttemptResult(False, r.status_code, f"HTTP {r.status_code} {text}".strip()[:1000], gone=r.status_code == 410)


def load_claimed(session_factory: Any, ids: list[int], token: str) -> dict[int, Any]:
    """The claimed deliveries with their subscription's url, secret and state (one query)."""
    s = session_factory()
    try:
        rows = s.execute(select(WebhookDelivery.id, WebhookDelivery.uid, WebhookDelivery.topic,
                                WebhookDelivery.event_id, WebhookDelivery.payload, WebhookDelivery.attempts,
                                WebhookDelivery.max_attempts, WebhookDelivery.subscription_id,
                                WebhookSubscription.url, WebhookSubscription.secret, WebhookSubscription.active)
                         .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id,
                               isouter=True)
                         .where(WebhookDelivery.id.in_(ids), WebhookDelivery.claimed_by == token)).all()
        s.rollback()
        return {r.id: r for r in rows}
    finally:
        s.close()


def deliver_claimed(session_factory: Any, delivery_id: int, token: str, now: dt.datetime,
                    client: httpx.Client | None = None, row: Any = None) -> str:
    """Deliver one claimed delivery (HTTP outside any transaction), then record the outcome.
    ``row``: from ``load_claimed`` (loaded here when not given).

    Returns the new status (or "lost" when our claim was taken over meanwhile)."""
    if row is None:
        row = load_claimed(session_factory, [delivery_id], token).get(delivery_id)
        if row is None:
            return "lost"
    mine = (WebhookDelivery.id == delivery_id) & (WebhookDelivery.claimed_by == token)
    s = session_factory()
    try:
        if row.url is None or not row.active:
            s.execute(update(WebhookDelivery).where(mine).values(
                status=SKIPPED, claimed_by=None, lease_until=None, last_error="subscription inactive or deleted"))
            s.commit()
            return SKIPPED
        res = post(row.url, row.secret, row.uid, row.topic, row.event_id, row.payload or {}, row.attempts, client)
        values: dict[str, Any] = {"claimed_by": None, "lease_until": None, "last_attempt_at": now,
                                  "response_code": res.status_code}
        if res.ok:
            values.update(status=DELIVERED, delivered_at=now, last_error=None)
        elif res.gone or row.attempts >= row.max_attempts:
            values.update(status=DEAD, last_error=res.error)
        else:
            st = get_job_settings()
            delay = backoff(row.attempts, st.webhook_backoff_base_seconds, st.webhook_backoff_cap_seconds)
            values.update(status=PENDING, last_error=res.error, run_at=now + dt.timedelta(seconds=delay))
        done = s.execute(update(WebhookDelivery).where(mine).values(**values)).rowcount
        if res.gone:
            s.execute(update(WebhookSubscription).where(WebhookSubscription.id == row.subscription_id)
                      .values(active=False, disabled_reason="receiver answered 410 Gone"))
        s.commit()
        return str(values["status"]) if done else "lost"
    finally:
        s.close()


def dead_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(WebhookDelivery.status == DEAD)) or 0
