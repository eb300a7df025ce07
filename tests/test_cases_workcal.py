"""Working-time arithmetic: the acceptance cases and an independent minute-by-minute formulation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.cases import workcal
from cityops.cases.workcal import add_working_time, elapsed_fraction, make_calendar, working_seconds_between

SH = ZoneInfo("Asia/Shanghai")


def local(*a: int) -> dt.datetime:
    return dt.datetime(*a, tzinfo=SH).astimezone(dt.UTC)


def test_friday_1600_plus_4_working_hours_is_monday_1100():
    cal = make_calendar()  # 09-12, 13-18, Mon-Fri
    start = local(2025, 3, 7, 16, 0)  # a Friday
    due = add_working_time(start, 4, "working_hour", cal)
    assert due == local(2025, 3, 10, 11, 0)
    assert due.tzinfo is not None and due.utcoffset() == dt.timedelta(0)


def test_public_holiday_in_between_is_skipped():
    # Monday 2025-03-10 declared a holiday: due moves to Tuesday 11:00
    cal = make_calendar(holidays=[dt.date(2025, 3, 10)])
    assert add_working_time(local(2025, 3, 7, 16, 0), 4, "working_hour", cal) == local(2025, 3, 11, 11, 0)


def test_makeup_saturday_counts():
    # Saturday 2025-03-08 is a make-up working day (调休): due Saturday 11:00
    cal = make_calendar(workdays=[dt.date(2025, 3, 8)])
    assert add_working_time(local(2025, 3, 7, 16, 0), 4, "working_hour", cal) == local(2025, 3, 8, 11, 0)


def test_shipped_calendar_national_day_2025():
    doc = json.loads((Path(workcal.__file__).parent / "data" / "calendar_cn.json").read_text("utf-8"))
    cal = make_calendar(periods=doc["periods"], weekend=doc["weekend"],
                        holidays=[dt.date.fromisoformat(d["date"]) for d in doc["days"] if d["kind"] == "holiday"],
                        workdays=[dt.date.fromisoformat(d["date"]) for d in doc["days"] if d["kind"] == "workday"])
    # Tuesday 2025-09-30 16:00 + 4 working hours: 1-8 October are holidays, Saturday 11 October is a make-up day
    assert add_working_time(local(2025, 9, 30, 16, 0), 4, "working_hour", cal) == local(2025, 10, 9, 11, 0)
    # Sunday 2025-09-28 is a make-up working day
    assert add_working_time(local(2025, 9, 27, 10, 0), 1, "working_hour", cal) == local(2025, 9, 28, 10, 0)
    # the 2027 rows are marked unverified; 2025/2026 rows verified
    assert all(d["verified"] for d in doc["days"] if d["date"] < "2027")
    assert all(not d["verified"] for d in doc["days"] if d["date"] >= "2027")


def test_shipped_calendar_matches_chinese_calendar_package():
    cc = pytest.importorskip("chinese_calendar")
    doc = json.loads((Path(workcal.__file__).parent / "data" / "calendar_cn.json").read_text("utf-8"))
    ours_h = {d["date"] for d in doc["days"] if d["kind"] == "holiday" and d["date"] < "2027"}
    ours_w = {d["date"] for d in doc["days"] if d["kind"] == "workday" and d["date"] < "2027"}
    theirs_h = {k.isoformat() for k in cc.holidays if k.year in (2025, 2026)}
    theirs_w = {k.isoformat() for k in cc.workdays if k.year in (2025, 2026) and k.weekday() >= 5}
    assert ours_h == theirs_h and ours_w == theirs_w


def test_units_and_boundaries():
    cal = make_calendar()
    mon10 = local(2025, 3, 10, 10, 0)
    assert add_working_time(mon10, 5, "working_day", cal) == local(2025, 3, 17, 10, 0)
    assert add_working_time(local(2025, 3, 8, 10, 0), 5, "working_day", cal) == local(2025, 3, 14, 18, 0)
    assert add_working_time(mon10, 30, "natural_hour", cal) == mon10 + dt.timedelta(hours=30)
    assert add_working_time(mon10, 2, "natural_day", cal) == mon10 + dt.timedelta(days=2)
    # ends exactly at the end of a period -> that end, not the next start
    assert add_working_time(local(2025, 3, 10, 17, 0), 1, "working_hour", cal) == local(2025, 3, 10, 18, 0)
    # lunch break skipped; start in the break counts from 13:00
    assert add_working_time(local(2025, 3, 10, 11, 30), 1, "working_hour", cal) == local(2025, 3, 10, 13, 30)
    assert add_working_time(local(2025, 3, 10, 12, 20), 1, "working_hour", cal) == local(2025, 3, 10, 14, 0)
    assert elapsed_fraction(mon10, local(2025, 3, 10, 15, 0), local(2025, 3, 10, 13, 30), "working_hour", cal) == 0.625
    with pytest.raises(workcal.CalendarError):
        add_working_time(mon10, 1, "fortnight", cal)
    with pytest.raises(workcal.CalendarError):
        make_calendar(periods=[("12:00", "09:00")])
    with pytest.raises(workcal.CalendarError):
        make_calendar(holidays=[dt.date(2025, 3, 8)], workdays=[dt.date(2025, 3, 8)])


# ------------------------------------------------------------- independent formulation


def brute_due(start: dt.datetime, minutes: int, cal: workcal.WorkCalendar) -> dt.datetime:
    """Minute by minute: consume a minute whenever [t, t+1min) is working time."""
    t = start
    left = minutes
    step = dt.timedelta(minutes=1)
    while left > 0:
        if cal.is_working_moment(t):
            left -= 1
        t += step
    return t


def brute_between(a: dt.datetime, b: dt.datetime, cal: workcal.WorkCalendar) -> int:
    n, t = 0, a
    while t < b:
        n += cal.is_working_moment(t)
        t += dt.timedelta(minutes=1)
    return n


DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(21)]
periods = st.sampled_from([(("09:00", "12:00"), ("13:00", "18:00")), (("08:30", "11:30"), ("13:30", "17:00")),
                           (("00:00", "24:00"),), (("09:00", "17:00"),)])


@settings(max_examples=60, deadline=None)
@given(per=periods, day=st.integers(0, 13), minute=st.integers(0, 24 * 60 - 1), amount=st.integers(1, 60 * 30),
       hol=st.sets(st.sampled_from(DAYS), max_size=4), mk=st.sets(st.sampled_from(DAYS), max_size=3))
def test_matches_minute_by_minute_brute_force(per, day, minute, amount, hol, mk):
    cal = make_calendar(periods=per, holidays=hol - mk, workdays=mk)
    start = (dt.datetime(2025, 3, 1, tzinfo=SH) + dt.timedelta(days=day, minutes=minute)).astimezone(dt.UTC)
    due = add_working_time(start, amount / 60, "working_hour", cal)
    assert due == brute_due(start, amount, cal)
    assert working_seconds_between(start, due, cal) == amount * 60
    assert brute_between(start, due, cal) == amount
