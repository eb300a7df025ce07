"""Grid layers: GeoJSON import (all-or-nothing, every problem listed), versions, access rules.

Acceptance: a layer with a self-intersecting polygon, an overlapping pair and a feature missing a
required property is rejected whole with all three problems listed and the database unchanged —
through the service, the API and the CLI.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from cityops.errors import InvalidInput
from cityops.geo import layers
from cityops.geo.models import GridLayer, LayerGrid
from cityops.security.principal import SYSTEM
from tests.helpers import auth_headers, make_user

X0, Y0, D = 121.215, 31.025, 0.002  # about 200 m squares near the district centre (inside it)


def sq(x, y, d=D):
    return [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]


def feat(code, name, coords, gtype="Polygon", **extra):
    props = {"code": code, "name": name, **extra}
    if name is None:
        props.pop("name")
    return {"type": "Feature", "geometry": {"type": gtype, "coordinates": coords}, "properties": props}


def fc(*features, **top):
    return {"type": "FeatureCollection", **top, "features": list(features)}


def good_layer(n=3, prefix="T"):
    return fc(*[feat(f"{prefix}{i:03d}", f"测试网格{i}", sq(X0 + i * D, Y0)) for i in range(n)])


def bad_layer():
    bowtie = [[[X0, Y0 + 3 * D], [X0 + D, Y0 + 4 * D], [X0 + D, Y0 + 3 * D], [X0, Y0 + 4 * D], [X0, Y0 + 3 * D]]]
    return fc(
        feat("B001", "自相交", bowtie),
        feat("B002", "重叠甲", sq(X0, Y0)),
        feat("B003", "重叠乙", sq(X0 + D / 2, Y0)),
        feat("B004", None, sq(X0 + 3 * D, Y0)),  # missing name
    )


def new_key():
    return "t_" + uuid.uuid4().hex[:10]


def db_state(session):
    """Row counts of the layer tables (the read transaction is closed again: on SQLite every
    transaction takes the write lock, and the API's requests need it)."""
    session.rollback()
    state = (session.scalar(select(func.count()).select_from(GridLayer)),
             session.scalar(select(func.count()).select_from(LayerGrid)),
             session.scalar(select(func.max(GridLayer.version))))
    session.rollback()
    return state


def assert_three_problems(problems):
    """problems: list of dicts (loc, msg, type, feature, ...)."""
    kinds = sorted(p["type"] for p in problems)
    assert kinds == ["geometry_invalid", "missing", "overlap"], problems
    inv = next(p for p in problems if p["type"] == "geometry_invalid")
    assert inv["feature"] == 0 and inv["loc"][:2] == ["features", 0] and "Self-intersection" in inv["msg"]
    # GEOS names the crossing point: the middle of the bow tie
    assert inv["location"]["lon"] == pytest.approx(X0 + D / 2, abs=1e-6)
    assert inv["location"]["lat"] == pytest.approx(Y0 + 3.5 * D, abs=1e-6)
    ov = next(p for p in problems if p["type"] == "overlap")
    assert {ov["feature"], ov["other_feature"]} == {1, 2}
    assert 15_000 < ov["area_m2"] < 25_000  # half of a ~190 m x 222 m square
    assert X0 + D / 2 <= ov["location"]["lon"] <= X0 + D and Y0 <= ov["location"]["lat"] <= Y0 + D
    miss = next(p for p in problems if p["type"] == "missing")
    assert miss["loc"] == ["features", 3, "properties", "name"] and miss["feature"] == 3


# ------------------------------------------------------------------ acceptance: service, API, CLI

def test_bad_layer_rejected_whole_via_service(session):
    before = db_state(session)
    key = new_key()
    with pytest.raises(InvalidInput) as exc:
        layers.import_layer(session, SYSTEM, key, bad_layer())
    assert_three_problems([p.as_dict() for p in exc.value.problems])
    assert db_state(session) == before
    assert session.scalar(select(GridLayer).where(GridLayer.key == key)) is None
    session.rollback()


def test_bad_layer_rejected_whole_via_api(client, session):
    user, pw = make_user(session, "geo_importer", ["district_commander"], area_code="310117")
    h = auth_headers(client, user, pw)
    key = new_key()
    before = db_state(session)
    r = client.post(f"/api/v1/layers/{key}/import", json=bad_layer(), headers=h)
    assert r.status_code == 422, r.text
    assert_three_problems(r.json()["detail"])
    # the same as an uploaded file
    files = {"file": ("bad.geojson", io.BytesIO(json.dumps(bad_layer()).encode()), "application/geo+json")}
    r = client.post(f"/api/v1/layers/{key}/import", files=files, headers=h)
    assert r.status_code == 422, r.text
    assert_three_problems(r.json()["detail"])
    assert db_state(session) == before
    assert client.get(f"/api/v1/layers/{key}", headers=h).status_code == 404


def _cli() -> typer.Typer:
    from cityops.geo import cli

    app = typer.Typer()
    cli.register(app)
    return app


def test_bad_layer_rejected_whole_via_cli(session, tmp_path: Path):
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(bad_layer(), ensure_ascii=False), encoding="utf-8")
    key = new_key()
    before = db_state(session)
    res = CliRunner().invoke(_cli(), ["layer", "import", key, str(path)])
    assert res.exit_code == 1, res.output
    out = res.output
    assert "NOT imported: 3 problem(s)" in out
    assert "Self-intersection" in out and "overlap" in out and "missing required property 'name'" in out
    assert "features/0/geometry" in out and "features/3/properties/name" in out
    assert db_state(session) == before


