"""Outbox: written in the caller's transaction, deduplicated, run by handlers exactly once for database
work, retried with backoff, dead-lettered, and never lost when a worker dies mid-item."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import func, select

from cityops.jobs import service as jobs
from cityops.jobs import worker
from cityops.jobs.models import OutboxItem
from cityops.jobs.settings import get_job_settings
from tests.conftest import BACKEND
from tests.jobs_helpers import clear_job_tables, own_database

calls: list[dict] = []
fail_plan: dict[int, int] = {}  # payload n -> failures still to produce
died_once: set[int] = set()
stop_during: list = []  # a threading.Event the "jt.stopper" handler sets (SIGTERM mid-batch)


class WorkerDied(BaseException):
    """Raised inside a handler to simulate the process dying there (not an ordinary error)."""


@jobs.handler("jt.effect")
def _effect(session, payload):
    calls.append(payload)
    n = payload["n"]
    if fail_plan.get(n, 0) > 0:
        fail_plan[n] -= 1
        # the handler's own writes must be rolled back with the failure
        jobs.enqueue(session, "jt.effect.done", {"of": n, "doomed": True})
        raise RuntimeError(f"flaky downstream for {n}")
    if payload.get("die") and n not in died_once:
        died_once.add(n)
        jobs.enqueue(session, "jt.effect.done", {"of": n, "doomed": True})
        raise WorkerDied()
    # the handler's database work: one row per run
    jobs.enqueue(session, "jt.effect.done", {"of": n})


@jobs.handler("jt.stopper")
def _stopper(session, payload):
    for ev in stop_during:
        ev.set()


@pytest.fixture(scope="module")
def jobs_db(tmp_root):
    from tests.conftest import use_database

    url, prev = own_database(tmp_root, "jobs")
    yield url
    if prev:
        use_database(prev)


@pytest.fixture()
def sf(jobs_db):
    from tests.conftest import use_database

    use_database(jobs_db)
    clear_job_tables()
    calls.clear()
    fail_plan.clear()
    died_once.clear()
    stop_during.clear()
    from cityops.db import get_sessionmaker

    return get_sessionmaker()


def _effects(sf, n=None):
    with sf() as s:
        q = select(OutboxItem.payload).where(OutboxItem.topic == "jt.effect.done")
        rows = [p for p in s.scalars(q) if n is None or p["of"] == n]
        return rows


def _item(sf, item_id):
    with sf() as s:
        o = s.get(OutboxItem, item_id)
        s.expunge(o)
        return o


def test_enqueue_exists_iff_caller_commits(sf):
    with sf() as s:
        jobs.enqueue(s, "jt.effect", {"n": 1})
        s.rollback()
    with sf() as s:
        b = jobs.enqueue(s, "jt.effect", {"n": 2})
        s.commit()
    with sf() as s:
        rows = s.execute(select(OutboxItem.id, OutboxItem.payload)).all()
    assert [tuple(r) for r in rows] == [(b, {"n": 2})]
    assert jobs.run_due(sf).outbox == 1
    assert [c["n"] for c in calls] == [2]


def test_dedupe_key_returns_first_id_and_writes_nothing(sf):
    with sf() as s:
        a = jobs.enqueue(s, "jt.effect", {"n": 1}, dedupe_key="case:7:created")
        b = jobs.enqueue(s, "jt.effect", {"n": 99}, dedupe_key="case:7:created")
        s.commit()
    with sf() as s:
        c = jobs.enqueue(s, "jt.effect", {"n": 100}, dedupe_key="case:7:created")
        s.commit()
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 1
    assert a == b == c
    jobs.run_due(sf)
    assert [c["n"] for c in calls] == [1]


def test_payload_is_json_and_bad_input_is_refused(sf):
    when = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with sf() as s:
        i = jobs.enqueue(s, "jt.effect", {"n": 5, "at": when, "codes": {"b", "a"}})
        s.commit()
    assert _item(sf, i).payload == {"n": 5, "at": "2025-03-01T00:00:00+00:00", "codes": ["a", "b"]}
    with sf() as s:
        with pytest.raises(ValueError, match="JSON"):
            jobs.enqueue(s, "jt.effect", {"x": object()})
        with pytest.raises(ValueError, match="timezone"):
            jobs.enqueue(s, "jt.effect", {"n": 1}, run_at=dt.datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="topic"):
            jobs.enqueue(s, "", {"n": 1})


def test_run_at_delays_the_item(sf):
    t0 = jobs.now()
    with sf() as s:
        jobs.enqueue(s, "jt.effect", {"n": 1}, run_at=t0 + dt.timedelta(minutes=10))
        s.commit()
    assert jobs.run_due(sf, now=t0).outbox == 0
    assert jobs.run_due(sf, now=t0 + dt.timedelta(minutes=11)).outbox == 1
    assert len(_effects(sf, 1)) == 1


def test_failure_rolls_back_handler_writes_backs_off_then_succeeds(sf):
    st = get_job_settings()
    fail_plan[3] = 2
    with sf() as s:
        i = jobs.enqueue(s, "jt.effect", {"n": 3})
        s.commit()
    t0 = jobs.now()
    r = jobs.run_due(sf, now=t0)
    assert (r.outbox, r.failed) == (0, 1)
    o = _item(sf, i)
    assert o.status == "pending" and o.attempts == 1 and o.claimed_by is None
    assert "RuntimeError: flaky downstream for 3" in o.last_error
    delay = (o.run_at - t0).total_seconds()
    assert st.backoff_base_seconds / 2 <= delay <= st.backoff_base_seconds
    assert _effects(sf) == []  # the failed run's writes were rolled back
    assert jobs.run_due(sf, now=t0).total == 0  # not due again yet
    # second failure: the backoff doubles (with jitter)
    t1 = o.run_at
    jobs.run_due(sf, now=t1)
    o = _item(sf, i)
    assert o.attempts == 2 and st.backoff_base_seconds <= (o.run_at - t1).total_seconds() <= 2 * st.backoff_base_seconds
    assert jobs.run_due(sf, now=o.run_at).outbox == 1
    o = _item(sf, i)
    assert o.status == "done" and o.last_error is None and o.attempts == 3
    assert [e for e in _effects(sf)] == [{"of": 3}]


def test_dead_after_max_attempts_then_retry_dead(sf):
    fail_plan[4] = 100
    with sf() as s:
        i = jobs.enqueue(s, "jt.effect", {"n": 4}, max_attempts=3)
        s.commit()
    t = jobs.now()
    for _ in range(3):
        jobs.run_due(sf, now=t)
        t += dt.timedelta(hours=2)
    o = _item(sf, i)
    assert o.status == "dead" and o.attempts == 3 and "flaky" in o.last_error
    assert jobs.run_due(sf, now=t + dt.timedelta(days=1)).total == 0
    with sf() as s:
        assert jobs.stats(s)["outbox"] == {"dead": 1}
        total, items = jobs.list_outbox(s, status="dead")
        assert total == 1 and items[0]["id"] == i
        fail_plan[4] = 0
        assert jobs.retry_dead(s, "outbox") == 1
        s.commit()
    assert jobs.run_due(sf).outbox == 1
    assert _item(sf, i).status == "done" and _effects(sf, 4) == [{"of": 4}]


def test_worker_dies_after_claiming_nothing_is_lost(sf):
    """A worker claims a batch, commits the claim and dies: the items wait for the lease, then
    another worker runs each of them once; the dead worker cannot finish them any more."""
    with sf() as s:
        ids = [jobs.enqueue(s, "jt.effect", {"n": n}) for n in range(10, 15)]
        s.commit()
    t0 = jobs.now()
    claimed = worker.claim(sf, worker.OUTBOX, t0, 3, "worker-a/died")
    assert claimed == ids[:3]
    # the other two are free; the three claimed ones are held by the lease
    r = jobs.run_due(sf, now=t0 + dt.timedelta(seconds=5))
    assert r.outbox == 2
    assert sorted(c["n"] for c in calls) == [13, 14]
    lease = get_job_settings().lease_seconds
    jobs.run_due(sf, now=t0 + dt.timedelta(seconds=lease + 1))
    assert sorted(c["n"] for c in calls) == list(range(10, 15))
    # the "dead" worker comes back and tries to finish its claim: refused, nothing runs twice
    for i in claimed:
        assert worker.run_outbox_item(sf, i, "worker-a/died", t0 + dt.timedelta(seconds=lease + 2)) == "lost"
    assert sorted(e["of"] for e in _effects(sf)) == list(range(10, 15))
    jobs.run_due(sf, now=t0 + dt.timedelta(seconds=lease + 3))  # the effects themselves
    with sf() as s:
        assert jobs.stats(s)["outbox"] == {"done": 10}  # 5 items + their 5 effects
        assert s.scalar(select(OutboxItem.attempts).where(OutboxItem.id == ids[0])) == 2


def test_worker_dies_inside_the_handler(sf):
    """The process dies while the handler runs (its transaction never commits): the handler's writes
    vanish with it, and after the lease the item runs again, once."""
    with sf() as s:
        i = jobs.enqueue(s, "jt.effect", {"n": 20, "die": True})
        s.commit()
    t0 = jobs.now()
    with pytest.raises(WorkerDied):
        jobs.run_due(sf, now=t0)
    o = _item(sf, i)
    assert o.status == "pending" and o.claimed_by is not None and o.attempts == 1
    assert _effects(sf) == []
    assert jobs.run_due(sf, now=t0 + dt.timedelta(seconds=30)).outbox == 0  # still leased
    lease = get_job_settings().lease_seconds
    assert jobs.run_due(sf, now=t0 + dt.timedelta(seconds=lease + 1)).outbox == 1
    assert _effects(sf) == [{"of": 20}]
    assert _item(sf, i).status == "done"


def test_lease_expired_on_last_attempt_goes_dead(sf):
    with sf() as s:
        i = jobs.enqueue(s, "jt.effect", {"n": 30}, max_attempts=1)
        s.commit()
    t0 = jobs.now()
    assert worker.claim(sf, worker.OUTBOX, t0, 10, "worker-b/died") == [i]
    lease = get_job_settings().lease_seconds
    jobs.run_due(sf, now=t0 + dt.timedelta(seconds=lease + 1))
    o = _item(sf, i)
    assert o.status == "dead" and "lease expired" in o.last_error
    assert calls == []


def test_graceful_stop_releases_the_rest_of_the_batch(sf):
    import threading

    stop = threading.Event()
    with sf() as s:
        jobs.enqueue(s, "jt.effect", {"n": 40})
        s.commit()
    stop.set()  # a stopping worker claims nothing more
    assert jobs.run_due(sf, stop=stop).total == 0
    with sf() as s:
        assert s.execute(select(OutboxItem.claimed_by, OutboxItem.attempts)).one() == (None, 0)
    # SIGTERM while the first item of a batch runs: it finishes, the rest of the batch is given back
    stop.clear()
    stop_during.append(stop)
    clear_job_tables()
    with sf() as s:
        jobs.enqueue(s, "jt.stopper", {})  # first in line
        for n in range(40, 45):
            jobs.enqueue(s, "jt.effect", {"n": n})
        s.commit()
    r = jobs.run_due(sf, stop=stop, kinds=("outbox",))
    assert r.outbox == 1 and calls == []
    with sf() as s:
        rows = s.execute(select(OutboxItem.claimed_by, OutboxItem.attempts)
                         .where(OutboxItem.topic == "jt.effect")).all()
    assert len(rows) == 5 and all(c is None and a == 0 for c, a in rows)  # claimable at once, attempt not counted
    stop_during.clear()
    assert jobs.run_due(sf).outbox == 5
    assert sorted(c["n"] for c in calls) == list(range(40, 45))


def test_worker_loop_once_drains_everything(sf):
    with sf() as s:
        for n in range(50, 80):
            jobs.enqueue(s, "jt.effect", {"n": n})
        s.commit()
    totals = jobs.Worker(sf, concurrency=3, batch=4, poll_seconds=0.01).run(once=True)
    assert totals.outbox == 60  # 30 items + their 30 effects
    assert sorted(c["n"] for c in calls) == list(range(50, 80))


def test_events_since_pages_in_order_with_topic_filter(sf):
    with sf() as s:
        first = jobs.latest_event_id(s)
        for n in range(5):
            jobs.enqueue(s, "jt.effect", {"n": 100 + n})
            jobs.enqueue(s, "other.thing", {"n": n})
        s.commit()
    with sf() as s:
        page = jobs.events_since(s, first, limit=4)
        assert [e.topic for e in page] == ["jt.effect", "other.thing"] * 2
        assert page.cursor == page[-1].id
        rest = jobs.events_since(s, page.cursor, limit=100)
        assert len(rest) == 6 and rest.cursor == jobs.latest_event_id(s)
        only = jobs.events_since(s, first, topics=["jt.*"], limit=3)
        assert [e.payload["n"] for e in only] == [100, 101, 102]
        more = jobs.events_since(s, only.cursor, topics=["jt.*"], limit=3)
        assert [e.payload["n"] for e in more] == [103, 104]
        assert more.cursor == rest.cursor  # skipped past the filtered-out tail
        assert jobs.events_since(s, more.cursor) == [] and jobs.events_since(s, more.cursor).cursor == more.cursor
        assert [e.topic for e in jobs.events_since(s, first, topics=["other.thing"])] == ["other.thing"] * 5
        assert page[0].as_dict()["payload"] == {"n": 100}


@pytest.mark.skipif(BACKEND != "postgresql", reason="concurrent writers need PostgreSQL")
def test_events_since_waits_for_an_uncommitted_lower_id(sf):
    with sf() as s:
        start = jobs.latest_event_id(s)
    slow, fast = sf(), sf()
    try:
        a = jobs.enqueue(slow, "jt.stream", {"who": "slow"})  # takes the lower id, commits later
        b = jobs.enqueue(fast, "jt.stream", {"who": "fast"})
        fast.commit()
        assert a < b
        with sf() as s:
            page = jobs.events_since(s, start)
            assert list(page) == [] and page.cursor == start  # b is visible, but a may still come
        slow.commit()
        with sf() as s:
            page = jobs.events_since(s, start)
            assert [e.payload["who"] for e in page] == ["slow", "fast"] and page.cursor == b
    finally:
        slow.close()
        fast.close()


@pytest.mark.skipif(BACKEND != "postgresql", reason="id holes only come from concurrent writers on PostgreSQL")
def test_events_since_passes_a_rolled_back_hole(sf):
    import time

    with sf() as s:
        start = jobs.latest_event_id(s)
    gone, kept = sf(), sf()
    try:
        jobs.enqueue(gone, "jt.stream", {"who": "gone"})
        b = jobs.enqueue(kept, "jt.stream", {"who": "kept"})
        kept.commit()
        gone.rollback()
    finally:
        gone.close()
        kept.close()
    # every transaction open now began after the row behind the hole was written (+1 s margin)
    time.sleep(1.2)
    with sf() as s:
        page = jobs.events_since(s, start)
        assert [e.id for e in page] == [b] and page.cursor == b


@pytest.mark.skipif(BACKEND != "postgresql", reason="concurrent writers need PostgreSQL")
def test_a_reader_starting_now_does_not_skip_an_uncommitted_lower_id(sf):
    """``start_cursor`` (the console snapshot's and the live stream's start) stops below an event whose
    transaction is still open, where the plain latest id would skip it for ever."""
    slow, fast = sf(), sf()
    try:
        a = jobs.enqueue(slow, "jt.start", {"who": "slow"})
        b = jobs.enqueue(fast, "jt.start", {"who": "fast"})
        fast.commit()
        with sf() as s:
            assert jobs.latest_event_id(s) >= b
            start = jobs.start_cursor(s)
        assert start < a
        slow.commit()
        # a reader polls, passing back the cursor; a hole just below a fresh row is waited on for up to
        # the 1 s margin of ``_gap_checker`` (here the ids of the rows cleared before the test)
        seen: list[str] = []
        cursor, deadline = start, time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            with sf() as s:
                page = jobs.events_since(s, cursor, topics=["jt.start"])
            seen += [e.payload["who"] for e in page]
            cursor = page.cursor
            time.sleep(0.1)
        assert seen == ["slow", "fast"]
    finally:
        slow.close()
        fast.close()


def test_start_cursor_is_the_latest_settled_event(sf):
    with sf() as s:
        before = jobs.start_cursor(s)
        eid = jobs.enqueue(s, "jt.start2", {"n": 1})
        s.commit()
        start = jobs.start_cursor(s)
        assert before <= start <= jobs.latest_event_id(s)
        if BACKEND == "sqlite":  # one writer at a time: no hole may still fill
            assert start == jobs.latest_event_id(s) == eid
    import time

    deadline = time.monotonic() + 5  # a recent hole below it settles within the 1 s margin
    seen: list[int] = []
    while time.monotonic() < deadline and eid not in seen and start != eid:
        with sf() as s:
            seen = [e.id for e in jobs.events_since(s, start, limit=1000)]
        time.sleep(0.2)
    assert start == eid or eid in seen
