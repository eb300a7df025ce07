"""Calendar days of outbreak command: every rule counts Shanghai calendar days (UTC+8, no daylight
saving since 1991), and the names of the outbreak timers."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
FOLLOWUP_TIMER = "outbreak.followup"


def local_day(at: dt.datetime) -> dt.date:
    return at.astimezone(TZ).date()


def day_number(at: dt.datetime) -> int:
    """The Shanghai date of ``at`` as ``date.toordinal()``."""
    return local_day(at).toordinal()
