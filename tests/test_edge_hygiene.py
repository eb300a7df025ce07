"""Input hygiene at the edge (cityops.edge): control characters, NaN / Infinity / 1e309, lone
surrogates, deep nesting and oversized bodies are 4xx naming the field; every XML document stays
well-formed even with hostile stored data; LIKE wildcards are literal; a zip bomb is not opened."""

from __future__ import annotations

import io
import json
import zipfile
from xml.etree import ElementTree as ET

from tests.cases_helpers import category, free_point
from tests.open311_client import Open311Client


def _point(session, name="暴露垃圾", skip=0):
    cat = category(session, name)
    lon, lat, _grid = free_point(session, cat.id, skip=skip)
    session.rollback()
    return cat, lon, lat


def test_control_character_refused_on_json_and_open311(client, session):
    cat, lon, lat = _point(session, skip=7)
    body = json.dumps({"category_code": cat.code, "lat": lat, "lon": lon, "description": "门口\u000b有垃圾"})
    r = client.post("/api/v1/public/reports", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "description"] and "U+000B" in d["msg"]
    from cityops.security.seed import demo_key

    o = Open311Client(client, "/open311/v2")
    key = demo_key("demo-open311")
    r = client.post("/open311/v2/requests.xml", data={"api_key": key, "service_code": cat.code, "lat": str(lat),
                                                     "long": str(lon), "description": "坏了\x01\x0b"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/xml")
    err = ET.fromstring(r.content)
    assert err.tag == "errors" and "description" in err.find("error/description").text
    assert o.services("json")  # still serving


def test_xml_well_formed_with_hostile_stored_text(client, session):
    """A description holding U+000B / U+0001 that reached the database some other way (an import,
    an old version) still gives well-formed requests.xml, requests/{id}.xml and CAP."""
    from cityops.cases.models import Case, case_no

    cat, lon, lat = _point(session, skip=9)
    r = client.post("/api/v1/public/reports", json={"category_code": cat.code, "lat": lat, "lon": lon,
                                                    "description": "好的描述"})
    assert r.status_code in (200, 201), r.text
    cid = r.json()["case_id"]
    c = session.get(Case, cid)
    c.description = "坏\x0b的\x01描述\ufffe"
    c.title = "标题\x1f"
    session.commit()
    rid = case_no(c.id, c.reported_at)
    session.rollback()
    for url in ("/open311/v2/requests.xml", f"/open311/v2/requests/{rid}.xml",
                "/open311/v2/requests.xml?extensions=true"):
        resp = client.get(url)
        assert resp.status_code == 200, resp.text
        root = ET.fromstring(resp.content)  # raises if not well-formed
        assert root.tag == "service_requests"
    one = ET.fromstring(client.get(f"/open311/v2/requests/{rid}.xml").content)
    assert one.find("request/description").text == "坏的描述"
    from cityops.edge import xml_clean

    assert xml_clean("a\x0bb\x00c\td\ne") == "abc\td\ne"


def test_intake_cleans_every_channel():
    from cityops.cases.intake import IntakeItem

    item = IntakeItem(source="hotline", channel="hotline", cat=None, lon=0, lat=0, where=None, at=None,  # type: ignore[arg-type]
                      title="t\x0b", description="d\x01escription", address="a\x0cb")
    assert (item.title, item.description, item.address) == ("t", "description", "ab")


HOSTILE = {
    "nan": b'{"description": NaN, "lat": 31.0}',
    "infinity": b'{"lat": Infinity, "x": [-Infinity]}',
    "1e309": b'{"lat": 1e309}',
    "surrogate": b'{"description": "\\ud800 lone"}',
    "surrogate_key": b'{"\\udfff": 1}',
    "control": b'{"title": "a\\u0001b"}',
    "deep": b'{"a":' * 200 + b"1" + b"}" * 200,
    "deeper": b"[" * 100_000 + b"]" * 100_000,
}


def test_hostile_json_named(client):
    for kind, body in HOSTILE.items():
        r = client.post("/api/v1/public/reports", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (kind, r.status_code, r.text[:300])
        d = r.json()["detail"]
        assert d and d[0]["loc"][0] == "body" and d[0]["msg"], kind
    r = client.post("/api/v1/public/reports", content=HOSTILE["nan"], headers={"content-type": "application/json"})
    assert r.json()["detail"][0]["loc"] == ["body", "description"]
    r = client.post("/api/v1/public/reports", content=HOSTILE["infinity"], headers={"content-type": "application/json"})
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "lat"], ["body", "x", 0]]


def test_oversized_body_413(client):
    big = b'{"description": "' + b"x" * (3 * 2**20) + b'"}'
    r = client.post("/api/v1/public/reports", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"][0]["type"] == "too_large"
    # streamed without Content-Length: counted

    def chunks():
        for _ in range(40):
            yield b"x" * 2**17

    r = client.post("/api/v1/public/reports", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    # the Open311 error document for Open311
    r = client.post("/open311/v2/requests.json", content=b"a=" + b"x" * (3 * 2**20),
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()[0]["code"] == 413
    from cityops.edge import DEFAULT_LIMIT, limit_for

    assert limit_for("/api/v1/registry/buildings/import") > limit_for("/api/v1/cases") == DEFAULT_LIMIT


def test_nul_in_open311_url_is_spec_error(client):
    r = client.get("/open311/v2/requests.xml?status=open%00")
    assert r.status_code == 400 and ET.fromstring(r.content).tag == "errors"
    r = client.get("/open311/v2/requests.json?service_code=%00")
    assert r.status_code == 400 and isinstance(r.json(), list)
    r = client.get("/api/v1/cases?q=%00")
    assert r.status_code == 422


def test_like_wildcards_literal(client, session):
    from tests.helpers import auth_headers, make_user

    user, pw = make_user(session, "edge_cmd", ["district_commander"], area_code="310117")
    session.commit()
    h = auth_headers(client, user, pw)
    everything = client.get("/api/v1/cases?page_size=1", headers=h).json()["total"]
    assert everything > 0
    for q in ("%", "_", "%%"):
        r = client.get("/api/v1/cases", params={"q": q, "page_size": 1}, headers=h)
        assert r.status_code == 200 and r.json()["total"] < everything, q
    r = client.get("/api/v1/security/accounts", params={"q": "_"}, headers=h)
    assert r.status_code in (200, 403)


def test_zip_bomb_refused_before_reading():
    from cityops.edge import MAX_UNZIPPED, check_zip
    from cityops.errors import InvalidInput

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("xl/worksheets/sheet1.xml", "w") as f:
        block = b"\0" * 2**20
        for _ in range(MAX_UNZIPPED // 2**20 + 1):
            f.write(block)
    data = buf.getvalue()
    assert len(data) < 2 * 2**20
    try:
        check_zip(data, ["file"])
    except InvalidInput as exc:
        assert exc.problems[0].loc == ["file"] and exc.problems[0].type == "too_large"
    else:
        raise AssertionError("zip bomb accepted")
    from cityops.registry.importers import read_xlsx

    try:
        read_xlsx(data)
    except InvalidInput as exc:
        assert exc.problems[0].type == "too_large"
    else:
        raise AssertionError("zip bomb read")
