"""Demo base data for the Songjiang-like demo district — SYNTHETIC, deterministic.

Everything here is generated from ``numpy.random.default_rng(rng_seed)`` and flagged
``synthetic=True``: buildings in residential compounds (小区, ``…路N弄M号``) and village houses
(``…村N组M号``), placed inside the unit grids (more where the grid's population is higher);
households; persons with fake names and checksum-valid fake ID numbers (registered residents
with Songjiang's address codes 310227 (松江县, before 1998) / 310117, migrants with real county
codes of other provinces); components (部件) with valid GB/T 30428.2-2013 and, registered after
2026-07-01, GB/T 47678.5-2026 codes (their 3-digit minor codes are illustrative: the 2026
annex was not available); enterprises and organisations with valid credit codes; key places.
The counts are a sample (full: ~20,000 households / ~50,000 persons), not the census.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import insert
from sqlalchemy.orm import Session

from cityops.geo import demo
from cityops.registry.codes import USCC_ALPHABET, make_component_code, make_credit_code, make_id_number
from cityops.registry.models import Building, Facility, Household, Organisation, Person, Place
from cityops.registry.service import assign_entity_ids

TZ = ZoneInfo("Asia/Shanghai")
EPOCH = dt.datetime(2026, 1, 1, tzinfo=TZ).astimezone(dt.UTC)  # when the demo base data was collected
NEW_STANDARD_FROM = dt.date(2026, 7, 1)  # GB/T 47678.5-2026 in force
LAST_DEMO_DAY = dt.date(2026, 10, 31)  # no demo change is later than this
SOURCE = "demo"

SIZES = {  # (households, facilities, organisations)
    False: (20_000, 10_000, 3_000),
    True: (1_000, 500, 150),
}

# residents registered here (户籍) by street/town: the old town higher, the new towns lower
REGISTERED_SHARE = {"310117001": 0.62, "310117002": 0.48, "310117003": 0.4, "310117004": 0.5, "310117005": 0.35,
                    "310117006": 0.25, "310117102": 0.3, "310117103": 0.45, "310117104": 0.28, "310117105": 0.25,
                    "310117106": 0.3, "310117107": 0.22, "310117109": 0.7, "310117116": 0.66, "310117117": 0.7,
                    "310117120": 0.65, "310117121": 0.55}

# migrants' home provinces (GB/T 2260 province prefix, weight)
MIGRANT_PROVINCES = [("34", 0.30), ("32", 0.14), ("41", 0.12), ("51", 0.08), ("36", 0.07), ("42", 0.05),
                     ("33", 0.05), ("37", 0.04), ("43", 0.04), ("50", 0.03), ("52", 0.02), ("35", 0.02),
                     ("13", 0.02), ("23", 0.01), ("45", 0.01), ("61", 0.01)]

ROADS = {  # plausible road names per street/town (positions are synthetic)
    "310117001": ["中山中路", "人民南路", "谷阳北路", "西林北路", "松汇中路", "乐都路"],
    "310117002": ["荣乐西路", "玉树路", "长谷路", "永丰北路"],
    "310117003": ["文诚路", "三新北路", "新松江路", "思贤路", "银泽路"],
    "310117004": ["中山东路", "茸梅路", "荣乐东路", "松卫北路"],
    "310117005": ["广富林路", "龙源路", "龙腾路", "银都路"],
    "310117006": ["九里亭路", "沪松公路", "涞寅路"],
    "310117102": ["泗宝路", "江川北路", "鼓浪路", "泗通路"],
    "310117103": ["佘天昆公路", "林荫新路", "外青松公路", "陶干路"],
    "310117104": ["车亭公路", "虬泾路", "北松公路", "莘车路"],
    "310117105": ["新格路", "民益路", "莘砖公路", "新站路"],
    "310117106": ["洞泾路", "长兴路", "沈砖公路", "洞厍路"],
    "310117107": ["九亭大街", "沪亭北路", "涞亭南路", "九新公路"],
    "310117109": ["泖亭路", "叶新公路", "中南路"],
    "310117116": ["石湖荡路", "松蒸公路", "东夏路"],
    "310117117": ["新浜路", "胡曹路", "新许路"],
    "310117120": ["叶旺路", "叶新公路", "叶政路"],
    "310117121": ["玉阳路", "文翔路", "港丰路"],
}
_SYL = list("春晓新华康乐泰和安居锦绣景明嘉宁福兴月湖云间茸城松鹤仓桥秀水佳园")
_COMPOUND_SUFFIX = ["小区", "苑", "花园", "新村", "公寓", "家园", "雅苑", "名邸"]
_BRAND = list("松茸辰佘泖浦申沪华鼎泰恒信达瑞丰盛宏润博远嘉诚启航创源联科")
_INDUSTRIES = [("C", "制造业", 0.33, ["机械制造", "电子科技", "精密模具", "新材料", "汽车零部件", "包装制品", "食品"]),
               ("F", "批发和零售业", 0.2, ["商贸", "贸易", "电子商务", "五金交电"]),
               ("L", "租赁和商务服务业", 0.1, ["企业管理咨询", "商务咨询", "人力资源"]),
               ("I", "信息传输、软件和信息技术服务业", 0.08, ["信息技术", "软件", "网络科技"]),
               ("M", "科学研究和技术服务业", 0.07, ["检测技术", "生物科技", "工程技术"]),
               ("E", "建筑业", 0.06, ["建设工程", "建筑装饰", "市政工程"]),
               ("G", "交通运输、仓储和邮政业", 0.07, ["物流", "供应链", "运输"]),
               ("H", "住宿和餐饮业", 0.05, ["餐饮管理", "酒店管理"]),
               ("K", "房地产业", 0.04, ["物业管理", "房地产开发"])]

# component types: (major, 2013 minor, name, accuracy class, owner, competent department, weight)
FACILITY_TYPES = [
    ("01", "01", "上水井盖", "A", "上海松江自来水有限公司", "松江区水务局", 0.09),
    ("01", "02", "污水井盖", "A", "松江区排水管理所", "松江区水务局", 0.09),
    ("01", "03", "雨水井盖", "A", "松江区排水管理所", "松江区水务局", 0.09),
    ("01", "04", "雨水箅子", "A", "松江区排水管理所", "松江区水务局", 0.08),
    ("01", "05", "电力井盖", "A", "国网上海市电力公司松江供电公司", "松江区发展和改革委员会", 0.04),
    ("01", "07", "电信井盖", "A", "中国电信上海松江分公司", "松江区经济委员会", 0.04),
    ("01", "11", "燃气井盖", "A", "上海松江燃气有限公司", "松江区建设和管理委员会", 0.03),
    ("01", "13", "消防设施", "A", "松江区消防救援支队", "松江区消防救援支队", 0.03),
    ("01", "18", "路灯", "A", "松江区路灯管理所", "松江区建设和管理委员会", 0.16),
    ("01", "26", "健身设施", "B", "松江区体育局", "松江区体育局", 0.02),
    ("02", "03", "公交站亭", "B", "松江区公共交通有限公司", "松江区交通运输委员会", 0.03),
    ("02", "09", "交通标志牌", "B", "松江区公路管理所", "松江区交通运输委员会", 0.04),
    ("02", "13", "路名牌", "B", "松江区规划和自然资源局", "松江区规划和自然资源局", 0.03),
    ("02", "14", "交通信号灯", "A", "松江区公安分局交警支队", "松江区公安分局", 0.02),
    ("02", "01", "停车场", "C", "松江区停车管理中心", "松江区交通运输委员会", 0.01),
    ("02", "05", "过街天桥", "C", "松江区公路管理所", "松江区建设和管理委员会", 0.002),
    ("03", "01", "公共厕所", "B", "松江区环境卫生管理所", "松江区绿化和市容管理局", 0.01),
    ("03", "05", "垃圾箱", "B", "松江区环境卫生管理所", "松江区绿化和市容管理局", 0.1),
    ("03", "07", "广告牌匾", "B", "各设置单位", "松江区绿化和市容管理局", 0.03),
    ("04", "02", "行道树", "B", "松江区绿化管理所", "松江区绿化和市容管理局", 0.05),
    ("04", "07", "街头座椅", "B", "松江区绿化管理所", "松江区绿化和市容管理局", 0.01),
    ("05", "01", "宣传栏", "B", "属地街镇", "松江区绿化和市容管理局", 0.008),
]
MAINTAINERS = ["上海松江市政养护有限公司", "上海茸城环境工程有限公司", "上海松江绿化工程有限公司", "上海佘山市政工程有限公司"]


def _progress(progress: Callable[[str, int, int], None] | None) -> Callable[[str, int, int], None]:
    return progress or (lambda _s, _d, _t: None)


def _points_in(geom: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= 0:
        return np.zeros((0, 2))
    minx, miny, maxx, maxy = geom.bounds
    out: list[np.ndarray] = []
    got = 0
    for _ in range(50):
        cand = np.column_stack([rng.uniform(minx, maxx, 3 * n + 8), rng.uniform(miny, maxy, 3 * n + 8)])
        ok = shapely.contains_xy(geom, cand[:, 0], cand[:, 1])
        out.append(cand[ok])
        got += int(ok.sum())
        if got >= n:
            break
    pts = np.concatenate(out)
    if len(pts) < n:  # a sliver of a grid: use its representative point
        rp = geom.representative_point()
        pts = np.vstack([pts, np.tile([rp.x, rp.y], (n - len(pts), 1))])
    return pts[:n]


def _locate(session: Session, pts: np.ndarray, fallback: list[str]) -> list[str]:
    from cityops.geo.service import grid_indices_for

    if len(pts) == 0:
        return []
    codes = grid_indices_for(session, pts[:, 0], pts[:, 1])
    return [str(c) if c is not None else f for c, f in zip(codes, fallback, strict=True)]


_PARENTS: dict[str, str | None] = {}


def _codes(grid: str) -> dict[str, Any]:
    """The grid's community and street (the lineage of the unit grid in the demo district)."""
    community = _PARENTS[grid]
    return {"grid_code": grid, "community_code": community, "street_code": _PARENTS[community or ""]}


