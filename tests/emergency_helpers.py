"""Support for the emergency-command tests: a database of their own (grid base, departments, roles,
plans) and a hand-made plan whose tasks per level the tests know independently."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from sqlalchemy import select

YUEYANG = "310117001"
SHESHAN = "310117103"

# the hand-made plan: level -> {(task key, owner)} it must produce for an incident in one street
# ("@street" resolves to that street's centre, jz + street code), written out by hand
TEST_PLAN: dict[str, Any] = {
    "format": "cityops-plan/1", "code": "T-PLAN", "name": "测试预案", "type": "special", "edition": "t1",
    "issued_by": "测试", "owner_department": "yj",
    "scope": {"categories": ["natural"], "subtypes": ["flood_drought"]},
    "levels": {
        "IV": {"command": {"headquarters": "测试指挥部", "commander": "测试指挥长",
                           "groups": [{"code": "g1", "name": "一组", "lead_department": "sw"}]},
               "tasks": [{"key": "a", "department": "sw", "title": "任务A", "deadline_minutes": 30, "group": "g1"},
                         {"key": "b", "department": "@street", "title": "任务B", "deadline_minutes": 60}]},
        "III": {"inherits": "IV", "tasks": [{"key": "c", "department": "yj", "title": "任务C", "deadline_minutes": 30}]},
        "II": {"inherits": "III", "tasks": [{"key": "d", "department": "xf", "title": "任务D", "deadline_minutes": 20},
                                            {"key": "e", "department": "ga", "title": "任务E", "deadline_minutes": 45}]},
        "I": {"inherits": "II", "tasks": [{"key": "f", "department": "jj", "title": "任务F", "deadline_minutes": 15},
                                          {"key": "g", "department": "@street", "title": "任务G", "deadline_minutes": 30},
                                          {"key": "h", "department": "wj", "title": "任务H", "deadline_minutes": 60}]},
    },
}


def expected_tasks(level: str, street: str) -> set[tuple[str, str]]:
    c = f"jz{street}"
    by = {"IV": {("a", "sw"), ("b", c)}, "III": {("c", "yj")}, "II": {("d", "xf"), ("e", "ga")},
          "I": {("f", "jj"), ("g", c), ("h", "wj")}}
    order = ["IV", "III", "II", "I"]
    out: set[tuple[str, str]] = set()
    for lv in order[:order.index(level) + 1]:
        out |= by[lv]
    return out


def plan_doc(code: str = "T-PLAN", **changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(TEST_PLAN)
    d["code"] = code
    d.update(changes)
    return d


def seed_world(session: Any) -> None:
    """Grid base (small demo district), departments, role catalogue, emergency departments and plans
    — what an intake needs, without cases or other demo data. Commits."""
    from cityops.cases import reference as ref
    from cityops.emergency.seed_command import ensure_departments, seed_plans
    from cityops.geo import demo
    from cityops.geo.models import Area
    from cityops.geo.seed import seed_geo
    from cityops.security import service
    from cityops.security.principal import SYSTEM

    service.ensure_catalog(session)
    if session.scalar(select(Area.code).limit(1)) is None:
        seed_geo(session, demo.generate(small=True), lambda n: None)
    ref.seed_departments(session, SYSTEM)
    ensure_departments(session)
    seed_plans(session)
    session.commit()


def point_in(session: Any, prefix: str, k: int = 0) -> tuple[float, float]:
    """(lon, lat) of a representative point of the k-th unit grid under ``prefix``."""
    from cityops.geo.models import Area

    grids = session.execute(select(Area.geom).where(Area.level == "grid", Area.code.startswith(prefix))
                            .order_by(Area.code)).scalars().all()
    p = grids[k % len(grids)].representative_point()
    return float(p.x), float(p.y)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
