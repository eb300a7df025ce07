"""Working-time arithmetic (工作时 / 工作日 / 自然时) over a working calendar.

Pure functions, no database: ``cityops.cases.calendar_service`` turns the calendar rows into a
``WorkCalendar``. All arithmetic is done in the calendar's local time (Asia/Shanghai by default)
and answered in UTC.

Definitions (documented in docs/cases.md):

* ``working_hour``: only time inside the working periods of working days counts.
* ``working_day``: ``n`` working days = ``n`` x the minutes of one full working day of working time
  (a case reported Monday 10:00 with 5 working days is due the next Monday 10:00; one reported on
  a Saturday is due at the end of Friday's working hours).
* ``natural_hour`` / ``natural_day``: wall-clock time.
* A working day is a weekday that is not a public holiday, or a make-up working day (调休) even
  when it falls on a weekend.
* When the amount runs out exactly at the end of a working period, the due time is that end
  (Friday 18:00), not the start of the next period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from zoneinfo import ZoneInfo

UNITS = ("working_hour", "working_day", "natural_hour", "natural_day")
UNIT_LABELS = {
    "working_hour": ("工作时", "working hours"),
    "working_day": ("工作日", "working days"),
    "natural_hour": ("自然时", "natural hours"),
    "natural_day": ("自然日", "natural days"),
}
MAX_SCAN_DAYS = 3660  # a calendar without a working day in ten years is broken


class CalendarError(ValueError):
    pass


def parse_hhmm(s: str) -> int:
    """'09:30' -> minutes after midnight (24:00 allowed as the end of a day)."""
    try:
        hh, mm = s.strip().split(":")
        h, m = int(hh), int(mm)
    except (ValueError, AttributeError) as exc:
        raise CalendarError(f"time {s!r} is not HH:MM") from exc
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise CalendarError(f"time {s!r} is out of range 00:00..24:00")
    return h * 60 + m


def fmt_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class WorkCalendar:
    """Working periods (minutes after local midnight, [start, end)), weekend weekdays
    (0 = Monday ... 6 = Sunday), public holidays and make-up working days (调休)."""

    periods: tuple[tuple[int, int], ...] = ((9 * 60, 12 * 60), (13 * 60, 18 * 60))
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()
    timezone: str = "Asia/Shanghai"
    name: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for problem in self.problems():
            raise CalendarError(problem)

    def problems(self) -> list[str]:
        out: list[str] = []
        prev_end = -1
        for a, b in self.periods:
            if not (0 <= a < b <= 24 * 60):
                out.append(f"working period {fmt_hhmm(a)}-{fmt_hhmm(b)} is empty or outside the day")
            if a < prev_end:
                out.append(f"working period {fmt_hhmm(a)}-{fmt_hhmm(b)} overlaps or is not in order")
            prev_end = b
        if not self.periods:
            out.append("a calendar needs at least one working period")
        both = self.holidays & self.workdays
        if both:
            out.append(f"days both holiday and make-up working day: {', '.join(sorted(d.isoformat() for d in both))}")
        if any(w not in range(7) for w in self.weekend):
            out.append("weekend days are weekday numbers 0 (Monday) .. 6 (Sunday)")
        return out

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def day_minutes(self) -> int:
        return sum(b - a for a, b in self.periods)

    def is_working_day(self, d: dt.date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() not in self.weekend and d not in self.holidays

    def day_kind(self, d: dt.date) -> str:
        if d in self.workdays:
            return "makeup_workday"
        if d in self.holidays:
            return "holiday"
        return "weekend" if d.weekday() in self.weekend else "workday"

    def is_working_moment(self, at: dt.datetime) -> bool:
        local = _to_local(at, self.tz)
        if not self.is_working_day(local.date()):
            return False
        m = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
        return any(a <= m < b for a, b in self.periods)


def _to_local(at: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if at.tzinfo is None:
        raise CalendarError("naive datetime: pass an aware (UTC) datetime")
    return at.astimezone(tz)


def _local_naive_to_utc(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return local.replace(tzinfo=tz).astimezone(dt.UTC)


def amount_seconds(amount: float, unit: str, cal: WorkCalendar) -> float:
    if unit in ("working_hour", "natural_hour"):
        return amount * 3600.0
    if unit == "working_day":
        return amount * cal.day_minutes * 60.0
    if unit == "natural_day":
        return amount * 86400.0
    raise CalendarError(f"unknown time unit {unit!r}; one of {', '.join(UNITS)}")


def _working_seconds_forward(start_local: dt.datetime, seconds: float, cal: WorkCalendar) -> dt.datetime:
    """Walk forward from a naive local time until ``seconds`` of working time are used."""
    remaining = seconds
    day = start_local.date()
    midnight = dt.datetime.combine(day, dt.time())
    t = (start_local - midnight).total_seconds()  # seconds after local midnight of ``day``
    for _ in range(MAX_SCAN_DAYS):
        if cal.is_working_day(day):
            for a, b in cal.periods:
                a_s, b_s = a * 60.0, b * 60.0
                if t >= b_s:
                    continue
                lo = max(t, a_s)
                avail = b_s - lo
                if remaining <= avail:
                    return midnight + dt.timedelta(seconds=lo + remaining)
                remaining -= avail
                t = b_s
        day = day + dt.timedelta(days=1)
        midnight = dt.datetime.combine(day, dt.time())
        t = 0.0
    raise CalendarError(f"no working time within {MAX_SCAN_DAYS} days: check the calendar")


def add_working_time(start_utc: dt.datetime, amount: float, unit: str, calendar: WorkCalendar) -> dt.datetime:
    """The due time (UTC) of a time limit of ``amount`` ``unit`` starting at ``start_utc``."""
    if amount < 0:
        raise CalendarError("a time limit cannot be negative")
    secs = amount_seconds(amount, unit, calendar)
    if unit.startswith("natural_"):
        return start_utc.astimezone(dt.UTC) + dt.timedelta(seconds=secs)
    if secs == 0:
        return start_utc.astimezone(dt.UTC)
    local = _to_local(start_utc, calendar.tz).replace(tzinfo=None)
    due_local = _working_seconds_forward(local, secs, calendar)
    return _local_naive_to_utc(due_local, calendar.tz)


def working_seconds_between(a_utc: dt.datetime, b_utc: dt.datetime, calendar: WorkCalendar) -> float:
    """Seconds of working time in [a, b) (negative when b < a)."""
    if b_utc < a_utc:
        return -working_seconds_between(b_utc, a_utc, calendar)
    a = _to_local(a_utc, calendar.tz).replace(tzinfo=None)
    b = _to_local(b_utc, calendar.tz).replace(tzinfo=None)
    total = 0.0
    day = a.date()
    end_day = b.date()
    for _ in range((end_day - day).days + 1):
        if calendar.is_working_day(day):
            midnight = dt.datetime.combine(day, dt.time())
            lo_day = (a - midnight).total_seconds() if day == a.date() else 0.0
            hi_day = (b - midnight).total_seconds() if day == end_day else 86400.0
            for p0, p1 in calendar.periods:
                lo = max(lo_day, p0 * 60.0)
                hi = min(hi_day, p1 * 60.0)
                if hi > lo:
                    total += hi - lo
        day = day + dt.timedelta(days=1)
    return total


def elapsed_fraction(start_utc: dt.datetime, due_utc: dt.datetime, now_utc: dt.datetime, unit: str,
                     calendar: WorkCalendar) -> float:
    """Share of the time limit used at ``now`` (0 at start, 1 at due, > 1 when overdue)."""
    if unit.startswith("natural_"):
        total = (due_utc - start_utc).total_seconds()
        used = (now_utc - start_utc).total_seconds()
    else:
        total = working_seconds_between(start_utc, due_utc, calendar)
        used = working_seconds_between(start_utc, now_utc, calendar)
    if total <= 0:
        return 1.0 if now_utc >= due_utc else 0.0
    return used / total


def remaining_amount_seconds(now_utc: dt.datetime, due_utc: dt.datetime, unit: str, calendar: WorkCalendar) -> float:
    """Seconds of (working or natural) time left until due; used to pause/resume a step (挂账)."""
    if unit.startswith("natural_"):
        return (due_utc - now_utc).total_seconds()
    return working_seconds_between(now_utc, due_utc, calendar)


def add_seconds(start_utc: dt.datetime, seconds: float, unit: str, calendar: WorkCalendar) -> dt.datetime:
    """Like ``add_working_time`` with an amount already in seconds of the unit's kind of time."""
    if unit.startswith("natural_"):
        return start_utc.astimezone(dt.UTC) + dt.timedelta(seconds=seconds)
    return add_working_time(start_utc, max(0.0, seconds) / 3600.0, "working_hour", calendar)


def make_calendar(periods: Iterable[tuple[str, str]] = (("09:00", "12:00"), ("13:00", "18:00")),
                  weekend: Iterable[int] = (5, 6), holidays: Iterable[dt.date] = (),
                  workdays: Iterable[dt.date] = (), timezone: str = "Asia/Shanghai", name: str = "") -> WorkCalendar:
    return WorkCalendar(periods=tuple((parse_hhmm(a), parse_hhmm(b)) for a, b in periods), weekend=frozenset(weekend),
                        holidays=frozenset(holidays), workdays=frozenset(workdays), timezone=timezone, name=name)
