"""The base-data HTTP API: permissions, area scoping (404 outside), masking, audited unmask, GeoJSON,
CSV export, imports over HTTP, history and retiring."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from sqlalchemy import func, select

from cityops.registry.models import Building, Person
from cityops.security.models import AuditLog
from tests.helpers import auth_headers, make_user

STREET = "310117001"
OTHER = "310117003"
API = "/api/v1/registry"


@pytest.fixture(scope="module")
def client(db_url):
    """One app for the module (the accounts below are made once)."""
    from fastapi.testclient import TestClient

    from cityops.app import create_app
    from tests.conftest import use_database

    use_database(db_url)
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def users(client, db_url):
    from cityops.db import get_sessionmaker

    out = {}
    s = get_sessionmaker()()
    try:
        for name, roles, area in [("rg_yy_op", ["street_operator"], STREET),
                                  ("rg_fs_op", ["street_operator"], OTHER),
                                  ("rg_cmd", ["district_commander"], "310117"),
                                  ("rg_cdc", ["cdc_analyst"], "310117"),
                                  ("rg_noarea", ["street_operator"], None)]:
            user, pw = make_user(s, name, roles, area_code=area)
            s.rollback()
            out[name] = auth_headers(client, user, pw)
    finally:
        s.close()
    return out


# SQLite: every transaction takes the write lock (BEGIN IMMEDIATE), so the test's session reads
# plain rows and ends its transaction before the app (another connection) is called.


def persons_of(session, street: str) -> list:
    rows = session.execute(select(Person.entity_id, Person.name, Person.id_number, Person.phone, Person.birth_date)
                           .where(Person.valid_to.is_(None), Person.street_code == street)
                           .order_by(Person.entity_id)).all()
    session.rollback()
    return rows


def last_audit(session, **where):
    stmt = select(AuditLog.username, AuditLog.object_type, AuditLog.object_id, AuditLog.detail,
                  AuditLog.action).order_by(AuditLog.seq.desc())
    for k, v in where.items():
        stmt = stmt.where(getattr(AuditLog, k) == v)
    row = session.execute(stmt.limit(1)).first()
    session.rollback()
    return row


def test_persons_are_scoped_to_the_street_and_masked(client, session, users):
    mine = persons_of(session, STREET)
    assert mine, "the demo has persons in 岳阳街道"
    r = client.get(f"{API}/persons", params={"page_size": 1000}, headers=users["rg_yy_op"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(mine)
    assert {i["street_code"] for i in body["items"]} == {STREET}
    by_id = {p.entity_id: p for p in mine}
    for item in body["items"]:
        p = by_id[item["id"]]
        assert item["masked"] is True
        assert item["name"] == (p.name[0] + "*" * (len(p.name) - 1) if len(p.name) > 1 else "*")
        assert item["id_number"] == p.id_number[:6] + "*" * 8 + p.id_number[-4:]
        if p.phone:
            assert item["phone"] == p.phone[:3] + "****" + p.phone[-4:]
        assert item["birth_date"] == f"{p.birth_date.year}-**-**"
        assert item["address"] is None or ("弄" not in item["address"] and item["address"].endswith("****"))
    # the community is kept in the address mask
    assert any(re.search(r"(居委会|村)\*\*\*\*$", i["address"] or "") for i in body["items"])


def test_another_streets_person_does_not_exist_for_a_street_operator(client, session, users):
    theirs = persons_of(session, OTHER)[0]
    for path in (f"{API}/persons/{theirs.entity_id}", f"{API}/persons/{theirs.entity_id}/history"):
        r = client.get(path, headers=users["rg_yy_op"])
        assert r.status_code == 404, r.text
    assert client.get(f"{API}/persons/{theirs.entity_id}", headers=users["rg_fs_op"]).status_code == 200
    r = client.get(f"{API}/persons", params={"q": theirs.id_number}, headers=users["rg_yy_op"])
    assert r.json()["total"] == 0
    r = client.get(f"{API}/persons", params={"area_code": OTHER}, headers=users["rg_yy_op"])
    assert r.json()["total"] == 0
    counts = client.get(f"{API}/counts", headers=users["rg_yy_op"]).json()
    assert counts["persons"] == len(persons_of(session, STREET))
    # the export holds only the street's persons, masked
    r = client.get(f"{API}/persons.csv", headers=users["rg_yy_op"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header, data = rows[0], rows[1:]
    assert len(data) == counts["persons"]
    col = header.index("身份证号")
    assert all(re.fullmatch(r"\d{6}\*{8}[\dX]{4}", row[col]) for row in data)
    assert theirs.id_number[:6] + "*" * 8 + theirs.id_number[-4:] not in {row[col] for row in data} or \
        theirs.id_number[:6] != STREET[:6]  # masked values may collide only by chance
    assert {row[header.index("街镇编码")] for row in data} == {STREET}
    a = last_audit(session, action="export")
    assert a.username == "rg_yy_op" and a.object_type == "person" and json.loads(a.detail)["rows"] == len(data)


def test_no_area_sees_nothing(client, users):
    r = client.get(f"{API}/persons", headers=users["rg_noarea"])
    assert r.status_code == 200 and r.json()["total"] == 0
    assert client.get(f"{API}/buildings", headers=users["rg_noarea"]).json()["total"] == 0


def test_permissions(client, session, users):
    assert client.get(f"{API}/persons").status_code == 401
    assert client.get(f"{API}/persons", headers=users["rg_cdc"]).status_code == 403  # no person.read
    r = client.get(f"{API}/buildings", headers=users["rg_cdc"])
    assert r.status_code == 200 and r.json()["total"] > 0
    assert client.get(f"{API}/buildings.csv", headers=users["rg_cdc"]).status_code == 403  # no registry.export
    files = {"file": ("b.csv", b"code,address\n", "text/csv")}
    assert client.post(f"{API}/buildings/import", files=files, headers=users["rg_cdc"]).status_code == 403
    # households without person.read: counts but no members
    h = client.get(f"{API}/households", params={"page_size": 1}, headers=users["rg_cdc"]).json()["items"][0]
    d = client.get(f"{API}/households/{h['id']}", headers=users["rg_cdc"]).json()
    assert d["members"] is None and d["member_count"] >= 0
    d = client.get(f"{API}/households/{h['id']}", headers=users["rg_cmd"]).json()
    assert len(d["members"]) == d["member_count"]
    assert all("*" in m["name"] for m in d["members"])


def test_unmask_needs_the_permission_and_a_reason_and_is_audited(client, session, users):
    p = persons_of(session, STREET)[0]
    url = f"{API}/persons/{p.entity_id}"
    r = client.get(url, params={"unmask": True, "reason": "核实低保申请"}, headers=users["rg_yy_op"])
    assert r.status_code == 403
    r = client.get(url, params={"unmask": True}, headers=users["rg_cmd"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "reason"]
    r = client.get(url, params={"unmask": True, "reason": "   "}, headers=users["rg_cmd"])
    assert r.status_code == 422
    r = client.get(url, params={"unmask": True, "reason": "核实低保申请材料"}, headers=users["rg_cmd"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id_number"], body["name"], body["masked"]) == (p.id_number, p.name, False)
    assert body["birth_date"] == p.birth_date.isoformat()
    a = last_audit(session, action="unmask")
    assert (a.username, a.object_type, a.object_id) == ("rg_cmd", "person", str(p.entity_id))
    assert json.loads(a.detail)["reason"] == "核实低保申请材料"
    # a plain (masked) read is audited too
    r = client.get(url, headers=users["rg_yy_op"])
    assert r.status_code == 200 and r.json()["masked"] is True
    a = last_audit(session, action="read", object_type="person")
    assert (a.username, a.object_id) == ("rg_yy_op", str(p.entity_id))


def test_geojson_out(client, users):
    for url, params in ((f"{API}/buildings.geojson", {"area_code": STREET}),
                        (f"{API}/buildings", {"area_code": STREET, "format": "geojson"}),
                        (f"{API}/facilities.geojson", {"kind": "01"}),
                        (f"{API}/places.geojson", {"kind": "school"})):
        r = client.get(url, params=params, headers=users["rg_cmd"])
        assert r.status_code == 200, r.text
        fc = r.json()
        assert fc["type"] == "FeatureCollection" and fc["features"], url
        for f in fc["features"]:
            assert f["type"] == "Feature" and f["geometry"]["type"] in ("Point", "Polygon")
            lon, lat = (f["geometry"]["coordinates"] if f["geometry"]["type"] == "Point"
                        else f["geometry"]["coordinates"][0][0])
            assert 120.9 < lon < 121.5 and 30.8 < lat < 31.3  # WGS-84 lon/lat order (RFC 7946)
        if "area_code" in params:
            assert {f["properties"]["street_code"] for f in fc["features"]} == {STREET}
    orgs = client.get(f"{API}/organisations", params={"area_code": STREET}, headers=users["rg_cmd"]).json()["items"]
    assert orgs and all("*" not in o["address"] and o["address"].endswith("号") for o in orgs)  # public addresses
    fc = client.get(f"{API}/facilities.geojson", params={"kind": "01"}, headers=users["rg_cmd"]).json()
    assert all(f["properties"]["type_code"].startswith("01") for f in fc["features"])
    assert client.get(f"{API}/persons.geojson", headers=users["rg_cmd"]).status_code == 404


def test_filters_and_bad_parameters(client, users):
    h = users["rg_cmd"]
    r = client.get(f"{API}/persons", params={"kind": "non_registered", "page_size": 200}, headers=h)
    assert r.status_code == 200 and all(not i["registered"] for i in r.json()["items"])
    r = client.get(f"{API}/facilities", params={"status": "damaged"}, headers=h)
    assert r.status_code == 200 and all(i["status"] == "damaged" for i in r.json()["items"])
    for params in ({"as_of": "yesterday"}, {"kind": "spaceship"}, {"area_code": "31x"}, {"page": 0},
                   {"status": "broken"}):
        assert client.get(f"{API}/facilities", params=params, headers=h).status_code == 422, params
    assert client.get(f"{API}/buildings/999999999", headers=h).status_code == 404


def test_http_import_rejects_with_every_error_and_then_accepts(client, session, users):
    from cityops.geo.models import Area

    geom = session.scalars(select(Area.geom).where(Area.level == "grid", Area.code.startswith(STREET))).first()
    session.rollback()
    p = geom.representative_point()
    body = ("建筑编码,地址,经度,纬度,层数\n"
            f"HTTP-B1,上海市松江区岳阳街道乐都路1号,{p.x},{p.y},5\n"
            f"HTTP-B2,,{p.x},{p.y},五\n")
    files = {"file": ("楼栋.csv", body.encode("utf-8"), "text/csv")}
    r = client.post(f"{API}/buildings/import", files=files, headers=users["rg_yy_op"])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert {(d["row"], d["field"]) for d in detail} == {(3, "address"), (3, "floors")}
    assert all("第3行" in d["msg"] for d in detail)
    assert session.scalar(select(func.count()).select_from(Building).where(Building.code == "HTTP-B1")) == 0
    session.rollback()
    body = body.replace(",,", ",上海市松江区岳阳街道乐都路2号,").replace(",五", ",5")
    files = {"file": ("楼栋.csv", body.encode("utf-8"), "text/csv")}
    r = client.post(f"{API}/buildings/import", files=files, headers=users["rg_yy_op"])
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"]) == (2, 0)
    # another street's operator cannot import into 岳阳街道
    r = client.post(f"{API}/buildings/import", files=files, headers=users["rg_fs_op"])
    assert r.status_code == 422 and "辖区" in r.json()["detail"][0]["msg"]


def test_retire_keeps_history(client, session, users):
    from cityops.registry import service
    from cityops.security.principal import SYSTEM

    lon, lat = session.execute(select(Building.lon, Building.lat).where(Building.valid_to.is_(None),
                                                                        Building.street_code == STREET)).first()
    session.rollback()
    service.import_file(session, SYSTEM, "buildings", "r.csv",
                        f"code,address,lon,lat\nRET-1,上海市松江区岳阳街道中山中路15号,{lon},{lat}\n".encode(),
                        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    session.commit()
    ent = session.scalar(select(Building.entity_id).where(Building.code == "RET-1"))
    session.rollback()
    h = users["rg_yy_op"]
    assert client.delete(f"{API}/buildings/{ent}", headers=users["rg_fs_op"]).status_code == 404
    r = client.delete(f"{API}/buildings/{ent}", headers=h)
    assert r.status_code == 200, r.text
    assert client.get(f"{API}/buildings/{ent}", headers=h).status_code == 404
    yesterday = (dt.datetime.now(dt.UTC).astimezone(service.TZ) - dt.timedelta(days=1)).date().isoformat()
    r = client.get(f"{API}/buildings/{ent}", params={"as_of": yesterday}, headers=h)
    assert r.status_code == 200 and r.json()["code"] == "RET-1"
    assert len(client.get(f"{API}/buildings/{ent}/history", headers=h).json()) == 1


def test_kinds_and_columns(client, users):
    r = client.get(f"{API}/kinds", headers=users["rg_cdc"])
    assert r.status_code == 200
    kinds = {k["kind"]: k for k in r.json()}
    assert set(kinds) == {"buildings", "households", "persons", "facilities", "organisations", "places"}
    assert kinds["persons"]["permission"] == "person.read" and kinds["persons"]["key"] == "id_number"
    cols = {c["field"]: c for c in kinds["persons"]["columns"]}
    assert "姓名" in [cols["name"]["label"], *cols["name"]["aliases"]] and cols["id_number"]["required"]
