"""Demo data of the console: the full demo district arms the daily briefing timer (the small
test district does not, so that job tests that run every due timer stay about their own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session


def seed_demo(session: Session, district: Any, *, small: bool = False, rng_seed: int = 0,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    if small:
        return
    from cityops.console.jobs import arm_daily_briefing

    arm_daily_briefing(session)
    if progress:
        progress("城运日报定时 daily briefing", 1, 1)
