"""Crosswalk between a layer and the unified grid.

Acceptance: shares sum to 1 (+-1e-6) for every unified grid fully covered by the other layer
(demo police and governance layers). "Fully covered" is checked here independently with
shapely (the unified grid lies within the union of the layer's grids)."""

from __future__ import annotations

import csv
import io
import uuid

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from cityops.geo import crosswalk, layers
from cityops.geo.geom import area_m2
from cityops.security.principal import SYSTEM
from tests.helpers import auth_headers, make_user


@pytest.fixture()
def reader(client, session):
    user, pw = make_user(session, "geo_reader", ["supervisor"], area_code="310117001")
    return auth_headers(client, user, pw)


def _all_items(client, h, key, **params):
    items, page = [], 1
    while True:
        r = client.get(f"/api/v1/layers/{key}/crosswalk", params={**params, "page": page, "page_size": 50}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        if page * 50 >= body["total"]:
            return body, items
        page += 1


@pytest.mark.parametrize("key", ["policing", "governance"])
def test_shares_sum_to_one_for_fully_covered_grids(client, session, reader, key):
    body, items = _all_items(client, reader, key)
    _, grids = layers.layer_features(session, "city_ops")
    _, feats = layers.layer_features(session, key)
    session.rollback()
    assert body["total"] == len(grids) == len(items)
    union = shapely.union_all([f["geom"] for f in feats])
    shapely.prepare(union)
    geom_of = {g["code"]: g["geom"] for g in grids}
    names = {f["code"] for f in feats}
    checked = 0
    for it in items:
        covered = shapely.covered_by(geom_of[it["grid_code"]], union)
        if not covered:
            continue
        checked += 1
        assert it["fully_covered"]
        assert abs(sum(p["share"] for p in it["parts"]) - 1.0) <= 1e-6, it
        assert all(p["code"] in names and 0 < p["share"] <= 1 + 1e-12 for p in it["parts"])
    assert checked == len(items)  # the demo layers cover the whole district
    # the layers deliberately do not align: many unified grids are split between 2+ layer grids
    assert sum(len(it["parts"]) > 1 for it in items) > 0.1 * len(items)


def test_intersection_areas_are_right(session):
    cw = crosswalk.crosswalk_page(session, SYSTEM, "policing", page_size=20)
    _, grids = layers.layer_features(session, "city_ops")
    _, feats = layers.layer_features(session, "policing")
    session.rollback()
    g = {x["code"]: x["geom"] for x in grids}
    f = {x["code"]: x["geom"] for x in feats}
    for it in cw["items"]:
        assert it["grid_area_m2"] == pytest.approx(area_m2(g[it["grid_code"]]), rel=1e-9, abs=1e-3)
        for p in it["parts"]:
            want = area_m2(shapely.intersection(g[it["grid_code"]], f[p["code"]]))
            assert p["area_m2"] == pytest.approx(want, rel=1e-6, abs=1e-3)
            assert p["share_of_layer_grid"] == pytest.approx(want / area_m2(f[p["code"]]), rel=1e-6, abs=1e-9)


def test_prefix_filter_pagination_and_csv(client, reader):
    body = client.get("/api/v1/layers/governance/crosswalk", params={"code_prefix": "310117001", "page_size": 2},
                      headers=reader).json()
    assert body["total"] > 2 and len(body["items"]) == 2
    assert all(it["grid_code"].startswith("310117001") for it in body["items"])
    page2 = client.get("/api/v1/layers/governance/crosswalk", params={"code_prefix": "310117001", "page_size": 2,
                                                                     "page": 2}, headers=reader).json()
    assert page2["items"][0]["grid_code"] > body["items"][-1]["grid_code"]
    r = client.get("/api/v1/layers/governance/crosswalk.csv", params={"code_prefix": "310117001"}, headers=reader)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for spreadsheet programs
    from cityops.exports import csv_unwrap  # long codes are written ="…" so spreadsheets keep them as text

    rows = [{k: csv_unwrap(v) for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline=""))]
    assert rows and all(row["grid_code"].startswith("310117001") and row["layer"] == "governance" for row in rows)
    sums: dict[str, float] = {}
    for row in rows:
        sums[row["grid_code"]] = sums.get(row["grid_code"], 0.0) + float(row["share"])
    assert len(sums) == body["total"]
    assert all(abs(v - 1) <= 1e-6 for v in sums.values())
    assert any("网格" in row["grid_name"] for row in rows)  # Chinese names survive
    assert client.get("/api/v1/layers/governance/crosswalk.csv").status_code == 401
    assert client.get("/api/v1/layers/nosuch/crosswalk", headers=reader).status_code == 404


def test_partial_layer_is_not_fully_covered(session):
    # a layer of one square around the centre: grids it cuts are partly covered, shares < 1
    key = "t_" + uuid.uuid4().hex[:10]
    sq = box(121.215, 31.025, 121.225, 31.035)
    layers.import_layer(session, SYSTEM, key, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "ONE", "name": "一"}, "geometry": shapely.geometry.mapping(sq)}]})
    cw = crosswalk.compute(session, key)
    session.rollback()
    items = [cw.item(k) for k in range(len(cw.grid_codes))]
    touched = [it for it in items if it["parts"]]
    assert touched
    partial = [it for it in touched if not it["fully_covered"]]
    assert partial and all(it["covered_share"] < 1 - 1e-6 for it in partial)
    for it in partial:
        assert it["uncovered_m2"] == pytest.approx(it["grid_area_m2"] * (1 - it["covered_share"]), rel=1e-6, abs=1e-3)
    full = [it for it in touched if it["fully_covered"]]
    assert all(abs(it["covered_share"] - 1) < 1e-9 for it in full)
    untouched = [it for it in items if not it["parts"]]
    assert all(not it["fully_covered"] and it["covered_share"] == 0 for it in untouched)
    total = sum(p["area_m2"] for it in touched for p in it["parts"])
    assert total == pytest.approx(area_m2(sq), rel=1e-6)  # the square lies inside the district
    assert np.all(np.diff(cw.pair_g) >= 0)
