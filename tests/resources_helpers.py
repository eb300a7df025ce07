"""Support for the resource tests: a warehouse with one stock row and a request, made through the
services (SYSTEM principal), inside a street of the small demo district; committed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

YUEYANG = "310117001"
SHESHAN = "310117103"


def point_in(session: Any, prefix: str, k: int = 0) -> tuple[float, float]:
    from cityops.geo.models import Area

    grids = session.execute(select(Area.geom).where(Area.level == "grid", Area.code.startswith(prefix))
                            .order_by(Area.code)).scalars().all()
    p = grids[k % len(grids)].representative_point()
    session.commit()  # end the read (on SQLite a session's transaction holds the write lock)
    return float(p.x), float(p.y)


def tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def make_stock(session: Any, qty: int, *, street: str = YUEYANG, item: str = "1010101", k: int = 0,
               handling: int | None = None) -> tuple[int, int]:
    """(warehouse id, stock id) of a new warehouse holding ``qty`` of ``item``."""
    from cityops.resources import schemas, service
    from cityops.security.principal import SYSTEM

    lon, lat = point_in(session, street, k)
    w = service.upsert(session, SYSTEM, "warehouses", schemas.WarehouseIn(
        code=f"T-{tag()}", name="测试仓", kind="government", lon=lon, lat=lat, handling=handling))
    s = service.receive(session, SYSTEM, str(w["id"]), schemas.StockIn(item_code=item, item_name="饮用水", unit="箱",
                                                                        quantity=qty, min_stock=5))
    session.commit()
    return int(w["id"]), int(s["id"])


def make_request(session: Any, lines: dict[str, int], *, street: str = YUEYANG, k: int = 1,
                 priority: float = 1.0) -> int:
    from cityops.resources import schemas, shipments
    from cityops.security.principal import SYSTEM

    lon, lat = point_in(session, street, k)
    r = shipments.raise_request(session, SYSTEM, schemas.RequestIn(
        demand_name=f"测试需求点{tag()}", lon=lon, lat=lat, priority=priority,
        lines=[schemas.LineIn(item_code=c, quantity=q) for c, q in lines.items()]))
    session.commit()
    return int(r["id"])
