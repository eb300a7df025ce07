"""Service layer of city vital signs (城市运行体征): what routes, the CLI, MQTT ingest, the demo and
other domains call. Plain functions taking a Session and a Principal; none commits (the caller's
unit of work does), except where named.

* ``ingest`` / ``ingest_items`` — a batch of readings (validated whole; stored; handed to the
  rules once the caller's transaction commits);
* ``list_warnings`` / ``warning_detail`` / ``act_on_warning`` — the warnings, scoped;
* ``warning_for_incident`` — what an emergency incident needs from a warning (issue 12).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput, Problem
from cityops.indicators import catalogue as catalog
from cityops.indicators import devices as _devices
from cityops.indicators import ingest as _ingest
from cityops.indicators import queries, warnings
from cityops.indicators.evaluator import Handoff, pipeline
from cityops.indicators.models import LEVEL_ZH
from cityops.indicators.queries import (
    board,
    get_warning,
    indicators,
    list_warnings,
    series,
    warning_detail,
    warnings_for_case,
)
from cityops.indicators.settings import get_indicator_settings
from cityops.security.principal import Principal

list_devices = _devices.list_devices
put_device = _devices.put_device
import_devices = _devices.import_devices
HANDOFFS = "cityops.indicators.handoffs"


def _after_commit(session: Session) -> None:
    items = session.info.pop(HANDOFFS, [])
    if items:
        p = pipeline()
        for h in items:
            h.t_committed = time.monotonic()
            p.submit(h)


def _after_rollback(session: Session) -> None:
    session.info.pop(HANDOFFS, None)


def _hand_over(session: Session, stored: _ingest.Stored) -> None:
    """Once the caller's transaction commits, the batch goes to the rules (this process)."""
    if stored.batch_id is None:
        return
    if not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", lambda s, _t: _after_rollback(s))
    session.info.setdefault(HANDOFFS, []).append(
        Handoff(stored.batch_id, stored.sid, stored.ts, stored.val, stored.old, time.monotonic()))


def ingest_items(session: Session, principal: Principal, items: list[tuple[int, Any]], *, partial: bool = False,
                 source: str = "api") -> dict[str, Any]:
    """Validate and store readings ((row number, reading) pairs); the answer
    ``{accepted, duplicates, corrections, rejected: [{row, field, reason}]}``. One bad row refuses
    the whole batch (422) unless ``partial``."""
    if len(items) > get_indicator_settings().max_batch:
        raise InvalidInput([Problem(f"每批最多 {get_indicator_settings().max_batch} 条 at most "
                                    f"{get_indicator_settings().max_batch} readings a batch", ["body"], "too_long")])
    parsed = _ingest.validate(session, items)
    _ingest.check(parsed, partial)
    stored = _ingest.store(session, principal, parsed, source)
    _hand_over(session, stored)
    return stored.answer(parsed.rejected)


def ingest(session: Session, principal: Principal, body: bytes, content_type: str | None, *, partial: bool = False,
           source: str = "http") -> dict[str, Any]:
    """A request body of readings: JSON array, NDJSON or CSV (see ``ingest.parse_body``)."""
    return ingest_items(session, principal, _ingest.parse_body(body, content_type), partial=partial, source=source)


def ingest_readings(session: Session, principal: Principal, readings: list[dict[str, Any]], *,
                    partial: bool = False, source: str = "api") -> dict[str, Any]:
    """The Python API: a list of ``{device, indicator, ts, value}`` dicts (``ts`` ISO 8601 with an
    offset, or an aware datetime)."""
    items = []
    for i, r in enumerate(readings, start=1):
        t = r.get("ts") if isinstance(r, dict) else None
        if isinstance(t, dt.datetime):
            r = {**r, "ts": t.isoformat()}
        items.append((i, r))
    return ingest_items(session, principal, items, partial=partial, source=source)


def ingest_arrays(session: Session, principal: Principal, sid: np.ndarray, ts_ms: np.ndarray, val: np.ndarray,
                  source: str = "api") -> dict[str, Any]:
    """The Python API for code that already holds series ids and epoch-ms times (the demo feed,
    benchmarks): the same storing and rules, no per-row parsing."""
    parsed = _ingest.Parsed(np.arange(1, len(sid) + 1), sid.astype(np.int64), ts_ms.astype(np.int64),
                            val.astype(np.float64), [])
    stored = _ingest.store(session, principal, parsed, source)
    _hand_over(session, stored)
    return stored.answer([])


