"""Demo data of emergency command: the emergency-relevant departments (when missing), the plan
library (防汛防台, 危化品, 大客流, 公共卫生, 总体预案), a scripted storm that opens a level-III flood
incident and activates the flood plan (with a published yellow rainstorm warning, status Actual),
and a hazardous-chemicals drill (an exercise incident with a status Exercise warning).

``demo_incident`` is the scripted storm's entry point (``cityops demo incident``); the vital-signs
storm can call it too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import yaml
from sqlalchemy.orm import Session

from cityops.emergency import alerts, incidents, plans, reporting
from cityops.emergency.rules import DATA
from cityops.security.principal import SYSTEM, Principal

YUEYANG = "310117001"
SHESHAN = "310117103"
# two system principals, so that the drafter of a demo warning is not its approver
DRAFTER = Principal(username="demo-duty-officer", kind="system", roles=frozenset({"emergency_commander"}))
APPROVER = Principal(username="demo-commander", kind="system", roles=frozenset({"emergency_commander"}))


def ensure_departments(session: Session) -> int:
    """Add the emergency-relevant departments the case engine's list lacks; returns how many."""
    from cityops.cases import service as cases

    have = cases.departments(session)
    rows = [d for d in json.loads((DATA / "departments_emergency.json").read_text(encoding="utf-8"))["departments"]
            if d["code"] not in have]
    if rows:
        cases.upsert_departments(session, SYSTEM, rows)
    return len(rows)


def seed_plans(session: Session, principal: Principal = SYSTEM) -> list[dict[str, Any]]:
    out = []
    for path in sorted((DATA / "plans").glob("*.yaml")):
        out.append(plans.import_plan(session, principal, yaml.safe_load(path.read_text(encoding="utf-8"))))
    return out


def _warning(session: Session, body: alerts.WarningIn) -> dict[str, Any]:
    w = alerts.draft(session, DRAFTER, body)
    alerts.act(session, APPROVER, w["id"], "approve", {})
    return alerts.act(session, DRAFTER, w["id"], "publish", {})


def demo_incident(session: Session, principal: Principal = SYSTEM, *, street: str = YUEYANG, level: str = "III",
                  source_type: str = "phone", source_ref: str | None = None, title: str | None = None,
                  warning: bool = True, reported_at: dt.datetime | None = None) -> dict[str, Any]:
    """The scripted storm: a level-III flood incident (暴雨内涝) in ``street``, the flood plan
    activated at ``level``, the phone report to the district made, and a yellow rainstorm warning
    published for the street. Does not commit."""
    ensure_departments(session)
    if plans.matching_plans(session, "natural", "flood_drought", street) == []:
        seed_plans(session)
    at = incidents.now()
    res = incidents.open_incident(
        session, principal, source_type, source_ref, "natural", level if level in ("I", "II", "III") else "III",
        area=street, title=title or "强降雨致多处道路积水、小区进水", subtype="flood_drought", event_type="暴雨内涝",
        description="短时强降雨，小时雨量超过50毫米；多条道路积水20–40厘米，两处老旧小区底层进水，下立交积水。",
        reported_at=reported_at or at - dt.timedelta(minutes=12), reporter="区防汛办值班员")
    inc = incidents.get_incident(session, principal, res.incident_id, for_update=True)
    if inc.state in ("reported", "initial_response"):
        incidents.act(session, APPROVER, inc.id, "respond", {"level": level, "plans": ["SJ-FXFT"],
                                                             "note": "启动防汛防台Ⅲ级应急响应"})
        reporting.record_report(session, DRAFTER, inc.id, {"level": "district", "channel": "phone", "kind": "initial",
                                                           "content": "电话首报区应急指挥部：强降雨致多处积水。"})
    out: dict[str, Any] = {"incident": res.as_dict(), "level": level}
    if warning and res.created:
        w = _warning(session, alerts.WarningIn(
            level="yellow", event="暴雨", event_en="Rainstorm", cap_category="Met", incident=inc.code,
            headline="松江区气象台发布暴雨黄色预警", headline_en="Rainstorm yellow warning for Songjiang",
            description="预计未来6小时内本区将出现50毫米以上降水，局部地区伴有雷电和短时大风。",
            description_en="More than 50 mm of rain is expected within 6 hours, locally with thunder and gusts.",
            instruction="注意防范道路积水和城市内涝，低洼地区居民做好转移准备，非必要不外出。",
            instruction_en="Beware of flooded roads; residents of low-lying areas prepare to move; stay indoors.",
            response_type="Prepare", certainty="Likely", area_codes=[street],
            onset_at=at, expires_at=at + dt.timedelta(hours=12)))
        out["warning_id"] = w["id"]
    return out


def demo_drill(session: Session) -> dict[str, Any]:
    """A hazardous-chemicals drill: an exercise incident, the plan at level IV, an Exercise warning."""
    at = incidents.now()
    res = incidents.open_incident(
        session, SYSTEM, "phone", "drill-whp-1", "accident", "IV", area=SHESHAN, subtype="hazardous_chemicals",
        title="【演练】工业区储罐区少量氨泄漏", event_type="氨泄漏", exercise=True,
        description="演练科目：储罐法兰垫片失效，少量液氨泄漏，下风向300米内疏散。", reporter="企业值班员（演练）")
    if res.created:
        incidents.act(session, APPROVER, res.incident_id, "respond", {"level": "IV", "plans": ["SJ-WHP"]})
        _warning(session, alerts.WarningIn(
            level="blue", status="Exercise", event="危险化学品泄漏", event_en="Hazardous-chemicals leak",
            cap_category="CBRNE", incident=res.code, headline="【演练】佘山镇工业区氨泄漏，请下风向居民关闭门窗",
            description="演练：工业区储罐区发生少量氨泄漏，已得到控制。", response_type="Shelter", certainty="Observed",
            instruction="演练：下风向300米内人员按指引疏散。", area_codes=[SHESHAN], expires_at=at + dt.timedelta(hours=3)))
    return res.as_dict()


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 0,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    tick = progress or (lambda _s, _d, _t: None)
    ensure_departments(session)
    seed_plans(session)
    tick("应急预案 emergency plans", 1, 3)
    demo_incident(session, source_ref="demo-storm-1")
    tick("应急预案 emergency plans", 2, 3)
    demo_drill(session)
    tick("应急预案 emergency plans", 3, 3)
    session.flush()
