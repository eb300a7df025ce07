"""Base map: the demo layers served as GeoJSON by zoom and bbox, place search, and the
OSM-style GeoJSON import (all or nothing, every bad feature named)."""

from __future__ import annotations

import json

import shapely
from shapely.geometry import shape

from tests.helpers import auth_headers, make_user

YUEYANG_BOX = "121.20,30.98,121.24,31.01"


def _fc(r):
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return r.json()


def test_layers_listed_and_served_by_zoom(client):
    info = {x["key"]: x for x in client.get("/api/v1/basemap").json()["items"]}
    assert set(info) == {"roads", "water", "places"} and info["roads"]["synthetic"]
    far = _fc(client.get("/api/v1/basemap/roads?zoom=11"))
    assert far["features"] and {f["properties"]["kind"] for f in far["features"]} <= {"motorway", "trunk", "primary"}
    near = _fc(client.get(f"/api/v1/basemap/roads?zoom=15&bbox={YUEYANG_BOX}"))
    kinds = {f["properties"]["kind"] for f in near["features"]}
    assert "residential" in kinds and len(near["features"]) > 20
    box = shapely.box(*map(float, YUEYANG_BOX.split(",")))
    assert all(shape(f["geometry"]).intersects(box.buffer(1e-6)) for f in near["features"])
    assert any(f["properties"]["oneway"] for f in near["features"])  # the old town's one-way streets
    full = _fc(client.get("/api/v1/basemap/roads?zoom=18"))
    assert len(full["features"]) == info["roads"]["feature_count"]
    # simplification at low zoom never adds vertices
    z11 = {f["id"]: len(shapely.get_coordinates(shape(f["geometry"]))) for f in far["features"]}
    z18 = {f["id"]: len(shapely.get_coordinates(shape(f["geometry"]))) for f in full["features"]}
    assert all(z11[k] <= z18[k] for k in z11) and sum(z11.values()) < sum(z18[k] for k in z11)
    water = _fc(client.get("/api/v1/basemap/water?zoom=11"))
    assert "黄浦江" in {f["properties"]["name"] for f in water["features"]}
    places = _fc(client.get("/api/v1/basemap/places?zoom=11"))
    assert {f["properties"]["kind"] for f in places["features"]} <= {"town", "suburb", "city"}
    assert len(places["features"]) == 17
    assert client.get("/api/v1/basemap/rivers").status_code == 422
    assert client.get("/api/v1/basemap/roads?bbox=1,2,3").status_code == 422


def test_search(client):
    items = client.get("/api/v1/basemap/search", params={"q": "泗泾"}).json()["items"]
    assert items[0]["name"] == "泗泾镇" and items[0]["layer"] == "places"
    assert {"places", "areas"} <= {i["layer"] for i in items}
    assert all("泗泾" in i["name"] for i in items)
    g60 = client.get("/api/v1/basemap/search", params={"q": "g60"}).json()["items"]
    assert g60 and g60[0]["kind"] == "motorway" and len(g60[0]["bbox"]) == 4
    assert client.get("/api/v1/basemap/search", params={"q": "不存在的地名"}).json()["items"] == []
    assert client.get("/api/v1/basemap/search", params={"q": " "}).status_code == 422


def _road(fid, coords, **tags):
    return {"type": "Feature", "id": fid, "geometry": {"type": "LineString", "coordinates": coords},
            "properties": {"highway": "residential", **tags}}


def _osm_file():
    a, b, c, d = [121.20, 31.00], [121.21, 31.00], [121.21, 31.01], [121.20, 31.01]
    return {"type": "FeatureCollection", "features": [
        _road("way/1", [a, b], name="测试一路", maxspeed="40", oneway="yes"),
        _road("way/2", [b, c], name="测试二路", maxspeed="25 mph"),
        _road("way/3", [c, d, a], name="测试三路", highway="primary"),
        {"type": "Feature", "id": "way/4", "geometry": {"type": "Polygon", "coordinates": [
            [[121.202, 31.002], [121.204, 31.002], [121.204, 31.004], [121.202, 31.002]]]},
         "properties": {"natural": "water", "name": "测试湖"}},
        {"type": "Feature", "id": "node/5", "geometry": {"type": "Point", "coordinates": [121.205, 31.005]},
         "properties": {"tags": {"place": "village", "name": "测试村"}}},
        {"type": "Feature", "id": "way/6", "geometry": {"type": "Polygon", "coordinates": [
            [[121.206, 31.006], [121.207, 31.006], [121.207, 31.007], [121.206, 31.006]]]},
         "properties": {"building": "yes"}},
        _road("way/7", [a, c], highway="footway"),
        {"type": "Feature", "id": "node/8", "geometry": {"type": "Point", "coordinates": [121.21, 31.0]},
         "properties": {"highway": "traffic_signals"}},
    ]}


