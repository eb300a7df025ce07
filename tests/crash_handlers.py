"""Handlers of the worker crash test (``tests/test_worker_crash.py``), loaded by the worker
processes through ``CITYOPS_JOBS_EXTRA_HANDLER_MODULES``.

``crashtest.tick`` (a timer kind) writes one ``crashtest.fired`` outbox item in the timer's own
transaction and takes a little time doing it, so that a ``kill -9`` lands while timers are firing.
It does nothing to dedupe: a timer fired twice would leave two items."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy.orm import Session

from cityops.jobs import service as jobs
from cityops.jobs.registry import handler

TICK = "crashtest.tick"
FIRED = "crashtest.fired"


@handler(TICK)
def on_tick(session: Session, payload: dict[str, Any]) -> None:
    time.sleep(float(os.environ.get("CRASHTEST_SLEEP_S", "0.03")))
    jobs.enqueue(session, FIRED, {"timer": payload["ref_id"]})
