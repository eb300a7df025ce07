"""Topology report: gaps, overlaps, slivers and features outside the district, each located."""

from __future__ import annotations

import uuid

import pytest
import shapely
from shapely.geometry import box

from cityops.geo import layers
from cityops.geo.geom import area_m2
from cityops.geo.topology import analyse
from cityops.security.principal import SYSTEM
from tests.helpers import auth_headers, make_user

X0, Y0, D = 121.215, 31.025, 0.002
M = 1e-5  # ~1 m in degrees
TAIL_W = 3e-6  # degrees of longitude: ~0.29 m
TAIL_L = 100 / 110_950  # degrees of latitude: ~100 m


def test_analyse_finds_and_locates_each_kind():
    district = box(X0, Y0, X0 + 4 * D, Y0 + 2 * D)
    geoms = [
        box(X0, Y0, X0 + D, Y0 + D),                        # A
        box(X0 + D - 20 * M, Y0, X0 + 2 * D, Y0 + D),       # B: overlaps A by a ~20 m strip
        box(X0 + 2 * D, Y0, X0 + 3 * D, Y0 + D),            # C
        # D: a square with a ~0.29 m wide, 100 m long tail; plus a tiny ~2 m x 2 m island
        shapely.MultiPolygon([shapely.union(box(X0 + 3 * D, Y0, X0 + 4 * D, Y0 + D),
                                            box(X0 + 4 * D - 100 * M, Y0 + D, X0 + 4 * D - 100 * M + TAIL_W,
                                                Y0 + D + TAIL_L)),
                              box(X0 + 3.5 * D, Y0 + 1.5 * D, X0 + 3.5 * D + 2 * M, Y0 + 1.5 * D + 2 * M)]),
        box(X0, Y0 + D, X0 + 2 * D, Y0 + 2 * D),            # E
        box(X0 + 2 * D, Y0 + D, X0 + 3 * D, Y0 + 2.5 * D),  # F: sticks out of the district to the north
    ]
    codes = ["A", "B", "C", "D", "E", "F"]
    rep = analyse(codes, geoms, district, tolerance_m2=1.0, width_m=0.5)
    assert not rep["clean"]
    (ov,) = rep["overlaps"]
    assert ov["codes"] == ["A", "B"]
    want = area_m2(box(X0 + D - 20 * M, Y0, X0 + D, Y0 + D))
    assert ov["area_m2"] == pytest.approx(want, rel=1e-6)
    assert X0 + D - 20 * M <= ov["lon"] <= X0 + D and Y0 <= ov["lat"] <= Y0 + D
    # the gap: the north-east block not covered by D (minus D's tail and island)
    assert len(rep["gaps"]) == 1
    gap = rep["gaps"][0]
    assert X0 + 3 * D <= gap["lon"] <= X0 + 4 * D and Y0 + D <= gap["lat"] <= Y0 + 2 * D
    assert gap["area_m2"] == pytest.approx(area_m2(box(X0 + 3 * D, Y0 + D, X0 + 4 * D, Y0 + 2 * D)), rel=0.01)
    kinds = {(s["code"], s["kind"]) for s in rep["slivers"]}
    assert kinds == {("D", "tiny"), ("D", "thin")}
    thin = next(s for s in rep["slivers"] if s["kind"] == "thin")
    tail = box(X0 + 4 * D - 100 * M, Y0 + D, X0 + 4 * D - 100 * M + TAIL_W, Y0 + D + TAIL_L)
    assert thin["area_m2"] == pytest.approx(area_m2(tail), rel=0.02)
    assert Y0 + D <= thin["lat"] <= Y0 + D + TAIL_L
    (out,) = rep["outside"]
    assert out["code"] == "F" and out["lat"] > Y0 + 2 * D
    assert out["area_m2"] == pytest.approx(area_m2(box(X0 + 2 * D, Y0 + 2 * D, X0 + 3 * D, Y0 + 2.5 * D)), rel=1e-6)
    assert rep["counts"] == {"gaps": 1, "overlaps": 1, "slivers": 2, "outside": 1, "invalid": 0}


def test_below_tolerance_is_counted_not_listed():
    district = box(X0, Y0, X0 + 2 * D, Y0 + D)
    geoms = [box(X0, Y0, X0 + D + 1e-7, Y0 + D), box(X0 + D, Y0, X0 + 2 * D - 1e-7, Y0 + D)]
    rep = analyse(["A", "B"], geoms, district, tolerance_m2=50.0, width_m=0.0)
    assert rep["clean"]
    assert rep["below_tolerance"]["overlaps"] == 1 and rep["below_tolerance"]["gaps"] == 1
    assert 0 < rep["below_tolerance"]["overlap_area_m2"] < 50
    rep = analyse(["A", "B"], geoms, district, tolerance_m2=0.1, width_m=0.0)
    assert rep["counts"]["overlaps"] == 1 and rep["counts"]["gaps"] == 1


def test_invalid_geometry_is_reported():
    bowtie = shapely.Polygon([(X0, Y0), (X0 + D, Y0 + D), (X0 + D, Y0), (X0, Y0 + D), (X0, Y0)])
    rep = analyse(["A"], [bowtie], None, tolerance_m2=1.0, width_m=0.5)
    (inv,) = rep["invalid"]
    assert inv["reason"] == "Self-intersection"
    assert inv["lon"] == pytest.approx(X0 + D / 2) and inv["lat"] == pytest.approx(Y0 + D / 2)


def test_demo_unified_grid_and_layers_are_clean_via_api(client, session):
    user, pw = make_user(session, "geo_reader", ["supervisor"], area_code="310117001")
    h = auth_headers(client, user, pw)
    for key in ("city_ops", "policing", "governance"):
        r = client.get(f"/api/v1/layers/{key}/topology", headers=h)
        assert r.status_code == 200, r.text
        rep = r.json()
        assert rep["clean"] and rep["coverage_valid"], (key, rep["counts"])
        assert rep["covered_area_m2"] == pytest.approx(rep["district_area_m2"], rel=1e-9)
    assert client.get("/api/v1/layers/nosuch/topology", headers=h).status_code == 404


def test_imported_layer_with_a_gap(client, session):
    user, pw = make_user(session, "geo_importer", ["district_commander"], area_code="310117")
    h = auth_headers(client, user, pw)
    key = "t_" + uuid.uuid4().hex[:10]
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "A", "name": "甲"},
         "geometry": shapely.geometry.mapping(box(X0, Y0, X0 + D, Y0 + D))}]}
    assert client.post(f"/api/v1/layers/{key}/import", json=doc, headers=h).status_code == 200
    rep = client.get(f"/api/v1/layers/{key}/topology", headers=h).json()
    (gap,) = rep["gaps"]  # the district minus one 200 m square: one gap with a hole
    assert gap["area_m2"] == pytest.approx(rep["district_area_m2"] - rep["covered_area_m2"], rel=1e-6)
    assert rep["features"] == 1 and rep["version"] == 1
    # also through the service, with a tolerance larger than the gap nothing is listed
    from cityops.geo.topology import topology_report

    big = topology_report(session, SYSTEM, key, tolerance_m2=1e9)
    session.rollback()
    assert big["clean"] and big["below_tolerance"]["gaps"] == 1
    assert layers.get_layer(session, key).version == 1
    session.rollback()
