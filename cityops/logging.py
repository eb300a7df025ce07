"""Structured logs (structlog): key=value on a terminal, JSON lines when CITYOPS_LOG_JSON=1."""

from __future__ import annotations

import logging

import structlog

from cityops.config import get_settings


def configure_logging() -> None:
    s = get_settings()
    level = getattr(logging, s.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    renderer = structlog.processors.JSONRenderer() if s.log_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )


log = structlog.get_logger("cityops")
