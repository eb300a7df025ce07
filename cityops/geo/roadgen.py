"""Deterministic generator of the demo district's base map: roads, water and named places.

SYNTHETIC, like the district's streets and grids (``cityops.geo.demo``), but shaped after the real
Songjiang: the expressways G60 沪昆高速, G15 沈海高速 and S32 申嘉湖高速 and the trunk roads
G320 沪杭公路 and 沪松公路 follow approximate hand-placed waypoints; the 黄浦江 (Huangpu) crosses the
south with its source rivers 斜塘, 圆泄泾 and 大泖港, and the canals 油墩港, 通波塘, 洞泾港 and
泗泾塘 run to it. Around them:

* primary roads join the centres of neighbouring streets/towns (the Gabriel graph of the
  centres: a pair is joined when no other centre lies in the circle on their segment),
  named after the two places (泗泾 + 洞泾 -> 泗洞公路);
* the new city (the six 街道) gets a grid of secondary roads every 800 m with local roads
  between them (block structure 200/400/200 m), a third of the old town's (岳阳) local roads
  one-way;
* each town gets a jittered lattice of local roads (520 m in the denser towns, 950 m village
  roads elsewhere, some segments left out) named after the community they cross;
* local roads stop at the Huangpu and its source rivers (only secondary and larger roads
  bridge them); expressways connect only to trunk/primary roads and each other (interchanges);
  all other roads are joined wherever they cross (a shared vertex, OpenStreetMap topology);
  pieces not connected to the main network are dropped.

Places: every street/town centre, every community (its representative point), a few
landmarks at approximate positions (``approximate=True``; not surveyed) and, per street/town,
its government office, health centre, school and a park/square near the centre.

All work is in UTM 51N and stored in WGS-84 (1e-7 degree grid). The same seed gives the same map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from cityops.geo.demo import STREETS, DemoDistrict
from cityops.geo.geom import GRID_SIZE, TO_UTM, to_utm, to_wgs
from cityops.geo.network import line_components

SPEED_KMH = {"motorway": 100.0, "trunk": 70.0, "primary": 60.0, "secondary": 50.0, "tertiary": 40.0,
             "residential": 30.0, "unclassified": 30.0}
_MAJOR = {"motorway", "trunk", "primary"}
_LOCAL = {"tertiary", "residential", "unclassified"}

# (ref, name, name_en, kind, speed, waypoints lon/lat)
_ARTERIES: list[tuple[str, str, str, str, float, list[tuple[float, float]]]] = [
    ("G60", "G60沪昆高速", "G60 Shanghai-Kunming Expressway", "motorway", 120.0,
     [(121.00, 30.975), (121.08, 30.995), (121.15, 31.013), (121.205, 31.021), (121.26, 31.034),
      (121.31, 31.047), (121.39, 31.072)]),
    ("G15", "G15沈海高速", "G15 Shenyang-Haikou Expressway", "motorway", 120.0,
     [(121.352, 31.18), (121.338, 31.11), (121.322, 31.05), (121.31, 30.99), (121.303, 30.93),
      (121.298, 30.88)]),
    ("S32", "S32申嘉湖高速", "S32 Shanghai-Jiaxing-Huzhou Expressway", "motorway", 100.0,
     [(121.00, 30.921), (121.09, 30.928), (121.18, 30.924), (121.25, 30.916), (121.39, 30.905)]),
    ("G320", "沪杭公路", "Huhang Highway (G320)", "trunk", 70.0,
     [(121.39, 31.02), (121.33, 31.003), (121.258, 31.005), (121.215, 30.995), (121.17, 30.99),
      (121.127, 30.984), (121.069, 30.938), (121.00, 30.915)]),
    ("", "沪松公路", "Husong Highway", "trunk", 70.0,
     [(121.228, 31.010), (121.245, 31.05), (121.264, 31.124), (121.30, 31.129), (121.322, 31.127),
      (121.39, 31.14)]),
]

# (name, width m, waypoints) — the first four are the Huangpu and its source rivers (no local bridges)
_RIVERS: list[tuple[str, str, float, list[tuple[float, float]]]] = [
    ("黄浦江", "Huangpu River", 360.0, [(121.125, 30.966), (121.17, 30.962), (121.21, 30.966), (121.25, 30.962),
                                      (121.29, 30.957), (121.33, 30.955), (121.40, 30.962)]),
    ("斜塘", "Xietang", 180.0, [(121.00, 30.985), (121.05, 30.978), (121.09, 30.972), (121.125, 30.966)]),
    ("圆泄泾", "Yuanxiejing", 180.0, [(121.03, 30.90), (121.07, 30.925), (121.10, 30.948), (121.125, 30.966)]),
    ("大泖港", "Damaogang", 150.0, [(121.15, 30.88), (121.158, 30.915), (121.166, 30.94), (121.17, 30.962)]),
    ("油墩港", "Youdungang", 60.0, [(121.168, 31.17), (121.172, 31.10), (121.17, 31.04), (121.176, 30.966)]),
    ("通波塘", "Tongbotang", 45.0, [(121.205, 31.13), (121.218, 31.08), (121.226, 31.035), (121.222, 30.995),
                                   (121.225, 30.966)]),
    ("洞泾港", "Dongjinggang", 45.0, [(121.266, 31.17), (121.27, 31.10), (121.278, 31.04), (121.283, 30.958)]),
    ("泗泾塘", "Sijingtang", 40.0, [(121.17, 31.118), (121.215, 31.121), (121.262, 31.128), (121.31, 31.133),
                                   (121.37, 31.137)]),
]
_NO_LOCAL_BRIDGE = 4
# (name, name_en, centre lon/lat, radius m)
_LAKES = [("月湖", "Yuehu Lake", (121.197, 31.092), 420.0), ("松江新城中央湖", "Central Lake", (121.228, 31.045), 300.0),
          ("广富林湖", "Guangfulin Lake", (121.212, 31.066), 260.0)]
# (name, name_en, kind, lon, lat): approximate positions of real places (not surveyed)
_LANDMARKS = [
    ("松江区人民政府", "Songjiang District Government", "government", 121.227, 31.032),
    ("佘山国家森林公园", "Sheshan National Forest Park", "park", 121.193, 31.098),
    ("上海辰山植物园", "Shanghai Chenshan Botanical Garden", "park", 121.183, 31.080),
    ("广富林文化遗址", "Guangfulin Cultural Site", "attraction", 121.214, 31.070),
    ("醉白池公园", "Zuibaichi Park", "park", 121.238, 31.012),
    ("方塔园", "Square Pagoda Park", "park", 121.240, 31.004),
    ("松江大学城", "Songjiang University Town", "university", 121.212, 31.050),
    ("松江南站", "Songjiang South Railway Station", "station", 121.229, 30.983),
    ("上海影视乐园", "Shanghai Film Park", "attraction", 121.300, 30.995),
    ("泰晤士小镇", "Thames Town", "attraction", 121.196, 31.030),
    ("松江区中心医院", "Songjiang Central Hospital", "hospital", 121.240, 31.020),
]
_EW = ["荣乐路", "乐都路", "中山路", "玉树路", "文诚路", "广富林路", "思贤路", "龙源路", "文翔路", "新松江路", "茸平路",
       "梅家浜路", "江学路", "北翠路", "谷水路", "沪亭路"]
_NS = ["人民路", "谷阳路", "三新路", "西林路", "茸梅路", "嘉松路", "辰花路", "九峰路", "白粮路", "龙兴路", "长塔路",
       "銮和路", "松汇路", "洞薛路", "涞亭路", "九新路"]
_SYL1 = list("新东西南北中长永兴和康泰乐安华明祥丰富春秋松泖云佘辰广九洞泗叶浜昆")
_SYL2 = list("桥浜泾塘港湾园苑林湖山坊河景溪庄")
_VARIANTS = ["", "东", "西", "南", "北", "支", "一", "二", "三"]


@dataclass
class BasemapFeature:
    layer: str  # roads / water / places
    code: str
    name: str | None
    kind: str
    geom: BaseGeometry  # WGS-84
    name_en: str | None = None
    speed_kmh: float | None = None
    oneway: int = 0
    properties: dict[str, Any] = field(default_factory=dict)


def _utm(lonlat: list[tuple[float, float]]) -> np.ndarray:
    a = np.asarray(lonlat, dtype=float)
    x, y = TO_UTM.transform(a[:, 0], a[:, 1])
    return np.column_stack([x, y])


def _smooth(pts: np.ndarray, rng: np.random.Generator, wiggle: float, step: float = 120.0) -> np.ndarray:
    """A smooth curve through ``pts`` (Catmull-Rom, ``step`` metres) with a gentle sideways meander
    of amplitude ``wiggle`` metres."""
    p = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        n = max(2, int(np.hypot(*(p2 - p1)) // step))
        t = np.linspace(0, 1, n, endpoint=False)[:, None]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(pts[-1:])
    c = np.vstack(out)
    if wiggle > 0 and len(c) > 2:
        d = np.gradient(c, axis=0)
        nrm = np.column_stack([-d[:, 1], d[:, 0]]) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        s = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(c, axis=0).T))])
        phase, wave = rng.uniform(0, 2 * np.pi, 2), rng.uniform(2500, 5000, 2)
        off = wiggle * (np.sin(s / wave[0] * 2 * np.pi + phase[0]) + 0.5 * np.sin(s / wave[1] * 2 * np.pi + phase[1]))
        off[0] = off[-1] = 0.0
        c = c + nrm * off[:, None]
    return c


def _parts(g: BaseGeometry, min_len: float) -> list[LineString]:
    return [p for p in shapely.get_parts(shapely.line_merge(g) if g.geom_type == "MultiLineString" else g)
            if p.geom_type == "LineString" and p.length >= min_len]


class _Names:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def unique(self, base: str, suffix: str = "路") -> str:
        for v in _VARIANTS:
            n = f"{base}{v}{suffix}"
            if n not in self.used:
                self.used.add(n)
                return n
        return self.fresh(suffix)

    def fresh(self, suffix: str = "路") -> str:
        for _ in range(2000):
            base = str(self.rng.choice(_SYL1)) + str(self.rng.choice(_SYL2))
            n = base + suffix
            if n not in self.used:
                self.used.add(n)
                return n
        raise RuntimeError("road name space exhausted")


@dataclass
class _Road:
    line: BaseGeometry  # UTM
    kind: str
    name: str | None
    name_en: str | None = None
    ref: str = ""
    speed: float = 0.0
    oneway: int = 0


def _centres(district: DemoDistrict) -> dict[str, np.ndarray]:
    out = {}
    by_code = {a.code: a for a in district.by_level("street")}
    for code, _name, _kind, (lat, lon), *_ in STREETS:
        poly = to_utm(by_code[code].geom)
        p = _utm([(lon, lat)])[0]
        if not poly.contains(Point(p)):
            q = poly.point_on_surface()
            p = np.array([q.x, q.y])
        out[code] = p
    return out


def _gabriel(pts: np.ndarray) -> list[tuple[int, int]]:
    n = len(pts)
    edges = []
    for i in range(n):
        for j in range(i + 1, n):
            mid, r2 = (pts[i] + pts[j]) / 2, ((pts[i] - pts[j]) ** 2).sum() / 4
            others = np.delete(np.arange(n), [i, j])
            if not (((pts[others] - mid) ** 2).sum(1) < r2).any():
                edges.append((i, j))
    return edges


def _lattice(poly: BaseGeometry, rng: np.random.Generator, spacing: float, jitter: float, dropout: float,
             angle: float, origin: np.ndarray | None = None) -> list[tuple[np.ndarray, int, int]]:
    """Runs of kept lattice segments over ``poly``'s box: (points, axis, line index)."""
    minx, miny, maxx, maxy = poly.bounds
    c = origin if origin is not None else np.array([(minx + maxx) / 2, (miny + maxy) / 2])
    r = np.hypot(maxx - minx, maxy - miny) / 2 + spacing
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-np.sin(angle), np.cos(angle)])
    k = np.arange(-int(r // spacing) - 1, int(r // spacing) + 2)
    gi, gj = np.meshgrid(k, k, indexing="ij")
    pts = c + (gi[..., None] * u + gj[..., None] * v) * spacing
    pts = pts + rng.uniform(-jitter, jitter, pts.shape) * spacing
    runs = []
    for axis in (0, 1):
        grid = pts if axis == 0 else pts.transpose(1, 0, 2)
        keep = rng.random(grid.shape[:2]) >= dropout  # segment from [a, b] to [a+1, b]
        for b in range(grid.shape[1]):
            a = 0
            while a < grid.shape[0] - 1:
                if not keep[a, b]:
                    a += 1
                    continue
                start = a
                while a < grid.shape[0] - 1 and keep[a, b]:
                    a += 1
                runs.append((grid[start:a + 1, b], axis, b))
    return runs


def _clip(line: np.ndarray, poly: BaseGeometry, min_len: float) -> list[LineString]:
    return _parts(shapely.intersection(LineString(line), poly), min_len)


def _roads(district: DemoDistrict, rng: np.random.Generator, outline: BaseGeometry,
           big_water: BaseGeometry) -> list[_Road]:
    names = _Names(rng)
    roads: list[_Road] = []
    for ref, name, name_en, kind, speed, wp in _ARTERIES:
        names.used.add(name)
        for part in _parts(shapely.intersection(LineString(_smooth(_utm(wp), rng, 80.0)), outline), 300.0):
            roads.append(_Road(part, kind, name, name_en, ref, speed))
    centres = _centres(district)
    codes = list(centres)
    label = {code: name[:2] for code, name, *_ in STREETS}
    pts = np.array([centres[c] for c in codes])
    for i, j in _gabriel(pts):
        base = label[codes[i]][0] + label[codes[j]][0]
        line = _smooth(np.array([pts[i], (pts[i] + pts[j]) / 2 + rng.normal(0, 150, 2), pts[j]]), rng, 50.0)
        line[0], line[-1] = pts[i], pts[j]
        roads.append(_Road(shapely.intersection(LineString(line), outline), "primary", names.unique(base, "公路")))

    streets = {a.code: to_utm(a.geom) for a in district.by_level("street")}
    density = {code: dens for code, _n, _k, _c, _m, dens in STREETS}
    communities = [(a.name.removesuffix("居委会").removesuffix("村"), to_utm(a.geom)) for a in district.by_level("community")]
    ctree = shapely.STRtree([g for _n, g in communities])
    urban_codes = [c for c, *_ in STREETS if c[6] == "0"]
    urban = shapely.union_all([streets[c] for c in urban_codes])
    theta = np.deg2rad(8.0)
    origin = centres["310117001"]
    # secondary grid of the new city, local roads between (no jitter, no dropout)
    counters = [0, 0]
    old_town = streets["310117001"]
    for spacing, offset, kind in ((800.0, 0.0, "secondary"), (800.0, 200.0, "residential"), (800.0, 600.0, "residential")):
        shift = origin + offset * np.array([np.cos(theta) - np.sin(theta), np.sin(theta) + np.cos(theta)])
        for line, axis, b in _lattice(urban, rng, spacing, 0.0, 0.0, theta, shift):
            parts = _clip(line, urban, 150.0)
            if not parts:
                continue
            line_name = None
            if kind == "secondary":
                pool = _EW if axis == 0 else _NS
                k = counters[axis]
                counters[axis] += 1
                line_name = names.unique(pool[k].removesuffix("路")) if k < len(pool) else names.fresh()
            for part in parts:
                nm = line_name or _community_name(part, communities, ctree, names)
                if kind == "secondary" or not old_town.intersects(part):
                    roads.append(_Road(part, kind, nm))
                    continue
                # the old town's local roads: a third of them one-way, alternating directions
                oneway = (1 if b % 2 else -1) if rng.random() < 0.33 else 0
                for piece in _parts(shapely.intersection(part, old_town), 50.0):
                    roads.append(_Road(piece, kind, nm, oneway=oneway))
                for piece in _parts(shapely.difference(part, old_town), 50.0):
                    roads.append(_Road(piece, kind, nm))
    for code, poly in streets.items():
        if code in urban_codes:
            continue
        dense = density[code] >= 3000
        spacing, dropout = (520.0, 0.15) if dense else (820.0, 0.22)
        for line, _axis, b in _lattice(poly, rng, spacing, 0.12, dropout, rng.uniform(-0.35, 0.35)):
            for part in _clip(line, poly, 120.0):
                kind = "tertiary" if b % 3 == 0 else ("residential" if dense else "unclassified")
                named = kind != "unclassified" or rng.random() < 0.7
                roads.append(_Road(part, kind, _community_name(part, communities, ctree, names) if named else None))
    # local roads stop at the Huangpu and its source rivers
    shapely.prepare(big_water)
    out: list[_Road] = []
    for r in roads:
        r.speed = r.speed or SPEED_KMH[r.kind]
        if r.kind in _LOCAL and big_water.intersects(r.line):
            out += [_Road(p, r.kind, r.name, r.name_en, r.ref, r.speed, r.oneway)
                    for p in _parts(shapely.difference(r.line, big_water.buffer(15.0)), 120.0)]
        else:
            out += [_Road(p, r.kind, r.name, r.name_en, r.ref, r.speed, r.oneway) for p in _parts(r.line, 120.0)]
    return out


def _community_name(part: BaseGeometry, communities: list[tuple[str, BaseGeometry]], tree: shapely.STRtree,
                    names: _Names) -> str:
    hit = tree.query(part.interpolate(0.5, normalized=True), predicate="intersects")
    if len(hit):
        return names.unique(communities[int(hit[0])][0])
    return names.fresh()


def _connects(a: str, b: str) -> bool:
    """Crossing roads of these classes meet at a junction (expressways only at interchanges)."""
    if "motorway" in (a, b):
        return (a in _MAJOR) and (b in _MAJOR)
    return True


def _node(roads: list[_Road]) -> list[BaseGeometry]:
    """Insert a shared vertex wherever two connecting roads cross."""
    geoms = np.asarray([r.line for r in roads], dtype=object)
    kinds = [r.kind for r in roads]
    ia, ib = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = ia < ib
    ia, ib = ia[keep], ib[keep]
    ok = np.array([_connects(kinds[a], kinds[b]) for a, b in zip(ia, ib, strict=True)], dtype=bool)
    ia, ib = ia[ok], ib[ok]
    inter = shapely.intersection(geoms[ia], geoms[ib])
    pts: list[list[BaseGeometry]] = [[] for _ in roads]
    for a, b, g in zip(ia, ib, inter, strict=True):
        ps = [p for p in shapely.get_parts(g) if p.geom_type == "Point"]
        pts[a] += ps
        pts[b] += ps
    out = []
    for g, ps in zip(geoms, pts, strict=True):
        out.append(shapely.snap(g, MultiPoint(ps), 1e-3) if ps else g)
    return out


def _water(rng: np.random.Generator, outline: BaseGeometry) -> tuple[list[tuple[str, str, str, BaseGeometry]], BaseGeometry]:
    feats = []
    big = []
    for i, (name, name_en, width, wp) in enumerate(_RIVERS):
        line = LineString(_smooth(_utm(wp), rng, min(110.0, width * 1.5)))
        poly = shapely.intersection(line.buffer(width / 2, cap_style="flat", quad_segs=4), outline)
        if poly.is_empty:
            continue
        feats.append((name, name_en, "river" if width >= 100 else "canal", poly))
        if i < _NO_LOCAL_BRIDGE:
            big.append(poly)
    for name, name_en, (lon, lat), radius in _LAKES:
        c = _utm([(lon, lat)])[0]
        a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        h = rng.uniform(0, 2 * np.pi, 3)
        r = radius * (1 + 0.18 * np.sin(2 * a + h[0]) + 0.1 * np.sin(3 * a + h[1]) + 0.06 * np.sin(5 * a + h[2]))
        feats.append((name, name_en, "lake", Polygon(np.column_stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)]))))
    return feats, shapely.union_all(big)


