"""The console's live stream: server-sent events of case activity in the caller's scope.

Follows the outbox of ``cityops.jobs`` with ``events_since`` (every event once, in order, never
one whose transaction has not committed), keeps only ``case*`` topics whose case the principal
may read (and inside the requested area), and sends each as one SSE message with the outbox id
as the event id, so a browser that reconnects with ``Last-Event-ID`` misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from cityops.cases import queries as case_queries
from cityops.cases.models import Case
from cityops.console import service
from cityops.console.snapshot import reading
from cityops.db import get_sessionmaker
from cityops.security.principal import Principal

POLL_S = 1.0
PING_S = 15.0
TOPICS = ["case*"]


def _case_id(payload: dict[str, Any]) -> int | None:
    for key in ("case_id", "id"):
        v = payload.get(key)
        if isinstance(v, int):
            return v
        if isinstance(v, str) and v.isdigit():
            return int(v)
    return None


def start_cursor(last_event_id: str | None) -> int:
    from cityops.jobs.service import latest_event_id

    if last_event_id and last_event_id.isdigit():
        return int(last_event_id)
    with get_sessionmaker()() as s0, reading(s0) as s:
        return latest_event_id(s)


def poll(principal: Principal, cursor: int, area: str | None, lang: str) -> tuple[list[dict[str, Any]], int]:
    """Events after ``cursor`` visible to ``principal``; returns (messages, new cursor)."""
    from cityops.jobs.service import events_since

    # read-only connection: a console polling every second must not take SQLite's write lock
    with get_sessionmaker()() as s0, reading(s0) as s:
        page = events_since(s, cursor, topics=TOPICS, limit=200)
        if not page:
            return [], page.cursor
        ids = {cid for ev in page if (cid := _case_id(ev.payload)) is not None}
        w = [service._scope_clause(principal), Case.id.in_(ids)]
        if area and len(area) > 6:
            w.append(case_queries.area_filter(area))
        visible = {r.id: r for r in s.execute(select(Case.id, Case.reported_at, Case.category_code, Case.street_code,
                                                     Case.state).where(*w))} if ids else {}
        cats = service.category_names(s) if visible else {}
        out = []
        for ev in page:
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
        return out, page.cursor


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
            yield f"id: {m['event_id']}\ndata: {json.dumps(m, ensure_ascii=False)}\n\n"
            last_sent = time.monotonic()
        now = time.monotonic()
        if max_seconds and now - started >= max_seconds:
            yield f"id: {cursor}\nevent: bye\ndata: {{}}\n\n"
            return
        if now - last_sent >= PING_S:
            yield ": ping\n\n"
            last_sent = now
        await asyncio.sleep(POLL_S)
