"""Routes of emergency command (thin: parse, call one service function, return): incidents and their
lifecycle, information reports, tasks, plans, mobilisation, the flat-reporting dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityops.emergency import (
    assessment,
    from_case,
    incidents,
    machines,
    mobilisation,
    plans,
    reporting,
    rules,
    tasks,
)
from cityops.emergency.schemas_command import ActionBody, DrillIn, FromCaseIn, IncidentIn, NoteIn, ReportIn
from cityops.errors import InvalidInput, Problem
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/emergency", tags=["emergency"])
REF = Path(..., min_length=1, max_length=24, pattern=r"^[A-Za-z0-9-]+$", description="incident id or code")
ACTION = Path(..., min_length=1, max_length=40, pattern=r"^[a-z_]+$")


def _lang(request: Request) -> str:
    from cityops.console.i18n import pick_lang

    return pick_lang(request)


def _split(v: str | None) -> list[str] | None:
    return [x for x in v.split(",") if x] if v else None


def _period(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.datetime, dt.datetime]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    today = dt.datetime.now(tz).date()
    end_d = date_to or today
    start_d = date_from or (end_d - dt.timedelta(days=29))
    if start_d > end_d:
        raise InvalidInput([Problem("from 须不晚于 to", ["query", "from"], "value_error")])
    if (end_d - start_d).days > 366:
        raise InvalidInput([Problem("统计区间不超过一年 the period is at most a year", ["query", "from"], "value_error")])
    return (dt.datetime.combine(start_d, dt.time(0), tz).astimezone(dt.UTC),
            dt.datetime.combine(end_d + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.UTC))


# ---------------------------------------------------------------- reference data


@router.get("/categories", summary="突发事件类别与子类 The four categories, subtypes and departments")
def categories(principal: Principal = require("incident.read")) -> dict[str, Any]:
    return rules.categories().model_dump()


@router.get("/reporting/rules", summary="信息报告时限与扁平化通知对象 Reporting deadlines and recipients")
def reporting_rules(principal: Principal = require("incident.read")) -> dict[str, Any]:
    return rules.reporting().model_dump(by_alias=True)


@router.get("/mobilisation/ladder", summary="动员层级 The mobilisation ladder per response level")
def ladder(principal: Principal = require("incident.read")) -> dict[str, Any]:
    doc = rules.ladder()
    return {**doc.model_dump(), "resolved": {lv: [c.model_dump() for c in rules.ladder_calls(lv)] for lv in rules.LEVELS}}


# ---------------------------------------------------------------- incidents


@router.get("/incidents", summary="突发事件列表 Incidents in scope")
def list_incidents(request: Request, state: str | None = Query(None, max_length=200), open: bool = False,
                   area: str | None = Query(None, max_length=15, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$"), exercise: bool | None = None,
                   page: int = Query(1, ge=1, le=10_000), page_size: int = Query(50, ge=1, le=500),
                   principal: Principal = require("incident.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return incidents.list_incidents(session, principal, state=_split(state), open_only=open, area=area,
                                    exercise=exercise, page=page, page_size=page_size, lang=_lang(request))


@router.post("/incidents", status_code=201, summary="接报：登记突发事件（重复报告自动合并） Report an incident")
def report_incident(body: IncidentIn, principal: Principal = require("incident.report"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    return incidents.open_incident(
        session, principal, body.source_type, body.source_ref, body.category, body.severity, body.area, body.title,
        body.description, geometry=body.geometry, subtype=body.subtype, event_type=body.event_type, lon=body.lon,
        lat=body.lat, reported_at=body.reported_at, reporter=body.reporter, address=body.address,
        exercise=body.exercise).as_dict()


@router.post("/incidents/from-case", status_code=201,
             summary="案件升级为突发事件 Escalate a case to an incident")
def escalate_case(body: FromCaseIn, principal: Principal = require("incident.report"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    return from_case.escalate_case(session, principal, body)


@router.get("/incidents/{incident}", summary="突发事件详情 Incident detail")
def incident_detail(request: Request, incident: str = REF, principal: Principal = require("incident.read"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    return incidents.detail(session, principal, incidents.get_incident(session, principal, incident), _lang(request))


@router.get("/incidents/{incident}/timeline", summary="事件时间线 Incident timeline")
def incident_timeline(request: Request, incident: str = REF, principal: Principal = require("incident.read"),
                      session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return incidents.incident_timeline(session, principal, incident, _lang(request))


@router.post("/incidents/{incident}/actions/{action}",
             summary="事件处置动作（按流转表） Take an action on an incident (transition table)")
def incident_action(request: Request, body: ActionBody, incident: str = REF, action: str = ACTION,
                    principal: Principal = require("incident.act"), session: Session = UnitOfWork) -> dict[str, Any]:
    return incidents.act(session, principal, incident, action, body.as_body(), _lang(request))


@router.post("/incidents/{incident}/reports", status_code=201,
             summary="信息报告（首报/续报/终报） Record an information report to a command level")
def incident_report(body: ReportIn, incident: str = REF, principal: Principal = require("incident.report"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    return reporting.record_report(session, principal, incident, body.model_dump())


@router.get("/incidents/{incident}/tasks", summary="按部门的任务看板 Tasks by department (SLA colour)")
def incident_tasks(request: Request, incident: str = REF, principal: Principal = require("incident.read"),
                   session: Session = UnitOfWork) -> list[dict[str, Any]]:
    inc = incidents.get_incident(session, principal, incident)
    return tasks.by_department(session, principal, inc.id, _lang(request))


@router.get("/incidents/{incident}/evaluation", summary="事件评估 Evaluation of an incident")
def incident_evaluation(incident: str = REF, principal: Principal = require("incident.read"),
                        session: Session = UnitOfWork) -> dict[str, Any]:
    return assessment.evaluate(session, principal, incident)


# ---------------------------------------------------------------- flat reporting dashboard


@router.get("/reporting/reach",
            summary="扁平化报告：首报到部门/指挥层级的时长 Time from first report to department and command")
def reach(date_from: dt.date | None = Query(None, alias="from"), date_to: dt.date | None = Query(None, alias="to"),
          kind: str = Query("incident,case", pattern=r"^(incident|case)(,(incident|case))?$"),
          exercise: bool = False, principal: Principal = require("incident.read"),
          session: Session = UnitOfWork) -> dict[str, Any]:
    start, end = _period(date_from, date_to)
    return reporting.reach_dashboard(session, principal, start, end, kinds=tuple(kind.split(",")),
                                     include_exercise=exercise)


# ---------------------------------------------------------------- tasks


@router.get("/tasks", summary="应急任务（部门待办） Tasks in scope: a department's to-do")
def list_tasks(request: Request, incident: int | None = Query(None, ge=1, le=2**62),
               department: str | None = Query(None, max_length=40),
               state: str | None = Query(None, max_length=100, pattern=machines.states_pattern(machines.TASK),
                                         description="任务状态（逗号分隔） task states, comma-separated"),
               open: bool = False, page: int = Query(1, ge=1, le=10_000), page_size: int = Query(100, ge=1, le=1000),
               principal: Principal = require("incident.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return tasks.list_tasks(session, principal, incident=incident, department=department, state=_split(state),
                            open_only=open, page=page, page_size=page_size, lang=_lang(request))


@router.get("/tasks/{task_id}", summary="任务详情 Task detail")
def task_detail(request: Request, task_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("incident.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return tasks.task_detail(session, principal, task_id, _lang(request))


@router.post("/tasks/{task_id}/actions/{action}", summary="办理任务 Act on a task (transition table)")
def task_action(request: Request, body: ActionBody, task_id: int = Path(..., ge=1, le=2**31 - 1), action: str = ACTION,
                principal: Principal = require("task.act"), session: Session = UnitOfWork) -> dict[str, Any]:
    return tasks.act(session, principal, task_id, action, body.as_body(), _lang(request))


# ---------------------------------------------------------------- mobilisation


@router.get("/mobilisation", summary="动员记录 Call-ups in scope")
def list_callups(request: Request, incident: int | None = Query(None, ge=1, le=2**62),
                 state: str | None = Query(None, pattern=r"^(called|acknowledged|stood_down)$"),
                 principal: Principal = require("incident.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return mobilisation.list_callups(session, principal, incident=incident, state=state, lang=_lang(request))


@router.post("/mobilisation/{callup_id}/ack", summary="确认动员 Acknowledge a call-up")
def ack_callup(body: NoteIn, callup_id: int = Path(..., ge=1, le=2**31 - 1), principal: Principal = require("mobilisation.ack"),
               session: Session = UnitOfWork) -> dict[str, Any]:
    return mobilisation.acknowledge(session, principal, callup_id, body.model_dump())


# ---------------------------------------------------------------- plans


@router.get("/plans", summary="预案库 The plan library")
def list_plans(request: Request, principal: Principal = require("plan.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return plans.list_plans(session, _lang(request))


@router.get("/plans/schema.json", summary="预案文档的 JSON Schema The JSON Schema of plan documents")
def plan_schema(principal: Principal = require("plan.read")) -> dict[str, Any]:
    return plans.plan_schema()


@router.post("/plans", status_code=201,
             summary="导入预案（JSON 或 YAML；内容变化即新版本） Import a plan document (a new version if changed)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}}, "application/yaml": {"schema": {"type": "string"}}}}})
async def import_plan(request: Request, format: str | None = Query(None, pattern=r"^(json|yaml)$"),
                      principal: Principal = require("plan.manage"), session: Session = UnitOfWork) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 2_000_000:
        raise InvalidInput([Problem("预案文档不超过 2 MB the document is at most 2 MB", ["body"], "too_large")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput([Problem("须为 UTF-8 文本 the document must be UTF-8 text", ["body"], "value_error")])
    ctype = request.headers.get("content-type", "")
    fmt = format or ("yaml" if "yaml" in ctype else "json" if "json" in ctype else None)
    doc = plans.parse_text(text, fmt)
    return await run_in_threadpool(plans.import_plan, session, principal, doc)


@router.get("/plans/{code}", summary="预案详情（各级任务与指挥机构） Plan detail")
def plan_detail(request: Request, code: str = Path(..., pattern=r"^[A-Za-z0-9_-]{2,60}$"),
                version: int | None = Query(None, ge=1, le=100_000), principal: Principal = require("plan.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return plans.plan_detail(session, code, version, _lang(request))


@router.get("/plans/{code}/export", summary="导出预案 Export a plan version as JSON or YAML")
def export_plan(code: str = Path(..., pattern=r"^[A-Za-z0-9_-]{2,60}$"),
                format: str = Query("json", pattern=r"^(json|yaml)$"), version: int | None = Query(None, ge=1, le=100_000),
                principal: Principal = require("plan.read"), session: Session = UnitOfWork) -> Response:
    text, media = plans.export_plan(session, code, format, version)
    ext = "yaml" if format == "yaml" else "json"
    return Response(text, media_type=f"{media}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{code}.{ext}"'})


@router.post("/plans/{code}/drills", status_code=201, summary="记录演练 Record a drill of a plan")
def record_drill(body: DrillIn, code: str = Path(..., pattern=r"^[A-Za-z0-9_-]{2,60}$"),
                 principal: Principal = require("plan.manage"), session: Session = UnitOfWork) -> dict[str, Any]:
    return plans.record_drill(session, principal, code, body.model_dump(mode="json"))
