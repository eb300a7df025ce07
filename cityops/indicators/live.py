"""Live feed of warnings for the console (SSE, ``cityops.console.live``): warning events the
principal may read, each as a feed item."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cityops.indicators.models import LEVEL_ZH, WARNING_SCOPE, EarlyWarning
from cityops.security import scope
from cityops.security.principal import Principal

TOPICS = ["warning*"]
KIND = {"warning.raised": "raised", "warning.level": "level", "warning.transition": "changed", "warning.case": "case"}


def render(session: Any, principal: Principal, events: list[Any], area: str | None, lang: str) -> list[dict[str, Any]]:
    ids = set()
    for ev in events:
        v = ev.payload.get("id")
        if isinstance(v, int) or (isinstance(v, str) and v.isdigit()):
            ids.add(int(v))
    if not ids:
        return []
    stmt = select(EarlyWarning).where(EarlyWarning.id.in_(ids), scope.clause(principal, WARNING_SCOPE))
    if area and len(area) > 6:
        stmt = stmt.where(EarlyWarning.area_code.startswith(area) | EarlyWarning.street_code.startswith(area[:9]))
    seen = {w.id: w for w in session.scalars(stmt)}
    out = []
    for ev in events:
        v = ev.payload.get("id")
        w = seen.get(int(v)) if v is not None and str(v).isdigit() else None
        if w is None:
            continue
        kind = KIND.get(ev.topic, "changed")
        level = w.level if lang != "zh" else LEVEL_ZH.get(w.level, w.level)
        verb = {"raised": ("发布", "raised"), "level": ("调整", "level changed"), "case": ("立案", "case opened"),
                "changed": ("处置", "updated")}[kind]
        out.append({"event_id": ev.id, "topic": ev.topic, "kind": kind, "at": ev.created_at.isoformat(),
                    "title": (f"预警{verb[0]}：{w.title}" if lang == "zh" else f"Warning {verb[1]}: {w.title} ({level})"),
                    "warning_id": w.id, "level": w.level, "state": w.state, "area_code": w.area_code,
                    "category": w.category, "rule": w.rule_code, "link": f"/vitals?warning={w.id}",
                    "action": ev.payload.get("action"), "to_state": ev.payload.get("to_state")})
    return out
