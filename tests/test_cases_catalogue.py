"""Catalogue, departments, routing and calendar as versioned data (import/export, all-or-nothing)."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from cityops.geo.models import Area
from tests.cases_helpers import scalar
from tests.helpers import auth_headers, make_user


def _admin(client, session):
    u, pw = make_user(session, "cc_cmd", ["district_commander"], area_code="310117")
    return auth_headers(client, u, pw)


def test_default_catalogue_both_formats_and_crosswalk(client, session):
    h = _admin(client, session)
    versions = client.get("/api/v1/catalogue/versions", headers=h).json()
    refs = {v["standard_ref"]: v for v in versions}
    assert {"GB/T 30428.2-2013", "GB/T 47678.5-2026"} <= set(refs)
    assert refs["GB/T 47678.5-2026"]["active"] is True and refs["GB/T 30428.2-2013"]["categories"] >= 80
    cats = client.get("/api/v1/catalogue/categories").json()  # public
    assert len(cats) >= 80 and {c["kind"] for c in cats} == {"component", "matter"}
    by_name = {c["name_zh"]: c for c in cats}
    assert by_name["暴露垃圾"]["type_code"] == "06010" and by_name["暴露垃圾"]["code"] == "206010"
    assert by_name["上水井盖"]["type_code"] == "01001" and by_name["上水井盖"]["responsibility_rule"] == "owner_first"
    assert by_name["暴露垃圾"]["effective_time_limits"]["handle"] == {"value": 4, "unit": "working_hour"}
    assert by_name["暴露垃圾"]["effective_time_limits"]["accept"]["unit"] == "working_hour"
    old = client.get("/api/v1/catalogue/categories", params={"version": "GBT30428.2-2013-SJ"}).json()
    assert {c["code"] for c in old if c["name_zh"] == "暴露垃圾"} == {"20102"}
    assert all(len(c["type_code"]) == 4 for c in old) and all(len(c["type_code"]) == 5 for c in cats)


def test_export_import_roundtrip_and_errors_by_row(client, session):
    h = _admin(client, session)
    r = client.get("/api/v1/catalogue/versions/GBT30428.2-2013-SJ/export", params={"format": "json"}, headers=h)
    doc = r.json()
    v = doc["versions"][0]
    code = "LOCAL-" + uuid.uuid4().hex[:6]
    v["code"], v["status"] = code, "draft"
    doc.pop("crosswalks", None)
    r = client.post("/api/v1/catalogue/import", json=doc, headers=h)
    assert r.status_code == 201, r.text
    again = client.get(f"/api/v1/catalogue/versions/{code}/export", headers=h).json()["versions"][0]
    assert again["categories"] == v["categories"]
    # the version's lifecycle: draft -> retired -> (retire again: 409 naming the state) ; never back to draft
    st = f"/api/v1/catalogue/versions/{code}/status"
    assert client.post(st, params={"status": "draft"}, headers=h).status_code == 422
    assert client.post(st, params={"status": "retired"}, headers=h).status_code == 200
    r = client.post(st, params={"status": "retired"}, headers=h)
    assert r.status_code == 409 and r.json()["state"] == "retired" and r.json()["allowed_actions"] == ["publish"]
    # CSV round trip
    csv_text = client.get(f"/api/v1/catalogue/versions/{code}/export", params={"format": "csv"}, headers=h).text
    code2 = code + "-csv"
    r = client.post("/api/v1/catalogue/import", content=csv_text.encode(),
                    params={"code": code2, "name": "CSV", "standard_ref": "GB/T 30428.2-2013",
                            "valid_from": "2014-01-01T00:00:00+08:00"},
                    headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    back = client.get(f"/api/v1/catalogue/versions/{code2}/export", headers=h).json()["versions"][0]["categories"]
    assert [(c["code"], c["time_limits"], c["area_overrides"]) for c in back] == \
        [(c["code"], c["time_limits"], c["area_overrides"]) for c in v["categories"]]
    # errors by row, nothing written
    bad = json.loads(json.dumps(doc))
    bv = bad["versions"][0]
    bv["code"] = code + "-bad"
    bv["categories"][0]["kind"] = "thing"
    bv["categories"][1]["type_code"] = "01002"
    bv["categories"][2]["default_department_code"] = "nobody"
    bv["categories"][3]["time_limits"] = {"handle": {"value": 4, "unit": "fortnight"}}
    bv["categories"][4]["code"] = bv["categories"][5]["code"]
    r = client.post("/api/v1/catalogue/import", json=bad, headers=h)
    assert r.status_code == 422
    locs = {tuple(p["loc"]) for p in r.json()["detail"]}
    assert ("versions", 0, "categories", 0, "kind") in locs
    assert ("versions", 0, "categories", 1, "type_code") in locs
    assert ("versions", 0, "categories", 2, "default_department_code") in locs
    assert ("versions", 0, "categories", 3, "time_limits", "handle", "unit") in locs
    assert any(loc[:4] == ("versions", 0, "categories", 5) and loc[-1] == "code" for loc in locs)
    assert client.get(f"/api/v1/catalogue/versions/{code}-bad/export", headers=h).status_code == 404
    # importing an existing version code again is refused (versions are immutable)
    assert client.post("/api/v1/catalogue/import", json=doc, headers=h).status_code == 422


def test_routing_rules_and_area_overrides(client, session):
    h = _admin(client, session)
    def point(street):
        g = scalar(session, select(Area.geom).where(Area.level == "grid", Area.code.like(street + "%")).limit(1))
        p = g.representative_point()
        return p.y, p.x

    lat, lon = point("310117001")
    r = client.get("/api/v1/catalogue/route", params={"category_code": "206010", "lat": lat, "lon": lon}, headers=h).json()
    assert r["rule"] == "territory_first" and r["department_code"] == "jz310117001" and r["co_department_codes"][0] == "hw"
    r = client.get("/api/v1/catalogue/route", params={"category_code": "101018", "lat": lat, "lon": lon}, headers=h).json()
    assert r["rule"] == "owner_first" and r["department_code"] == "ld"  # 路灯 -> 路灯管理所
    lat, lon = point("310117107")
    r = client.get("/api/v1/catalogue/route", params={"category_code": "101018", "lat": lat, "lon": lon}, headers=h).json()
    assert r["department_code"] == "jz310117107" and "310117107" in r["explanation"]  # area override
    # the same through the 2013 code (crosswalk)
    r2 = client.get("/api/v1/catalogue/route", params={"category_code": "10118", "lat": lat, "lon": lon}, headers=h).json()
    assert r2["department_code"] == "jz310117107"
    deps = client.get("/api/v1/departments", headers=h).json()
    codes = {d["code"] for d in deps}
    assert {"cgzf", "lhsr", "sw", "jg", "jj", "scjg", "sthj", "fg", "wj", "yj", "jz310117001"} <= codes
    assert len([d for d in deps if d["kind"] == "street_centre"]) == 17


def test_calendar_versions_and_due_computation(client, session):
    h = _admin(client, session)
    r = client.get("/api/v1/calendars/due", params={"start": "2025-03-07T16:00:00+08:00", "amount": 4,
                                                    "unit": "working_hour"}, headers=h)
    assert r.json()["due_local"] == "2025-03-10T11:00:00+08:00"
    cal = client.get("/api/v1/calendars/active", headers=h).json()
    assert any(d["kind"] == "workday" and d["date"] == "2025-09-28" for d in cal["days"])
    # a new version with a 调休 Saturday
    new = {k: cal[k] for k in ("code", "name", "timezone", "periods", "weekend")}
    new["days"] = cal["days"] + [{"date": "2025-03-08", "kind": "workday", "name": "演示调休"}]
    r = client.post("/api/v1/calendars", json=new, headers=h)
    assert r.status_code == 201 and r.json()["version"] == cal["version"] + 1
    r = client.get("/api/v1/calendars/due", params={"start": "2025-03-07T16:00:00+08:00", "amount": 4,
                                                    "unit": "working_hour"}, headers=h)
    assert r.json()["due_local"] == "2025-03-08T11:00:00+08:00"
    # put the shipped calendar back as the newest version
    assert client.post("/api/v1/calendars", json={**new, "days": cal["days"]}, headers=h).status_code == 201
    bad = {**new, "periods": [["18:00", "09:00"]], "days": [{"date": "2025-13-01", "kind": "holiday"}]}
    r = client.post("/api/v1/calendars", json=bad, headers=h)
    assert r.status_code == 422
    locs = {tuple(p["loc"]) for p in r.json()["detail"]}
    assert ("body", "days", 0, "date") in locs


def test_policy_and_rules_validation(client, session):
    h = _admin(client, session)
    assert client.get("/api/v1/cases/policy", headers=h).json()["dedupe_radius_m"] == 50
    r = client.patch("/api/v1/cases/policy", json={"dedupe_radius_m": -3, "nope": 1}, headers=h)
    assert r.status_code == 422 and {tuple(p["loc"]) for p in r.json()["detail"]} == {("body", "dedupe_radius_m"),
                                                                                      ("body", "nope")}
    rules = client.get("/api/v1/escalation-rules", headers=h).json()
    assert {r["trigger"] for r in rules} >= {"overdue", "urgent_reported", "urgent_dispatched"}
    r = client.put("/api/v1/escalation-rules", json=[{"code": "x", "trigger": "whenever", "targets": []}], headers=h)
    assert r.status_code == 422
