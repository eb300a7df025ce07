"""Scoping and masking of outbreak data (issue 15, fourth acceptance point), over the demo outbreak
(cases and contacts in 岳阳街道 310117001 and 佘山镇 310117103): a street operator sees only its street's
cases and contacts — lists, totals, by id (404 outside), zones, the chain, the follow-up list — and ID
numbers and phones are masked for everyone."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.helpers import auth_headers, make_user

YUEYANG, SHESHAN = "310117001", "310117103"
MASKED_ID = re.compile(r"^\d{6}\*{8}\d{3}[\dX]$")
MASKED_PHONE = re.compile(r"^\d{3}\*{4}\d{4}$")


@pytest.fixture(scope="module")
def world(db_url):
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.db import get_sessionmaker
    from cityops.outbreak.models import Outbreak, OutbreakCase, TrackedPerson

    with get_sessionmaker()() as s:
        ob = s.scalar(select(Outbreak).where(Outbreak.signal_ref == "demo-cluster-1"))
        assert ob is not None, "the demo outbreak is seeded with the demo district"
        cases = dict(s.execute(select(OutbreakCase.id, OutbreakCase.street_code)
                               .where(OutbreakCase.outbreak_id == ob.id)).tuples().all())
        contacts = dict(s.execute(select(TrackedPerson.id, TrackedPerson.street_code).where(
            TrackedPerson.outbreak_id == ob.id, TrackedPerson.category.in_(("close", "secondary")))).tuples().all())
        users = {"yy": make_user(s, "ob_yy_street", ["street_operator"], area_code=YUEYANG),
                 "ss": make_user(s, "ob_ss_street", ["street_operator"], area_code=SHESHAN),
                 "cdc": make_user(s, "ob_cdc", ["cdc_analyst"], area_code="310117"),
                 "wj": make_user(s, "ob_wj", ["dept_handler"], area_code="310117", department_code="wj")}
        return {"ob": ob.id, "cases": cases, "contacts": contacts, "users": users}


def _h(client, world, who):
    return auth_headers(client, *world["users"][who])


def test_the_demo_outbreak_has_cases_and_contacts_in_both_streets(world):
    assert {YUEYANG, SHESHAN} <= set(world["cases"].values())
    assert {YUEYANG, SHESHAN} <= set(world["contacts"].values())


@pytest.mark.parametrize("who,street", [("yy", YUEYANG), ("ss", SHESHAN), ("cdc", None)])
def test_each_account_sees_exactly_its_area(client, world, who, street):
    h = _h(client, world, who)
    ob = world["ob"]
    want_cases = {i for i, s in world["cases"].items() if street is None or s == street}
    want_contacts = {i for i, s in world["contacts"].items() if street is None or s == street}
    r = client.get(f"/api/v1/outbreak/outbreaks/{ob}/cases", params={"page_size": 1000}, headers=h)
    assert r.status_code == 200, r.text
    j = r.json()
    assert {c["id"] for c in j["items"]} == want_cases and j["total"] == len(want_cases)
    r = client.get(f"/api/v1/outbreak/outbreaks/{ob}/contacts", params={"page_size": 1000}, headers=h)
    j = r.json()
    assert {c["id"] for c in j["items"]} == want_contacts and j["total"] == len(want_contacts)
    for p in j["items"]:
        assert p["id_number"] is None or MASKED_ID.match(p["id_number"]), p["id_number"]
        assert p["phone"] is None or MASKED_PHONE.match(p["phone"]), p["phone"]
        assert "*" in p["name"]
    # the outbreak's figures are counted in scope
    d = client.get(f"/api/v1/outbreak/outbreaks/{ob}", headers=h).json()
    assert sum(d["cases"].values()) == len(want_cases)
    assert sum(d["contacts"].values()) == len(want_contacts)
    # by id: 200 inside, 404 outside
    for cid, s in world["cases"].items():
        r = client.get(f"/api/v1/outbreak/cases/{cid}", headers=h)
        assert r.status_code == (200 if street is None or s == street else 404), (who, cid, r.text[:300])
    for pid, s in list(world["contacts"].items())[:20]:
        code = client.get(f"/api/v1/outbreak/persons/{pid}", headers=h).status_code
        assert code == (200 if street is None or s == street else 404), (who, pid)
    # zones, the follow-up list and exposure places stay inside the area
    for z in client.get(f"/api/v1/outbreak/outbreaks/{ob}/zones", headers=h).json():
        assert street is None or z["street_code"] == street
    fu = client.get(f"/api/v1/outbreak/outbreaks/{ob}/followups", headers=h).json()
    for c in fu["communities"]:
        assert street is None or (c["community_code"] or "").startswith(street)
        for p in c["items"]:
            assert p["id"] in want_contacts and (p["phone"] is None or MASKED_PHONE.match(p["phone"]))
    for f in client.get(f"/api/v1/outbreak/outbreaks/{ob}/places.geojson", headers=h).json()["features"]:
        assert street is None or (f["properties"]["grid_code"] or "").startswith(street)


def test_case_detail_and_chain_are_masked_and_scoped(client, world):
    h = _h(client, world, "yy")
    cid = next(i for i, s in world["cases"].items() if s == YUEYANG)
    d = client.get(f"/api/v1/outbreak/cases/{cid}", headers=h).json()
    assert MASKED_ID.match(d["person"]["id_number"]) and MASKED_PHONE.match(d["person"]["phone"])
    g = client.get(f"/api/v1/outbreak/cases/{cid}/chain", headers=h).json()
    assert g["nodes"] and all(n["street_code"] == YUEYANG for n in g["nodes"])
    assert all(n["id_number"] is None or MASKED_ID.match(n["id_number"]) for n in g["nodes"])
    raw = client.get(f"/api/v1/outbreak/cases/{cid}/chain", headers=h).text
    from cityops.db import get_sessionmaker
    from cityops.outbreak.models import TrackedPerson

    with get_sessionmaker()() as s:
        for idn, phone in s.execute(select(TrackedPerson.id_number, TrackedPerson.phone)
                                    .where(TrackedPerson.outbreak_id == world["ob"])):
            assert (idn is None or idn not in raw) and (phone is None or phone not in raw)


def test_a_district_department_reads_masked_and_a_street_cannot_switch_outbreak_mode(client, world):
    h = _h(client, world, "wj")  # the platform's rule: a department account with a district area reads located data
    j = client.get(f"/api/v1/outbreak/outbreaks/{world['ob']}/cases", headers=h).json()
    assert j["total"] == len(world["cases"])
    assert all(MASKED_ID.match(c["person"]["id_number"]) for c in j["items"] if c["person"]["id_number"])
    h = _h(client, world, "yy")
    r = client.post("/api/v1/outbreak/outbreaks", json={"disease": "covid19", "area_code": YUEYANG, "reason": "x1"},
                    headers=h)
    assert r.status_code == 403
