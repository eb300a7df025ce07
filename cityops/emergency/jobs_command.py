"""Timer handlers of emergency command (run by ``cityops worker``; each fires once when due and
survives restarts, see ``cityops.jobs``): reporting deadlines, task deadlines, plan review and
drill reminders."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cityops.emergency import plans, reporting, tasks
from cityops.jobs.registry import handler


@handler(reporting.DEADLINE_TIMER)
def report_due(session: Session, payload: dict[str, Any]) -> None:
    reporting.fire_deadline(session, payload)


@handler(tasks.TASK_TIMER)
def task_due(session: Session, payload: dict[str, Any]) -> None:
    tasks.fire_task_due(session, payload)


@handler(plans.REVIEW_TIMER)
def plan_review_due(session: Session, payload: dict[str, Any]) -> None:
    plans.fire_reminder(session, payload)


@handler(plans.DRILL_TIMER)
def plan_drill_due(session: Session, payload: dict[str, Any]) -> None:
    plans.fire_reminder(session, payload)
