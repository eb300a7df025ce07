"""The one clock of the platform: every "now" (SLA deadlines, lockouts, sessions, timers, audit
rows, warnings) comes from ``now()``.

``now()`` is, in this order: the instant a running ``cityops.jobs.run_due(now=...)`` pinned (so a
handler and the rows it writes agree with the worker's clock), else the clock a test set with
``set_clock`` / ``frozen_offset``, else the real UTC time. Times are timezone-aware UTC."""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_clock: Callable[[], dt.datetime] = utcnow
_pinned: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar("cityops_now", default=None)


def now() -> dt.datetime:
    v = _pinned.get()
    return v if v is not None else _clock()


def set_clock(fn: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (``None`` restores the real one)."""
    global _clock
    _clock = fn or utcnow


class frozen_offset:
    """Context manager: the clock runs ``delta`` ahead of real time."""

    def __init__(self, delta: dt.timedelta) -> None:
        self.delta = delta

    def __enter__(self) -> frozen_offset:
        set_clock(lambda: utcnow() + self.delta)
        return self

    def __exit__(self, *_exc: object) -> None:
        set_clock(None)


@contextmanager
def pinned(at: dt.datetime) -> Iterator[None]:
    """``now()`` is ``at`` inside the block (this thread / task only)."""
    tok = _pinned.set(at)
    try:
        yield
    finally:
        _pinned.reset(tok)


def aware(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)
