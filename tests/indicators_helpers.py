"""Helpers for the vital-signs tests: devices in known grids, readings, draining the evaluator."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from sqlalchemy import select


def grid_point(session: Any, prefix: str, k: int = 0) -> tuple[str, float, float]:
    from cityops.geo.models import Area

    grids = session.execute(select(Area.code, Area.geom).where(Area.level == "grid", Area.valid_to.is_(None),
                                                               Area.code.startswith(prefix)).order_by(Area.code)).all()
    session.rollback()  # a SQLite session's transaction holds the write lock: end it
    code, geom = grids[k % len(grids)]
    p = geom.representative_point()
    return code, float(p.x), float(p.y)


def make_devices(session: Any, specs: list[tuple[str, str, str, int]], params: dict[str, Any] | None = None
                 ) -> dict[str, tuple[str, str]]:
    """specs: (code, indicator, area prefix, k-th grid) -> {code: (grid, indicator)}; commits."""
    from cityops.indicators import catalogue, devices
    from cityops.security.principal import SYSTEM

    catalogue.ensure_default(session, SYSTEM)
    rows, out = [], {}
    for code, ind, prefix, k in specs:
        grid, lon, lat = grid_point(session, prefix, k)
        rows.append({"code": code, "indicators": [ind], "lon": lon, "lat": lat, "owner_department_code": "sw",
                     "params": params or {}})
        out[code] = (grid, ind)
    devices.upsert_many(session, SYSTEM, rows, [["t", i] for i in range(len(rows))])
    session.commit()
    return out


def tag() -> str:
    return uuid.uuid4().hex[:8]


def minute0(hours_ago: float = 20.0) -> dt.datetime:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    return t.replace(second=0, microsecond=0)


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in rows) + b"\n"


def reading(device: str, indicator: str, t: dt.datetime, value: float) -> dict[str, Any]:
    return {"device": device, "indicator": indicator, "ts": t.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(),
            "value": value}


def drain() -> None:
    from cityops.indicators.evaluator import pipeline

    assert pipeline().drain(timeout=120), "the evaluator did not catch up"


def sensor_headers(session: Any) -> dict[str, str]:
    from cityops.security.principal import SYSTEM
    from cityops.security.service import create_api_key

    _k, clear = create_api_key(session, SYSTEM, f"t-sensor-{tag()}", ["reading.ingest"])
    session.commit()
    return {"X-API-Key": clear}
