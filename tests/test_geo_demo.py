"""The demo district generator: deterministic, hierarchical, topologically clean, plausible sizes."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cityops.geo import demo
from cityops.geo.topology import analyse


@pytest.fixture(scope="module")
def small():
    return demo.generate(small=True)


@pytest.fixture(scope="module")
def full():
    return demo.generate()


def _clean(codes, geoms, district):
    rep = analyse(codes, geoms, district, tolerance_m2=1.0, width_m=0.5)
    return rep


def test_deterministic(small):
    again = demo.generate(small=True)
    assert [a.code for a in again.areas] == [a.code for a in small.areas]
    assert all(shapely.equals_exact(a.geom, b.geom, 0) for a, b in zip(again.areas, small.areas, strict=True))
    assert [a.population for a in again.areas] == [a.population for a in small.areas]


def test_hierarchy_tiles_parents_exactly(small):
    by_parent: dict[str, list] = {}
    for a in small.areas:
        if a.parent_code:
            by_parent.setdefault(a.parent_code, []).append(a.geom)
    for a in small.areas:
        kids = by_parent.get(a.code)
        if not kids:
            continue
        arr = np.asarray(kids, dtype=object)
        assert shapely.coverage_is_valid(arr), a.code
        assert shapely.coverage_union_all(arr).equals(a.geom), a.code
    for a in small.areas:
        if a.parent_code:
            assert a.code.startswith(a.parent_code) and len(a.code) == len(a.parent_code) + 3


def test_full_district_is_clean_and_plausible(full):
    district = full.by_level("district")[0]
    grids = full.by_level("grid")
    assert 2700 <= len(grids) <= 3400
    assert 280 <= len(full.by_level("community")) <= 320
    assert 590e6 <= district.area_m2 <= 615e6
    rep = _clean([g.code for g in grids], [g.geom for g in grids], district.geom)
    assert rep["clean"], rep["counts"]
    assert rep["coverage_valid"]
    assert rep["below_tolerance"]["gaps"] == 0 and rep["below_tolerance"]["overlaps"] == 0
    for key, (_n, _e, lgrids) in full.layers.items():
        r = _clean([g.code for g in lgrids], [g.geom for g in lgrids], district.geom)
        assert r["clean"] and r["coverage_valid"], (key, r["counts"])
        # covers exactly the same ground as the unit grids
        assert shapely.coverage_union_all(np.asarray([g.geom for g in lgrids], dtype=object)).equals(district.geom)
    # street/town sizes follow the published areas (scaled to the outline): 岳阳 ~5.8 km², 佘山 ~74.7 km²
    streets = {s.code: s for s in full.by_level("street")}
    total = sum(v for v, _known in demo.STREET_AREA_KM2.values())
    for code, (km2, _known) in demo.STREET_AREA_KM2.items():
        want = km2 / total * district.area_m2
        assert abs(streets[code].area_m2 - want) / want < 0.05, (code, streets[code].area_m2 / 1e6, want / 1e6)
    assert sum(a.population for a in grids) == district.population
    assert abs(district.population - demo.TOTAL_POPULATION) / demo.TOTAL_POPULATION < 0.001


def test_small_is_small_but_covers_the_district(small):
    grids = small.by_level("grid")
    district = small.by_level("district")[0]
    assert 100 <= len(grids) <= 250
    rep = _clean([g.code for g in grids], [g.geom for g in grids], district.geom)
    assert rep["clean"], rep["counts"]