def _wgs(g: BaseGeometry) -> BaseGeometry:
    return shapely.remove_repeated_points(shapely.set_precision(to_wgs(g), GRID_SIZE, mode="pointwise"))


def generate_basemap(district: DemoDistrict, seed: int = 20210220) -> list[BasemapFeature]:
    """Roads, water and places of the demo district (WGS-84), deterministic in ``seed``."""
    rng = np.random.default_rng(seed + 7)
    d = district.by_level("district")[0]
    outline = to_utm(d.geom)
    water, big_water = _water(rng, outline)
    roads = _roads(district, rng, outline, big_water)
    lines = [_wgs(g) for g in _node(roads)]
    # keep the connected network only
    coords = [np.asarray(shapely.get_coordinates(g)) for g in lines]
    comp = line_components(coords)
    main = np.argmax(np.bincount(comp))
    feats: list[BasemapFeature] = []
    n = 0
    for r, g, c in zip(roads, lines, comp, strict=True):
        if c != main or g.is_empty or g.geom_type != "LineString":
            continue
        n += 1
        props: dict[str, Any] = {"synthetic": True}
        if r.ref:
            props["ref"] = r.ref
        feats.append(BasemapFeature("roads", f"R{n:05d}", r.name, r.kind, g, r.name_en, r.speed, r.oneway, props))
    for i, (name, name_en, kind, poly) in enumerate(water, start=1):
        feats.append(BasemapFeature("water", f"W{i:03d}", name, kind, _wgs(poly), name_en,
                                    properties={"synthetic": True}))
    feats += _places(district, rng)
    return feats


