"""The set-based intake (one batch = one transaction) decides duplicates exactly as reports sent one
at a time do, and as an independent formulation (geodesic distances from pyproj, a plain loop) says:
each report, in time order, joins the nearest open case of its category within the radius, else
opens a new one."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
from pyproj import Geod

from cityops.cases import reference as ref
from tests.cases_helpers import category, free_point, offset
from tests.helpers import auth_headers, make_user

GEOD = Geod(ellps="WGS84")


def _pattern(n: int, seed: int) -> list[tuple[int, float, float, int]]:
    """(category slot, east m, north m, minutes after start): a cluster where links happen, with no
    pair of points within 1 m of the radius (50 m), so that the distance formula cannot matter."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, float, float, int]] = []
    while len(out) < n:
        slot, e, no = int(rng.integers(0, 2)), float(rng.uniform(0, 160)), float(rng.uniform(0, 160))
        if any(abs(np.hypot(e - e2, no - n2) - 50.0) < 1.0 for _s, e2, n2, _m in out):
            continue
        out.append((slot, e, no, len(out)))
    return out


def _expected(points: list[tuple[int, float, float]], radius: float) -> list[int]:
    """Case index (position of the opening report) of every report, by the plain definition."""
    owner: list[int] = []
    for i, (slot, lon, lat) in enumerate(points):
        best: tuple[float, int] | None = None
        for j in range(i):
            if owner[j] != j or points[j][0] != slot:
                continue
            _f, _b, d = GEOD.inv(lon, lat, points[j][1], points[j][2])
            if d <= radius and (best is None or d < best[0]):
                best = (d, j)
        owner.append(best[1] if best else i)
    return owner


def _orders(cats: list, base: tuple[float, float], pattern: list, start: dt.datetime, tag: str) -> list[dict]:
    rows = []
    for k, (slot, e, n, minutes) in enumerate(pattern):
        lon, lat = offset(base[0], base[1], e, n)
        rows.append({"order_id": f"B{tag}{k:03d}", "received_at": (start + dt.timedelta(minutes=minutes)).isoformat(),
                     "category_code": cats[slot].code, "lat": lat, "lon": lon, "content": f"批量 {k}"})
    return rows


def _partition(case_ids: list[int]) -> list[int]:
    first: dict[int, int] = {}
    return [first.setdefault(c, i) for i, c in enumerate(case_ids)]


def test_batch_decides_duplicates_like_one_at_a_time_and_like_the_definition(client, session):
    u, pw = make_user(session, "ib_hot", ["intake_operator"], area_code="310117")
    h = auth_headers(client, u, pw)
    cats = [category(session, "乱堆物堆料"), category(session, "暴露垃圾")]
    radius = float(ref.policy(session).get("dedupe_radius_m", 50))
    session.commit()
    pattern = _pattern(40, seed=7)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    # two places clear of both categories' cases (600 m), 2 km apart
    from cityops.cases.intake import find_duplicate
    from cityops.cases.sla import now

    bases: list[tuple[float, float]] = []
    skip = 5
    while len(bases) < 2:
        lon, lat, _g = free_point(session, cats[0].id, skip=skip, clear_m=600)
        skip += 1
        if find_duplicate(session, cats[1].id, lon, lat, now(), 600, 24 * 365 * 5) is not None:
            continue
        if bases and GEOD.inv(lon, lat, bases[0][0], bases[0][1])[2] < 2000:
            continue
        bases.append((lon, lat))
    session.commit()
    tag = uuid.uuid4().hex[:6]
    # one batch (one transaction)
    batch = _orders(cats, bases[0], pattern, start, tag + "a")
    r = client.post("/api/v1/cases/import/hotline", json=batch, headers=h)
    assert r.status_code == 200, r.text
    batch_ids = [it["case_id"] for it in r.json()["items"]]
    # the same pattern elsewhere, one order per request (one transaction each)
    single = _orders(cats, bases[1], pattern, start, tag + "b")
    single_ids = []
    for row in single:
        r = client.post("/api/v1/cases/import/hotline", json=[row], headers=h)
        assert r.status_code == 200, r.text
        single_ids.append(r.json()["items"][0]["case_id"])
    expected = _expected([(cats[s].id, o["lon"], o["lat"]) for (s, *_r), o in zip(pattern, batch, strict=True)], radius)
    assert _partition(batch_ids) == expected
    assert _partition(single_ids) == expected
    assert len(set(expected)) < len(expected) - 3  # the pattern does exercise linking
    # reporter counts agree with the links; each case carries its routing proposal from intake on
    by_code = {c.code: c for c in cats}
    for cid in set(batch_ids):
        d = client.get(f"/api/v1/cases/{cid}", headers=h).json()
        assert d["reporter_count"] == batch_ids.count(cid)
        proposal = ref.propose_route(session, by_code[d["category_code"]], d["grid_code"], d["street_code"])
        assert proposal.department_code and d["proposed_department_code"] == proposal.department_code
    session.commit()


def test_dedupe_states_are_the_open_states_and_the_index_serves_the_query(session):
    from cityops.cases import intake
    from cityops.cases.models import DEDUPE_STATES

    assert set(DEDUPE_STATES) == set(ref.OPEN_STATES)
    if session.get_bind().dialect.name != "sqlite":
        return
    stmt = intake._near_statement("sqlite", 1)
    sql = str(stmt.compile(session.get_bind()))
    plan = " ".join(str(r[3]) for r in session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + sql, (0, 1, "2026-01-01 00:00:00", 31.0, 31.1, 121.0, 121.1)))
    session.rollback()
    assert "ix_case_file_open_category_lat_lon" in plan, plan
