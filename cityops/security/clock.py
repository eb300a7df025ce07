"""An injectable clock for the security policy (lockout, idle timeout, password expiry).

Tests move time forward with ``set_clock`` instead of sleeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cityops.db import utcnow

_clock: Callable[[], dt.datetime] = utcnow


def now() -> dt.datetime:
    return _clock()


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