def act_on_warning(session: Session, principal: Principal, warning_id: int, action: str,
                   body: dict[str, Any]) -> dict[str, Any]:
    w = queries.get_warning(session, principal, warning_id, for_update=True)
    warnings.perform(session, principal, w, action, body)
    return queries.warning_detail(session, principal, warning_id)


# ------------------------------------------------------------------------------------ emergency (issue 12)

INCIDENT_TYPES: dict[str, tuple[str, str, str]] = {
    # indicator category -> (2024 law category, subtype, event type)
    "气象": ("自然灾害", "气象灾害", "暴雨"),
    "防汛": ("自然灾害", "水旱灾害", "洪涝"),
    "排水": ("自然灾害", "水旱灾害", "暴雨内涝"),
    "燃气": ("事故灾难", "公共设施和设备事故", "燃气泄漏"),
    "供水": ("事故灾难", "公共设施和设备事故", "供水管网故障"),
    "电力": ("事故灾难", "公共设施和设备事故", "供电故障"),
    "空气": ("事故灾难", "生态环境事件", "重污染天气"),
    "消防": ("事故灾难", "公共设施和设备事故", "火灾"),
    "交通": ("事故灾难", "交通运输事故", "道路拥堵"),
    "人流": ("社会安全事件", "群体性事件", "人群聚集"),
    "工地": ("事故灾难", "工矿商贸等生产经营单位的各类生产安全事故", "工地安全"),
    "公共卫生": ("公共卫生事件", "传染病疫情", "公共卫生异常"),
    "物联感知": ("事故灾难", "公共设施和设备事故", "感知设备故障"),
}


def warning_for_incident(session: Session, principal: Principal, warning_id: int) -> dict[str, Any]:
    """What an emergency incident needs from a warning in the principal's scope (404 outside it):
    category (the four kinds of the 2024 Emergency Response Law + subtype + event type), level
    (red/orange/yellow/blue and 一级..四级), area (code, name, level), geometry (GeoJSON of the area,
    and the triggering device's point), description (title, rule, the triggering readings)."""
    from cityops.geo import service as geo

    w = queries.get_warning(session, principal, warning_id)
    cat = queries._cat(session)
    rule = cat.rules.get(w.rule_code) if cat else None
    kind, subtype, event_type = INCIDENT_TYPES.get(w.category, ("自然灾害", "气象灾害", w.category))
    names = geo.indexes(session).names
    area_geom = None
    try:
        area_geom = geo.area_feature(geo.get_area(session, w.area_code), simplify_m=10.0)["geometry"]
    except Exception:  # noqa: BLE001 - an area retired since: the point still places it
        area_geom = None
    point = {"type": "Point", "coordinates": [w.lon, w.lat]} if w.lon is not None and w.lat is not None else None
    trig = dict(w.trigger or {})
    unit = cat.indicators[w.indicator_code].unit if cat and w.indicator_code in cat.indicators else ""
    readings = [{"ts": dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat(), "value": v}
                for t, v in trig.get("readings", [])[-20:] if v == v]
    grade = {"red": "一级", "orange": "二级", "yellow": "三级", "blue": "四级"}[w.level]
    return {
        "warning_id": w.id, "state": w.state,
        "category": kind, "subtype": subtype, "event_type": event_type,
        "level": w.level, "level_zh": f"{grade}（{LEVEL_ZH[w.level]}）", "max_level": w.max_level,
        "area": {"code": w.area_code, "name": names.get(w.area_code), "level": w.area_level,
                 "street_code": w.street_code, "grid_code": w.grid_code},
        "geometry": {"area": area_geom, "point": point},
        "description": f"{w.title}。{rule.name_zh if rule else w.rule_code}；{w.description or ''}"[:2000],
        "title": w.title, "rule": w.rule_code, "indicator": w.indicator_code, "unit": unit,
        "raised_at": w.raised_at, "readings": readings, "owner_department_code": w.owner_department_code,
        "case": {"id": w.case_id, "case_no": w.case_no} if w.case_id else None,
    }


def publish_catalogue(session: Session, principal: Principal, doc: dict[str, Any]) -> dict[str, Any]:
    cat = catalog.publish(session, principal, doc)
    return {"version": cat.version, "id": cat.id}


def catalogue_versions(session: Session) -> list[dict[str, Any]]:
    return catalog.versions(session)


# the reads other domains and the routes use through this module
__all__ = ["board", "get_warning", "indicators", "list_warnings", "series", "warning_detail", "warnings_for_case"]
