"""200 concurrent intake requests against real uvicorn servers on a fresh database, some of them
retries with the same Idempotency-Key (sent to the OTHER server process), some of them second
reports of the same problem 10 m away: exactly one case or one link per logical report, none
lost, none doubled. Two API processes share the database (PostgreSQL; SQLite in WAL mode too)."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cityops import devserver
from tests.cases_helpers import offset

ROOT = Path(__file__).resolve().parent.parent
PORTS = range(8160, 8170)
ISOLATED = 100  # reports that each make a case
PAIRS = 25  # pairs of reports of one problem (10 m apart): one case, two reporters
RETRIES = 50  # requests that repeat an earlier one with the same Idempotency-Key


def _points(session: Any, n: int, cats: list[Any]) -> list[tuple[Any, float, float]]:
    """(category, lon, lat): no open case of the category within 150 m, and 300 m between any two
    points of one category, inside the district."""
    import numpy as np

    from cityops.cases.intake import find_duplicate
    from cityops.cases.places import locate
    from cityops.cases.sla import now
    from cityops.geo.models import Area

    grids = session.execute(select(Area.geom).where(Area.level == "grid", Area.valid_to.is_(None))
                            .order_by(Area.code)).scalars().all()
    out: list[tuple[Any, float, float]] = []
    used: dict[int, list[tuple[float, float]]] = {c.id: [] for c in cats}
    rng = random.Random(4)
    k = 0
    for g in grids * 3:
        cat = cats[k % len(cats)]
        k += 1
        minx, miny, maxx, maxy = g.bounds
        p = g.representative_point()
        x, y = (p.x, p.y) if k <= len(grids) else (rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if locate(session, np.array([x]), np.array([y]))[0] is None:
            continue
        if any(abs(x - a) < 0.0032 and abs(y - b) < 0.0028 for a, b in used[cat.id]):
            continue
        if find_duplicate(session, cat.id, x, y, now(), 150, 24 * 365 * 5) is not None:
            continue
        used[cat.id].append((x, y))
        out.append((cat, x, y))
        if len(out) == n:
            return out
    raise AssertionError(f"only {len(out)} free points")


@pytest.mark.slow
def test_concurrent_intake_with_retries_two_processes(fresh_url, tmp_path):
    from cityops.cases import reference as ref
    from cityops.cases.models import Case, CaseEvent, CaseReport
    from cityops.db import get_sessionmaker, session_scope
    from cityops.jobs.models import OutboxItem
    from tests.helpers import make_user

    # the fresh database gets what intake needs: the small demo district's grids, the security
    # catalogue and the case engine's reference data (catalogue, calendar, departments, policy)
    with session_scope() as s:
        from cityops.geo import demo
        from cityops.geo.seed import seed_geo
        from cityops.security import service as security
        from cityops.security.principal import SYSTEM

        seed_geo(s, demo.generate(seed=20210220, small=True), lambda _n: None)
        security.ensure_catalog(s)
        ref.seed_reference(s, SYSTEM)
    session = get_sessionmaker()()
    try:
        cat_ids = [c.id for c in ref.catalogue(session).by_version[ref.catalogue(session).active_id].values()
                   if c.name_zh in ("暴露垃圾", "乱堆物堆料", "道路不洁", "非法小广告", "绿地脏乱")]
        cats = [ref.category_by_id(session, i) for i in cat_ids]
        spots = _points(session, ISOLATED + PAIRS, cats)
        user, pw = make_user(session, "cc_grid", ["supervisor"], area_code="310117")
        before = session.scalar(select(func.max(Case.id))) or 0
        session.rollback()
    finally:
        session.close()

    try:
        ports = devserver.free_ports(2, PORTS)
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    logs = [tmp_path / f"server-{p}.log" for p in ports]
    procs: list[Any] = []
    try:
        for p, log in zip(ports, logs, strict=True):
            procs.append(devserver.start_api(fresh_url, p, logfile=log, timeout=60))
        token = httpx.post(f"http://127.0.0.1:{ports[0]}/api/v1/auth/token",
                           data={"username": user, "password": pw}).json()["access_token"]
        # the logical reports: one key each; pairs share a problem (same category, 10 m apart)
        logical: list[dict[str, Any]] = []
        for i, (cat, x, y) in enumerate(spots):
            logical.append({"key": f"cc-{i:03d}-a", "group": i, "body": {
                "category_code": cat.code, "lon": x, "lat": y, "description": f"并发测试 {i}",
                "source": "supervisor", "external_id": f"cc-{i:03d}-a"}})
            if i >= ISOLATED:
                x2, y2 = offset(x, y, 10, 0)
                logical.append({"key": f"cc-{i:03d}-b", "group": i, "body": {
                    "category_code": cat.code, "lon": x2, "lat": y2, "description": f"并发测试 {i} 第二人",
                    "source": "supervisor", "external_id": f"cc-{i:03d}-b"}})
        assert len(logical) == ISOLATED + 2 * PAIRS == 150
        rng = random.Random(7)
        retried = rng.sample(range(len(logical)), RETRIES)
        # each request: (logical index, server); a retry goes to the other server than the first send
        sends = [(i, i % 2) for i in range(len(logical))] + [(i, 1 - i % 2) for i in retried]
        rng.shuffle(sends)
        assert len(sends) == 200

        local = threading.local()
        barrier = threading.Barrier(50)

        def send(job: tuple[int, int]) -> tuple[int, int, dict[str, Any], str | None]:
            i, srv = job
            c = getattr(local, "c", None)
            if c is None:
                c = local.c = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"})
                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            r = c.post(f"http://127.0.0.1:{ports[srv]}/api/v1/cases", json=logical[i]["body"],
                       headers={"Idempotency-Key": logical[i]["key"]})
            return i, r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json")
                                      else {"text": r.text}), r.headers.get("Idempotent-Replayed")

        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(send, sends))
    finally:
        for proc in procs:
            devserver.stop(proc, timeout=20)

    # every answer is a success: 201 created, 200 linked or replayed; no server error logged
    bad = [(logical[i]["key"], st, body) for i, st, body, _ in results if st not in (200, 201)]
    assert not bad, bad[:5]
    for log in logs:
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for i, _st, body, _rep in results:
        by_key.setdefault(logical[i]["key"], []).append(body)
    assert len(by_key) == 150
    # a retry got the very same answer as the first send (same case, same report)
    for key, answers in by_key.items():
        assert len({(a["case_id"], a["report_id"]) for a in answers}) == 1, (key, answers)
    assert sum(1 for _i, _s, _b, rep in results if rep == "true") >= 1

    session = get_sessionmaker()()
    try:
        reports = session.execute(select(CaseReport.external_id, CaseReport.case_id, CaseReport.is_primary)
                                  .where(CaseReport.external_id.like("cc-%"))).all()
        # none lost, none doubled: exactly one report row per logical report
        assert len(reports) == 150 and len({r.external_id for r in reports}) == 150
        case_of = {r.external_id: r.case_id for r in reports}
        for key, answers in by_key.items():
            assert answers[0]["case_id"] == case_of[key]
        new_cases = session.execute(select(Case.id, Case.reporter_count).where(Case.id > before)).all()
        assert len(new_cases) == ISOLATED + PAIRS, len(new_cases)
        counts = {c.id: c.reporter_count for c in new_cases}
        for g in range(ISOLATED + PAIRS):
            a = case_of[f"cc-{g:03d}-a"]
            if g < ISOLATED:
                assert counts[a] == 1
            else:
                assert case_of[f"cc-{g:03d}-b"] == a and counts[a] == 2, g
        assert sum(1 for r in reports if r.is_primary) == ISOLATED + PAIRS
        # one 'report' timeline row per case, one 'link_report' per linked report, one outbox event per case
        ids = list(counts)
        n_report = session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id.in_(ids), CaseEvent.action == "report"))
        n_link = session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id.in_(ids), CaseEvent.action == "link_report"))
        assert n_report == ISOLATED + PAIRS and n_link == PAIRS
        outbox = session.execute(select(OutboxItem.payload).where(OutboxItem.topic == "case.reported")).scalars().all()
        reported_ids = [p["case_id"] for p in outbox if p.get("case_id", 0) > before]
        assert sorted(reported_ids) == sorted(ids)
    finally:
        session.close()
