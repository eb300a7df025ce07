"""CIDARS response KPIs over a set of signals (pure). Reference: Yang W, Li Z, Lan Y et al. (2011), "A nationwide
web-based automated system for early outbreak detection and rapid response in China", Western Pac Surveill
Response J 2(1):10-15; Li Z et al. (2014), the CIDARS evaluations quoted in the domain notes §1.3.

Definitions (each over all signals given, the denominator being their number):
* response rate (信号响应率): signals responded to (a first action was taken: ``verified_at`` set);
* 24-hour response rate: signals responded to within 24 h of being raised;
* median response time (响应时间中位数): median of (responded - raised) over the responded signals, in hours;
* suspected-event rate (疑似事件率): signals whose outcome is a suspected event or a confirmed outbreak.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SignalTimes:
    created_at: dt.datetime
    verified_at: dt.datetime | None
    outcome: str | None


def kpis(signals: Iterable[SignalTimes]) -> dict[str, float | int | None]:
    rows = list(signals)
    n = len(rows)
    hours = [(s.verified_at - s.created_at).total_seconds() / 3600.0 for s in rows if s.verified_at is not None]
    within = sum(1 for h in hours if h <= 24.0)
    suspected = sum(1 for s in rows if s.outcome in ("suspected", "confirmed"))
    return {
        "signals": n,
        "responded": len(hours),
        "response_rate": len(hours) / n if n else None,
        "response_rate_24h": within / n if n else None,
        "median_response_hours": statistics.median(hours) if hours else None,
        "suspected_event_rate": suspected / n if n else None,
    }