def test_cli_imports_a_good_layer(session, tmp_path: Path):
    path = tmp_path / "good.geojson"
    path.write_text(json.dumps(good_layer()), encoding="utf-8")
    key = new_key()
    res = CliRunner().invoke(_cli(), ["layer", "import", key, str(path), "--name", "命令行图层"])
    assert res.exit_code == 0, res.output
    session.rollback()
    layer = session.scalar(select(GridLayer).where(GridLayer.key == key))
    assert layer is not None and layer.name == "命令行图层" and layer.feature_count == 3 and layer.source == "good.geojson"
    session.rollback()
    res = CliRunner().invoke(_cli(), ["layer", "import", key, str(tmp_path / "missing.geojson")])
    assert res.exit_code == 2


# ------------------------------------------------------------------ every kind of problem

@pytest.mark.parametrize("doc,type_,loc", [
    ({"type": "Feature"}, "geojson", ["type"]),
    ([1, 2], "geojson", ["type"]),
    (fc(), "empty", ["features"]),
    ({"type": "FeatureCollection", "features": {}}, "missing", ["features"]),
    (fc(feat("A", "a", sq(X0, Y0)), crs={"type": "name", "properties": {"name": "EPSG:3857"}}), "crs", ["crs"]),
    (fc(feat("A", "a", [[X0, Y0], [X0 + D, Y0]], gtype="LineString")), "geometry_type",
     ["features", 0, "geometry", "type"]),
    (fc({"type": "Feature", "properties": {"code": "A", "name": "a"}, "geometry": None}), "missing",
     ["features", 0, "geometry"]),
    (fc(feat("A", "a", [[[Y0, X0], [Y0, X0 + D], [Y0 + D, X0 + D], [Y0, X0]]])), "out_of_range",
     ["features", 0, "geometry", "coordinates", 0, 0]),
    (fc(feat("A", "a", [[[X0, Y0], [X0 + D, Y0], [X0 + D, Y0 + D], [X0, Y0 + D]]])), "geometry_invalid",
     ["features", 0, "geometry", "coordinates", 0]),
    (fc(feat("A", "a", [[[X0, Y0], [X0 + D, Y0], [X0, Y0]]])), "geometry_invalid",
     ["features", 0, "geometry", "coordinates", 0]),
    (fc(feat("A", "a", [[["x", Y0], [X0 + D, Y0], [X0 + D, Y0 + D], ["x", Y0]]])), "coordinates",
     ["features", 0, "geometry", "coordinates", 0]),
    (fc(feat("A", "a", sq(X0, Y0)), feat("A", "b", sq(X0 + D, Y0))), "duplicate", ["features", 1, "properties", "code"]),
    (fc(feat(None, "a", sq(X0, Y0))), "missing", ["features", 0, "properties", "code"]),
    (fc(feat("A", 5, sq(X0, Y0))), "type_error", ["features", 0, "properties", "name"]),
    (fc(feat("A" * 41, "a", sq(X0, Y0))), "too_long", ["features", 0, "properties", "code"]),
    (fc(feat("A", "a", sq(116.4, 39.9))), "outside_district", ["features", 0, "geometry"]),
])
def test_each_problem_is_named(session, doc, type_, loc):
    before = db_state(session)
    with pytest.raises(InvalidInput) as exc:
        layers.import_layer(session, SYSTEM, new_key(), doc)
    probs = [p.as_dict() for p in exc.value.problems]
    assert any(p["type"] == type_ and p["loc"] == loc for p in probs), probs
    assert db_state(session) == before


