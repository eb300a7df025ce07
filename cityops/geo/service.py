"""Grid base services: areas, GeoJSON, point -> grid lookup. Plain functions taking a session."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.db import database_key
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.geo import geojson
from cityops.geo.locate import PolygonIndex
from cityops.geo.models import LEVEL_LENGTH, Area, GridLayer, LayerGrid
from cityops.security.principal import code_prefix_clause

# GB/T 10114 township segment: first digit -> kind (001-099 街道, 100-199 镇, 200-399 乡,
# 400-599 政企合一单位 / special zones)
TYPE_DIGIT_KIND = {"0": "subdistrict", "1": "town", "2": "township", "3": "township", "4": "special_zone",
                   "5": "special_zone"}
KIND_LABEL = {"subdistrict": "街道", "town": "镇", "township": "乡", "special_zone": "特殊区域"}
# GB/T 2260 province-level codes (first two digits)
PROVINCES = {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
             "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82"}


# ---------------------------------------------------------------- codes

def validate_area_code(code: str, level: str, parent_code: str | None = None, kind: str | None = None) -> list[str]:
    """Reasons why ``code`` is not a valid code of ``level`` (empty list when valid).

    district: 6 digits (GB/T 2260: valid province, prefecture and county segments not 00);
    street: 9 digits = district + township segment whose first digit is the type (0 街道, 1 镇,
    2-3 乡, 4-5 special zone; 000 reserved); community: 12 digits; unit grid: 15 digits
    (sequence 001..999). Every code starts with its parent's code, which is exactly one level up.
    With ``kind`` (street level) the type digit must match it."""
    errs: list[str] = []
    want = LEVEL_LENGTH.get(level)
    if want is None:
        return [f"未知层级 unknown level {level!r} (one of {', '.join(LEVEL_LENGTH)})"]
    if not isinstance(code, str) or not code.isascii() or not code.isdigit():
        errs.append("编码只能由数字组成 code must contain digits 0-9 only")
        return errs
    if len(code) != want:
        errs.append(f"{level} 编码应为 {want} 位，实为 {len(code)} 位 a {level} code has {want} digits, got {len(code)}")
        return errs
    if level == "district":
        if code[:2] not in PROVINCES:
            errs.append(f"省级代码 {code[:2]} 不存在 province segment {code[:2]} is not a GB/T 2260 province")
        if code[2:4] == "00" or code[4:6] == "00":
            errs.append("区县级代码的地市段和区县段不能为 00 prefecture and county segments cannot be 00")
    if parent_code is not None:
        if len(parent_code) != want - 3 or level == "district":
            errs.append(f"上级编码应为 {want - 3} 位 the parent of a {level} must have {want - 3} digits"
                        if level != "district" else "区县没有上级区划 a district has no parent here")
        elif not code.startswith(parent_code):
            errs.append(f"编码须以上级编码 {parent_code} 开头 code must start with its parent's code {parent_code}")
    seg = code[-3:]
    if level == "street":
        digit = code[6]
        if digit not in TYPE_DIGIT_KIND:
            errs.append(f"街镇类型位 {digit} 无效（0 街道, 1 镇, 2-3 乡, 4-5 特殊区域） type digit {digit} is not one of 0-5")
        elif kind is not None and kind in KIND_LABEL and TYPE_DIGIT_KIND[digit] != kind:
            errs.append(f"类型位 {digit} 表示{KIND_LABEL[TYPE_DIGIT_KIND[digit]]}，与类型 {KIND_LABEL[kind]} 不符 "
                        f"type digit {digit} means {TYPE_DIGIT_KIND[digit]}, not {kind}")
        if seg == "000":
            errs.append("街镇段 000 为保留值 township segment 000 is reserved")
    if level in ("community", "grid") and seg == "000":
        errs.append("顺序号 000 为保留值 sequence 000 is reserved")
    return errs


def street_kind(code: str) -> str | None:
    """subdistrict / town / township / special_zone from a 9+ digit code's type digit."""
    return TYPE_DIGIT_KIND.get(code[6]) if len(code) >= 9 and code[:9].isdigit() else None


# ---------------------------------------------------------------- reads

