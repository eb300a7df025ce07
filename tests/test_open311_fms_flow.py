"""Open311 exact (issue 16.2): the flow of FixMyStreet's client (perllib/Open311.pm) — discovery,
service list, service definition, POST with the api_key in the query string, the id or the token
resolved, reading back by id and with filters — in XML and in JSON, through the spec client
(tests/open311_client.py). Also: ids match exactly, address_id kept, odd URLs answer spec errors."""

from __future__ import annotations

import datetime as dt
from xml.etree import ElementTree as ET

import pytest

from tests.cases_helpers import category, free_point
from tests.open311_client import Open311Client, Open311Error


@pytest.fixture()
def o311(client):
    return Open311Client(client, "/open311/v2", jurisdiction_id="310117")


@pytest.fixture(scope="module")
def api_key():
    from cityops.security.seed import demo_key

    return demo_key("demo-open311")


def _free(session, name, skip):
    cat = category(session, name)
    lon, lat, _ = free_point(session, cat.id, skip=skip)
    session.rollback()
    return cat, lon, lat


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_fixmystreet_flow(o311, session, api_key, fmt):
    skip = 21 if fmt == "xml" else 27
    # discovery → endpoint and formats
    d = o311.discovery(fmt)
    assert {"text/xml", "application/json"} <= set(d["endpoints"][0]["formats"])
    # get_service_list
    services = {s["service_code"]: s for s in o311.services(fmt)}
    cat, lon, lat = _free(session, "暴露垃圾", skip)
    svc = services[cat.code]
    # get_service_meta_info (metadata=true)
    attrs = {}
    if svc["metadata"]:
        definition = o311.service_definition(cat.code, fmt)
        for a in definition["attributes"]:
            if a["variable"] and a["required"]:
                vals = a.get("values") or []
                attrs[a["code"]] = [vals[0]["key"]] if a["datatype"] == "multivaluelist" else (
                    vals[0]["key"] if vals else "1")
    # send_service_request: api_key in the query string, the rest form-encoded, FixMyStreet's fields
    got = o311.post_request(fmt, api_key, cat.code, lat=lat, long=lon, key_in_query=True, attributes=attrs,
                            description="FMS 测试：人行道上有垃圾", address_string="松江区某路", email="fms@example.org",
                            first_name="Ann", last_name="Lee", media_url="https://example.org/p.jpg")
    assert len(got) == 1
    rid, token = got[0]["service_request_id"], got[0]["token"]
    assert rid and token
    # get_service_request_id_from_token
    assert o311.token(token, fmt) == {"service_request_id": rid, "token": token}
    # GET by id
    one = o311.request(rid, fmt)
    assert one["service_request_id"] == rid and one["status"] == "open" and one["service_code"] == cat.code
    assert one["description"].startswith("FMS 测试") and one["media_url"] == "https://example.org/p.jpg"
    # get_service_requests with FixMyStreet's filters: a date window, status, service_code, ids
    now = dt.datetime.now(dt.UTC)
    window = {"start_date": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end_date": (now + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    listed = o311.requests(fmt, **window, status="open", service_code=cat.code)
    assert rid in {r["service_request_id"] for r in listed}
    assert all(r["status"] == "open" and r["service_code"] == cat.code for r in listed)
    assert rid not in {r["service_request_id"] for r in o311.requests(fmt, **window, status="closed")}
    by_ids = o311.requests(fmt, service_request_id=f"{rid},999999999999999")
    assert [r["service_request_id"] for r in by_ids] == [rid]


def test_api_key_in_query_wrong_is_403(o311, session):
    cat, lon, lat = _free(session, "暴露垃圾", 31)
    with pytest.raises(Open311Error) as e:
        o311.post_request("json", "not-a-key", cat.code, lat=lat, long=lon, key_in_query=True)
    assert e.value.status == 403 and e.value.errors[0]["code"] == 403


def test_ids_exact_and_tokens_checked(o311, client, session, api_key):
    cat, lon, lat = _free(session, "暴露垃圾", 33)
    rid = o311.post_request("json", api_key, cat.code, lat=lat, long=lon, description="短编号")[0]["service_request_id"]
    short = str(int(rid[8:]))  # the bare row id
    for bad in (short, "1", rid[:-1], rid + "0", "0" + rid):
        with pytest.raises(Open311Error) as e:
            o311.request(bad, "json")
        assert e.value.status == 404, bad
    assert o311.requests("json", service_request_id=short) == []
    for bad in ("1-abc", "abc", "1", "99999999-0000"):
        with pytest.raises(Open311Error) as e:
            o311.token(bad, "xml")
        assert e.value.status == 404


def test_address_id_kept(o311, session, api_key):
    from sqlalchemy import select

    from cityops.registry.models import Building

    b = session.execute(select(Building.code, Building.lon, Building.lat).where(
        Building.valid_to.is_(None), Building.lon.is_not(None)).limit(1)).first()
    session.rollback()
    if b is None:
        pytest.skip("no building in the demo data")
    cat = category(session, "暴露垃圾")
    session.rollback()
    got = o311.post_request("xml", api_key, cat.code, address_id=b.code, description="楼下垃圾")
    rid = got[0]["service_request_id"]
    assert "linked" not in got[0]["service_notice"]
    for fmt in ("xml", "json"):
        assert o311.request(rid, fmt)["address_id"] == b.code


def test_odd_urls_answer_spec_errors(client):
    for url, status in (("/open311/v2/requests.xml?service_code=%00", 400), ("/open311/v2/requests/%00.json", 400),
                        ("/open311/v2/services/%00.xml", 400), ("/open311/v2/requests/..%2F..%2Fx.xml", 404),
                        ("/open311/v2/requests.yaml", 404), ("/open311/v2/", 404)):
        r = client.get(url)
        assert r.status_code == status, (url, r.status_code, r.text[:200])
        if r.headers["content-type"].startswith("text/xml"):
            assert ET.fromstring(r.content).tag == "errors"
        else:
            assert isinstance(r.json(), list) and r.json()[0]["code"] in (status, 422)  # body code may be finer
