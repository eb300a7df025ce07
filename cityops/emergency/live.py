"""Emergency command in the console's live feed (``cityops.console.live`` LIVE_MODULES).

Events of incidents, their tasks and call-ups, and public warnings become feed items for the
principals who may read the object (through the scoped reads of this domain; others see nothing
of it), each linking to the command view.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.emergency import incidents, machines
from cityops.emergency.models_command import Incident, PublicWarning
from cityops.emergency.scopes import WARNING_SCOPE
from cityops.security import scope
from cityops.security.principal import Principal

TOPICS = ["incident*", "emergency_task*", "emergency.mobilisation*", "public_warning*"]

_TITLES = {
    "incident.opened": ("突发事件接报", "Incident reported"), "incident.report_merged": ("重复报告已合并", "Report merged"),
    "incident.info_report": ("信息报告", "Information report"), "incident.report_overdue": ("信息报告超时", "Report overdue"),
    "emergency_task.overdue": ("应急任务超时", "Task overdue"), "emergency.mobilisation.callup": ("动员令", "Call-up"),
    "emergency.mobilisation.ack": ("动员已确认", "Call-up acknowledged"),
    "public_warning.drafted": ("预警草稿", "Warning drafted"), "public_warning.issued": ("预警发布", "Warning issued"),
}


def _int(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return None


def _incident_id(topic: str, payload: dict[str, Any]) -> int | None:
    if topic.startswith("incident."):
        return _int(payload.get("id"))
    return _int(payload.get("incident_id"))


def render(session: Session, principal: Principal, events: list[Any], area: str | None, lang: str) -> list[dict[str, Any]]:
    en = lang == "en"
    inc_ids = {i for e in events if not e.topic.startswith("public_warning") and (i := _incident_id(e.topic, e.payload))}
    w_ids = {i for e in events if e.topic.startswith("public_warning") and (i := _int(e.payload.get("id")))}
    incs: dict[int, Any] = {}
    if inc_ids:
        stmt = incidents.readable(principal).where(Incident.id.in_(inc_ids))
        if area:
            stmt = stmt.where(Incident.area_code.startswith(area) | Incident.street_code.startswith(area))
        incs = {i.id: i for i in session.scalars(stmt)}
    ws: dict[int, Any] = {}
    if w_ids:
        ws = {w.id: w for w in session.scalars(select(PublicWarning).where(scope.clause(principal, WARNING_SCOPE),
                                                                          PublicWarning.id.in_(w_ids)))}
    out = []
    for e in events:
        label = _TITLES.get(e.topic)
        if e.topic.startswith("public_warning"):
            w = ws.get(_int(e.payload.get("id")) or -1)
            if w is None:
                continue
            action = e.payload.get("action") or e.payload.get("msg_type") or e.topic.rsplit(".", 1)[-1]
            head = label[1 if en else 0] if label else machines.WARNING.actions.get(action, {}).get(
                "en" if en else "zh", action)
            out.append({"event_id": e.id, "topic": e.topic, "kind": "warning", "title": f"{head}：{w.headline}",
                        "at": e.created_at, "warning_id": w.id, "incident_id": w.incident_id, "level": w.level,
                        "status": w.status, "state": w.state, "link": f"/emergency/warnings?id={w.id}"})
            continue
        inc = incs.get(_incident_id(e.topic, e.payload) or -1)
        if inc is None:
            continue
        if label is None:
            action = e.payload.get("action") or e.topic.rsplit(".", 1)[-1]
            m = machines.TASK if e.topic.startswith("emergency_task") else machines.INCIDENT
            label = (m.actions.get(action, {}).get("zh", action), m.actions.get(action, {}).get("en", action))
        out.append({"event_id": e.id, "topic": e.topic, "kind": "incident", "title": f"{label[1 if en else 0]}：{inc.title}",
                    "at": e.created_at, "incident_id": inc.id, "code": inc.code, "state": inc.state,
                    "response_level": inc.response_level, "exercise": inc.exercise,
                    "link": f"/emergency/incidents/{inc.id}"})
    return out
