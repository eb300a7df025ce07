"""Timers: one per (kind, ref_type, ref_id), moved by re-scheduling, cancelled, and fired exactly once
when due — also when the due time passed while everything was stopped."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cityops.jobs import service as jobs
from cityops.jobs.models import Notification, Timer
from tests.jobs_helpers import clear_job_tables, own_database

fired: list[dict] = []


@jobs.handler("jt.sla.overdue")
def _overdue(session, payload):
    fired.append(payload)
    # a database-only effect: the escalation notice
    jobs.notify(session, role="district_commander", area_code="310117", title=f"超期 {payload['ref_id']}",
                body=f"due {payload['due_at']}, fired at {jobs.now().isoformat()}", severity="urgent")


@jobs.handler("jt.recurring")
def _recurring(session, payload):
    fired.append(payload)
    if payload["left"] > 0:  # re-arms itself from inside the handler
        jobs.schedule_timer(session, "jt.recurring", payload["ref_type"], payload["ref_id"],
                            jobs.now() + dt.timedelta(minutes=5), {"left": payload["left"] - 1})


@pytest.fixture(scope="module")
def timers_db(tmp_root):
    from tests.conftest import use_database

    url, prev = own_database(tmp_root, "timers")
    yield url
    if prev:
        use_database(prev)


@pytest.fixture()
def sf(timers_db):
    from tests.conftest import use_database

    use_database(timers_db)
    clear_job_tables()
    fired.clear()
    from cityops.db import get_sessionmaker

    return get_sessionmaker()


def _timer(sf, kind, ref_type, ref_id):
    with sf() as s:
        t = jobs.get_timer(s, kind, ref_type, ref_id)
        if t is not None:
            s.expunge(t)
        return t


def test_schedule_moves_and_cancel(sf):
    t0 = jobs.now()
    with sf() as s:
        a = jobs.schedule_timer(s, "jt.sla.overdue", "case", 7, t0 + dt.timedelta(hours=1), {"step": "dispatch"})
        b = jobs.schedule_timer(s, "jt.sla.overdue", "case", 7, t0 + dt.timedelta(hours=3), {"step": "handle"})
        jobs.schedule_timer(s, "jt.sla.warn", "case", 7, t0 + dt.timedelta(hours=2))
        s.commit()
    assert a == b
    t = _timer(sf, "jt.sla.overdue", "case", 7)
    assert t.due_at == t0 + dt.timedelta(hours=3) and t.payload == {"step": "handle"} and t.status == "pending"
    assert jobs.run_due(sf, now=t0 + dt.timedelta(hours=2, minutes=59)).timers == 0
    with sf() as s:
        assert jobs.cancel_timers(s, "case", 7, kind="jt.sla.warn") == 1
        s.commit()
    assert _timer(sf, "jt.sla.warn", "case", 7).status == "cancelled"
    with sf() as s:
        assert jobs.cancel_timers(s, "case", 7) == 1
        s.commit()
    assert jobs.run_due(sf, now=t0 + dt.timedelta(days=1)).timers == 0
    assert fired == []
    # re-scheduling re-arms a cancelled timer
    with sf() as s:
        jobs.schedule_timer(s, "jt.sla.overdue", "case", 7, t0 + dt.timedelta(hours=4))
        s.commit()
    assert jobs.run_due(sf, now=t0 + dt.timedelta(hours=5)).timers == 1
    assert fired[0]["ref_id"] == 7 and fired[0]["ref_type"] == "case" and fired[0]["kind"] == "jt.sla.overdue"


def test_timer_scheduled_in_a_rolled_back_transaction_does_not_exist(sf):
    with sf() as s:
        jobs.schedule_timer(s, "jt.sla.overdue", "case", 8, jobs.now())
        s.rollback()
    assert _timer(sf, "jt.sla.overdue", "case", 8) is None


def test_fires_once_after_a_restart_past_the_deadline(sf, timers_db):
    """Scheduled, then everything stops (engine disposed, no worker) while the deadline passes; a new
    process comes up and fires it exactly once, even if several passes and workers look at it."""
    t0 = jobs.now()
    with sf() as s:
        jobs.schedule_timer(s, "jt.sla.overdue", "case", "HZ-2025-0001", t0 + dt.timedelta(hours=4))
        s.commit()
    assert jobs.run_due(sf, now=t0 + dt.timedelta(hours=3)).timers == 0  # still yellow
    # "restart": forget the engine and every pooled connection, start from the environment again
    from cityops.db import get_sessionmaker, reset_engine
    from tests.conftest import use_database

    reset_engine()
    use_database(timers_db)
    sf2 = get_sessionmaker()
    later = t0 + dt.timedelta(hours=30)
    assert jobs.run_due(sf2, now=later).timers == 1
    assert jobs.run_due(sf2, now=later + dt.timedelta(minutes=1)).timers == 0
    assert jobs.Worker(sf2, concurrency=2, poll_seconds=0.01).run(once=True).timers == 0
    assert len(fired) == 1 and fired[0]["ref_id"] == "HZ-2025-0001"
    t = _timer(sf2, "jt.sla.overdue", "case", "HZ-2025-0001")
    assert t.status == "fired" and t.fired_at == later
    with sf2() as s:
        notes = s.scalars(select(Notification).where(Notification.title == "超期 HZ-2025-0001")).all()
        assert len(notes) == 1 and notes[0].severity == "urgent"
        # the handler saw the injected clock
        assert later.isoformat() in notes[0].body


def test_handler_can_rearm_its_own_timer(sf):
    t0 = jobs.now()
    with sf() as s:
        jobs.schedule_timer(s, "jt.recurring", "patrol", 1, t0, {"left": 2})
        s.commit()
    t = t0
    for _ in range(5):
        jobs.run_due(sf, now=t)
        t += dt.timedelta(minutes=6)
    assert [p["left"] for p in fired] == [2, 1, 0]
    assert _timer(sf, "jt.recurring", "patrol", 1).status == "fired"


def test_timer_without_handler_fails_with_a_clear_error(sf):
    with sf() as s:
        tid = jobs.schedule_timer(s, "jt.nobody.listens", "case", 9, jobs.now(), max_attempts=1)
        s.commit()
    r = jobs.run_due(sf, now=jobs.now() + dt.timedelta(seconds=1))
    assert r.failed == 1 and r.dead == 1
    with sf() as s:
        t = s.get(Timer, tid)
        assert t.status == "dead" and "no handler registered for timer kind 'jt.nobody.listens'" in t.last_error
        assert jobs.retry_dead(s, "timers") == 1
        s.commit()


def test_bad_timer_arguments(sf):
    with sf() as s:
        with pytest.raises(ValueError, match="due_at"):
            jobs.schedule_timer(s, "jt.sla.overdue", "case", 1, dt.datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="ref_id"):
            jobs.schedule_timer(s, "jt.sla.overdue", "case", None, jobs.now())  # type: ignore[arg-type]
