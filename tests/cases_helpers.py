"""Shared helpers of the case tests (not a test module)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import select

# a valid 1x1 PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5e5d2d80000000049454e44ae426082")


def category(session: Any, name: str) -> Any:
    from cityops.cases import reference as ref

    cat = ref.catalogue(session)
    session.commit()  # SQLite: never keep the write lock the engine takes at BEGIN
    return next(c for c in cat.by_version[cat.active_id].values() if c.name_zh == name)


def scalar(session: Any, stmt: Any) -> Any:
    """Read one value and end the transaction (SQLite takes the write lock at BEGIN)."""
    v = session.scalar(stmt)
    session.commit()
    return v


def scalars(session: Any, stmt: Any) -> list[Any]:
    v = list(session.scalars(stmt))
    session.commit()
    return v


def free_point(session: Any, category_id: int, street: str | None = None, skip: int = 0,
               clear_m: float = 400.0) -> tuple[float, float, str]:
    """(lon, lat, grid_code) inside a unit grid with no case of the category within ``clear_m``."""
    from cityops.cases.intake import find_duplicate
    from cityops.cases.sla import now
    from cityops.geo.models import Area

    stmt = select(Area.code, Area.geom).where(Area.level == "grid", Area.valid_to.is_(None)).order_by(Area.code)
    if street:
        stmt = stmt.where(Area.code.like(street + "%"))
    seen = 0
    for code, geom in session.execute(stmt):
        p = geom.representative_point()
        if find_duplicate(session, category_id, p.x, p.y, now(), clear_m, 24 * 365 * 5) is None:
            if seen >= skip:
                session.commit()
                return p.x, p.y, code
            seen += 1
    raise AssertionError("no free point")


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (lon + east_m / (110_950.0 * math.cos(math.radians(lat))), lat + north_m / 110_950.0)


def utc(*a: int) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(*a, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(dt.UTC)


def upload(client: Any, headers: dict[str, str]) -> str:
    r = client.post("/api/v1/media", files=[("files", ("p.png", PNG, "image/png"))], headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["items"][0]["id"]
