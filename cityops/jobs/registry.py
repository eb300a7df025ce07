"""Handlers for outbox topics and timer kinds.

A domain module decorates ``(session, payload) -> None`` functions with ``@handler("topic")`` and is
listed in ``HANDLER_MODULES``; the worker imports those modules lazily (a module that does not exist
yet is skipped). Several handlers may share a topic; they run in registration order, in the same
transaction that marks the item done.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cityops.plugins import import_optional

Handler = Callable[[Session, dict[str, Any]], Any]

# modules holding @handler functions (imported by ``load_handlers``)
HANDLER_MODULES: list[str] = [
    "cityops.cases.jobs",
    "cityops.cases.evaluation_jobs",
    "cityops.console.jobs",
    "cityops.ai.jobs",
    "cityops.emergency.jobs_command",
    "cityops.indicators.jobs",
    "cityops.security.jobs",
    "cityops.health.jobs",
    "cityops.outbreak.jobs",
]

_handlers: dict[str, list[Handler]] = {}
_lock = threading.Lock()
_loaded = False


def handler(topic: str) -> Callable[[Handler], Handler]:
    """Register ``fn(session, payload)`` for an outbox topic or a timer kind."""
    if not topic or not isinstance(topic, str):
        raise ValueError("handler topic must be a non-empty string")

    def deco(fn: Handler) -> Handler:
        key = (getattr(fn, "__module__", None), getattr(fn, "__qualname__", None))
        with _lock:
            lst = _handlers.setdefault(topic, [])
            # re-importing a module replaces its function instead of adding it twice
            lst[:] = [h for h in lst if (getattr(h, "__module__", None), getattr(h, "__qualname__", None)) != key]
            lst.append(fn)
        return fn

    return deco


def unregister(topic: str, fn: Handler | None = None) -> None:
    """Remove one handler (or all handlers) of a topic (tests)."""
    with _lock:
        if fn is None:
            _handlers.pop(topic, None)
        elif topic in _handlers:
            _handlers[topic] = [h for h in _handlers[topic] if h is not fn]


def load_handlers(force: bool = False) -> list[str]:
    """Import every module of ``HANDLER_MODULES`` that exists; returns the ones loaded."""
    global _loaded
    loaded: list[str] = []
    if _loaded and not force:
        return loaded
    from cityops.jobs.settings import get_job_settings

    extra = [m.strip() for m in get_job_settings().extra_handler_modules.split(",") if m.strip()]
    for name in HANDLER_MODULES:
        if import_optional(name) is not None:  # None: not built yet
            loaded.append(name)
    for name in extra:  # named by the operator: a missing one is an error, not a skip
        importlib.import_module(name)
        loaded.append(name)
    _loaded = True
    return loaded


def handlers_for(topic: str) -> list[Handler]:
    load_handlers()
    with _lock:
        return list(_handlers.get(topic, ()))


def topics() -> list[str]:
    load_handlers()
    with _lock:
        return sorted(_handlers)
