"""The demo feed: reports of every channel through the real intake, simulated staff and departments
moving them through the real workflow (timeline rows by the demo accounts, reworks, evaluations),
and a background thread that stops cleanly."""

from __future__ import annotations

from sqlalchemy import func, select


def test_feed_reports_and_works_cases(db_url):
    from cityops.cases.feed import Feed
    from cityops.cases.models import Case, CaseEvent
    from cityops.db import get_sessionmaker

    maker = get_sessionmaker()
    with maker() as s:
        before = s.scalar(select(func.max(Case.id))) or 0
        s.rollback()
        feed = Feed(seed=11, min_rest_s=0, maker=maker)
        feed._setup(s)
        assert feed._ready
        for ch in ("supervisor", "public", "hotline", "open311", "video_ai") * 3:
            feed.arrive(s, ch)
        assert feed.stats.reports == {"supervisor": 3, "public": 3, "hotline": 3, "open311": 3, "video_ai": 3}
        new = s.execute(select(Case.source, func.count()).where(Case.id > before).group_by(Case.source)).all()
        assert {src for src, _ in new} >= {"supervisor", "public", "hotline", "open311", "video_ai"}
        s.rollback()
        # cases spread over the workflow (the feed picks among every open case of the shared
        # test database, so give it a few passes to reach ours)
        for _ in range(12):
            feed.work(s, 12)
            states = dict(s.execute(select(Case.state, func.count())
                                    .where(Case.id > before, Case.created_by != "seed")
                                    .group_by(Case.state)).all())
            s.rollback()
            if len(states) >= 4:
                break
        assert len(states) >= 4, states
        for _ in range(40):
            feed.work(s, 12)
        acts = feed.stats.actions
        for a in ("accept", "request_verification", "verify", "register", "dispatch", "acknowledge", "report_back",
                  "request_inspection", "inspect", "close", "evaluate"):
            assert acts.get(a, 0) >= 1, (a, acts)
        # the demo accounts did the work (their roles on the timeline), not an anonymous system
        actors = dict(s.execute(select(CaseEvent.action, CaseEvent.actor).where(
            CaseEvent.case_id > before, CaseEvent.action.in_(("accept", "verify", "register", "dispatch", "close"))))
            .all())
        assert actors.get("accept") == "intake" and actors.get("dispatch") == "dispatcher"
        assert actors.get("verify") == "supervisor" and actors.get("register") == "shiftlead"
        handlers = s.scalars(select(CaseEvent.actor).where(CaseEvent.case_id > before,
                                                           CaseEvent.action == "acknowledge")).all()
        assert handlers and all(h.endswith("_handler") for h in handlers)
        s.rollback()


def test_feed_thread_stops_cleanly(db_url):
    from cityops.cases.feed import Feed, wait_until
    from cityops.db import get_sessionmaker

    feed = Feed(interval=0.05, seed=5, min_rest_s=0, work_per_tick=2, maker=get_sessionmaker()).start()
    assert feed.running
    assert wait_until(lambda: feed.stats.ticks >= 3, 60), feed.stats
    assert feed.stop(30) and not feed.running
    assert feed.stats.errors == 0, feed.stats.last_error
