"""The console's live stream: server-sent events of activity in the caller's scope.

Follows the outbox of ``cityops.jobs`` with ``events_since`` (every event once, in order, never
one whose transaction has not committed), keeps the events the principal may read (and inside the
requested area), and sends each as one SSE message with the outbox id as the event id, so a
browser that reconnects with ``Last-Event-ID`` misses nothing.

Sources: ``case*`` events are rendered here; every other domain plugs in with a module listed in
``LIVE_MODULES`` exposing ``TOPICS`` (outbox topic patterns, ``*`` at the end) and
``render(session, principal, events, area, lang) -> list[dict]`` — the events of its topics that
the principal may read (through its own scoped reads), each as a feed item with at least
``event_id``, ``topic``, ``kind``, ``title``, ``at`` (a module that does not exist yet is skipped).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from cityops.cases import queries as case_queries
from cityops.cases.models import Case
from cityops.console import service
from cityops.db import get_sessionmaker
from cityops.plugins import import_optional
from cityops.security.principal import Principal

POLL_S = 1.0
PING_S = 15.0
CASE_TOPICS = ["case*"]
LIVE_MODULES: list[str] = ["cityops.indicators.live", "cityops.health.live", "cityops.emergency.live"]


def _sources() -> list[Any]:
    return [m for name in LIVE_MODULES if (m := import_optional(name)) is not None]


def _json_default(v: Any) -> Any:
    """Times (and other values) a feed source returns, as JSON."""
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v)


def _matches(topic: str, patterns: list[str]) -> bool:
    return any(topic.startswith(p[:-1]) if p.endswith("*") else topic == p for p in patterns)


def _case_id(payload: dict[str, Any]) -> int | None:
    for key in ("case_id", "id"):
        v = payload.get(key)
        if isinstance(v, int):
            return v
        if isinstance(v, str) and v.isdigit():
            return int(v)
    return None


def start_cursor(last_event_id: str | None) -> int:
    from cityops.jobs.service import start_cursor as settled_start

    if last_event_id and last_event_id.isdigit():
        return int(last_event_id)
    with get_sessionmaker(False)() as s:
        return settled_start(s)


def poll(principal: Principal, cursor: int, area: str | None, lang: str) -> tuple[list[dict[str, Any]], int]:
    """Events after ``cursor`` visible to ``principal``; returns (messages, new cursor)."""
    from cityops.jobs.service import events_since

    sources = _sources()
    topics = CASE_TOPICS + [t for m in sources for t in m.TOPICS]
    # read-only connection: a console polling every second must not take SQLite's write lock
    with get_sessionmaker(False)() as s:
        page = events_since(s, cursor, topics=topics, limit=200)
        if not page:
            return [], page.cursor
        events = list(page)
        out = _case_items(s, principal, [e for e in events if _matches(e.topic, CASE_TOPICS)], area, lang)
        for m in sources:
            mine = [e for e in events if _matches(e.topic, m.TOPICS)]
            if mine:
                out.extend(m.render(s, principal, mine, area, lang))
        out.sort(key=lambda item: int(item["event_id"]))
        return out, page.cursor


def _case_items(s: Any, principal: Principal, events: list[Any], area: str | None, lang: str) -> list[dict[str, Any]]:
    ids = {cid for ev in events if (cid := _case_id(ev.payload)) is not None}
    if not ids:
        return []
    w = [service._scope_clause(principal), Case.id.in_(ids)]
    if area and len(area) > 6:
        w.append(case_queries.area_filter(area))
    visible = {r.id: r for r in s.execute(select(Case.id, Case.reported_at, Case.category_code, Case.street_code,
                                                 Case.state).where(*w))}
    cats = service.category_names(s) if visible else {}
    out = []
    for ev in events:
        cid = _case_id(ev.payload)
        row = visible.get(cid) if cid is not None else None
        if row is None:
            continue
        action = ev.payload.get("action") or ev.topic.rsplit(".", 1)[-1]
        created = action in ("created", "report", "intake", "create") or ev.topic.endswith(("created", "reported"))
        cn = cats.get(row.category_code)
        item = service.feed_item(row.id, row.reported_at, "report" if created else action, ev.created_at, lang,
                                 ((cn[1] or cn[0]) if lang == "en" else cn[0]) if cn else row.category_code,
                                 service.area_name(s, row.street_code, lang),
                                 to_state=ev.payload.get("to_state") or row.state,
                                 kind="created" if created else "changed")
        item.update(event_id=ev.id, topic=ev.topic, state=row.state, actor=ev.payload.get("actor"))
        out.append(item)
    return out


async def stream(is_disconnected: Any, principal: Principal, area: str | None, lang: str,
                 last_event_id: str | None, max_seconds: float) -> AsyncIterator[str]:
    cursor = await run_in_threadpool(start_cursor, last_event_id)
    yield "retry: 2000\n" + f"data: {json.dumps({'type': 'hello', 'cursor': cursor})}\n\n"
    started = last_sent = time.monotonic()
    while True:
        if await is_disconnected():
            return
        messages, cursor = await run_in_threadpool(poll, principal, cursor, area, lang)
        for m in messages:
            yield f"id: {m['event_id']}\ndata: {json.dumps(m, ensure_ascii=False, default=_json_default)}\n\n"
            last_sent = time.monotonic()
        now = time.monotonic()
        if now - started >= max_seconds:
            yield f"id: {cursor}\nevent: bye\ndata: {{}}\n\n"
            return
        if now - last_sent >= PING_S:
            yield ": ping\n\n"
            last_sent = now
        await asyncio.sleep(POLL_S)
