"""Open311 GeoReport v2: a client written from the spec (tests/open311_client.py, no server code)
lists services, reads a service definition, posts requests in XML and in JSON, and reads them back;
spec-exact errors; internal states mapped to open/closed; filters and paging; no personal data."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.cases_helpers import PNG, category, free_point, offset
from tests.open311_client import Open311Client, Open311Error


@pytest.fixture()
def o311(client):
    return Open311Client(client, "/open311/v2")


@pytest.fixture(scope="module")
def api_key():
    from cityops.security.seed import demo_key

    return demo_key("demo-open311")


def _case(session, service_request_id):
    """The case row as a plain object; ends the read transaction (SQLite: every transaction takes
    the write lock, so the test session must not hold one while the app writes)."""
    from types import SimpleNamespace

    from cityops.cases.models import Case, parse_case_no

    session.expire_all()
    c = session.get(Case, parse_case_no(service_request_id))
    snap = SimpleNamespace(**{k: getattr(c, k) for k in Case.__table__.columns.keys()})
    session.rollback()
    return snap


def free(session, cat, skip=0):
    lon, lat, grid = free_point(session, cat.id, skip=skip)
    session.rollback()
    return lon, lat, grid


def cat_of(session, name):
    c = category(session, name)
    session.rollback()
    return c


def _drive(session, case_id, actions):
    """Take actions as the system through the workflow service (photos where required)."""
    from cityops.cases import intake, schemas, workflow
    from cityops.cases.models import Case
    from cityops.security.principal import SYSTEM

    for action, extra in actions:
        case = session.get(Case, case_id)
        body = dict(extra)
        if action in ("report_back", "inspect"):
            body["photos"] = [intake.save_media(session, SYSTEM, [("p.png", PNG)])[0]["id"]]
        workflow.perform(session, SYSTEM, case, action, schemas.ActionIn(**body))
        session.commit()


CLOSE_PATH = [("accept", {}), ("request_verification", {}), ("verify", {"result": "valid"}), ("register", {}),
              ("dispatch", {"department_code": "lhsr"}), ("acknowledge", {}), ("report_back", {}),
              ("request_inspection", {}), ("inspect", {"result": "pass"}), ("close", {})]


def test_spec_client_lists_posts_and_reads_back(o311, session, api_key):
    # discovery: both formats, the spec's fields
    for fmt in ("xml", "json"):
        d = o311.discovery(fmt)
        assert {"changeset", "contact", "key_service", "endpoints"} <= set(d)
        ep = d["endpoints"][0]
        assert ep["url"].endswith("/open311/v2") and ep["specification"].startswith("http://wiki.open311.org")
        assert set(ep["formats"]) == {"text/xml", "application/json"} and ep["type"] == "production"

    # services: the same list in XML and JSON, grouped by major category
    xs, js = o311.services("xml"), o311.services("json")
    assert len(xs) >= 80 and [s["service_code"] for s in xs] == [s["service_code"] for s in js]
    assert xs == js
    by_name = {s["service_name"]: s for s in js}
    lamp, rubbish = by_name["路灯"], by_name["暴露垃圾"]
    assert lamp["metadata"] is True and lamp["type"] == "realtime" and lamp["group"].startswith("公用设施")
    assert all(s["type"] == "realtime" and isinstance(s["metadata"], bool) and s["group"] for s in js)
    assert any(s["metadata"] is False for s in js)

    # service definition: the attributes of the lamp service
    for fmt in ("xml", "json"):
        d = o311.service_definition(lamp["service_code"], fmt)
        assert d["service_code"] == lamp["service_code"]
        attrs = {a["code"]: a for a in d["attributes"]}
        assert attrs["lamp_fault"]["datatype"] == "multivaluelist" and attrs["lamp_fault"]["required"] is True
        assert {v["key"] for v in attrs["lamp_fault"]["values"]} >= {"dark", "leaning"}
        assert attrs["damage"]["datatype"] == "singlevaluelist" and attrs["criteria"]["variable"] is False
        assert sorted(a["order"] for a in d["attributes"]) == list(range(1, len(d["attributes"]) + 1))

    # POST in XML (with attributes, a reporter) and in JSON (another place, another service)
    lamp_cat = cat_of(session, "路灯")
    lon, lat, grid = free(session, lamp_cat)
    got_x = o311.post_request("xml", api_key, lamp["service_code"], lat=lat, long=lon,
                              attributes={"damage": "damaged", "lamp_fault": ["dark", "leaning"]},
                              description="路灯整晚不亮，灯杆有点歪", first_name="小明", last_name="王",
                              phone="13912340000", email="xm@example.org", media_url="https://example.org/lamp.jpg",
                              account_id="app-42")
    assert len(got_x) == 1 and got_x[0]["service_request_id"] and got_x[0]["account_id"] == "app-42"
    assert got_x[0]["token"] and o311.token(got_x[0]["token"])["service_request_id"] == got_x[0]["service_request_id"]
    rub_cat = cat_of(session, "暴露垃圾")
    lon2, lat2, grid2 = free(session, rub_cat, skip=3)
    got_j = o311.post_request("json", api_key, rubbish["service_code"], lat=lat2, long=lon2,
                              attributes={"volume": "medium"}, description="小区门口一堆垃圾")
    rid_x, rid_j = got_x[0]["service_request_id"], got_j[0]["service_request_id"]
    assert rid_x != rid_j and isinstance(rid_j, str)

    # read back: one request, in both formats, identical
    for rid, code, desc, (plat, plon) in ((rid_x, lamp["service_code"], "路灯整晚不亮", (lat, lon)),
                                          (rid_j, rubbish["service_code"], "小区门口一堆垃圾", (lat2, lon2))):
        rx, rj = o311.request(rid, "xml"), o311.request(rid, "json")
        ext_x, ext_j = rx.pop("extended_attributes"), rj.pop("extended_attributes")  # extension: XML untyped
        assert rx == rj and ext_x["state"] == ext_j["state"] == "reported"
        assert rx["service_request_id"] == rid and rx["service_code"] == code and rx["status"] == "open"
        assert rx["description"].startswith(desc) and "上报" in rx["status_notes"]
        assert abs(rx["lat"] - plat) < 1e-9 and abs(rx["long"] - plon) < 1e-9
        req = dt.datetime.fromisoformat(rx["requested_datetime"])
        assert req.tzinfo is not None and abs((dt.datetime.now(dt.UTC) - req).total_seconds()) < 600
        assert rx["notes"][0]["type"] == "submitted"
        raw = o311.last.text if o311.last is not None else ""
        for secret in ("王", "小明", "13912340000", "xm@example.org"):
            assert secret not in raw, f"personal data {secret!r} leaked through Open311"
    assert o311.request(rid_x, "json")["media_url"] == "https://example.org/lamp.jpg"

    # the case went through the one intake path: source open311, located, reporter kept (masked elsewhere)
    c = _case(session, rid_x)
    assert c.source == "open311" and c.state == "reported" and c.grid_code == grid
    assert c.reporter_name == "王小明" and c.reporter_phone == "13912340000"
    # a citizen channel: it must be verified on site before registration (guard)
    from cityops.cases import reference as ref

    assert "open311" not in ref.policy(session)["trusted_sources"]
    from cityops.cases.models import CaseEvent

    ev = session.scalar(select(CaseEvent).where(CaseEvent.case_id == c.id, CaseEvent.action == "open311_submit"))
    assert ev.data["attributes"] == {"damage": "damaged", "lamp_fault": ["dark", "leaning"]}
    assert "路灯故障现象" in ev.note and "不亮" in ev.note
    session.rollback()

    # both appear in the default query (90 days / 1000), in either format
    listed = {r["service_request_id"] for r in o311.requests("json")}
    assert {rid_x, rid_j} <= listed
    listed = {r["service_request_id"] for r in o311.requests("xml", service_request_id=f"{rid_x},{rid_j}")}
    assert listed == {rid_x, rid_j}


def _err(fn: Any, status: int, fragment: str | None = None) -> list[dict[str, Any]]:
    with pytest.raises(Open311Error) as ei:
        fn()
    assert ei.value.status == status, (ei.value.status, ei.value.errors)
    assert ei.value.errors and all(isinstance(e["code"], int) for e in ei.value.errors)
    if fragment:
        assert any(fragment in (e["description"] or "") for e in ei.value.errors), ei.value.errors
    return ei.value.errors


def test_spec_errors(o311, client, session, api_key):
    cat = cat_of(session, "暴露垃圾")
    lon, lat, _ = free(session, cat, skip=6)
    code = cat.code
    for fmt in ("xml", "json"):
        _err(lambda f=fmt: o311.post_request(f, None, code, lat=lat, long=lon), 403, "api_key")
        _err(lambda f=fmt: o311.post_request(f, "cok_wrong_key", code, lat=lat, long=lon), 403, "api_key")
        # a valid key without open311.post (the demo sensor key)
        from cityops.security.seed import demo_key

        _err(lambda f=fmt: o311.post_request(f, demo_key("demo-sensor"), code, lat=lat, long=lon), 403, "open311.post")
        _err(lambda f=fmt: o311.post_request(f, api_key, "999999", lat=lat, long=lon), 404, "service_code")
        _err(lambda f=fmt: o311.post_request(f, api_key, code), 400, "location")
        _err(lambda f=fmt: o311.post_request(f, api_key, code, lat=lat), 400, "lat and long")
        _err(lambda f=fmt: o311.post_request(f, api_key, code, lat=lat, long=lon, description="x" * 4001), 400, "4000")
        _err(lambda f=fmt: o311.post_request(f, api_key, code, lat=31.9, long=121.2), 400, "outside")
        _err(lambda f=fmt: o311.post_request(f, api_key, code, lat=lat, long=lon, jurisdiction_id="sfgov.org"),
             404, "jurisdiction")
        _err(lambda f=fmt: o311.request("202001010000000", f), 404)
        _err(lambda f=fmt: o311.service_definition("12", f), 404)
        _err(lambda f=fmt: o311.requests(f, status="pending"), 400, "status")
        _err(lambda f=fmt: o311.requests(f, start_date="2026-01-01T00:00:00Z", end_date="2026-06-01T00:00:00Z"),
             400, "90 days")
        _err(lambda f=fmt: o311.requests(f, start_date="2026-01-01T00:00:00"), 400, "time zone")
        _err(lambda f=fmt: o311.requests(f, page_size="5000"), 400, "page_size")
        _err(lambda f=fmt: o311.requests(f, service_code="1"), 404)
    # several errors at once, all listed
    errs = _err(lambda: o311.post_request("json", api_key, code, lat=lat, description="<b>x</b>",
                                          attributes={"volume": "huge", "nope": "1"}), 400)
    text = " ".join(e["description"] for e in errs)
    assert "lat and long" in text and "HTML" in text and "volume" in text and "nope" in text
    # required attribute missing (路灯: damage, lamp_fault)
    lamp = cat_of(session, "路灯")
    llon, llat, _ = free(session, lamp, skip=2)
    errs = _err(lambda: o311.post_request("xml", api_key, lamp.code, lat=llat, long=llon), 400)
    assert {"damage", "lamp_fault"} <= {c for c in ("damage", "lamp_fault") if any(c in e["description"] for e in errs)}
    # wrong body type, unknown format, unknown resource: still spec documents with 400/404
    r = client.post("/open311/v2/requests.json", json={"api_key": api_key, "service_code": code})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()[0]["code"] == 400
    r = client.get("/open311/v2/services.csv")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/xml") and b"<errors>" in r.content
    r = client.get("/open311/v2/nothing/here.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404
    r = client.get("/open311/v2/tokens/abc.xml")
    assert r.status_code == 404 and b"<errors><error><code>404</code>" in r.content
    # nothing was created by the refused posts
    from cityops.cases.models import Case

    assert session.scalar(select(func.count()).select_from(Case).where(
        Case.source == "open311", Case.lat == lat, Case.lon == lon)) == 0


def test_states_map_to_open_closed_with_notes(o311, session, api_key):
    cat = cat_of(session, "暴露垃圾")
    lon, lat, _ = free(session, cat, skip=9)
    rid = o311.post_request("json", api_key, cat.code, lat=lat, long=lon, description="垃圾堆")[0]["service_request_id"]
    case = _case(session, rid)
    _drive(session, case.id, CLOSE_PATH[:5])
    r = o311.request(rid, "json")
    assert r["status"] == "open" and r["status_notes"].startswith("已派遣")
    assert r["agency_responsible"] and "绿化" in r["agency_responsible"]
    from cityops.cases.models import CaseStep

    due = session.scalar(select(CaseStep.due_at).where(CaseStep.case_id == case.id, CaseStep.step == "handle"))
    session.rollback()
    assert dt.datetime.fromisoformat(r["expected_datetime"]) == due.replace(microsecond=0)
    _drive(session, case.id, CLOSE_PATH[5:])
    for fmt in ("xml", "json"):
        r = o311.request(rid, fmt)
        assert r["status"] == "closed" and r["status_notes"].startswith("结案")
        closed = _case(session, rid).closed_at
        assert dt.datetime.fromisoformat(r["updated_datetime"]) == closed.replace(microsecond=0)
        types = [n["type"] for n in r["notes"]]
        assert types[0] == "submitted" and "assigned" in types and types[-1] == "closed"
        assert all(dt.datetime.fromisoformat(n["datetime"]).tzinfo for n in r["notes"])
    # closed / open filters
    assert rid in {x["service_request_id"] for x in o311.requests("json", status="closed")}
    assert rid not in {x["service_request_id"] for x in o311.requests("json", status="open")}
    # voided: closed, with a fixed note — never the words staff typed (they may name people)
    lon2, lat2, _ = free(session, cat, skip=12)
    rid2 = o311.post_request("xml", api_key, cat.code, lat=lat2, long=lon2)[0]["service_request_id"]
    _drive(session, _case(session, rid2).id, [("void", {"reason": "举报人王小明重复上报，已另案处理"})])
    r = o311.request(rid2, "xml")
    assert r["status"] == "closed" and "作废" in r["status_notes"] and "不予受理" in r["status_notes"]
    assert "王小明" not in str(r)


def test_filters_paging_and_linking(o311, session, api_key):
    cat = cat_of(session, "暴露垃圾")
    lon, lat, _ = free(session, cat, skip=15)
    first = o311.post_request("json", api_key, cat.code, lat=lat, long=lon, description="第一次")[0]
    # a second report 30 m away within the window: linked to the same request
    lon2, lat2 = offset(lon, lat, 30, 0)
    second = o311.post_request("json", api_key, cat.code, lat=lat2, long=lon2, description="第二次")[0]
    assert second["service_request_id"] == first["service_request_id"] and "linked" in second["service_notice"]
    assert _case(session, first["service_request_id"]).reporter_count == 2
    # retried with the same Idempotency-Key: the same answer, one case
    lon3, lat3, _ = free(session, cat, skip=18)
    h = {"Idempotency-Key": "o311-retry-1"}
    a = o311.post_request("json", api_key, cat.code, lat=lat3, long=lon3, headers=h)[0]
    b = o311.post_request("json", api_key, cat.code, lat=lat3, long=lon3, headers=h)[0]
    assert a["service_request_id"] == b["service_request_id"]
    # service_code filter: only that service (crosswalked old codes accepted too)
    rows = o311.requests("json", service_code=cat.code)
    assert rows and all(r["service_code"] == cat.code for r in rows)
    # paging: page_size 2 -> pages are disjoint, newest first
    p1 = o311.requests("json", page_size=2, page=1)
    p2 = o311.requests("json", page_size=2, page=2)
    assert len(p1) == 2 and len(p2) == 2
    assert not {r["service_request_id"] for r in p1} & {r["service_request_id"] for r in p2}
    assert p1[0]["requested_datetime"] >= p1[1]["requested_datetime"] >= p2[0]["requested_datetime"]
    # a date window in the past holds none of today's requests; service_request_id overrides dates
    old = o311.requests("json", start_date="2020-01-01T00:00:00+08:00", end_date="2020-02-01T00:00:00+08:00")
    assert old == []
    got = o311.requests("json", service_request_id=first["service_request_id"], start_date="2020-01-01T00:00:00Z",
                        status="closed")
    assert [r["service_request_id"] for r in got] == [first["service_request_id"]]
    # empty optional arguments count as absent
    assert o311.requests("json", status="", service_code="", page_size=1)


def test_no_personal_data_and_confidential_channels(o311, client, session):
    """A 12345 order's text and exact place stay inside; reporter fields never leave."""
    from cityops.cases import service
    from cityops.security.principal import SYSTEM

    cat = cat_of(session, "暴露垃圾")
    lon, lat, _ = free(session, cat, skip=21)
    out = service.import_hotline(session, SYSTEM, [{
        "order_id": "O311-PRIV-1", "received_at": dt.datetime.now(dt.UTC).isoformat(), "category_code": cat.code,
        "lat": lat, "lon": lon, "address": "上海市松江区岳阳街道谷阳北路831弄1号302室",
        "content": "来电人李秘密反映楼下垃圾无人清理，电话13800138000", "caller_name": "李秘密",
        "caller_phone": "13800138000"}])
    cid = out["items"][0]["case_id"]
    from cityops.cases.models import Case, case_no

    session.commit()
    c = session.get(Case, cid)
    rid = case_no(c.id, c.reported_at)
    session.rollback()
    for fmt in ("xml", "json"):
        r = client.get(f"/open311/v2/requests/{rid}.{fmt}")
        assert r.status_code == 200
        for secret in ("李秘密", "13800138000", "302室", "831弄"):
            assert secret not in r.text
        got = Open311Client(client).request(rid, fmt)
        assert got["description"] is None and got["address"].endswith("****")
        assert got["lat"] == round(lat, 3) and got["long"] == round(lon, 3)


