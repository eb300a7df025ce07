"""The time the job machinery uses.

``now()`` is, in this order: the instant a running ``run_due(now=...)`` was given (so handlers and
the rows they write agree with an injected clock), else ``cityops.security.clock.now()`` (tests move
it with ``set_clock`` / ``frozen_offset``), else the real UTC time."""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from cityops.db import utcnow

_current: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar("cityops_jobs_now", default=None)


def now() -> dt.datetime:
    v = _current.get()
    if v is not None:
        return v
    try:
        from cityops.security import clock
    except ImportError:  # pragma: no cover - security package always present in the tree
        return utcnow()
    return clock.now()


@contextmanager
def pinned(at: dt.datetime) -> Iterator[None]:
    tok = _current.set(at)
    try:
        yield
    finally:
        _current.reset(tok)


def aware(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)
