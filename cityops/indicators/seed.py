"""Demo data of vital signs: the default catalogue, a few thousand synthetic devices placed in the
district's grids (rain gauges, ponding monitors, river gauges, gas monitors, air stations, crowd
cameras, road links), the maintenance timers. Readings come from the demo feed (``feed.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cityops.indicators import catalogue as catalog
from cityops.indicators import devices
from cityops.security.principal import SYSTEM

# indicator -> (code prefix, devices in the full district, name)
KINDS: dict[str, tuple[str, int, str]] = {
    "rainfall": ("RG", 420, "雨量计"),
    "ponding_depth": ("PD", 320, "积水监测仪"),
    "water_level": ("WL", 60, "河道水位站"),
    "gas_pressure": ("GP", 600, "燃气压力监测点"),
    "aqi": ("AQ", 34, "空气质量监测站"),
    "crowd_density": ("CD", 300, "人群密度摄像头"),
    "road_speed": ("RS", 1300, "路段测速"),
}


def _points(grids: list[Any], n: int, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    from shapely.geometry import Point

    out = []
    for _ in range(n):
        code, g = grids[int(rng.integers(0, len(grids)))]
        minx, miny, maxx, maxy = g.bounds
        p = None
        for _try in range(30):
            x, y = float(rng.uniform(minx, maxx)), float(rng.uniform(miny, maxy))
            if g.contains(Point(x, y)):
                p = (x, y)
                break
        if p is None:
            rp = g.representative_point()
            p = (float(rp.x), float(rp.y))
        out.append((code, p[0], p[1]))
    return out


def demo_devices(district: Any, *, small: bool, rng_seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(rng_seed + 10)
    grids = [(a.code, a.geom) for a in district.areas if a.level == "grid"]
    cat = catalog.build(catalog.default_doc())
    rows: list[dict[str, Any]] = []
    for ind, (prefix, n_full, name) in KINDS.items():
        n = max(8, n_full // 10) if small else n_full
        if ind == "rainfall" and small:
            n = 40
        for k, (_g, lon, lat) in enumerate(_points(grids, n, rng), start=1):
            params: dict[str, Any] = {}
            if ind == "water_level":
                line = round(float(rng.uniform(3.4, 3.9)), 2)
                params = {"warning_line": line, "warning_line_clear": round(line - 0.1, 2),
                          "guarantee_line": round(line + 0.8, 2)}
            rows.append({"code": f"{prefix}-{k:04d}", "name": f"{name}{k:04d}", "indicators": [ind],
                         "lon": round(lon, 6), "lat": round(lat, 6),
                         "owner_department_code": cat.indicators[ind].owner_department_code, "status": "active",
                         "params": params})
    return rows


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    tick = progress or (lambda _s, _d, _t: None)
    catalog.ensure_default(session, SYSTEM)
    if district is None:
        return
    rows = demo_devices(district, small=small, rng_seed=rng_seed)
    tick("城市体征 vital signs", 0, len(rows))
    devices.upsert_many(session, SYSTEM, rows, [["seed", i] for i in range(len(rows))])
    tick("城市体征 vital signs", len(rows), len(rows))
    from cityops.indicators.jobs import arm

    arm(session)