def current_areas(session: Session) -> Any:
    return select(Area).where(Area.valid_to.is_(None))


def list_areas(session: Session, *, level: str | None = None, parent_code: str | None = None,
               code_prefix: str | None = None, page: int = 1, page_size: int = 100) -> tuple[int, list[Area]]:
    stmt = current_areas(session)
    if level:
        stmt = stmt.where(Area.level == level)
    if parent_code:
        stmt = stmt.where(Area.parent_code == parent_code)
    if code_prefix:
        stmt = stmt.where(code_prefix_clause(Area.code, code_prefix))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Area.code).offset((page - 1) * page_size).limit(page_size)).all()
    return total, list(rows)


def get_area(session: Session, code: str) -> Area:
    area: Area | None = session.scalar(current_areas(session).where(Area.code == code))
    if area is None:
        raise NotFound([Problem(f"no area with code {code}", ["path", "code"], "not_found")])
    return area


def count_children(session: Session, code: str) -> int:
    return session.scalar(select(func.count()).select_from(Area).where(Area.parent_code == code, Area.valid_to.is_(None))) or 0


def area_feature(a: Area, simplify_m: float = 0.0) -> dict[str, Any]:
    geom = a.geom
    if simplify_m > 0:
        geom = shapely.simplify(geom, simplify_m / 111_000.0, preserve_topology=True)
    return {
        "type": "Feature",
        "id": a.code,
        "geometry": geojson.geometry(geom),
        "properties": {
            "code": a.code, "name": a.name, "name_en": a.name_en, "level": a.level, "kind": a.kind,
            "parent_code": a.parent_code, "area_m2": round(a.area_m2, 1), "population": a.population,
        },
    }


def feature_collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


# ---------------------------------------------------------------- locate

@dataclass
class _Indexes:
    stamp: tuple[Any, ...]
    grids: PolygonIndex
    grid_codes_ext: np.ndarray  # codes + [None]: index -1 -> None in one gather
    names: dict[str, str]
    parents: dict[str, str | None]
    layers: list[tuple[str, str, PolygonIndex, dict[str, str]]]


_cache: dict[str, _Indexes] = {}
_lock = threading.Lock()


def areas_stamp(session: Session) -> tuple[Any, ...]:
    """Changes whenever the current areas change (count, newest valid_from, newest valid_to)."""
    row = session.execute(select(func.count(), func.max(Area.valid_from), func.max(Area.valid_to))
                          .select_from(Area)).one()
    return tuple(row)


def _stamp(session: Session) -> tuple[Any, ...]:
    lay = session.execute(select(func.count(), func.max(GridLayer.imported_at), func.sum(GridLayer.version))
                          .select_from(GridLayer)).one()
    return (areas_stamp(session), tuple(lay))


def indexes(session: Session) -> _Indexes:
    """The point-in-grid indexes (unified grid + every layer), rebuilt when grids or layers change."""
    key = database_key(session)
    stamp = _stamp(session)
    cached = _cache.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached
        rows = session.execute(select(Area.code, Area.name, Area.parent_code, Area.level, Area.geom)
                               .where(Area.valid_to.is_(None))).all()
        names = {r.code: r.name for r in rows}
        parents = {r.code: r.parent_code for r in rows}
        grid_rows = [r for r in rows if r.level == "grid"]
        grids = PolygonIndex.build([r.code for r in grid_rows], [r.geom for r in grid_rows])
        ext = np.empty(len(grids.codes) + 1, dtype=object)
        ext[:-1] = grids.codes
        ext[-1] = None
        layers = []
        for layer in session.scalars(select(GridLayer).where(GridLayer.is_unified.is_(False)).order_by(GridLayer.key)):
            lg = session.execute(select(LayerGrid.code, LayerGrid.name, LayerGrid.geom)
                                 .where(LayerGrid.layer_id == layer.id, LayerGrid.version == layer.version)).all()
            layers.append((layer.key, layer.name, PolygonIndex.build([r.code for r in lg], [r.geom for r in lg]),
                           {r.code: r.name for r in lg}))
        built = _Indexes(stamp, grids, ext, names, parents, layers)
        _cache[key] = built
        return built


