"""Helpers of the outbreak tests: an outbreak of a test's own (a street of its own), persons placed
in that street's grids, Shanghai times."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from tests.emergency_helpers import point_in

TZ = ZoneInfo("Asia/Shanghai")


def sh(y: int, m: int, d: int, h: int = 12, mi: int = 0) -> dt.datetime:
    """A Shanghai wall-clock time."""
    return dt.datetime(y, m, d, h, mi, tzinfo=TZ)


def new_outbreak(session: Any, street: str, title: str, rule_set: str = "covid19-v9") -> dict[str, Any]:
    from cityops.outbreak import service
    from cityops.outbreak.schemas import OutbreakIn
    from cityops.security.principal import SYSTEM

    return service.open_outbreak(session, SYSTEM, OutbreakIn(disease="covid19", area_code=street, title=title,
                                                             reason="测试 test", rule_set=rule_set))


def person(session: Any, street: str, name: str, k: int = 0) -> Any:
    from cityops.outbreak.schemas import PersonIn

    lon, lat = point_in(session, street, k)
    return PersonIn(name=name, phone="13812345678", lon=lon, lat=lat)


def categories(session: Any, outbreak_id: int) -> dict[str, tuple[Any, ...]]:
    """name -> (category, last exposure, quarantine end, monitoring end)."""
    from sqlalchemy import select

    from cityops.outbreak.models import TrackedPerson

    session.expire_all()
    return {p.name: (p.category, p.last_exposure_on, p.quarantine_end, p.monitoring_end)
            for p in session.scalars(select(TrackedPerson).where(TrackedPerson.outbreak_id == outbreak_id))}
