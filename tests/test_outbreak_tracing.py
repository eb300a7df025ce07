"""Contact tracing by rule (issue 15, first acceptance point), with hand-computed dates.

Rule set covid19-v9 (public-health.md §4.3): a source case is infectious from onset − 4 days; 密接:
7 days quarantine + 3 days health monitoring from the last exposure; 次密接: 7 days home quarantine.

The graph (all times Asia/Shanghai, 2022):
* A confirmed, onset 05-10 → infectious from 05-06;
* B exposed to A 05-08 09:00 – 05-09 18:00 → 密接: quarantine ends 05-09 + 7 = 05-16, monitoring 05-19;
* C exposed to B 05-09 12:00 – 05-11 20:00 (after B's first exposure, 05-08) → 次密接: ends 05-11 + 7 = 05-18;
* D exposed to B 05-05 (before B was exposed) → nothing; E exposed to A 05-01 – 05-03 (before 05-06) → nothing;
* F exposed to C 05-12 – 05-13 → nothing (a contact of a 次密接).
Then B turns positive, onset 05-12 → infectious from 05-08:
* C becomes 密接: quarantine 05-11 + 7 = 05-18, monitoring 05-18 + 3 = 05-21;
* F becomes 次密接 (exposed to C after C's first exposure, 05-09): 05-13 + 7 = 05-20;
* D stays nothing (05-05 is before 05-08).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tests.outbreak_helpers import categories, new_outbreak, person, sh

STREET = "310117117"  # 新浜镇
D = dt.date


def test_the_pure_rule_on_arrays():
    from cityops.outbreak import categorise as cat
    from cityops.outbreak import rules

    rs = rules.get("covid19-v9")
    o = D(2022, 5, 10).toordinal()
    day = lambda m, d: D(2022, m, d).toordinal()  # noqa: E731
    # persons: 0 A, 1 B, 2 C, 3 D, 4 E, 5 F
    onset = np.array([o, -1, -1, -1, -1, -1])
    start = cat.infectious_start(onset, np.full(6, -1), rs)
    assert start[0] == day(5, 6)
    g = cat.Graph(6, start, onset >= 0, np.array([1, 2, 3, 4, 5]), np.array([0, 1, 1, 0, 2]),
                  np.array([day(5, 8), day(5, 9), day(5, 5), day(5, 1), day(5, 12)]),
                  np.array([day(5, 9), day(5, 11), day(5, 5), day(5, 3), day(5, 13)]))
    r = cat.categorise(g, rs)
    assert list(r.category) == [cat.CAT_CASE, cat.CAT_CLOSE, cat.CAT_SECONDARY, 0, 0, 0]
    assert r.quarantine_end[1] == day(5, 16) and r.monitoring_end[1] == day(5, 19)
    assert r.quarantine_end[2] == day(5, 18) and r.monitoring_end[2] == day(5, 18)
    # B turns positive, onset 05-12
    onset[1] = day(5, 12)
    g2 = cat.Graph(6, cat.infectious_start(onset, np.full(6, -1), rs), onset >= 0, g.e_person, g.e_source,
                   g.e_start, g.e_end)
    r2 = cat.categorise(g2, rs)
    assert list(r2.category) == [cat.CAT_CASE, cat.CAT_CASE, cat.CAT_CLOSE, 0, 0, cat.CAT_SECONDARY]
    assert r2.quarantine_end[2] == day(5, 18) and r2.monitoring_end[2] == day(5, 21)
    assert r2.quarantine_end[5] == day(5, 20) and r2.monitoring_end[5] == day(5, 20)
    # test days of a 密接 (days 1, 2, 3, 5, 7 of quarantine; day 3 of home monitoring)
    due = [d for d in range(day(5, 11), day(5, 23)) if cat.tests_due(r2.category, r2.last_exposure, r2.quarantine_end,
                                                                     d, rs)[2]]
    assert [D.fromordinal(d).day for d in due] == [12, 13, 14, 16, 18, 21]
    # the November 2022 rules: 5 + 3 days, no 次密接
    r3 = cat.categorise(g2, rules.get("covid19-2022-11"))
    assert r3.category[5] == 0 and r3.quarantine_end[2] == day(5, 16) and r3.monitoring_end[2] == day(5, 19)


@pytest.fixture()
def ob(session):
    return new_outbreak(session, STREET, "测试：次密接转密接")


def test_contact_of_a_contact_then_the_contact_turns_positive(session, ob):
    from cityops.outbreak import tracing
    from cityops.outbreak.schemas import CaseIn, ExposureIn, ExposuresIn
    from cityops.security.principal import SYSTEM

    oid = ob["id"]
    a = tracing.report_case(session, SYSTEM, oid, CaseIn(person=person(session, STREET, "甲", 0),
                                                         classification="confirmed", onset_on=D(2022, 5, 10),
                                                         reported_at=sh(2022, 5, 11, 10)))
    a_id = a["person"]["id"]
    got = tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=[
        ExposureIn(source_id=a_id, person=person(session, STREET, "乙", 1), kind="household",
                   start_at=sh(2022, 5, 8, 9), end_at=sh(2022, 5, 9, 18)),
        ExposureIn(source_id=a_id, person=person(session, STREET, "戊", 4), kind="work",
                   start_at=sh(2022, 5, 1, 9), end_at=sh(2022, 5, 3, 18))]))
    b_id = got["person_ids"][0]
    got = tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=[
        ExposureIn(source_id=b_id, person=person(session, STREET, "丙", 2), kind="meal",
                   start_at=sh(2022, 5, 9, 12), end_at=sh(2022, 5, 11, 20)),
        ExposureIn(source_id=b_id, person=person(session, STREET, "丁", 3), kind="meal",
                   start_at=sh(2022, 5, 5, 10), end_at=sh(2022, 5, 5, 11))]))
    c_id = got["person_ids"][0]
    f_id = tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=[
        ExposureIn(source_id=c_id, person=person(session, STREET, "己", 5), kind="transport",
                   start_at=sh(2022, 5, 12, 8), end_at=sh(2022, 5, 13, 8))]))["person_ids"][0]
    cats = categories(session, oid)
    assert cats["甲"][0] == "case"
    assert cats["乙"] == ("close", D(2022, 5, 9), D(2022, 5, 16), D(2022, 5, 19))
    assert cats["丙"] == ("secondary", D(2022, 5, 11), D(2022, 5, 18), D(2022, 5, 18))
    assert cats["丁"][0] is None and cats["戊"][0] is None and cats["己"][0] is None

    # 乙 turns positive (a 密接 who becomes a case): 丙 becomes 密接, 己 becomes 次密接, dates move
    tracing.report_case(session, SYSTEM, oid, CaseIn(person_id=b_id, classification="confirmed",
                                                     onset_on=D(2022, 5, 12), reported_at=sh(2022, 5, 12, 15),
                                                     found_in="quarantine"))
    cats = categories(session, oid)
    assert cats["乙"][0] == "case"
    assert cats["丙"] == ("close", D(2022, 5, 11), D(2022, 5, 18), D(2022, 5, 21))
    assert cats["己"] == ("secondary", D(2022, 5, 13), D(2022, 5, 20), D(2022, 5, 20))
    assert cats["丁"][0] is None and cats["戊"][0] is None

    # the follow-up list of 05-14: 丙 (密接, last exposure 05-11) has day 3 of quarantine → check + test;
    # 己 (次密接, 05-13) day 1 → check + test; on 05-15 丙 has day 4 → check only, 己 day 2 → check only
    from cityops.outbreak import followup

    def due(day):
        got = followup.due_today(session, SYSTEM, oid, day)
        return {i["id"]: i["due"] for c in got["communities"] for i in c["items"]}

    assert due(D(2022, 5, 14)) == {c_id: ["check", "test"], f_id: ["check", "test"]}
    assert due(D(2022, 5, 15)) == {c_id: ["check"], f_id: ["check"]}
    assert due(D(2022, 5, 21)) == {c_id: ["check", "test"]}  # day 3 of home monitoring (05-18 + 3), the last day
    assert due(D(2022, 5, 22)) == {}
    session.rollback()


def test_a_suspected_case_confirmed_later_turns_its_contacts_into_close_contacts(session, ob):
    from cityops.outbreak import tracing
    from cityops.outbreak.schemas import CaseIn, ClassifyIn, ExposureIn, ExposuresIn
    from cityops.security.principal import SYSTEM

    oid = ob["id"]
    s = tracing.report_case(session, SYSTEM, oid, CaseIn(person=person(session, STREET, "庚", 6),
                                                         classification="suspected", onset_on=D(2022, 6, 10),
                                                         reported_at=sh(2022, 6, 10, 9)))
    tracing.add_exposures(session, SYSTEM, oid, ExposuresIn(exposures=[
        ExposureIn(source_id=s["person"]["id"], person=person(session, STREET, "辛", 7), kind="household",
                   start_at=sh(2022, 6, 9, 8), end_at=sh(2022, 6, 10, 8))]))
    assert categories(session, oid)["辛"][0] is None  # a suspected case is no source (rule data)
    tracing.classify(session, SYSTEM, s["code"], ClassifyIn(classification="confirmed"))
    assert categories(session, oid)["辛"] == ("close", D(2022, 6, 10), D(2022, 6, 17), D(2022, 6, 20))
    from cityops.lifecycle import service as lifecycle

    rows = lifecycle.timeline(session, "ob_case", s["id"])
    assert [(r["from_state"], r["to_state"]) for r in rows if r["action"] == "classify"] == [("suspected", "confirmed")]
    session.rollback()


def test_bad_input_names_the_field(client, session):
    from tests.helpers import auth_headers, make_user

    user, pw = make_user(session, "ob_cmd_t", ["cdc_analyst"], area_code="310117")
    h = auth_headers(client, user, pw)
    r = client.post("/api/v1/outbreak/outbreaks", json={"disease": "covid19", "area_code": "310117999", "reason": "x1"},
                    headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "area_code"], r.text
    r = client.post("/api/v1/outbreak/outbreaks", json={"disease": "covid19", "area_code": "310117120",
                                                        "reason": "测试", "rule_set": "nope"}, headers=h)
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["body", "rule_set"]
    r = client.post("/api/v1/outbreak/outbreaks", json={"disease": "covid19", "area_code": "310117120",
                                                        "reason": "测试：叶榭镇"}, headers=h)
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    r = client.post(f"/api/v1/outbreak/outbreaks/{oid}/cases", json={
        "person": {"name": "某", "id_number": "310117199001010000"}, "classification": "confirmed"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "person", "lon"], r.text
    r = client.post(f"/api/v1/outbreak/outbreaks/{oid}/cases", json={
        "person": {"name": "某", "lon": 121.2, "lat": 31.0}, "classification": "nope"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "classification"]
    r = client.post(f"/api/v1/outbreak/outbreaks/{oid}/exposures", json={"exposures": [
        {"source_id": 999999, "person_id": 1, "start_at": "2022-05-01T08:00:00+08:00",
         "end_at": "2022-05-01T09:00:00+08:00"}]}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:4] == ["body", "exposures", 0, "source_id"]
    # switching off needs a reason; the history stays
    r = client.post(f"/api/v1/outbreak/outbreaks/{oid}/actions/end", json={}, headers=h)
    assert r.status_code == 422
    r = client.post(f"/api/v1/outbreak/outbreaks/{oid}/actions/end", json={"reason": "疫情结束"}, headers=h)
    assert r.status_code == 200 and r.json()["state"] == "ended"
    d = client.get(f"/api/v1/outbreak/outbreaks/{oid}", headers=h).json()
    assert [e["action"] for e in d["timeline"]] == ["open", "end"]
