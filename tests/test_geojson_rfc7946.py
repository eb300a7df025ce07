"""Every GeoJSON output is RFC 7946 (issue 16.3): found from the OpenAPI document (every GET whose
200 answer is ``application/geo+json``), fetched with a district account, and checked by a checker
written from the RFC (no server code): object types, positions of 2-3 numbers within WGS-84
ranges, at most 7 decimals, closed linear rings of >= 4 positions, exterior rings counter-clockwise
and holes clockwise (§3.1.6), ``application/geo+json`` (§12)."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}


def _signed_area(ring: list[list[float]]) -> float:
    """Shoelace formula: positive for a counter-clockwise ring (x = longitude east, y = latitude north)."""
    return sum(x1 * y2 - x2 * y1 for (x1, y1, *_), (x2, y2, *_) in zip(ring, ring[1:], strict=False)) / 2.0


def _position(p, where, errors):
    if not isinstance(p, list) or len(p) not in (2, 3) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in p):
        errors.append(f"{where}: a position is 2 or 3 numbers, got {p!r}")
        return
    if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
        errors.append(f"{where}: {p!r} is not longitude, latitude in WGS-84")
    for v in p[:2]:
        if isinstance(v, float) and -Decimal(repr(v)).as_tuple().exponent > 7:
            errors.append(f"{where}: {v!r} has more than 7 decimals")
            break


def _ring(ring, where, errors, exterior):
    if not isinstance(ring, list) or len(ring) < 4:
        errors.append(f"{where}: a linear ring has at least 4 positions")
        return
    for i, p in enumerate(ring):
        _position(p, f"{where}[{i}]", errors)
    if ring[0] != ring[-1]:
        errors.append(f"{where}: a linear ring is closed (first == last)")
    area = _signed_area(ring)
    if exterior and area <= 0:
        errors.append(f"{where}: exterior ring is clockwise (RFC 7946 §3.1.6: counter-clockwise)")
    if not exterior and area >= 0:
        errors.append(f"{where}: hole is counter-clockwise (RFC 7946 §3.1.6: clockwise)")


def _geometry(g, where, errors):
    if g is None:
        return
    t = g.get("type") if isinstance(g, dict) else None
    if t not in GEOMETRIES:
        errors.append(f"{where}: not a geometry type: {t!r}")
        return
    if t == "GeometryCollection":
        for i, x in enumerate(g.get("geometries", [])):
            _geometry(x, f"{where}.geometries[{i}]", errors)
        return
    c = g.get("coordinates")
    if t == "Point":
        _position(c, where, errors)
    elif t in ("MultiPoint", "LineString"):
        for i, p in enumerate(c):
            _position(p, f"{where}[{i}]", errors)
        if t == "LineString" and len(c) < 2:
            errors.append(f"{where}: a LineString has at least 2 positions")
    elif t == "MultiLineString":
        for j, line in enumerate(c):
            for i, p in enumerate(line):
                _position(p, f"{where}[{j}][{i}]", errors)
    else:
        polys = [c] if t == "Polygon" else c
        for j, poly in enumerate(polys):
            for k, ring in enumerate(poly):
                _ring(ring, f"{where}[{j}][{k}]", errors, exterior=k == 0)


def rfc7946_errors(doc) -> list[str]:
    errors: list[str] = []
    t = doc.get("type") if isinstance(doc, dict) else None
    if t == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            return ["a FeatureCollection has a features array"]
    elif t == "Feature":
        feats = [doc]
    elif t in GEOMETRIES:
        _geometry(doc, "$", errors)
        return errors
    else:
        return [f"not a GeoJSON object: type {t!r}"]
    for i, f in enumerate(feats):
        if f.get("type") != "Feature" or "geometry" not in f or "properties" not in f:
            errors.append(f"features[{i}]: a Feature has type, geometry and properties")
            continue
        if "id" in f and not isinstance(f["id"], str | int | float):
            errors.append(f"features[{i}].id is a string or a number")
        _geometry(f["geometry"], f"features[{i}].geometry", errors)
    return errors


def test_checker_catches_clockwise():
    cw = {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]}
    assert any("clockwise" in e for e in rfc7946_errors(cw))
    ccw = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    assert rfc7946_errors(ccw) == []
    assert rfc7946_errors({"type": "Point", "coordinates": [121.123456789, 31.0]})


def test_geometry_oriented_and_rounded():
    import shapely

    from cityops.geo.geojson import geometry

    cw_with_ccw_hole = shapely.Polygon([(0, 0), (0, 10), (10, 10), (10, 0)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    g = geometry(cw_with_ccw_hole)
    assert rfc7946_errors(json.loads(json.dumps(g))) == []
    p = geometry(shapely.Point(121.123456789, 31.000000049))
    assert list(p["coordinates"]) == [121.1234568, 31.0]


def _geojson_routes(app):
    spec = app.openapi()
    out = []
    for path, item in spec["paths"].items():
        get = item.get("get")
        if not get:
            continue
        content = get.get("responses", {}).get("200", {}).get("content", {})
        if "application/geo+json" in content:
            out.append((path, get))
        elif "geojson" in path:
            raise AssertionError(f"{path} serves GeoJSON but does not document application/geo+json")
    return out


@pytest.fixture()
def headers(client, session):
    from tests.helpers import auth_headers, make_user

    user, pw = make_user(session, "geojson_cmd", ["district_commander"], area_code="310117")
    session.commit()
    return auth_headers(client, user, pw)


def test_every_geojson_output_is_rfc7946(client, headers):
    app = client.app
    routes = _geojson_routes(app)
    assert len(routes) >= 8
    layer_keys = [x["key"] for x in client.get("/api/v1/layers", headers=headers).json()["items"]]
    street = client.get("/api/v1/areas?level=street&page_size=1", headers=headers).json()["items"][0]["code"]
    checked = 0
    for path, op in routes:
        urls = []
        if "{key}" in path:
            urls = [path.replace("{key}", k) for k in layer_keys]
        elif "{layer}" in path:
            urls = [path.replace("{layer}", k) + "?zoom=17" for k in ("roads", "water", "places")]
        elif "{code}" in path:
            urls = [path.replace("{code}", c) for c in ("310117", street)]
        elif "{outbreak}" in path:
            obs = client.get("/api/v1/outbreak/outbreaks", headers=headers).json()
            items = obs["items"] if isinstance(obs, dict) else obs
            assert items, "the demo seed has an outbreak whose zones and places are checked"
            urls = [path.replace("{outbreak}", str(o["id"])) for o in items]
        elif any(p["name"] == "format" for p in op.get("parameters", [])):
            urls = [path + "?format=geojson&page_size=500"]
        else:
            urls = [path]
        for url in urls:
            assert not re.search(r"\{", url), url
            r = client.get(url, headers=headers)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
            assert r.headers["content-type"].split(";")[0] == "application/geo+json", (url, r.headers["content-type"])
            doc = r.json()
            errors = rfc7946_errors(doc)
            assert not errors, (url, errors[:5], len(errors))
            feats = doc.get("features", [doc])
            checked += len(feats)
    assert checked > 100
    # also the areas at every level, where most polygons are
    for level in ("district", "street", "community", "grid"):
        doc = client.get(f"/api/v1/areas.geojson?level={level}", headers=headers).json()
        assert doc["features"] and not rfc7946_errors(doc), level
