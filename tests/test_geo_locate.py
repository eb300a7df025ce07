"""Point -> grid lookup: the raster index answers exactly what a plain point-in-polygon check
answers, boundary points follow the smallest-code rule, and the service/API wrap it."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely.geometry import Polygon, box

from cityops.geo.locate import BOUNDARY, PolygonIndex


def plain(geoms, codes, lon, lat):
    """Reference: smallest code among the closed polygons covering each point (no index at all)."""
    order = np.argsort(np.asarray(codes, dtype=object))
    out = np.full(len(lon), -1)
    for rank, j in enumerate(order):
        hit = shapely.intersects_xy(geoms[j], lon, lat) & (out < 0)
        out[hit] = rank
    return out


D = 1 / 1024  # exact binary fractions: points below lie exactly on edges and corners
X0, Y0 = 121.25, 31.0


def squares(n=4, d=D, x0=X0, y0=Y0):
    codes, geoms = [], []
    for i in range(n):
        for j in range(n):
            codes.append(f"G{i:02d}{j:02d}")
            geoms.append(box(x0 + i * d, y0 + j * d, x0 + (i + 1) * d, y0 + (j + 1) * d))
    return codes, geoms


def test_shared_edge_and_corner_go_to_smallest_code():
    codes, geoms = squares()
    ix = PolygonIndex.build(codes, geoms, cell_m=7.0)
    # on the edge G0000|G0100, on the corner of G0000/G0001/G0100/G0101, on the outer edge, the
    # outer corner, outside, NaN, inside G0003
    lon = np.array([X0 + D, X0 + D, X0, X0, 121.3, np.nan, X0 + D / 2])
    lat = np.array([Y0 + D / 2, Y0 + D, Y0 + D / 2, Y0, Y0, Y0, Y0 + 3.5 * D])
    got = [ix.codes[i] if i >= 0 else None for i in ix.locate(lon, lat)]
    assert got == ["G0000", "G0000", "G0000", "G0000", None, None, "G0003"]
    corner = ix.locate(np.array([X0 + 2 * D]), np.array([Y0 + 2 * D]))
    assert ix.codes[corner[0]] == "G0101"  # G0101, G0102, G0201, G0202 share it
    # the same points answered without the raster
    assert ix.locate_exact(lon, lat).tolist() == ix.locate(lon, lat).tolist()


def test_random_and_boundary_points_agree_with_plain_check_on_demo(session):
    from cityops.geo import service

    ix = service.indexes(session).grids
    assert len(ix.codes) > 50
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = shapely.total_bounds(ix.geoms)
    lon = rng.uniform(minx, maxx, 20_000)
    lat = rng.uniform(miny, maxy, 20_000)
    # plus every vertex (exactly on boundaries: 2+ grids cover most of them)
    vxy = np.unique(shapely.get_coordinates(ix.geoms), axis=0)
    lon = np.concatenate([lon, vxy[:, 0]])
    lat = np.concatenate([lat, vxy[:, 1]])
    got = ix.locate(lon, lat)
    ref = plain(ix.geoms, list(ix.codes), lon, lat)  # ix.codes is sorted: ranks are indices
    assert np.array_equal(got, ref)
    assert (got[-len(vxy):] >= 0).all()  # every vertex of the tiling is inside some grid
    assert (ix.cells == BOUNDARY).any() and (ix.cells >= 0).any() and (ix.cells == -1).any()


def test_overlaps_holes_and_multipolygons():
    outer = box(0, 0, 10, 10)
    holed = Polygon(outer.exterior.coords, [box(4, 4, 6, 6).exterior.coords])
    multi = shapely.MultiPolygon([box(4, 4, 6, 6), box(20, 20, 21, 21)])
    over = box(8, 8, 12, 12)  # overlaps "holed" on [8,10]^2
    codes = ["B", "A", "C"]
    geoms = [holed, multi, over]
    ix = PolygonIndex.build(codes, geoms, cell_m=20_000.0)
    rng = np.random.default_rng(1)
    lon = np.concatenate([rng.uniform(-1, 22, 5000), [5, 9, 11, 20.5, 4, 15]])
    lat = np.concatenate([rng.uniform(-1, 22, 5000), [5, 9, 11, 20.5, 5, 15]])
    got = ix.locate(lon, lat)
    assert np.array_equal(got, plain(np.asarray(geoms, dtype=object), codes, lon, lat))
    named = [ix.codes[i] if i >= 0 else None for i in got[-6:]]
    # hole -> A; overlap -> B (smaller than C); C only; A's second part; hole edge: A and B -> A; nothing
    assert named == ["A", "B", "C", "A", "A", None]


@pytest.mark.parametrize("cell_m", [None, 3.0, 50.0, 400.0])
def test_cell_size_does_not_change_answers(cell_m):
    codes, geoms = squares(n=6)
    geoms = [shapely.affinity.rotate(g, 17, origin=(X0 + 3 * D, Y0 + 3 * D)) for g in geoms]
    ix = PolygonIndex.build(codes, geoms, cell_m=cell_m)
    rng = np.random.default_rng(3)
    lon = rng.uniform(X0 - 2 * D, X0 + 8 * D, 30_000)
    lat = rng.uniform(Y0 - 2 * D, Y0 + 8 * D, 30_000)
    assert np.array_equal(ix.locate(lon, lat), plain(np.asarray(geoms, dtype=object), codes, lon, lat))
    assert np.array_equal(ix.locate(lon, lat), ix.locate_exact(lon, lat))


def test_empty_index_and_empty_query():
    ix = PolygonIndex.build([], [])
    assert ix.locate(np.array([121.2]), np.array([31.0])).tolist() == [-1]
    codes, geoms = squares(n=2)
    assert PolygonIndex.build(codes, geoms).locate(np.array([]), np.array([])).shape == (0,)


def test_service_batch_function_and_lineage(session):
    from cityops.geo import service

    lon = np.array([121.22, 116.4, 121.22])
    lat = np.array([31.03, 39.9, 31.03])
    codes = service.grid_indices_for(session, lon, lat)
    assert codes[1] is None and codes[0] == codes[2] and len(codes[0]) == 15
    community, street = service.lineage(session, codes[0])
    assert community == codes[0][:12] and street == codes[0][:9]
    items = service.locate_many(session, lon, lat, with_layers=True)
    assert items[0]["grid_code"] == codes[0] and items[1]["inside"] is False
    assert {h["layer"] for h in items[0]["layers"]} >= {"city_ops", "policing", "governance"}


def test_batch_locate_api(client):
    r = client.post("/api/v1/grids/locate", json={"points": [
        {"lat": 31.03, "lon": 121.22, "id": "a"}, {"lat": 39.9, "lon": 116.4, "id": "b"}], "layers": True})
    assert r.status_code == 200
    body = r.json()
    assert body["outside"] == 1
    a, b = body["items"]
    assert a["id"] == "a" and a["inside"] and a["grid_code"].startswith(a["street_code"])
    assert {h["layer"] for h in a["layers"]} >= {"policing", "governance"}
    assert b["id"] == "b" and not b["inside"] and b["grid_code"] is None
    r = client.post("/api/v1/grids/locate", json={"points": [{"lat": 95, "lon": 121.2}]})
    assert r.status_code == 422