def test_import_replaces_layers_and_the_road_graph(fresh_client, fresh_url):
    from cityops.db import get_sessionmaker
    from cityops.geo import roads

    s = get_sessionmaker()()
    try:
        h = auth_headers(fresh_client, *make_user(s, "bm_admin", ["sys_admin"]))
    finally:
        s.close()
    r = fresh_client.post("/api/v1/basemap/import", json=_osm_file(), headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["layers"] == {"roads": {"version": 1, "feature_count": 3}, "water": {"version": 1, "feature_count": 1},
                             "places": {"version": 1, "feature_count": 1}}
    assert out["skipped"]["not_basemap"]["features"] == [5]
    assert out["skipped"]["not_drivable"]["features"] == [6, 7]  # a footway, a traffic-signal node
    assert out["road_graph"]["nodes"] == 3  # a, b, c; d lies inside way/3
    fc = fresh_client.get("/api/v1/basemap/roads?zoom=18").json()
    by = {f["id"]: f["properties"] for f in fc["features"]}
    assert by["way/1"]["oneway"] == 1 and by["way/1"]["speed_kmh"] == 40
    assert abs(by["way/2"]["speed_kmh"] - 25 * 1.609344) < 1e-9 and by["way/3"]["kind"] == "primary"
    assert fresh_client.get("/api/v1/basemap/search", params={"q": "测试村"}).json()["items"][0]["kind"] == "village"
    s = get_sessionmaker()()
    try:
        import numpy as np

        ll = np.array([[121.20, 31.00], [121.21, 31.00]])
        m, info = roads.travel_minutes(s, ll, ll)
        assert info["model"] == "road_network" and m[1, 0] > 2.5 * m[0, 1]  # way/1 is one-way a -> b
    finally:
        s.close()
    # a second import of roads only replaces roads, keeps water and places
    only = {"type": "FeatureCollection", "features": [_road("r1", [[121.2, 31.0], [121.3, 31.1]])]}
    r = fresh_client.post("/api/v1/basemap/import?layers=roads", json=only, headers=h)
    assert r.json()["layers"] == {"roads": {"version": 2, "feature_count": 1}}
    info = {x["key"]: x["feature_count"] for x in fresh_client.get("/api/v1/basemap").json()["items"]}
    assert info == {"roads": 1, "water": 1, "places": 1}


def test_import_rejects_bad_features_naming_them(fresh_client):
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        h = auth_headers(fresh_client, *make_user(s, "bm_admin2", ["sys_admin"]))
    finally:
        s.close()
    ok = _osm_file()
    assert fresh_client.post("/api/v1/basemap/import", json=ok, headers=h).status_code == 200
    bad = _osm_file()
    feats = bad["features"]
    feats += [
        _road("b1", [[121.2, 31.0]]),  # one position
        _road("b2", [[121.2, 31.0], [200.0, 31.0]]),  # longitude out of range
        _road("b3", [[121.2, 31.0], [121.3, 31.0]], maxspeed="fast"),
        _road("b4", [[121.2, 31.0], [121.3, 31.0]], oneway="sometimes"),
        _road("way/1", [[121.2, 31.0], [121.3, 31.0]]),  # duplicate of feature 0
        _road("b6", [[121.2, 31.0], [121.3, 31.0]], name="长" * 101),
        {"type": "Feature", "geometry": None, "properties": {"highway": "primary"}},
        {"type": "Thing"},
        {"type": "Feature", "id": "b9", "geometry": {"type": "Polygon", "coordinates": [
            [[121.2, 31.0], [121.21, 31.01], [121.21, 31.0], [121.2, 31.01], [121.2, 31.0]]]},
         "properties": {"natural": "water"}},  # a bow tie: self-intersection
    ]
    feats.append(_road("b10", [[121.2, 31.0], [float("nan"), 31.0]]))  # NaN (JSON's NaN token)
    text = json.dumps(bad)
    assert "NaN" in text
    r = fresh_client.post("/api/v1/basemap/import", content=text.encode(), headers={**h, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    probs = r.json()["detail"]
    named = {p["loc"][1] for p in probs}
    n0 = len(ok["features"])
    assert named == set(range(n0, n0 + 10)), probs
    types = {p["loc"][1]: p["type"] for p in probs}
    assert types[n0] == "geometry_invalid" and types[n0 + 1] == "out_of_range" and types[n0 + 2] == "maxspeed"
    assert types[n0 + 3] == "oneway" and types[n0 + 4] == "duplicate" and types[n0 + 5] == "name"
    assert types[n0 + 6] == "missing" and types[n0 + 7] == "geojson" and types[n0 + 8] == "geometry_invalid"
    assert types[n0 + 9] == "out_of_range"  # the NaN
    assert all("要素 features[" in p["msg"] for p in probs)
    # nothing written: the earlier import is intact
    info = {x["key"]: x["version"] for x in fresh_client.get("/api/v1/basemap").json()["items"]}
    assert info == {"roads": 1, "water": 1, "places": 1}
    empty = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None, "properties": {}}][:0]}
    assert fresh_client.post("/api/v1/basemap/import", json=empty, headers=h).status_code == 422
    assert fresh_client.post("/api/v1/basemap/import?layers=rivers", json=ok, headers=h).status_code == 422
    worker = make_user(get_sessionmaker()(), "bm_worker", ["supervisor"])
    assert fresh_client.post("/api/v1/basemap/import", json=ok, headers=auth_headers(fresh_client, *worker)).status_code == 403


def test_cli_import(fresh_url, tmp_path):
    import typer
    from typer.testing import CliRunner

    from cityops.geo import basemap_cli

    app = typer.Typer()
    basemap_cli.register(app)

    good, bad = tmp_path / "good.geojson", tmp_path / "bad.geojson"
    good.write_text(json.dumps(_osm_file()), encoding="utf-8")
    broken = _osm_file()
    broken["features"].append(_road("x", [[121.2, 31.0]]))
    bad.write_text(json.dumps(broken), encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(app, ["basemap", "import", str(bad)])
    assert r.exit_code == 1 and "features/8" in r.output
    r = runner.invoke(app, ["basemap", "import", str(good)])
    assert r.exit_code == 0, r.output
    assert "roads: version 1, 3 features" in r.output
    assert "roads: version 1" in runner.invoke(app, ["basemap", "list"]).output
