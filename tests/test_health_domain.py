"""Public-health domain: KPIs on a hand-made history, escalation of unverified signals through the timers,
scoping and masking of case reports, the signal workflow, the daily run and school rules, counts import
(all or nothing, bad rows named), the analyst API (R-identical answers, 422 naming the field)."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import numpy as np
import pytest
from sqlalchemy import select

from cityops import clock
from cityops.health import kpi, runs, signals
from cityops.health.models import CaseReport, DailyCount, SentinelSite, Signal
from cityops.jobs import service as jobs
from cityops.jobs.models import Notification
from cityops.lifecycle.models import TimelineEntry
from cityops.security.seed import demo_password
from tests.helpers import auth_headers

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def _h(client, user: str) -> dict[str, str]:
    return auth_headers(client, user, demo_password(user))


def test_kpis_on_a_hand_made_history_are_exact():
    h = dt.timedelta(hours=1)
    rows = [kpi.SignalTimes(T0, T0 + 0.5 * h, "excluded"),
            kpi.SignalTimes(T0, T0 + 2 * h, "suspected"),
            kpi.SignalTimes(T0, T0 + 30 * h, "confirmed"),
            kpi.SignalTimes(T0, T0 + 24 * h, None),
            kpi.SignalTimes(T0, None, None)]
    k = kpi.kpis(rows)
    assert k == {"signals": 5, "responded": 4, "response_rate": 0.8, "response_rate_24h": 0.6,
                 "median_response_hours": 13.0, "suspected_event_rate": 0.4}
    assert kpi.kpis([])["response_rate"] is None


def _streets(session) -> list[str]:
    from cityops.geo.models import Area

    return list(session.scalars(select(Area.code).where(Area.level == "street").order_by(Area.code)))


def _site(session, street: str, kind: str = "fever_clinic") -> SentinelSite:
    from cityops.geo.models import Area

    grid = session.scalar(select(Area.code).where(Area.level == "grid", Area.code.startswith(street)).order_by(Area.code))
    s = SentinelSite(code=f"T-{uuid.uuid4().hex[:8]}", name="测试哨点", kind=kind, lon=121.2, lat=31.0,
                     grid_code=grid, community_code=grid[:12], street_code=street)
    session.add(s)
    session.flush()
    return s


def test_an_unverified_signal_escalates_once_and_a_verified_one_does_not(db_url, session):
    from cityops.db import get_sessionmaker
    from cityops.security.principal import SYSTEM

    street = _streets(session)[0]
    tag = uuid.uuid4().hex[:6]
    with clock.pinned(T0):
        late = signals.raise_signal(session, method="earsC1", syndrome=f"t{tag}", area_code=street,
                                    area_level="street", period_end=dt.date(2026, 3, 1), observed=12, threshold=5.5,
                                    params={})
        ok = signals.raise_signal(session, method="earsC2", syndrome=f"t{tag}", area_code=street,
                                  area_level="street", period_end=dt.date(2026, 3, 1), observed=9, threshold=4.0,
                                  params={})
        assert late is not None and ok is not None
        assert signals.raise_signal(session, method="earsC1", syndrome=f"t{tag}", area_code=street,
                                    area_level="street", period_end=dt.date(2026, 3, 1), observed=12, threshold=5.5,
                                    params={}) is None  # one per (method, syndrome, area, period)
        session.commit()
    with clock.pinned(T0 + dt.timedelta(hours=3)):
        signals.act(session, SYSTEM, session.get(Signal, ok.id), "verify", {})
        session.commit()
    assert late.verify_due_at == T0 + dt.timedelta(hours=24)
    sf = get_sessionmaker()
    with clock.pinned(T0 + dt.timedelta(hours=25)):
        jobs.run_due(sf, now=T0 + dt.timedelta(hours=25))
        # fired again (a duplicate arm) must not escalate twice
        with sf() as s:
            jobs.schedule_timer(s, signals.VERIFY_TIMER, signals.OBJECT, late.id, T0 + dt.timedelta(hours=24))
            s.commit()
        jobs.run_due(sf, now=T0 + dt.timedelta(hours=26))
    with sf() as s:
        a, b = s.get(Signal, late.id), s.get(Signal, ok.id)
        assert a.escalated_at is not None and a.status == "new"
        assert b.escalated_at is None and b.verified_at == T0 + dt.timedelta(hours=3)
        esc = list(s.scalars(select(TimelineEntry).where(TimelineEntry.object_type == signals.OBJECT,
                                                         TimelineEntry.object_id == str(late.id),
                                                         TimelineEntry.action == "escalate")))
        assert len(esc) == 1
        notes = s.scalars(select(Notification).where(Notification.link == f"/health/signals/{late.id}",
                                                     Notification.title.contains("超时"))).all()
        assert len(notes) == 2  # the CDC duty role and the district commander


def test_case_reports_are_scoped_and_masked(db_url, client, session):
    from cityops.security.seed import YUEYANG

    streets = _streets(session)
    other = next(s for s in streets if s != YUEYANG)
    ids = []
    for st, n in ((YUEYANG, "张三丰"), (other, "李四光")):
        g = _site(session, st).grid_code
        c = CaseReport(disease="流行性感冒", disease_class="C", name=n, id_number="310117199001011234",
                       phone="13800138000", address="上海市松江区测试路1号", gender="M", age=36, grid_code=g,
                       community_code=g[:12], street_code=st, onset_date=dt.date(2026, 3, 1))
        session.add(c)
        session.flush()
        ids.append(c.id)
    session.commit()
    r = client.get("/api/v1/health/case-reports", headers=_h(client, "yy_street"))
    assert r.status_code == 200
    items = {i["id"]: i for i in r.json()["items"]}
    assert ids[0] in items and ids[1] not in items
    assert all(i["street_code"] == YUEYANG for i in items.values())
    me = items[ids[0]]
    assert me["id_number"] != "310117199001011234" and "*" in me["id_number"]
    assert me["id_number"].startswith("310117") and me["id_number"].endswith("1234")
    assert me["name"] != "张三丰" and me["masked"] is True
    r = client.get("/api/v1/health/case-reports", headers=_h(client, "cdc"))
    seen = {i["id"] for i in r.json()["items"]}
    assert set(ids) <= seen


def test_signal_workflow_through_the_api_and_kpis(db_url, client, session):
    street = _streets(session)[0]
    tag = uuid.uuid4().hex[:6]
    s = signals.raise_signal(session, method="earsC3", syndrome=f"w{tag}", area_code=street, area_level="street",
                             period_end=dt.date(2026, 3, 2), observed=20, threshold=8, params={})
    session.commit()
    h = _h(client, "cdc")
    assert client.post(f"/api/v1/health/signals/{s.id}/actions/suspect", json={"note": "x"}, headers=h).status_code == 409
    assert client.post(f"/api/v1/health/signals/{s.id}/actions/verify", json={}, headers=h).status_code == 200
    assert client.post(f"/api/v1/health/signals/{s.id}/actions/investigate", json={}, headers=h).status_code == 200
    r = client.post(f"/api/v1/health/signals/{s.id}/actions/suspect", json={}, headers=h)
    assert r.status_code == 422  # a note is required
    r = client.post(f"/api/v1/health/signals/{s.id}/actions/suspect", json={"note": "学校聚集，已采样"}, headers=h)
    assert r.status_code == 200 and r.json()["outcome"] == "suspected"
    got = client.get(f"/api/v1/health/signals/{s.id}", headers=h).json()
    assert got["status"] == "closed" and got["verified_at"] and got["closed_at"]
    k = client.get("/api/v1/health/signals/kpis", headers=h).json()
    assert k["signals"] >= 1 and 0 < k["suspected_event_rate"] <= 1
    # a street operator of another street does not see it
    from cityops.security.seed import YUEYANG
    if street != YUEYANG:
        assert client.get(f"/api/v1/health/signals/{s.id}", headers=_h(client, "yy_street")).status_code == 404
    assert client.get("/health", headers=h).status_code == 200


def test_daily_run_detects_an_injected_outbreak_and_school_rules(db_url, session):
    street = _streets(session)[0]
    clinic = _site(session, street, "fever_clinic")
    school = _site(session, street, "school")
    day = dt.date(2031, 6, 30)  # far from other tests' data
    rng = np.random.default_rng(2)
    first = day - dt.timedelta(days=runs.HISTORY_DAYS - 1)
    for i in range(runs.HISTORY_DAYS):
        d = first + dt.timedelta(days=i)
        n = int(rng.poisson(6)) + (40 if d == day else 0)
        session.add(DailyCount(site_id=clinic.id, day=d, syndrome="ili", count=n, street_code=street))
        if i >= runs.HISTORY_DAYS - 7:
            session.add(DailyCount(site_id=school.id, day=d, syndrome="ili", count=5, street_code=street))
    session.flush()
    out = runs.daily_run(session, day, runs=[{"method": "earsC2", "syndrome": "ili", "level": "street", "control": {}}])
    assert out["signals"] >= 1 and out["school_signals"] == 1
    sig = session.scalars(select(Signal).where(Signal.period_end == day)).all()
    by_rule = {s.rule or s.method: s for s in sig}
    assert by_rule["earsC2"].area_code == street and by_rule["earsC2"].observed >= 40
    school_sig = by_rule["school_ili_30"]  # 35 ILI cases in 7 days in one school -> report within 2 hours
    assert school_sig.verify_due_at - school_sig.created_at == dt.timedelta(hours=2)
    session.rollback()


def test_counts_import_is_all_or_nothing_and_names_bad_rows(db_url, client, session):
    site = _site(session, _streets(session)[0])
    session.commit()
    h = _h(client, "cdc")
    csv_bad = f"site,day,syndrome,count\n{site.code},2026-03-01,ili,4\n{site.code},2026-03-02,ili,-1\nNOPE,2026-03-02,cough,1\n"
    r = client.post("/api/v1/health/counts/import", files={"file": ("c.csv", io.BytesIO(csv_bad.encode()), "text/csv")},
                    headers=h)
    assert r.status_code == 422
    locs = [tuple(d["loc"]) for d in r.json()["detail"]]
    assert ("row", 1, "count") in locs and ("row", 2, "site") in locs and ("row", 2, "syndrome") in locs
    r = client.post("/api/v1/health/counts", json=[{"site": site.code, "day": "2026-02-27", "syndrome": "ili", "count": 3}],
                    headers=h)
    assert r.status_code == 200, r.text
    ok = f"site,day,syndrome,count,visits\n{site.code},2026-03-01,ili,4,120\n{site.code},2026-03-02,ili,6,\n"
    r = client.post("/api/v1/health/counts/import", files={"file": ("c.csv", io.BytesIO(ok.encode()), "text/csv")},
                    headers=h)
    assert r.status_code == 200 and r.json()["counts"] == 2, r.text
    days = set(session.scalars(select(DailyCount.day).where(DailyCount.site_id == site.id)))
    assert days == {dt.date(2026, 2, 27), dt.date(2026, 3, 1), dt.date(2026, 3, 2)}  # nothing of the bad file
    session.rollback()


def test_detect_api_answers_as_r_and_names_bad_fields(client):
    from tests.health_oracles import SURV, load_output, load_series

    if not SURV.exists():
        pytest.skip("oracles not present")
    y, _, _ = load_series("salmonella_agona")
    o = load_output(SURV / "outputs" / "salmonella_agona__earsC3.csv")
    h = _h(client, "cdc")
    body = {"method": "earsC3", "control": {"range": None}, "series": [{"id": "agona", "observed": y.astype(int).tolist()}]}
    r = client.post("/api/v1/health/detect", json=body, headers=h)
    assert r.status_code == 200
    res = r.json()["results"][0]
    assert res["t"] == o["t"].astype(int).tolist()
    assert res["alarm"] == o["alarm"].astype(int).tolist()
    np.testing.assert_allclose(res["upperbound"], o["upperbound"], rtol=1e-9)
    cases = [
        ({**body, "series": [{"id": 1, "observed": [1, 2, -3] + [1] * 20}]}, "observed"),
        ({**body, "control": {"bogus": 1}}, "bogus"),
        ({**body, "control": {"range": [2, 400]}}, "range"),
        ({**body, "series": [{"id": 1, "observed": [1] * 20, "dates": ["2020-01-06"]}]}, "dates"),
        ({**body, "method": "earsC9"}, "method"),
    ]
    for bad, field in cases:
        r = client.post("/api/v1/health/detect", json=bad, headers=h)
        assert r.status_code == 422, (field, r.text)
        assert field in r.text
    assert client.post("/api/v1/health/detect", json=body, headers=_h(client, "yy_street")).status_code == 403


def test_scan_api_reproduces_satscan(client):
    from tests.health_oracles import SAT, satscan_case

    if not SAT.exists():
        pytest.skip("oracles not present")
    cases, geo, exp = satscan_case("satscan_test1")
    r = client.post("/api/v1/health/scan", json={"cases": cases, "locations": geo, "study_end": 1000,
                                                 "replications": 99, "seed": 3}, headers=_h(client, "cdc"))
    assert r.status_code == 200
    top = r.json()["clusters"][0]
    assert top["location_ids"] == exp["clusters"][0]["location_ids"] and round(top["llr"], 6) == 3.352053
    r = client.post("/api/v1/health/scan", json={"cases": [{"location_id": "zz", "time": 1}], "locations": geo},
                    headers=_h(client, "cdc"))
    assert r.status_code == 422 and "location_id" in r.text


def test_the_demo_daily_run_detected_the_injected_outbreak(db_url, session):
    """The demo seed injects an ILI outbreak at the first street's fever clinic over its last three days; the
    demo's daily run (run at seed time) raised a signal for that street on the last day."""
    from cityops.health.seed import KINDS

    assert KINDS[0][0] == "fever_clinic"
    site = session.scalar(select(SentinelSite).where(SentinelSite.code.like("HS-%"), SentinelSite.kind == "fever_clinic")
                          .order_by(SentinelSite.code))
    assert site is not None
    last = session.scalar(select(DailyCount.day).where(DailyCount.site_id == site.id).order_by(DailyCount.day.desc()))
    hits = session.scalars(select(Signal).where(Signal.area_code == site.street_code, Signal.period_end == last,
                                                Signal.syndrome == "ili", Signal.method.like("ears%"))).all()
    assert hits, "the injected outbreak was not detected"
    session.rollback()
