"""The demo: the stream sends readings through the real ingest path, and a rainstorm crossing the
district west to east raises graded rainfall and ponding warnings street by street and opens 道路积水
cases for 水务 in the ponding monitors' grids. Simulated clock (``Stream.step(now)``), real database."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import select

from tests.indicators_helpers import drain


@pytest.fixture()
def demo_db(tmp_root):
    """A database of its own (the storm touches every street), seeded with the small district."""
    from cityops.db import session_scope
    from cityops.demo.seed import seed_demo
    from tests.conftest import _new_database, migrate, use_database

    url = _new_database(tmp_root, "storm")
    migrate(url)
    prev = os.environ.get("CITYOPS_DATABASE_URL")
    use_database(url)
    with session_scope() as s:
        seed_demo(s, small=True)
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        yield s
    finally:
        s.close()
        from cityops.indicators.evaluator import pipeline

        pipeline().stop()
        if prev:
            use_database(prev)


def test_storm_crosses_west_to_east(demo_db):
    session = demo_db
    from cityops.db import get_sessionmaker
    from cityops.geo import service as geo
    from cityops.indicators.feed import Stream
    from cityops.indicators.models import EarlyWarning

    st = Stream(maker=get_sessionmaker(), first_storm_s=1e12)
    start = time.time() - 3 * 3600  # three hours ago: every reading within retention, none in the future
    st.step(start)
    storm = st.start_storm(start, duration_s=720)
    for k in range(1, 25):  # one reading a minute for 24 minutes
        st.step(start + 60 * k)
    drain()
    rows = session.execute(select(EarlyWarning).where(EarlyWarning.rule_code.in_(("rainstorm", "ponding")),
                                                      EarlyWarning.raised_at >= _dt(start))).scalars().all()
    session.rollback()
    rain = [w for w in rows if w.rule_code == "rainstorm"]
    pond = [w for w in rows if w.rule_code == "ponding"]
    assert len({w.area_code for w in rain}) >= 3, "the storm should reach several streets"
    assert {w.max_level for w in rain} & {"orange", "red"}
    assert pond and any(w.case_id for w in pond), "ponding at orange opens a case"
    # west to east: warnings of western streets are raised before those of eastern ones
    pts = {w.area_code: geo.area_point(session, w.area_code) for w in rain}
    session.rollback()
    order = sorted(rain, key=lambda w: w.raised_at)
    west = [pts[w.area_code][0] for w in order[: max(1, len(order) // 3)]]
    east = [pts[w.area_code][0] for w in order[-max(1, len(order) // 3):]]
    assert sum(west) / len(west) < sum(east) / len(east)
    from cityops.cases import service as cases
    from cityops.security.principal import SYSTEM

    for w in pond:
        if w.case_id:
            c = cases.case_detail(session, SYSTEM, w.case_id)
            session.rollback()
            assert c["category"]["name"] == "道路积水" and c["lead_department_code"] == "sw"
            assert c["grid_code"] == w.grid_code
    assert storm.until > storm.started


def _dt(ts: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC)