def _bulk(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 5000):
        session.execute(insert(model.__table__), rows[i:i + 5000])
    assign_entity_ids(session, model)


def _pick_name(rng: np.random.Generator, used: set[str], suffixes: list[str], prefix: str = "") -> str:
    for _ in range(200):
        n = prefix + "".join(str(c) for c in rng.choice(_SYL, size=2, replace=False)) + str(rng.choice(suffixes))
        if n not in used:
            used.add(n)
            return n
    n = f"{prefix}{len(used)}号{suffixes[0]}"
    used.add(n)
    return n


def _county_codes(province: str) -> list[tuple[str, int, int]]:
    """Real county-level codes of a province with the years they were valid (GB/T 2260 history as
    shipped by python-stdnum)."""
    from stdnum import numdb

    out: list[tuple[str, int, int]] = []
    for _len, low, _high, _props, children in numdb.get("cn/loc").prefixes:
        if low != province:
            continue
        for _l2, code4, high4, props, _c in children:
            county = props.get("county", "")
            if code4 != high4 or code4.endswith("00") or not county:
                continue
            for part in county.split(","):
                if "市辖区" in part or part.endswith("]县") or part == "县":
                    continue
                if part.startswith("["):
                    span = part[1:].split("]", 1)[0]
                    a, b = span.split("-")
                    out.append((province + code4, int(a) if a else 1900, int(b) if b else 2100))
                else:
                    out.append((province + code4, 1900, 2100))
    return out


