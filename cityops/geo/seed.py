"""Write the generated demo district into the database."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cityops.geo import demo
from cityops.geo.models import Area, GridLayer, LayerGrid

LAYER_DEFS = {
    "city_ops": ("城运网格", "City-operations grid (unified)", True),
    "policing": ("警务网格", "Policing grid", False),
    "governance": ("综治网格", "Social-governance grid", False),
    "party_building": ("党建网格", "Party-building grid", False),
}


def seed_geo(session: Session, district: demo.DemoDistrict, progress: Callable[[int], None] | None = None) -> None:
    session.execute(delete(LayerGrid))
    session.execute(delete(GridLayer))
    session.execute(delete(Area))
    # parents first (FK)
    order = {"district": 0, "street": 1, "community": 2, "grid": 3}
    for a in sorted(district.areas, key=lambda a: (order[a.level], a.code)):
        session.add(Area(code=a.code, level=a.level, kind=a.kind, name=a.name, name_en=a.name_en,
                         parent_code=a.parent_code, geom=a.geom, area_m2=a.area_m2, population=a.population,
                         responsible=a.responsible, synthetic=True))
        if progress:
            progress(1)
    session.flush()
    for key, (name, name_en, unified) in LAYER_DEFS.items():
        if key in district.layers or unified:
            n = len(district.layers[key][2]) if key in district.layers else 0
            layer = GridLayer(key=key, name=name, name_en=name_en, is_unified=unified, version=1, imported_by="demo",
                              source="cityops.geo.demo", feature_count=n,
                              description="演示数据（合成）synthetic demo layer" if not unified else "单元网格（多格合一目标层）")
            session.add(layer)
            session.flush()
            if key in district.layers:
                for g in district.layers[key][2]:
                    session.add(LayerGrid(layer_id=layer.id, version=1, code=g.code, name=g.name, geom=g.geom, area_m2=g.area_m2,
                                          properties=g.properties))
                    if progress:
                        progress(1)
    session.flush()


def has_district(session: Session) -> bool:
    return session.scalar(select(Area.code).where(Area.level == "district").limit(1)) is not None