def test_partly_outside_names_the_area(session):
    # a square straddling the district's western edge (121.0205 E at ~31.04 N is outside)
    doc = fc(feat("EDGE", "边界", sq(121.00, 31.04, 0.05)))
    with pytest.raises(InvalidInput) as exc:
        layers.import_layer(session, SYSTEM, new_key(), doc)
    (p,) = [p.as_dict() for p in exc.value.problems]
    assert p["type"] == "outside_district" and p["area_m2"] > 1000 and p["location"]["lon"] < 121.1
    assert "outside the district" in p["msg"]


def test_overlap_below_tolerance_is_accepted(session):
    # 1e-6 degrees of overlap (~0.1 m x 220 m = ~20 m²): rejected at 1 m², accepted at 100 m²
    doc = fc(feat("A", "a", sq(X0, Y0)), feat("B", "b", sq(X0 + D - 1e-6, Y0)))
    with pytest.raises(InvalidInput):
        layers.import_layer(session, SYSTEM, new_key(), doc)
    res = layers.import_layer(session, SYSTEM, new_key(), doc, tolerance_m2=100)
    assert res["feature_count"] == 2


def test_unified_layer_cannot_be_imported(session):
    with pytest.raises(InvalidInput) as exc:
        layers.import_layer(session, SYSTEM, "city_ops", good_layer())
    assert exc.value.problems[0].loc == ["path", "key"]
    with pytest.raises(InvalidInput):
        layers.import_layer(session, SYSTEM, "Bad-Key", good_layer())


# ------------------------------------------------------------------ versions and reads