def locate_many(session: Session, lon: np.ndarray, lat: np.ndarray, with_layers: bool = True) -> list[dict[str, Any]]:
    """For each point: inside or not, the unified grid with its community and street, and (with
    ``with_layers``) the covering grid of every layer. Boundary rule: see ``cityops.geo.locate``."""
    ix = indexes(session)
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    gidx = ix.grids.locate(lon, lat)
    layer_hits = [(key, name, li.locate(lon, lat), li, lnames) for key, name, li, lnames in ix.layers] if with_layers else []
    out = []
    for k in range(len(gidx)):
        item: dict[str, Any] = {"lat": float(lat[k]), "lon": float(lon[k])}
        if gidx[k] < 0:
            item.update(inside=False, message="点位不在本区范围内 the point is outside the district")
        else:
            g = str(ix.grids.codes[gidx[k]])
            c = ix.parents.get(g)
            s = ix.parents.get(c) if c else None
            item.update(inside=True, grid_code=g, grid_name=ix.names.get(g), community_code=c,
                        community_name=ix.names.get(c) if c else None, street_code=s,
                        street_name=ix.names.get(s) if s else None)
        item["layers"] = []
        if gidx[k] >= 0:
            item["layers"].append({"layer": "city_ops", "layer_name": "城运网格", "code": item["grid_code"],
                                   "name": item["grid_name"]})
        for key, name, hits, li, lnames in layer_hits:
            code = str(li.codes[hits[k]]) if hits[k] >= 0 else None
            item["layers"].append({"layer": key, "layer_name": name, "code": code, "name": lnames.get(code) if code else None})
        out.append(item)
    return out


def locate_one(session: Session, lat: float, lon: float) -> dict[str, Any]:
    if not (-90 <= lat <= 90) or not (-180 <= lon <= 180):
        raise InvalidInput([Problem("latitude must be within -90..90 and longitude within -180..180", ["query", "lat"])])
    return locate_many(session, np.array([lon]), np.array([lat]))[0]


def grid_indices_for(session: Session, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Vectorized: unified-grid codes (object array, None when outside) for many points."""
    ix = indexes(session)
    idx = ix.grids.locate(lon, lat)
    out: np.ndarray = ix.grid_codes_ext[idx]  # -1 -> the trailing None
    return out


def lineage(session: Session, grid_code: str) -> tuple[str | None, str | None]:
    """(community_code, street_code) of a unit grid."""
    ix = indexes(session)
    c = ix.parents.get(grid_code)
    return c, (ix.parents.get(c) if c else None)


def area_detail(session: Session, code: str) -> dict[str, Any]:
    from cityops.security.masking import mask_phone

    a = get_area(session, code)
    street = code[:9] if len(code) >= 9 else None
    community = code[:12] if len(code) >= 12 else None
    return {
        "code": a.code, "name": a.name, "name_en": a.name_en, "level": a.level, "kind": a.kind,
        "parent_code": a.parent_code, "area_m2": a.area_m2, "population": a.population, "synthetic": a.synthetic,
        "responsible": [{**r, "phone": mask_phone(r.get("phone"))} for r in (a.responsible or [])],
        "street_code": street, "community_code": community, "children": count_children(session, code),
    }


def area_names(session: Session, levels: tuple[str, ...] = ("street", "community", "grid")) -> list[tuple[str, str, str, str | None]]:
    """(code, level, name, parent code) of the current areas of ``levels``, without geometry (the
    place-name gazetteer of smart dispatch, cityops.ai.place)."""
    rows = session.execute(select(Area.code, Area.level, Area.name, Area.parent_code)
                           .where(Area.valid_to.is_(None), Area.level.in_(levels)).order_by(Area.code)).all()
    return [(r.code, r.level, r.name, r.parent_code) for r in rows]


def area_point(session: Session, code: str) -> tuple[float, float] | None:
    """A point inside a current area (its representative point, lon/lat), or None."""
    geom = session.scalar(select(Area.geom).where(Area.code == code, Area.valid_to.is_(None)))
    if geom is None:
        return None
    p = geom.representative_point()
    return float(p.x), float(p.y)
