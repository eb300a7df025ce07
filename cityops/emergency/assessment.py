"""The evaluation (评估) of one incident: how fast the first report reached the departments and each
command level that had to know (the flat-reporting measure), which reporting deadlines were met,
how the departments' tasks went (on time, overdue), warnings issued, call-ups acknowledged."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.emergency import incidents, reach, reporting
from cityops.emergency.models_command import EmergencyTask, MobilisationCallup, PublicWarning, WarningMessage
from cityops.security.principal import Principal


def _median_minutes(values: list[float]) -> float | None:
    return round(float(np.median(values)) / 60, 1) if values else None


def evaluate(session: Session, principal: Principal, ref: str | int) -> dict[str, Any]:
    inc = incidents.get_incident(session, principal, ref)
    rows = reporting.incident_reach_rows(session, principal, inc.reported_at, inc.reported_at, include_exercise=True,
                                         incident_ids=[inc.id])
    reach_out = [{"measure": r["measure"], "level": r["level"], "reached_at": r["reached_at"], "seconds": r["seconds"],
                  "target_s": r["target_s"], "within_target": r["seconds"] is not None and r["seconds"] <= r["target_s"]}
                 for r in rows]
    deadlines = reporting.deadlines_out(session, inc)
    tasks = session.scalars(select(EmergencyTask).where(EmergencyTask.incident_id == inc.id)).all()
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"tasks": 0, "done": 0, "on_time": 0, "overdue": 0,
                                                           "minutes": []})
    for t in tasks:
        if t.state == "retired":
            continue
        d = per[t.owner_department_code]
        d["tasks"] += 1
        if t.done_at is not None:
            d["done"] += 1
            d["on_time"] += int(t.done_at <= t.due_at)
            d["minutes"].append((t.done_at - t.created_at).total_seconds())
        if t.overdue_at is not None:
            d["overdue"] += 1
    departments = [{"department_code": k, "tasks": v["tasks"], "done": v["done"], "on_time": v["on_time"],
                    "overdue": v["overdue"], "median_done_minutes": _median_minutes(v["minutes"])}
                   for k, v in sorted(per.items())]
    total = sum(d["tasks"] for d in departments)
    first_warning = session.scalar(select(WarningMessage.sent_at).join(PublicWarning, PublicWarning.id ==
                                                                       WarningMessage.warning_id)
                                   .where(PublicWarning.incident_id == inc.id).order_by(WarningMessage.sent_at).limit(1))
    calls = session.scalars(select(MobilisationCallup).where(MobilisationCallup.incident_id == inc.id)).all()
    acks = [(c.acknowledged_at - c.called_at).total_seconds() for c in calls if c.acknowledged_at is not None]
    return {
        "incident": incidents.summary(inc, incidents.street_names(session)),
        "reach": reach_out,
        "reach_summary": reach.aggregate({"group": (r["measure"], r["level"]), "seconds": r["seconds"],
                                          "target_s": r["target_s"]} for r in rows),
        "deadlines": deadlines,
        "deadlines_met": sum(1 for d in deadlines if d["on_time"]),
        "deadlines_missed": sum(1 for d in deadlines if d["status"] == "escalated" or d["on_time"] is False),
        "tasks": {"total": total, "done": sum(d["done"] for d in departments),
                  "on_time": sum(d["on_time"] for d in departments),
                  "overdue": sum(d["overdue"] for d in departments),
                  "on_time_rate": (sum(d["on_time"] for d in departments) / total) if total else None},
        "departments": departments,
        "first_warning_after_s": (first_warning - inc.reported_at).total_seconds() if first_warning else None,
        "mobilisation": {"called": len(calls), "acknowledged": len(acks), "median_ack_minutes": _median_minutes(acks)},
        "duration_s": ((inc.ended_at or incidents.now()) - inc.reported_at).total_seconds(),
        "summary": inc.summary,
    }