def test_reimport_replaces_with_a_new_version(client, session):
    user, pw = make_user(session, "geo_importer", ["district_commander"], area_code="310117")
    h = auth_headers(client, user, pw)
    key = new_key()
    r = client.post(f"/api/v1/layers/{key}/import", json=good_layer(3, "V1-"), params={"name": "版本图层"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["created"] is True and r.json()["feature_count"] == 3
    files = {"file": ("v2.geojson", json.dumps(good_layer(2, "V2-")).encode(), "application/geo+json")}
    r = client.post(f"/api/v1/layers/{key}/import", files=files, data={"description": "第二版"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["created"] is False and r.json()["name"] == "版本图层"
    cur = client.get(f"/api/v1/layers/{key}.geojson", headers=h).json()
    assert [f["properties"]["code"] for f in cur["features"]] == ["V2-000", "V2-001"] and cur["version"] == 2
    old = client.get(f"/api/v1/layers/{key}.geojson", params={"version": 1}, headers=h).json()
    assert [f["properties"]["code"] for f in old["features"]] == ["V1-000", "V1-001", "V1-002"]
    assert client.get(f"/api/v1/layers/{key}.geojson", params={"version": 3}, headers=h).status_code == 404
    # a failed re-import leaves version 2 current
    r = client.post(f"/api/v1/layers/{key}/import", json=bad_layer(), headers=h)
    assert r.status_code == 422
    info = client.get(f"/api/v1/layers/{key}", headers=h).json()
    assert info["version"] == 2 and info["feature_count"] == 2 and info["description"] == "第二版"
    assert info["source"] == "v2.geojson" and info["imported_by"] == user
    # the locate index picks the new layer up
    hit = client.get("/api/v1/grids/locate", params={"lat": Y0 + D / 2, "lon": X0 + D / 2}).json()
    assert {"layer": key, "code": "V2-000"}.items() <= next(x for x in hit["layers"] if x["layer"] == key).items()
    # the import is in the audit trail
    from cityops.security.models import AuditLog

    session.rollback()
    rows = session.scalars(select(AuditLog).where(AuditLog.action == "layer_import", AuditLog.object_id == key)).all()
    assert len(rows) == 2 and rows[0].username == user
    session.rollback()


def test_list_and_geojson_filters(client, session):
    user, pw = make_user(session, "geo_reader", ["supervisor"], area_code="310117001")
    h = auth_headers(client, user, pw)
    items = client.get("/api/v1/layers", headers=h).json()["items"]
    keys = [i["key"] for i in items]
    assert keys[0] == "city_ops" and items[0]["is_unified"] and items[0]["feature_count"] > 50
    assert {"policing", "governance"} <= set(keys)
    pol = client.get("/api/v1/layers/policing.geojson", headers=h).json()
    assert pol["type"] == "FeatureCollection" and len(pol["features"]) == next(
        i["feature_count"] for i in items if i["key"] == "policing")
    box = "121.20,31.02,121.23,31.04"
    some = client.get("/api/v1/layers/policing.geojson", params={"bbox": box}, headers=h).json()["features"]
    assert 0 < len(some) < len(pol["features"])
    grids = client.get("/api/v1/layers/city_ops.geojson", params={"code_prefix": "310117001"}, headers=h).json()
    assert grids["features"] and all(f["id"].startswith("310117001") for f in grids["features"])
    assert client.get("/api/v1/layers/policing.geojson", params={"bbox": "1,2,3"}, headers=h).status_code == 422
    assert client.get("/api/v1/layers/nosuchlayer.geojson", headers=h).status_code == 404


def test_access_rules(client, session):
    key = new_key()
    assert client.get("/api/v1/layers").status_code == 401
    assert client.post(f"/api/v1/layers/{key}/import", json=good_layer()).status_code == 401
    user, pw = make_user(session, "geo_reader", ["supervisor"], area_code="310117001")
    h = auth_headers(client, user, pw)
    assert client.get("/api/v1/layers", headers=h).status_code == 200
    assert client.get("/api/v1/layers/policing/topology", headers=h).status_code == 200
    r = client.post(f"/api/v1/layers/{key}/import", json=good_layer(), headers=h)
    assert r.status_code == 403
    # areas and locate stay public
    assert client.get("/api/v1/areas", params={"level": "street"}).status_code == 200


def test_malformed_uploads_are_4xx(client, session):
    user, pw = make_user(session, "geo_importer", ["district_commander"], area_code="310117")
    h = auth_headers(client, user, pw)
    url = f"/api/v1/layers/{new_key()}/import"
    assert client.post(url, content=b"{not json", headers={**h, "content-type": "application/json"}).status_code == 422
    assert client.post(url, content=b"", headers={**h, "content-type": "application/json"}).status_code == 422
    assert client.post(url, content="\udcff".encode("utf-8", "surrogatepass"),
                       headers={**h, "content-type": "application/json"}).status_code == 422
    r = client.post(url, files={"other": ("x.txt", b"{}", "text/plain")}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