def test_address_string_and_address_id(o311, session, api_key):
    from sqlalchemy import func

    from cityops.registry.models import Building

    # a building whose address no other current building shares (other tests add buildings too)
    unique = (select(Building.address).where(Building.valid_to.is_(None))
              .group_by(Building.address).having(func.count() == 1))
    b = session.execute(select(Building.code, Building.address, Building.lon, Building.lat)
                        .where(Building.valid_to.is_(None), Building.lon.is_not(None), Building.address.in_(unique))
                        .order_by(Building.id)).first()
    session.rollback()
    cat = cat_of(session, "乱堆物堆料")
    rid = o311.post_request("json", api_key, cat.code, address_string=b.address)[0]["service_request_id"]
    r = o311.request(rid, "json")
    assert abs(r["lat"] - b.lat) < 1e-9 and r["address"] == b.address
    # the same building by its code (address_id); a duplicate of the first -> linked
    rid2 = o311.post_request("json", api_key, cat.code, address_id=b.code)[0]["service_request_id"]
    assert rid2 == rid
    _err(lambda: o311.post_request("json", api_key, cat.code, address_string="火星路1号不存在大厦"), 400, "located")
    _err(lambda: o311.post_request("json", api_key, cat.code, address_id="NO-SUCH-BUILDING"), 400, "address_id")


def test_demo_open311_key_is_printed(session):
    from typer.testing import CliRunner

    from cityops.cli import _register_domains, app

    _register_domains()
    res = CliRunner().invoke(app, ["demo-accounts"])
    assert res.exit_code == 0, res.output
    import json

    data = json.loads(res.output[res.output.index("{"):])
    keys = [k for k in data["api_keys"] if "open311.post" in k["permissions"]]
    assert keys and keys[0]["key"]