def seed_demo(session: Session, district: demo.DemoDistrict, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, int]:
    tick = _progress(progress)
    rng = np.random.default_rng([rng_seed, 2])
    n_households, n_facilities, n_orgs = SIZES[small]
    areas = {a.code: a for a in district.areas}
    _PARENTS.clear()
    _PARENTS.update({a.code: a.parent_code for a in district.areas})
    grids = [a for a in district.areas if a.level == "grid"]
    pop = np.array([max(g.population, 1) for g in grids], dtype=float)
    counts: dict[str, int] = {}

    # ---------------------------------------------------------------- buildings and households
    hh_per_grid = rng.multinomial(n_households, pop / pop.sum())
    buildings: list[dict[str, Any]] = []
    b_grid_hint: list[str] = []
    b_pts: list[np.ndarray] = []
    households_of_building: list[int] = []
    used_names: set[str] = set()
    road_numbers: dict[str, set[int]] = {}
    for g, nh in zip(grids, hh_per_grid, strict=True):
        if nh == 0:
            continue
        comm = areas[g.parent_code or ""]
        street = areas[comm.parent_code or ""]
        village = comm.kind == "village"
        seq = 0
        if village:
            n_b = max(1, int(round(nh / rng.uniform(1.2, 2.0))))
            pts = _points_in(g.geom, n_b, rng)
            group = int(rng.integers(1, 12))
            split = np.array_split(np.arange(nh), n_b) if nh >= n_b else [np.arange(nh)] + [np.arange(0)] * (n_b - nh)
            for k in range(n_b):
                seq += 1
                house_no = int(rng.integers(1, 120))
                buildings.append({"code": f"{g.code}{seq:04d}", "name": None,
                                  "address": f"上海市松江区{street.name}{comm.name}{group}组{house_no}号",
                                  "kind": "residential", "compound": None, "floors": int(rng.integers(2, 4))})
                b_grid_hint.append(g.code)
                b_pts.append(pts[k])
                households_of_building.append(len(split[k]))
        else:
            n_comp = max(1, min(3, nh // 12 + 1))
            per_comp = np.array_split(np.arange(nh), n_comp)
            for members in per_comp:
                if len(members) == 0:
                    continue
                road = str(rng.choice(ROADS.get(street.code, ["园中路"])))
                nums = road_numbers.setdefault(street.code + road, set())
                lane = int(rng.integers(1, 1500))
                while lane in nums:
                    lane = int(rng.integers(1, 1500))
                nums.add(lane)
                compound = _pick_name(rng, used_names, _COMPOUND_SUFFIX)
                floors = int(rng.choice([6, 6, 6, 11, 14, 18, 24]))
                per_building = int(rng.integers(4, 9))
                n_b = max(1, int(np.ceil(len(members) / per_building)))
                centre = _points_in(g.geom, 1, rng)[0]
                jitter = rng.normal(0, [0.0005, 0.0004], size=(n_b, 2))
                pts = centre + jitter
                inside = shapely.contains_xy(g.geom, pts[:, 0], pts[:, 1])
                if not inside.all():
                    pts[~inside] = _points_in(g.geom, int((~inside).sum()), rng)
                split = np.array_split(members, n_b)
                for k in range(n_b):
                    seq += 1
                    buildings.append({"code": f"{g.code}{seq:04d}", "name": f"{compound}{k + 1}号楼",
                                      "address": f"上海市松江区{street.name}{road}{lane}弄{k + 1}号",
                                      "kind": "residential", "compound": compound, "floors": floors})
                    b_grid_hint.append(g.code)
                    b_pts.append(pts[k])
                    households_of_building.append(len(split[k]))
    # non-residential buildings: about one for every five residential ones
    n_other = len(buildings) // 5
    other_grid = rng.choice(len(grids), size=n_other, p=pop / pop.sum())
    kinds = ["commercial", "office", "industrial", "public", "mixed"]
    kind_p = [0.35, 0.15, 0.3, 0.12, 0.08]
    grid_seq: dict[str, int] = {}
    for b in buildings:
        grid_seq[b["code"][:15]] = max(grid_seq.get(b["code"][:15], 0), int(b["code"][15:]))
    for gi in other_grid:
        g = grids[int(gi)]
        street = areas[areas[g.parent_code or ""].parent_code or ""]
        grid_seq[g.code] = grid_seq.get(g.code, 0) + 1
        kind = str(rng.choice(kinds, p=kind_p))
        road = str(rng.choice(ROADS.get(street.code, ["园中路"])))
        no = int(rng.integers(1, 2000))
        label = {"commercial": "商业楼", "office": "办公楼", "industrial": "厂房", "public": "公共建筑", "mixed": "商住楼"}[kind]
        buildings.append({"code": f"{g.code}{grid_seq[g.code]:04d}", "name": f"{road}{no}号{label}",
                          "address": f"上海市松江区{street.name}{road}{no}号", "kind": kind, "compound": None,
                          "floors": int(rng.integers(1, 5) if kind == "industrial" else rng.integers(2, 20))})
        b_grid_hint.append(g.code)
        b_pts.append(_points_in(g.geom, 1, rng)[0])
        households_of_building.append(0)
    pts = np.asarray(b_pts)
    located = _locate(session, pts, b_grid_hint)
    for b, p, gcode in zip(buildings, pts, located, strict=True):
        x, y = round(float(p[0]), 7), round(float(p[1]), 7)
        if b["compound"]:  # a slab-block footprint ~15 m x 50 m
            geom = shapely.box(x - 0.00026, y - 0.00007, x + 0.00026, y + 0.00007)
            geom = shapely.set_precision(geom, 1e-7)
        else:
            geom = shapely.Point(x, y)
        b.update(geom=geom, lon=x, lat=y, **_codes(gcode), valid_from=EPOCH, source=SOURCE, synthetic=True)
    _bulk(session, Building, buildings)
    counts["buildings"] = len(buildings)
    tick("基础数据：建筑 buildings", len(buildings), len(buildings))

    households: list[dict[str, Any]] = []
    hh_seq = 0
    for b, nh in zip(buildings, households_of_building, strict=True):
        for k in range(nh):
            hh_seq += 1
            if b["compound"]:
                floor = int(rng.integers(1, b["floors"] + 1))
                room = f"{floor}{(k % 4) + 1:02d}"
            else:
                room = None
            kind = "collective" if rng.random() < 0.015 else "family"
            addr = b["address"] + (f"{room}室" if room else "")
            households.append({"code": f"H{b['street_code'][6:]}{hh_seq:07d}", "building_code": b["code"],
                               "room": room, "address": addr, "kind": kind,
                               "grid_code": b["grid_code"], "community_code": b["community_code"],
                               "street_code": b["street_code"], "valid_from": EPOCH, "source": SOURCE,
                               "synthetic": True})
    _bulk(session, Household, households)
    counts["households"] = len(households)
    tick("基础数据：户 households", len(households), len(households))

    # ---------------------------------------------------------------- persons
    persons = _persons(rng, households)
    _bulk(session, Person, persons)
    counts["persons"] = len(persons)
    tick("基础数据：人口 persons", len(persons), len(persons))

    # ---------------------------------------------------------------- facilities
    facilities, changes = _facilities(session, rng, grids, pop, n_facilities)
    _bulk(session, Facility, facilities)
    _facility_history(session, rng, facilities, changes)
    counts["facilities"] = len(facilities)
    tick("基础数据：部件 facilities", len(facilities), len(facilities))

    # ---------------------------------------------------------------- organisations and places
    orgs = _organisations(session, rng, grids, areas, pop, n_orgs)
    _bulk(session, Organisation, orgs)
    counts["organisations"] = len(orgs)
    tick("基础数据：企业与组织 organisations", len(orgs), len(orgs))
    places = _places(session, rng, grids, areas, pop, small)
    _bulk(session, Place, places)
    counts["places"] = len(places)
    tick("基础数据：重点场所 places", len(places), len(places))
    session.flush()
    return counts


def _persons(rng: np.random.Generator, households: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sizes = rng.choice([1, 2, 3, 4, 5], size=len(households), p=[0.2, 0.3, 0.28, 0.14, 0.08])
    provinces = [p for p, _w in MIGRANT_PROVINCES]
    weights = np.array([w for _p, w in MIGRANT_PROVINCES])
    county_cache: dict[str, list[tuple[str, int, int]]] = {}
    used: set[str] = set()
    out: list[dict[str, Any]] = []

    def id_for(area6: str, born: dt.date, male: bool) -> str:
        seq = int(rng.integers(0, 500)) * 2 + (1 if male else 0)
        for _ in range(500):
            n = make_id_number(area6, born, seq)
            if n not in used:
                used.add(n)
                return n
            seq = (seq + 2) % 1000
        raise RuntimeError("ID number space exhausted")

    def birth(age: int) -> dt.date:
        return dt.date(2026, 1, 1) - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))

    def migrant_area(year: int) -> str:
        while True:  # a province whose counties existed that year (重庆 codes start in 1997)
            prov = provinces[int(rng.choice(len(provinces), p=weights / weights.sum()))]
            if prov not in county_cache:
                county_cache[prov] = _county_codes(prov)
            options = [c for c, a, b in county_cache[prov] if a <= year <= b]
            if options:
                return str(options[int(rng.integers(0, len(options)))])

    for h, size in zip(households, sizes, strict=True):
        if h["kind"] == "collective":
            size = int(rng.integers(3, 9))
        registered = bool(rng.random() < REGISTERED_SHARE.get(h["street_code"], 0.38))
        head_age = int(rng.integers(28, 82) if registered else rng.integers(21, 56))
        head_male = bool(rng.random() < 0.62)
        head_name = demo.fake_name(rng)
        home: str | None = None
        members: list[tuple[int, bool, str, str]] = [(head_age, head_male, head_name, "户主")]
        if h["kind"] == "collective":
            members = [(int(rng.integers(19, 50)), bool(rng.random() < 0.6), demo.fake_name(rng), "集体户成员")
                       for _ in range(size)]
        else:
            if size >= 2:
                if rng.random() < 0.85:
                    members.append((max(20, head_age + int(rng.integers(-5, 4))), not head_male, demo.fake_name(rng),
                                    "配偶"))
                while len(members) < size and len(members) < 4 and head_age >= 24:
                    child_age = int(rng.integers(0, max(1, min(head_age - 21, 35))))
                    members.append((child_age, bool(rng.random() < 0.52), head_name[0] + demo.fake_name(rng)[1:],
                                    "子女"))
                while len(members) < size:
                    if head_age < 62:
                        members.append((min(96, head_age + int(rng.integers(24, 34))), bool(rng.random() < 0.45),
                                        head_name[0] + demo.fake_name(rng)[1:], "父母"))
                    else:
                        members.append((int(rng.integers(0, 20)), bool(rng.random() < 0.52),
                                        head_name[0] + demo.fake_name(rng)[1:], "孙子女"))
        for age, male, name, relation in members:
            born = birth(age)
            if registered:
                area6 = "310227" if born.year < 1998 and rng.random() < 0.8 else "310117"
            else:
                if home is None or h["kind"] == "collective":
                    home = migrant_area(born.year)
                area6 = home
                # the home county's code must have existed when the number was issued
                if not any(c == area6 and a <= born.year <= b for c, a, b in county_cache.get(area6[:2], [])):
                    area6 = migrant_area(born.year)
            resident = True if not registered else bool(rng.random() < 0.92)
            phone = demo.fake_mobile(rng) if age >= 16 and not (age >= 80 and rng.random() < 0.5) else None
            out.append({"id_number": id_for(area6, born, male), "name": name,
                        "gender": "male" if male else "female", "birth_date": born, "phone": phone,
                        "household_code": h["code"], "relation": relation, "address": h["address"],
                        "registered": registered, "resident": resident,
                        "grid_code": h["grid_code"], "community_code": h["community_code"],
                        "street_code": h["street_code"], "valid_from": EPOCH, "source": SOURCE, "synthetic": True})
    return out


def _random_dates(rng: np.random.Generator, start: dt.date, end: dt.date, n: int) -> list[dt.date]:
    span = (end - start).days
    return [start + dt.timedelta(days=int(d)) for d in rng.integers(0, span + 1, size=n)]


def _facilities(session: Session, rng: np.random.Generator, grids: list[Any], pop: np.ndarray,
                n: int) -> tuple[list[dict[str, Any]], list[int]]:
    weights = np.array([t[6] for t in FACILITY_TYPES])
    types = rng.choice(len(FACILITY_TYPES), size=n, p=weights / weights.sum())
    # components concentrate where people live: weight by population (plus a little by area)
    area = np.array([g.area_m2 for g in grids])
    w = pop / pop.sum() * 0.85 + area / area.sum() * 0.15
    gidx = rng.choice(len(grids), size=n, p=w)
    pts = np.vstack([_points_in(grids[int(i)].geom, 1, rng) for i in gidx]) if n else np.zeros((0, 2))
    located = _locate(session, pts, [grids[int(i)].code for i in gidx])
    serial: dict[tuple[str, str], int] = {}
    new_std = rng.random(n) < 0.12
    initial = _random_dates(rng, dt.date(2012, 1, 1), NEW_STANDARD_FROM - dt.timedelta(days=1), n)
    initial_new = _random_dates(rng, NEW_STANDARD_FROM, LAST_DEMO_DAY - dt.timedelta(days=30), n)
    status_roll = rng.random(n)
    out: list[dict[str, Any]] = []
    for k in range(n):
        major, minor, name, acc, owner, dept, _w = FACILITY_TYPES[int(types[k])]
        ref = "GB/T 47678.5-2026" if new_std[k] else "GB/T 30428.2-2013"
        minor_code = minor if ref == "GB/T 30428.2-2013" else f"0{minor}"
        key = (ref, major + minor_code)
        serial[key] = serial.get(key, 0) + 1
        code = make_component_code(ref, "310117", major, minor_code, serial[key])
        init = initial_new[k] if new_std[k] else initial[k]
        status = "intact"
        if not new_std[k]:
            status = "damaged" if status_roll[k] < 0.02 else "missing" if status_roll[k] < 0.025 else "intact"
        valid_from = max(EPOCH, dt.datetime.combine(init, dt.time(), tzinfo=TZ).astimezone(dt.UTC))
        x, y = round(float(pts[k, 0]), 7), round(float(pts[k, 1]), 7)
        out.append({"code": code, "standard_ref": ref, "major_code": major, "minor_code": minor_code,
                    "type_code": major + minor_code, "name": name, "status": status, "accuracy_class": acc,
                    "competent_dept": dept, "competent_code": None, "owner_unit": owner, "owner_code": None,
                    "maintenance_unit": MAINTAINERS[int(rng.integers(0, len(MAINTAINERS)))], "maintenance_code": None,
                    "initial_date": init, "data_source": "实测" if acc == "A" else "基础地理数据", "note": None,
                    "geom": shapely.Point(x, y), "lon": x, "lat": y, **_codes(located[k]),
                    "valid_from": valid_from, "source": SOURCE, "synthetic": True})
    # a few intact 2013-era components were reported damaged later in 2026 (history)
    candidates = [k for k in range(n) if not new_std[k] and out[k]["status"] == "intact"]
    changes = sorted(int(k) for k in rng.choice(candidates, size=min(len(candidates), max(1, n // 40)),
                                                replace=False)) if candidates else []
    return out, changes


def _facility_history(session: Session, rng: np.random.Generator, facilities: list[dict[str, Any]],
                      changes: list[int]) -> None:
    """Second versions for some components: 完好 -> 破损 (and some repaired again)."""
    from sqlalchemy import select, update

    if not changes:
        return
    codes = [facilities[k]["code"] for k in changes]
    ids = dict(session.execute(select(Facility.code, Facility.id).where(Facility.code.in_(codes),
                                                                         Facility.valid_to.is_(None))).tuples().all())
    ent = dict(session.execute(select(Facility.code, Facility.entity_id).where(Facility.code.in_(codes))).tuples().all())
    closes: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for k in changes:
        f = facilities[k]
        t1 = dt.datetime.combine(_random_dates(rng, dt.date(2026, 3, 1), dt.date(2026, 8, 31), 1)[0],
                                 dt.time(9 + int(rng.integers(0, 8))), tzinfo=TZ).astimezone(dt.UTC)
        closes.append({"id": ids[f["code"]], "valid_to": t1})
        base = {**f, "entity_id": ent[f["code"]]}
        repaired = rng.random() < 0.5
        t2 = t1 + dt.timedelta(days=int(rng.integers(2, 40)))
        rows.append({**base, "status": "damaged", "valid_from": t1, "valid_to": t2 if repaired else None})
        if repaired:
            rows.append({**base, "status": "intact", "valid_from": t2, "valid_to": None})
    session.execute(update(Facility), closes)
    session.execute(insert(Facility), rows)


def _org_body(rng: np.random.Generator, modern: bool) -> str:
    if modern:  # codes assigned since 2015: "MA" + 6 characters
        alphabet = [c for c in USCC_ALPHABET if c not in "IOSVZ"]
        return "MA" + "".join(str(c) for c in rng.choice(alphabet, size=6))
    return f"{int(rng.integers(10_000_000, 99_999_999)):08d}"


def _organisations(session: Session, rng: np.random.Generator, grids: list[Any], areas: dict[str, Any],
                   pop: np.ndarray, n: int) -> list[dict[str, Any]]:
    industrial = {"310117104", "310117105", "310117106", "310117107", "310117102", "310117121", "310117003"}
    area = np.array([g.area_m2 for g in grids])
    boost = np.array([2.5 if g.code[:9] in industrial else 1.0 for g in grids])
    w = (pop / pop.sum() * 0.5 + area / area.sum() * 0.5) * boost
    gidx = rng.choice(len(grids), size=n, p=w / w.sum())
    pts = np.vstack([_points_in(grids[int(i)].geom, 1, rng) for i in gidx]) if n else np.zeros((0, 2))
    located = _locate(session, pts, [grids[int(i)].code for i in gidx])
    kinds = ["91", "92", "93", "12", "51", "52", "11"]
    kind_p = np.array([0.8, 0.1, 0.02, 0.03, 0.015, 0.015, 0.02])
    ind_p = np.array([i[2] for i in _INDUSTRIES])
    used_codes: set[str] = set()
    used_names: set[str] = set()
    out: list[dict[str, Any]] = []
    for k in range(n):
        prefix = kinds[int(rng.choice(len(kinds), p=kind_p / kind_p.sum()))]
        street = areas[located[k][:9]]
        comm = areas.get(located[k][:12])
        while True:
            reg_area = "310000" if prefix == "91" and rng.random() < 0.15 else "310117"
            code = make_credit_code(prefix, reg_area, _org_body(rng, rng.random() < 0.7))
            if code not in used_codes:
                used_codes.add(code)
                break
        brand = "".join(str(c) for c in rng.choice(_BRAND, size=2, replace=False))
        industry = None
        employees: int | None = None
        if prefix == "91":
            ind = _INDUSTRIES[int(rng.choice(len(_INDUSTRIES), p=ind_p / ind_p.sum()))]
            name = f"上海{brand}{rng.choice(ind[3])}有限公司"
            industry = f"{ind[0]} {ind[1]}"
            employees = int(min(5000, rng.lognormal(2.6, 1.1)))
        elif prefix == "92":
            name = f"松江区{street.name[:2]}{brand}{rng.choice(['便利店', '小吃店', '五金店', '理发店', '水果店', '维修部'])}"
            industry = "F 批发和零售业" if "店" in name and "小吃" not in name else "O 居民服务、修理和其他服务业"
            employees = int(rng.integers(1, 6))
        elif prefix == "93":
            name = f"上海松江区{(comm.name if comm else street.name)[:3]}{rng.choice(['蔬果', '水稻', '家庭农场'])}专业合作社"
            industry = "A 农、林、牧、渔业"
            employees = int(rng.integers(5, 40))
        elif prefix == "12":
            name = f"上海市松江区{street.name}{rng.choice(['社区事务受理服务中心', '社区文化活动中心', '城市运行管理中心'])}"
            industry = "S 公共管理、社会保障和社会组织"
        elif prefix == "11":
            name = f"上海市松江区{street.name}{'办事处' if street.kind == 'subdistrict' else '人民政府'}"
            industry = "S 公共管理、社会保障和社会组织"
        else:
            name = f"上海市松江区{brand}{rng.choice(['志愿者协会', '社会工作服务社', '养老服务社', '文化艺术团'])}"
            industry = "S 公共管理、社会保障和社会组织"
        if name in used_names:
            name = f"{name}（{street.name}）"
        if name in used_names:
            name = f"{name}{k}"
        used_names.add(name)
        road = str(rng.choice(ROADS.get(street.code, ["园中路"])))
        x, y = round(float(pts[k, 0]), 7), round(float(pts[k, 1]), 7)
        out.append({"credit_code": code, "name": name,
                    "org_kind": {"91": "enterprise", "92": "individual_business", "93": "cooperative",
                                 "12": "public_institution", "11": "government"}.get(prefix, "social_organisation"),
                    "address": f"上海市松江区{street.name}{road}{int(rng.integers(1, 3000))}号",
                    "industry": industry, "legal_rep": demo.fake_name(rng),
                    "phone": f"02157{int(rng.integers(0, 1_000_000)):06d}" if rng.random() < 0.7 else demo.fake_mobile(rng),
                    "employees": employees, "geom": shapely.Point(x, y), "lon": x, "lat": y, **_codes(located[k]),
                    "valid_from": EPOCH, "source": SOURCE, "synthetic": True})
    return out


def _places(session: Session, rng: np.random.Generator, grids: list[Any], areas: dict[str, Any], pop: np.ndarray,
            small: bool) -> list[dict[str, Any]]:
    by_street: dict[str, list[int]] = {}
    for i, g in enumerate(grids):
        by_street.setdefault(g.code[:9], []).append(i)
    specs: list[tuple[str, str, str, tuple[int, int], str]] = []  # kind, name, street, capacity, unit
    big = [("310117001", "上海市松江区中心医院"), ("310117001", "上海市松江区方塔中医医院"),
           ("310117003", "上海市第一人民医院南院")]
    for street_code, name in big:
        specs.append(("hospital", name, street_code, (300, 1200), "松江区卫生健康委员会"))
    used: set[str] = set()
    for street_code in sorted(by_street):
        street = areas[street_code]
        short = street.name
        specs.append(("hospital", f"上海市松江区{short}社区卫生服务中心", street_code, (30, 120), "松江区卫生健康委员会"))
        n_each = {"kindergarten": 1 if small else int(rng.integers(2, 5)), "school": 1 if small else int(rng.integers(2, 5)),
                  "market": 1 if small else int(rng.integers(1, 4)),
                  "construction_site": 1 if small else int(rng.integers(3, 9)),
                  "elderly_care": 1 if small else int(rng.integers(1, 3))}
        for kind, m in n_each.items():
            for _ in range(m):
                stem = "".join(str(c) for c in rng.choice(_SYL, size=2, replace=False))
                if kind == "kindergarten":
                    name, cap, unit = f"上海市松江区{stem}幼儿园", (150, 450), "松江区教育局"
                elif kind == "school":
                    level = str(rng.choice(["小学", "中学", "实验学校"]))
                    name, cap, unit = f"上海市松江区{stem}{level}", (600, 2500), "松江区教育局"
                elif kind == "market":
                    name, cap, unit = f"{short[:2]}{stem}菜市场", (40, 200), f"{short}城运中心"
                elif kind == "construction_site":
                    road = str(rng.choice(ROADS.get(street_code, ["园中路"])))
                    name, cap, unit = f"{short}{road}{stem}地块项目工地", (40, 600), "松江区建设和管理委员会"
                else:
                    name, cap, unit = f"上海市松江区{short}{stem}养老院", (80, 400), "松江区民政局"
                if name in used:
                    continue
                used.add(name)
                specs.append((kind, name, street_code, cap, unit))
    out: list[dict[str, Any]] = []
    gsel = []
    for _kind, _name, street_code, _cap, _unit in specs:
        idx = by_street.get(street_code) or list(range(len(grids)))
        p = pop[idx] / pop[idx].sum()
        gsel.append(idx[int(rng.choice(len(idx), p=p))])
    pts = np.vstack([_points_in(grids[i].geom, 1, rng) for i in gsel]) if gsel else np.zeros((0, 2))
    located = _locate(session, pts, [grids[i].code for i in gsel])
    kind_seq: dict[str, int] = {}
    abbrev = {"hospital": "YY", "kindergarten": "YE", "school": "XX", "market": "SC", "construction_site": "GD",
              "elderly_care": "YL"}
    for k, (kind, name, _street, cap, unit) in enumerate(specs):
        kind_seq[kind] = kind_seq.get(kind, 0) + 1
        street = areas[located[k][:9]]
        road = str(rng.choice(ROADS.get(street.code, ["园中路"])))
        x, y = round(float(pts[k, 0]), 7), round(float(pts[k, 1]), 7)
        out.append({"code": f"ZD{abbrev[kind]}{kind_seq[kind]:04d}", "kind": kind, "name": name,
                    "address": f"上海市松江区{street.name}{road}{int(rng.integers(1, 3000))}号",
                    "capacity": int(rng.integers(cap[0], cap[1])), "responsible_unit": unit,
                    "phone": f"02157{int(rng.integers(0, 1_000_000)):06d}",
                    "geom": shapely.Point(x, y), "lon": x, "lat": y, **_codes(located[k]),
                    "valid_from": EPOCH, "source": SOURCE, "synthetic": True})
    return out
