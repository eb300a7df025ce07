"""Public API of the job machinery: ``from cityops.jobs import service as jobs``.

Writing side (all in the caller's transaction: the row exists if and only if the caller commits):

* ``enqueue(session, topic, payload, dedupe_key=None, run_at=None) -> int`` — an outbox item;
* ``schedule_timer(session, kind, ref_type, ref_id, due_at, payload=None) -> int`` /
  ``cancel_timers(session, ref_type, ref_id, kind=None) -> int``;
* ``notify(session, *, account_ids=None, role=None, area_code=None, department_code=None, title, body,
  link=None, severity="info") -> int`` — an in-app notification (+ outbox event ``notification.created``).

Running side: ``@handler("topic")`` (also for timer kinds), ``run_due(session_factory, now=None,
limit=None)``, ``now()`` (the clock handlers should use). Reading side: ``events_since`` (the console's
live stream), the inbox (``list_notifications``, ``mark_read``), ``stats``, ``purge``, ``retry_dead``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, delete, false, func, insert, literal, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cityops import clock
from cityops.db import bulk_insert, insert_rows
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.jobs.models import (
    CANCELLED,
    DEAD,
    DELIVERED,
    DONE,
    FIRED,
    PENDING,
    SKIPPED,
    Notification,
    NotificationRead,
    NotificationRecipient,
    OutboxItem,
    Timer,
    WebhookDelivery,
)
from cityops.jobs.registry import handler, load_handlers
from cityops.jobs.settings import get_job_settings
from cityops.jobs.worker import RunStats, Worker, run_due
from cityops.security.principal import Principal, code_prefix_clause

__all__ = [
    "enqueue", "enqueue_many", "notify_many", "schedule_timer", "schedule_new_timers", "cancel_timers", "get_timer", "notify", "handler", "load_handlers", "run_due",
    "RunStats", "Worker", "now", "events_since", "latest_event_id", "Event", "EventPage",
    "notification_visible_to", "list_notifications", "mark_read", "mark_all_read", "unread_count",
    "stats", "purge", "retry_dead", "list_outbox", "SEVERITIES",
]

OUTBOX: Table = OutboxItem.__table__  # type: ignore[assignment]
TIMERS: Table = Timer.__table__  # type: ignore[assignment]
_INSERT_OUTBOX_ID = insert(OUTBOX).returning(OUTBOX.c.id)
DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[assignment]

SEVERITIES = ("info", "warning", "urgent", "critical")


def now() -> dt.datetime:
    """The current time for job code: the ``now`` given to ``run_due`` while a handler runs,
    otherwise ``cityops.clock.now()``."""
    return clock.now()


_now = now


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            raise TypeError("naive datetime in payload")
        return v.astimezone(dt.UTC).isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal | uuid.UUID):
        return str(v)
    if isinstance(v, set | frozenset | tuple):
        return sorted(v) if isinstance(v, set | frozenset) else list(v)
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload as stored: JSON types only (datetimes become ISO-8601 UTC strings, dates ISO,
    Decimal/UUID strings, sets sorted lists). Raises ValueError on anything else."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ValueError("payload must be a dict")
    if all(type(k) is str and (type(v) in _PLAIN and not (type(v) is str and "\x00" in v))
           for k, v in payload.items()):
        return dict(payload)  # flat and JSON already (a timer's ids and phase): no round trip
    try:
        text_ = json.dumps(payload, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON serialisable: {exc}") from exc
    data = dict(json.loads(text_))
    if "\\u0000" in text_ and _has_nul(data):
        raise ValueError("payload contains NUL characters (PostgreSQL JSON cannot store them)")
    return data


def _has_nul(v: Any) -> bool:
    if isinstance(v, str):
        return "\x00" in v
    if isinstance(v, dict):
        return any(_has_nul(k) or _has_nul(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_nul(x) for x in v)
    return False


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


TOPIC = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _check_name(value: str, what: str, n: int = 100) -> str:
    if not isinstance(value, str) or not value or len(value) > n or not value.isprintable():
        raise ValueError(f"{what} must be a non-empty printable string of at most {n} characters")
    return value


def _check_topic(topic: str, what: str = "topic") -> str:
    if not isinstance(topic, str) or not TOPIC.match(topic):
        raise ValueError(f"{what} must be 1-100 of A-Z a-z 0-9 _ . : - (got {topic!r})")
    return topic


def _upsert(session: Session, table: Table) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise NotImplementedError(f"cityops.jobs supports PostgreSQL and SQLite, not {name}")


# ---------------------------------------------------------------------------------------------
# outbox


def enqueue(session: Session, topic: str, payload: dict[str, Any], dedupe_key: str | None = None,
            run_at: dt.datetime | None = None, *, max_attempts: int | None = None) -> int:
    """Write an outbox item in the caller's transaction and return its id.

    ``dedupe_key``: a second enqueue with the same key (while the first row is kept, see ``purge``)
    writes nothing and returns the first id. ``run_at``: not before this time (aware datetime)."""
    _check_topic(topic)
    data = jsonable(payload)
    at = _now()
    values = {
        "topic": topic, "payload": data, "dedupe_key": dedupe_key, "status": PENDING,
        "run_at": clock.aware(run_at, "run_at") if run_at is not None else at, "attempts": 0,
        "max_attempts": max_attempts or get_job_settings().max_attempts, "created_at": at,
    }
    if dedupe_key is None:
        return int(session.execute(_INSERT_OUTBOX_ID, values).scalar_one())
    _check_name(dedupe_key, "dedupe_key", 200)
    stmt = _upsert(session, OUTBOX).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    got = session.execute(stmt.returning(OUTBOX.c.id)).scalar_one_or_none()
    if got is None:
        got = session.execute(select(OUTBOX.c.id).where(OUTBOX.c.dedupe_key == dedupe_key)).scalar_one()
    return int(got)


def enqueue_many(session: Session, topic: str, payloads: list[dict[str, Any]]) -> None:
    """Several outbox items of one topic in one multi-row INSERT (no dedupe key, due now)."""
    if not payloads:
        return
    _check_topic(topic)
    at = _now()
    attempts = get_job_settings().max_attempts
    bulk_insert(session, OUTBOX, [{"topic": topic, "payload": jsonable(p), "dedupe_key": None, "status": PENDING,
                                      "run_at": at, "attempts": 0, "max_attempts": attempts, "created_at": at}
                                     for p in payloads])


# ---------------------------------------------------------------------------------------------
# timers


def schedule_timer(session: Session, kind: str, ref_type: str, ref_id: int | str, due_at: dt.datetime,
                   payload: dict[str, Any] | None = None, *, max_attempts: int | None = None) -> int:
    """Arm the timer (kind, ref_type, ref_id) for ``due_at`` in the caller's transaction.

    One timer per (kind, ref_type, ref_id): scheduling again moves ``due_at``, replaces the payload
    and re-arms it even if it had fired or was cancelled. The handler registered for ``kind`` gets
    the payload plus ``kind``, ``ref_type``, ``ref_id`` (int if given as int), ``due_at`` (ISO) and
    ``timer_id``. Returns the timer id."""
    _check_topic(kind, "kind")
    _check_name(ref_type, "ref_type", 60)
    if isinstance(ref_id, bool) or not isinstance(ref_id, int | str) or str(ref_id) == "":
        raise ValueError("ref_id must be an int or a non-empty string")
    due = clock.aware(due_at, "due_at")
    data = jsonable(payload)
    arm = {"due_at": due, "run_at": due, "payload": data, "status": PENDING, "attempts": 0,
           "max_attempts": max_attempts or get_job_settings().max_attempts, "last_error": None,
           "claimed_by": None, "lease_until": None, "fired_at": None}
    stmt = _upsert(session, TIMERS).values(kind=kind, ref_type=ref_type, ref_id=str(ref_id)[:80],
                                            ref_is_int=isinstance(ref_id, int), created_at=_now(), **arm)
    stmt = stmt.on_conflict_do_update(index_elements=["kind", "ref_type", "ref_id"], set_=arm)
    tid = int(session.execute(stmt.returning(TIMERS.c.id)).scalar_one())
    _expire_cached(session, Timer, tid)
    return tid


def schedule_new_timers(session: Session, kind: str, ref_type: str,
                        timers: list[tuple[int, dt.datetime, dict[str, Any]]]) -> None:
    """Arm timers (ref_id, due_at, payload) for objects that have none yet (rows created in this
    transaction) in one multi-row INSERT; an existing (kind, ref_type, ref_id) is an error."""
    if not timers:
        return
    _check_topic(kind, "kind")
    _check_name(ref_type, "ref_type", 60)
    at = _now()
    attempts = get_job_settings().max_attempts
    bulk_insert(session, TIMERS, [
        {"kind": kind, "ref_type": ref_type, "ref_id": str(ref_id), "ref_is_int": True, "created_at": at,
         "due_at": clock.aware(due, "due_at"), "run_at": clock.aware(due, "due_at"), "payload": jsonable(payload),
         "status": PENDING, "attempts": 0, "max_attempts": attempts, "last_error": None, "claimed_by": None,
         "lease_until": None, "fired_at": None} for ref_id, due, payload in timers])


def _expire_cached(session: Session, model: Any, pk: int) -> None:
    from sqlalchemy.orm.util import identity_key

    obj = session.identity_map.get(identity_key(model, pk))
    if obj is not None:
        session.expire(obj)


def cancel_timers(session: Session, ref_type: str, ref_id: int | str, kind: str | None = None) -> int:
    """Cancel the pending timers of an object (all kinds, or one); returns how many."""
    c = TIMERS.c
    stmt = update(TIMERS).where(c.ref_type == ref_type, c.ref_id == str(ref_id), c.status == PENDING)
    if kind is not None:
        stmt = stmt.where(c.kind == kind)
    return rowcount(session.execute(stmt.values(status=CANCELLED, claimed_by=None, lease_until=None)))


def get_timer(session: Session, kind: str, ref_type: str, ref_id: int | str) -> Timer | None:
    return session.scalar(select(Timer).where(Timer.kind == kind, Timer.ref_type == ref_type,
                                              Timer.ref_id == str(ref_id)))


# ---------------------------------------------------------------------------------------------
# in-app notifications


def notify(session: Session, *, account_ids: list[int] | None = None, role: str | None = None,
           area_code: str | None = None, department_code: str | None = None, title: str, body: str,
           link: str | None = None, severity: str = "info") -> int:
    """Put a notification in the inbox of its recipients (caller's transaction); returns its id.

    Recipients (resolved when an inbox is read, from the reader's principal):
    * every account in ``account_ids``, and
    * if any of ``role`` / ``area_code`` / ``department_code`` is given, every account matching ALL
      of the given ones: holds ``role``; has ``department_code``; its area contains ``area_code`` or
      lies inside it (a district account sees a grid's notification, a community account a street's).
    Also enqueues the event ``notification.created`` (webhooks, console live stream)."""
    return notify_many(session, [dict(account_ids=account_ids, role=role, area_code=area_code,
                                      department_code=department_code, title=title, body=body, link=link,
                                      severity=severity)])[0]


def _check_notification(n: dict[str, Any]) -> list[Problem]:
    title, body, link, severity = n.get("title"), n.get("body"), n.get("link"), n.get("severity", "info")
    problems = []
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        problems.append(Problem("title must be 1-200 characters", ["title"]))
    if not isinstance(body, str):
        problems.append(Problem("body must be text", ["body"]))
    for loc in ("title", "body", "link", "role", "department_code"):
        v = n.get(loc)
        if isinstance(v, str) and "\x00" in v:
            problems.append(Problem("NUL characters are not allowed", [loc]))
    if severity not in SEVERITIES:
        problems.append(Problem(f"severity must be one of {', '.join(SEVERITIES)}", ["severity"]))
    if link is not None and len(link) > 500:
        problems.append(Problem("link must be at most 500 characters", ["link"]))
    area_code = n.get("area_code")
    if area_code is not None and not (area_code.isdigit() and len(area_code) <= 15):
        problems.append(Problem("area_code must be up to 15 digits", ["area_code"]))
    if not n.get("account_ids") and not any(n.get(k) is not None for k in ("role", "area_code", "department_code")):
        problems.append(Problem("no recipients: give account_ids and/or role, area_code, department_code",
                                ["account_ids"]))
    return problems


def notify_many(session: Session, items: list[dict[str, Any]]) -> list[int]:
    """``notify`` for several notifications (dicts of notify's keyword arguments): multi-row INSERTs."""
    problems = [p for n in items for p in _check_notification(n)]
    if problems:
        raise InvalidInput(problems)
    if not items:
        return []
    at = _now()
    rows = []
    for n in items:
        rows.append(dict(created_at=at, title=n["title"].strip(), body=n["body"], link=n.get("link"),
                         severity=n.get("severity", "info"),
                         broadcast=any(n.get(k) is not None for k in ("role", "area_code", "department_code")),
                         role=n.get("role"), area_code=n.get("area_code"), department_code=n.get("department_code")))
    nids = insert_rows(session, Notification.__table__, rows)
    recipients = [{"notification_id": nid, "account_id": a} for nid, n in zip(nids, items, strict=True)
                  for a in sorted({int(a) for a in (n.get("account_ids") or [])})]
    if recipients:
        session.execute(insert(NotificationRecipient), recipients)
    enqueue_many(session, "notification.created", [
        {"id": nid, "title": r["title"], "body": r["body"], "link": r["link"], "severity": r["severity"],
         "account_ids": sorted({int(a) for a in (n.get("account_ids") or [])}), "role": r["role"],
         "area_code": r["area_code"], "department_code": r["department_code"], "created_at": at}
        for nid, r, n in zip(nids, rows, items, strict=True)])
    return nids


def _area_prefixes(code: str) -> list[str]:
    return sorted({code[:n] for n in (6, 9, 12, 15) if n < len(code)} | {code})


def _visible(principal: Principal) -> ColumnElement[bool]:
    """Notifications addressed to this principal (see ``notify``)."""
    n = Notification
    conds: list[ColumnElement[bool]] = []
    if principal.account_id is not None:
        conds.append(n.id.in_(select(NotificationRecipient.notification_id)
                              .where(NotificationRecipient.account_id == principal.account_id)))
    role = or_(n.role.is_(None), n.role.in_(sorted(principal.roles))) if principal.roles else n.role.is_(None)
    dept = (or_(n.department_code.is_(None), n.department_code == principal.department_code)
            if principal.department_code else n.department_code.is_(None))
    if principal.area_code:
        area = or_(n.area_code.is_(None), n.area_code.in_(_area_prefixes(principal.area_code)),
                   code_prefix_clause(n.area_code, principal.area_code))
    else:
        area = n.area_code.is_(None)
    conds.append(and_(n.broadcast.is_(True), role, dept, area))
    return or_(*conds) if conds else false()


def notification_visible_to(principal: Principal, payload: dict[str, Any]) -> bool:
    """Whether a ``notification.created`` event payload is addressed to ``principal`` (the same rule
    as the inbox; for filtering the console's live stream without a query)."""
    if principal.account_id is not None and principal.account_id in (payload.get("account_ids") or []):
        return True
    role, area, dept = payload.get("role"), payload.get("area_code"), payload.get("department_code")
    if role is None and area is None and dept is None:
        return False
    if role is not None and role not in principal.roles:
        return False
    if dept is not None and dept != principal.department_code:
        return False
    if area is not None:
        mine = principal.area_code
        if not mine or not (area.startswith(mine) or mine.startswith(area)):
            return False
    return True


def _read_rows(principal: Principal) -> Any:
    return (select(NotificationRead.notification_id, NotificationRead.read_at)
            .where(NotificationRead.account_id == (principal.account_id if principal.account_id is not None
                                                   else -1))
            .subquery("r"))


def notification_out(n: Notification, read_at: dt.datetime | None) -> dict[str, Any]:
    return {"id": n.id, "created_at": n.created_at, "title": n.title, "body": n.body, "link": n.link,
            "severity": n.severity, "read": read_at is not None, "read_at": read_at}


def list_notifications(session: Session, principal: Principal, *, unread: bool | None = None, page: int = 1,
                       page_size: int = 50) -> dict[str, Any]:
    """The principal's inbox, newest first: ``{"total", "unread", "page", "page_size", "items"}``."""
    r = _read_rows(principal)
    base = (select(Notification, r.c.read_at).outerjoin(r, r.c.notification_id == Notification.id)
            .where(_visible(principal)))
    filtered = base
    if unread is True:
        filtered = base.where(r.c.read_at.is_(None))
    elif unread is False:
        filtered = base.where(r.c.read_at.is_not(None))
    total = session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    n_unread = total if unread is True else (
        session.scalar(select(func.count()).select_from(base.where(r.c.read_at.is_(None)).subquery())) or 0)
    rows = session.execute(filtered.order_by(Notification.created_at.desc(), Notification.id.desc())
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return {"total": total, "unread": n_unread, "page": page, "page_size": page_size,
            "items": [notification_out(n, read_at) for n, read_at in rows]}


def unread_count(session: Session, principal: Principal) -> int:
    r = _read_rows(principal)
    stmt = (select(func.count()).select_from(Notification).outerjoin(r, r.c.notification_id == Notification.id)
            .where(_visible(principal), r.c.read_at.is_(None)))
    return session.scalar(stmt) or 0


def _need_account(principal: Principal) -> int:
    if principal.account_id is None:
        raise Conflict([Problem("only accounts have an inbox to mark read", ["principal"], "conflict")])
    return principal.account_id


def mark_read(session: Session, principal: Principal, notification_id: int) -> dict[str, Any]:
    """Mark one of the principal's notifications read (idempotent); 404 if not addressed to them."""
    n = None
    if 0 < notification_id < 2**62:
        n = session.scalar(select(Notification).where(Notification.id == notification_id, _visible(principal)))
    if n is None:
        raise NotFound([Problem(f"notification {notification_id} not found", ["path", "notification_id"],
                                "not_found")])
    aid = _need_account(principal)
    at = _now()
    session.execute(_upsert(session, NotificationRead.__table__)  # type: ignore[arg-type]
                    .values(notification_id=n.id, account_id=aid, read_at=at)
                    .on_conflict_do_nothing(index_elements=["notification_id", "account_id"]))
    read_at = session.scalar(select(NotificationRead.read_at).where(NotificationRead.notification_id == n.id,
                                                                  NotificationRead.account_id == aid))
    return notification_out(n, read_at)


def mark_all_read(session: Session, principal: Principal) -> int:
    aid = _need_account(principal)
    r = _read_rows(principal)
    unread_ids = (select(Notification.id, literal(aid), literal(_now(), type_=NotificationRead.read_at.type))
                  .outerjoin(r, r.c.notification_id == Notification.id)
                  .where(_visible(principal), r.c.read_at.is_(None)))
    marked = session.execute(insert(NotificationRead).from_select(["notification_id", "account_id", "read_at"],
                                                                  unread_ids)
                             .returning(NotificationRead.notification_id)).all()
    return len(marked)


# ---------------------------------------------------------------------------------------------
# live event stream (console SSE)


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "payload": self.payload,
                "created_at": self.created_at.isoformat()}


class EventPage(list[Event]):
    """The events found (a list) and ``cursor``: the id to pass as ``last_id`` next time (it may be
    past the last event returned when filtered-out events were skipped)."""

    cursor: int

    def __init__(self, events: list[Event], cursor: int) -> None:
        super().__init__(events)
        self.cursor = cursor


def _topic_clause(topics: list[str]) -> ColumnElement[bool]:
    exact = [t for t in topics if not t.endswith("*")]
    prefixes = [t[:-1] for t in topics if t.endswith("*")]
    conds: list[ColumnElement[bool]] = []
    if exact:
        conds.append(OUTBOX.c.topic.in_(exact))
    for p in prefixes:
        conds.append(OUTBOX.c.topic.startswith(p, autoescape=True) if p else OUTBOX.c.topic.is_not(None))
    return or_(*conds) if conds else false()


def _gap_checker(session: Session, at: dt.datetime) -> Any:
    """Decide whether a hole in the ids before a visible row is final (a rolled-back transaction) or
    may still fill (a transaction that took the id has not committed yet).

    SQLite: one writer at a time, so a hole below a committed id is final. PostgreSQL: ids are taken
    when rows are inserted, not when transactions commit; a hole is final once every transaction
    that could hold it has ended: all transactions open now began after the row that follows the
    hole was written (``pg_stat_activity``, read BEFORE the rows are read again), or the row that
    follows the hole is older than ``event_gap_grace_seconds``."""
    grace = dt.timedelta(seconds=get_job_settings().event_gap_grace_seconds)
    if session.get_bind().dialect.name != "postgresql":
        return lambda created: True
    row = session.execute(text(
        "SELECT clock_timestamp() AS at_, min(xact_start) AS oldest, "
        "coalesce(bool_or(state IS NULL AND backend_type = 'client backend'), false) AS hidden "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")).one()
    bound = row.at_ if row.oldest is None else min(row.at_, row.oldest)
    margin = dt.timedelta(seconds=1)

    def settled(created: dt.datetime) -> bool:
        if at - created >= grace:
            return True
        return not row.hidden and created + margin < bound

    return settled


def _high_water(session: Session, last_id: int, scan: int, settled: Any) -> tuple[int, bool]:
    """The highest id up to which every event is committed (or final), and whether a hole stopped us."""
    ids = session.execute(select(OUTBOX.c.id, OUTBOX.c.created_at).where(OUTBOX.c.id > last_id)
                          .order_by(OUTBOX.c.id).limit(scan)).all()
    high = last_id
    for rid, created in ids:
        if rid != high + 1 and (settled is None or not settled(created)):
            return high, True
        high = rid
    return high, False


def events_since(session: Session, last_id: int, topics: list[str] | None = None, limit: int = 100) -> EventPage:
    """Events (outbox rows, whatever their delivery state) with id > ``last_id``, oldest first.

    ``topics``: exact topics or prefixes ending in ``*`` (``case.*``). Never skips an event whose
    transaction has not committed yet (see ``_gap_checker``), so a poller that always passes back
    ``page.cursor`` sees every event once. Cheap: a primary-key range scan (plus, on PostgreSQL and
    only when ids have a hole, one look at ``pg_stat_activity``)."""
    last_id = max(0, int(last_id or 0))
    limit = max(1, min(int(limit), 1000))
    scan = limit if not topics else min(limit * 20, 5000)
    high, holed = _high_water(session, last_id, scan, None)
    if holed:
        high, _ = _high_water(session, last_id, scan, _gap_checker(session, _now()))
    if high == last_id:
        return EventPage([], last_id)
    stmt = (select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.payload, OUTBOX.c.created_at)
            .where(OUTBOX.c.id > last_id, OUTBOX.c.id <= high).order_by(OUTBOX.c.id).limit(limit))
    if topics:
        stmt = stmt.where(_topic_clause(list(topics)))
    rows = session.execute(stmt).all()
    events = [Event(r.id, r.topic, dict(r.payload or {}), r.created_at) for r in rows]
    cursor = events[-1].id if len(events) == limit else high
    return EventPage(events, cursor)


def latest_event_id(session: Session) -> int:
    """The highest event id now (a live stream that should start "from now" begins here).
    With every row purged, PostgreSQL's sequence tells where new ids will start."""
    top = session.scalar(select(func.max(OUTBOX.c.id)))
    if top is None and session.get_bind().dialect.name == "postgresql":
        top = session.scalar(text(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('job_outbox', 'id')::regclass)"))
    return int(top or 0)


START_LOOKBACK = 5000


def start_cursor(session: Session) -> int:
    """Where a reader that starts "from now" (the console snapshot, a live stream) begins: the latest
    event id, lowered to the first hole that may still fill (the same check as ``events_since``), so
    an event whose transaction commits after the reader started is still seen. Holes more than
    ``START_LOOKBACK`` ids below the latest are taken as final."""
    top = latest_event_id(session)
    base = max(0, top - START_LOOKBACK)
    high, holed = _high_water(session, base, START_LOOKBACK + 1, None)
    if holed:
        high, _ = _high_water(session, base, START_LOOKBACK + 1, _gap_checker(session, _now()))
    return high if session.get_bind().dialect.name == "postgresql" else max(high, top)


# ---------------------------------------------------------------------------------------------
# operations: stats, dead letters, purge


def stats(session: Session) -> dict[str, dict[str, int]]:
    """Row counts per status: ``{"outbox": {...}, "timers": {...}, "deliveries": {...}}``."""
    out: dict[str, dict[str, int]] = {}
    for name, table in (("outbox", OUTBOX), ("timers", TIMERS), ("deliveries", DELIVERIES)):
        rows = session.execute(select(table.c.status, func.count()).group_by(table.c.status)).all()
        out[name] = {str(s): int(n) for s, n in rows}
    return out


def list_outbox(session: Session, *, status: str | None = None, topic: str | None = None, page: int = 1,
                page_size: int = 50) -> tuple[int, list[dict[str, Any]]]:
    stmt = select(OutboxItem)
    if status:
        stmt = stmt.where(OutboxItem.status == status)
    if topic:
        stmt = stmt.where(OutboxItem.topic == topic)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(OutboxItem.id.desc()).offset((page - 1) * page_size).limit(page_size))
    return total, [{
        "id": o.id, "topic": o.topic, "status": o.status, "attempts": o.attempts, "max_attempts": o.max_attempts,
        "run_at": o.run_at, "created_at": o.created_at, "done_at": o.done_at, "last_error": o.last_error,
        "dedupe_key": o.dedupe_key, "claimed_by": o.claimed_by, "lease_until": o.lease_until,
    } for o in rows]


def retry_dead(session: Session, kind: str = "outbox", ids: list[int] | None = None) -> int:
    """Give dead rows (``outbox``, ``timers`` or ``deliveries``) a fresh attempt budget, due now.
    Caller commits."""
    table = {"outbox": OUTBOX, "timers": TIMERS, "deliveries": DELIVERIES}[kind]
    stmt = update(table).where(table.c.status == DEAD)
    if ids is not None:
        stmt = stmt.where(table.c.id.in_(ids))
    res = session.execute(stmt.values(status=PENDING, attempts=0, run_at=_now(), claimed_by=None, lease_until=None))
    return rowcount(res)


def purge(session: Session, older_than: dt.timedelta = dt.timedelta(days=7)) -> dict[str, int]:
    """Delete finished rows older than ``older_than``: done outbox items, fired/cancelled timers,
    delivered/skipped deliveries. Dead rows and notifications are kept. Caller commits.
    (An outbox ``dedupe_key`` only dedupes while its row is kept.)"""
    cutoff = _now() - older_than
    d = DELIVERIES
    out = {
        "outbox": rowcount(session.execute(delete(OUTBOX).where(OUTBOX.c.status == DONE, OUTBOX.c.done_at < cutoff))),
        "timers": rowcount(session.execute(delete(TIMERS).where(
            or_(and_(TIMERS.c.status == FIRED, TIMERS.c.fired_at < cutoff),
                and_(TIMERS.c.status == CANCELLED, TIMERS.c.due_at < cutoff))))),
        "deliveries": rowcount(session.execute(delete(d).where(
            or_(and_(d.c.status == DELIVERED, d.c.delivered_at < cutoff),
                and_(d.c.status == SKIPPED, d.c.created_at < cutoff))))),
    }
    return out