def _places(district: DemoDistrict, rng: np.random.Generator) -> list[BasemapFeature]:
    out: list[BasemapFeature] = []
    centres = _centres(district)
    names = {code: (name, kind) for code, name, kind, *_ in STREETS}
    en = {a.code: a.name_en for a in district.by_level("street")}
    by_code = {a.code: a for a in district.by_level("street")}
    n = 0

    def add(name: str, kind: str, p: BaseGeometry, name_en: str | None = None, **props: Any) -> None:
        nonlocal n
        n += 1
        out.append(BasemapFeature("places", f"P{n:05d}", name, kind, p, name_en,
                                  properties={"synthetic": True, **props}))

    for code, c in centres.items():
        name, kind = names[code]
        add(name, "town" if kind == "town" else "suburb", _wgs(Point(c)), en.get(code), area_code=code)
    for code, c in centres.items():
        name, kind = names[code]
        short = name.removesuffix("街道").removesuffix("镇")
        poly = to_utm(by_code[code].geom)
        office = f"{name}人民政府" if kind == "town" else f"{name}办事处"
        for label, k in ((office, "government"), (f"{short}社区卫生服务中心", "hospital"), (f"{short}中学", "school"),
                         (f"{short}{'体育场' if kind == 'town' else '文化广场'}", "park")):
            for _ in range(20):
                p = Point(c + rng.normal(0, 450, 2))
                if poly.contains(p):
                    break
            else:
                p = poly.point_on_surface()
            add(label, k, _wgs(p), area_code=code)
    for a in district.by_level("community"):
        add(a.name, "village" if a.kind == "village" else "neighbourhood", _wgs(to_utm(a.geom).point_on_surface()),
            area_code=a.code)
    d = district.by_level("district")[0].geom
    for name, name_en, kind, lon, lat in _LANDMARKS:
        p = Point(lon, lat)
        if d.contains(p):
            add(name, kind, p, name_en, approximate=True)
    return out
