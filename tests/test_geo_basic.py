from __future__ import annotations

import re

from cityops.geo.demo import STREETS


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_streets_are_the_17_real_ones(client):
    r = client.get("/api/v1/areas", params={"level": "street"})
    assert r.status_code == 200
    body = r.json()
    got = {(i["code"], i["name"]) for i in body["items"]}
    assert got == {(c, n) for c, n, *_ in STREETS}
    assert body["total"] == 17
    for i in body["items"]:
        assert i["level"] == "street" and i["parent_code"] == "310117"


def test_locate_centre(client):
    r = client.get("/api/v1/grids/locate", params={"lat": 31.03, "lon": 121.22})
    assert r.status_code == 200
    body = r.json()
    assert body["inside"] is True
    assert re.fullmatch(r"310117\d{9}", body["grid_code"])
    assert body["grid_code"].startswith(body["community_code"]) and body["community_code"].startswith(body["street_code"])
    layers = {hit["layer"] for hit in body["layers"]}
    assert {"city_ops", "policing", "governance"} <= layers


def test_locate_outside_is_clear_not_500(client):
    r = client.get("/api/v1/grids/locate", params={"lat": 39.9, "lon": 116.4})
    assert r.status_code == 200
    assert r.json()["inside"] is False and r.json()["grid_code"] is None
    r = client.get("/api/v1/grids/locate", params={"lat": 391.9, "lon": 116.4})
    assert r.status_code == 422


def test_api_docs_are_served_offline(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert "/static/swagger/swagger-ui-bundle.js" in r.text
    assert "http://" not in r.text.replace("http://testserver", "") and "https://" not in r.text
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["components"]["securitySchemes"]
