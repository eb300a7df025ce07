"""Routes of the case engine: thin wrappers around ``cityops.cases.service`` / ``reference``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Header, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.orm import Session

from cityops.cases import flows, intake, places, queries, reference, schemas, service
from cityops.cases import inbox as inbox_buckets
from cityops.errors import InvalidInput, Problem
from cityops.geo.geojson import GeoJSONResponse
from cityops.security.deps import public_route, require
from cityops.security.principal import Principal
from cityops.uow import ReadOnlyUnitOfWork, StreamingReads, UnitOfWork

router = APIRouter(prefix="/api/v1")

CASE_REF = Path(..., max_length=20, pattern=r"^\d{1,20}$", description="案件 id 或案件编号 case id or case number")
IDEM = Header(None, alias="Idempotency-Key", max_length=200, description="retries with the same key return the first answer")


def _client_ip(request: Request) -> str | None:
    try:
        from cityops.security.service import client_ip

        return client_ip(request)
    except ImportError:  # pragma: no cover
        return request.client.host if request.client else None


def _intake_response(response: Response, result: tuple[int, dict[str, Any], bool]) -> dict[str, Any]:
    status, body, replayed = result
    response.status_code = 200 if body.get("linked") else status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return body


def _filter(area: str | None, state: str | None, category: str | None, kind: str | None, source: str | None,
            department: str | None, urgency: str | None, sla: str | None, overdue: bool | None, open_: bool | None,
            date_from: dt.datetime | None, date_to: dt.datetime | None, q: str | None, bbox: str | None) -> queries.CaseFilter:
    return queries.parse_filter(area=area, state=state, category=category, kind=kind, source=source, department=department,
                                urgency=urgency, sla_state=sla, overdue=overdue, open_=open_, date_from=date_from,
                                date_to=date_to, text=q, bbox=bbox)


def _csv(values: object, many: bool = True) -> str:
    """The pattern of one value (or a comma-separated list) among ``values``: stated in the OpenAPI
    document, so that a client knows what the route checks."""
    alt = "|".join(sorted(str(v) for v in values))  # type: ignore[attr-defined]
    return f"^({alt})(,({alt}))*$" if many else f"^({alt})$"


class F:
    """Shared list/map filters as query parameters."""

    def __init__(self,
                 area: str | None = Query(None, max_length=15, pattern=r"^\d{1,15}$", description="区划/网格代码前缀"),
                 state: str | None = Query(None, max_length=300, pattern=_csv(reference.STATES),
                                           description="states, comma-separated"),
                 category: str | None = Query(None, max_length=300, description="category codes, comma-separated"),
                 kind: str | None = Query(None, max_length=12, pattern=_csv(reference.KINDS, many=False)),
                 source: str | None = Query(None, max_length=200),
                 department: str | None = Query(None, max_length=40, description="lead or co-handling department"),
                 urgency: str | None = Query(None, max_length=40, pattern=_csv(reference.URGENCIES)),
                 sla: str | None = Query(None, max_length=8, pattern=r"^(green|yellow|red|none)$",
                                         description="green / yellow / red / none"),
                 overdue: bool | None = Query(None),
                 open: bool | None = Query(None, description="only open (true) or finished (false) cases"),
                 date_from: dt.datetime | None = Query(None, description="reported at or after (ISO-8601 with offset)"),
                 date_to: dt.datetime | None = Query(None),
                 q: str | None = Query(None, max_length=100, description="text / case number / external id"),
                 bbox: str | None = Query(None, max_length=100, description="west,south,east,north")) -> None:
        self.filter = _filter(area, state, category, kind, source, department, urgency, sla, overdue, open, date_from,
                              date_to, q, bbox)


# ================================================================ intake



@router.post("/cases", response_model=schemas.IntakeResult, status_code=201, tags=["cases"],
             summary="上报案件（网格员/监督员/坐席）Report a problem")
async def report_case(body: schemas.ReportCreate, response: Response, idempotency_key: str | None = IDEM,
                      principal: Principal = require("case.report")) -> dict[str, Any]:
    return _intake_response(response, await flows.submit_async(intake.ReportRequest(
        principal, body, body.source, "app", idempotency_key)))


@router.post("/public/reports", response_model=schemas.IntakeResult, status_code=201, tags=["cases"],
             summary="市民上报（限流）Citizen report (rate-limited)", dependencies=[Depends(public_route)])
def public_report(body: schemas.PublicReportCreate, request: Request, response: Response,
                  idempotency_key: str | None = IDEM, session: Session = ReadOnlyUnitOfWork) -> dict[str, Any]:
    # reads the policy only: the report itself is written by the group-commit writer
    return _intake_response(response, flows.submit(session, service.public_request(
        session, body, source_ip=_client_ip(request), idempotency_key=idempotency_key)))


@router.get("/public/reports/{token}", tags=["cases"], summary="市民查询办理进度 Follow a report",
            dependencies=[Depends(public_route)])
def public_report_status(token: str = Path(..., min_length=10, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$"),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    return service.public_status(session, token)


@router.post("/public/reports/{token}/evaluation", tags=["cases"], summary="市民评价 Reporter's satisfaction",
             dependencies=[Depends(public_route)])
def public_report_evaluation(body: schemas.EvaluationIn,
                             token: str = Path(..., min_length=10, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$"),
                             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.public_evaluate(session, token, body)


@router.post("/public/media", tags=["cases"], status_code=201, summary="市民上传照片 Citizen photo upload",
             dependencies=[Depends(public_route)])
def public_media(request: Request, files: list[UploadFile] = File(...), session: Session = UnitOfWork) -> dict[str, Any]:
    from cityops.security.ratelimit import check_rate

    check_rate(f"case-media:{_client_ip(request) or '-'}", float(reference.policy(session).get("public_rate_per_minute", 30)),
               what="uploads")
    anon = Principal(username="public", kind="anonymous", source_ip=_client_ip(request))
    return {"items": service.upload_media(session, anon, [(f.filename, f.file.read()) for f in files])}


@router.post("/media", tags=["cases"], status_code=201, summary="上传照片/视频 Upload photos (multipart 'files')")
def upload_media(files: list[UploadFile] = File(...), principal: Principal = require("case.act"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": service.upload_media(session, principal, [(f.filename, f.file.read()) for f in files])}


@router.get("/media/{media_id}", tags=["cases"], summary="照片/视频 Media file")
def get_media(media_id: str = Path(..., pattern=r"^[0-9a-f]{32}$"), principal: Principal = require("case.read"),
              session: Session = UnitOfWork) -> FileResponse:
    path, ctype = intake.media_file(session, principal, media_id)
    if not path.exists():
        raise InvalidInput([Problem("the media file is missing on disk", ["path", "media_id"], "missing")])
    return FileResponse(path, media_type=ctype)


async def _rows(request: Request) -> tuple[list[Any], str]:
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    if len(raw) > 50 * 1024 * 1024:
        raise InvalidInput([Problem("body larger than 50 MB", ["body"])])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput([Problem("body must be UTF-8", ["body"])])
    if "csv" in ctype:
        return intake.hotline_rows_from_csv(text), "csv"
    try:
        doc = json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise InvalidInput([Problem(f"invalid JSON: {exc.msg} (line {exc.lineno})", ["body"])])
    if isinstance(doc, dict) and isinstance(doc.get("orders"), list):
        doc = doc["orders"]
    if not isinstance(doc, list):
        raise InvalidInput([Problem("send a JSON list of orders (or {'orders': [...]}) or text/csv", ["body"])])
    return doc, "json"


@router.post("/cases/import/hotline", tags=["cases"], response_model=schemas.HotlineImportResult,
             summary="导入12345工单（JSON 或 CSV，全部成功或全部不写）Import 12345 work orders",
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": {"type": "array", "items": schemas.HotlineOrder.model_json_schema()}},
                 "text/csv": {"schema": {"type": "string"}}}}})
async def import_hotline(request: Request, skip_existing: bool = Query(False),
                         principal: Principal = require("hotline.import"),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    rows, _fmt = await _rows(request)
    return service.import_hotline(session, principal, rows, skip_existing=skip_existing)


@router.post("/signals", tags=["cases"], response_model=schemas.SignalResult, status_code=201,
             summary="接入感知信号（视频AI/物联）Ingest a sensor / video-AI signal")
def ingest_signal(body: schemas.SignalIn, response: Response, idempotency_key: str | None = IDEM,
                  principal: Principal = require("signal.ingest"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    status, out, replayed = service.ingest_signal(session, principal, body, idempotency_key)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return out


@router.get("/signals", tags=["cases"], summary="感知信号记录 Raw signals")
def list_signals(outcome: str | None = Query(None, pattern=r"^(case_created|deduplicated|snoozed|monitored|ignored)$"),
                 page: int = Query(1, ge=1, le=10000), page_size: int = Query(50, ge=1, le=500),
                 principal: Principal = require("case.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return intake.list_signals(session, principal, outcome=outcome, page=page, page_size=page_size)


@router.get("/signal-filters", tags=["catalogue"], summary="信号过滤规则 Signal filters")
def list_signal_filters(principal: Principal = require("catalogue.read"),
                        session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return intake.list_signal_filters(session)


@router.post("/signal-filters", tags=["catalogue"], status_code=201, summary="新建信号过滤（去重/静默）Create a filter")
def create_signal_filter(body: schemas.SignalFilterIn, principal: Principal = require("catalogue.write"),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    out = intake.create_signal_filter(session, principal, body)
    return out


@router.put("/signal-filters/{filter_id}", tags=["catalogue"], summary="修改信号过滤 Update a filter")
def update_signal_filter(body: schemas.SignalFilterIn, filter_id: int = Path(..., ge=1, le=2**31),
                         principal: Principal = require("catalogue.write"),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    out = intake.update_signal_filter(session, principal, filter_id, body)
    return out


# ================================================================ reads


@router.get("/cases", response_model=schemas.CasePage, tags=["cases"], summary="案件列表（按权限范围）List cases")
def list_cases(f: F = Depends(), page: int = Query(1, ge=1, le=100_000), page_size: int = Query(50, ge=1, le=500),
               sort: str = Query("-reported_at", max_length=20), with_total: bool = Query(True),
               principal: Principal = require("case.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.list_cases(session, principal, f.filter, page=page, page_size=page_size, sort=sort,
                              with_total=with_total)


@router.get("/cases/counts", tags=["cases"], summary="案件计数（按状态、SLA）Counts by state and SLA")
def count_cases(f: F = Depends(), principal: Principal = require("case.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.count_cases(session, principal, f.filter)


@router.get("/cases.csv", tags=["cases"], summary="导出案件 CSV（举报人脱敏）Export cases")
def export_cases(f: F = Depends(), principal: Principal = require("case.export"),
                 session: Session = UnitOfWork, rows: Session = StreamingReads) -> StreamingResponse:
    gen = service.export_csv(session, rows, principal, f.filter)
    return StreamingResponse(gen, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="cases.csv"'})


@router.get("/cases.geojson", tags=["cases"], summary="案件点位 GeoJSON（上限）Cases for the map",
            response_class=GeoJSONResponse)
def cases_geojson(f: F = Depends(), cap: int | None = Query(None, ge=1, le=100_000),
                  principal: Principal = require("case.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.geojson(session, principal, f.filter, cap)


@router.get("/cases/aggregate", tags=["cases"], summary="分区统计与KPI Counts by street/community/grid and SLA")
def cases_aggregate(level: str = Query("street", pattern=r"^(street|community|grid)$"),
                    parent: str | None = Query(None, pattern=r"^\d{6,15}$"),
                    date_from: dt.datetime | None = Query(None), date_to: dt.datetime | None = Query(None),
                    category: str | None = Query(None, max_length=300), source: str | None = Query(None, max_length=200),
                    principal: Principal = require("case.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    for name, v in (("date_from", date_from), ("date_to", date_to)):
        if v is not None and v.tzinfo is None:
            raise InvalidInput([Problem(f"{name} needs a time-zone offset", ["query", name])])
    f = queries.parse_filter(category=category, source=source)
    return service.aggregate(session, principal, level=level, parent=parent, date_from=date_from, date_to=date_to, f=f)


@router.get("/cases/workflow", tags=["catalogue"], summary="流程状态转移表 The transition table")
def get_workflow(principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.workflow_table(session)


@router.put("/cases/workflow", tags=["catalogue"], summary="替换状态转移表 Replace the transition table")
def put_workflow(body: list[schemas.TransitionRowIn] = Body(..., max_length=2000),
                 principal: Principal = require("catalogue.write"),
                 session: Session = UnitOfWork) -> list[dict[str, Any]]:
    out = service.replace_workflow(session, principal, [r.row() for r in body])
    return out


@router.get("/cases/policy", tags=["catalogue"], summary="受理策略（去重半径、时间窗等）Intake policy")
def get_policy(principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return reference.policy(session)


@router.patch("/cases/policy", tags=["catalogue"], summary="修改受理策略 Change the intake policy")
def patch_policy(body: schemas.PolicyPatch, principal: Principal = require("catalogue.write"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    out = reference.set_policy(session, principal, body.changes())
    return out


BUCKET_PATTERN = "^(" + "|".join(inbox_buckets.BUCKET_KEYS) + ")$"


@router.get("/inbox", tags=["cases"], summary="我的待办（按转换表：本账号现在可办的案件）My inbox")
def my_inbox(request: Request, bucket: str | None = Query(None, max_length=40, pattern=BUCKET_PATTERN),
             area: str | None = Query(None, max_length=15, pattern=r"^\d{6}(\d{3}){0,3}$"),
             limit: int = Query(50, ge=1, le=500),
             case: int | None = Query(None, ge=1, le=2**62, description="open the bucket that holds this case"),
             principal: Principal = require("case.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    lang = "en" if request.query_params.get("lang") == "en" or request.cookies.get("lang") == "en" else "zh"
    return service.my_inbox(session, principal, bucket, area, limit, lang, case)


@router.get("/cases/{case}", tags=["cases"], summary="案件详情（含时间线、环节时限、可执行动作）Case detail")
def get_case(case: str = CASE_REF, principal: Principal = require("case.read"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return service.case_detail(session, principal, case)


@router.get("/cases/{case}/timeline", tags=["cases"], summary="案件时间线 Timeline")
def get_timeline(case: str = CASE_REF, principal: Principal = require("case.read"),
                 session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.case_timeline(session, principal, case)


@router.get("/cases/{case}/actions", tags=["cases"], summary="当前可执行动作 Actions you may take now")
def get_actions(case: str = CASE_REF, principal: Principal = require("case.read"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.actions_for(session, principal, case)


@router.post("/cases/{case}/actions/{action}", tags=["cases"],
             summary="执行流程动作（受理/核实/立案/派遣/签收/反馈/核查/结案/评价…）Take an action")
def post_action(body: schemas.ActionIn, case: str = CASE_REF,
                action: str = Path(..., max_length=30, pattern=r"^[a-z_]+$"),
                principal: Principal = require("case.act"), session: Session = UnitOfWork) -> dict[str, Any]:
    return service.act(session, principal, case, action, body)


@router.get("/cases/{case}/consultations", tags=["cases"], summary="会商记录 Consultation thread")
def get_consultations(case: str = CASE_REF, principal: Principal = require("case.read"),
                      session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.consultations(session, principal, case)


@router.post("/cases/{case}/consultations", tags=["cases"], status_code=201, summary="会商发言 Post to the thread")
def post_consultation(body: schemas.ConsultationIn, case: str = CASE_REF, principal: Principal = require("case.act"),
                      session: Session = UnitOfWork) -> dict[str, Any]:
    return service.consult(session, principal, case, body)


# ================================================================ catalogue, departments, calendar


@router.get("/catalogue/versions", tags=["catalogue"], summary="目录版本 Catalogue versions")
def catalogue_versions(principal: Principal = require("catalogue.read"),
                       session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return reference.list_versions(session)


@router.get("/catalogue/categories", tags=["catalogue"], summary="部件事件类别（默认现行版本）Categories",
            dependencies=[Depends(public_route)])
def catalogue_categories(version: str | None = Query(None, max_length=60), kind: str | None = Query(None, pattern=r"^(component|event|matter)$"),
                         q: str | None = Query(None, max_length=50), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return reference.list_categories(session, version, kind=kind, q=q)


@router.post("/catalogue/import", tags=["catalogue"], status_code=201,
             summary="导入目录（JSON 文档，或 CSV + 版本参数）Import a catalogue",
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}},
                                                        "text/csv": {"schema": {"type": "string"}}}}})
async def catalogue_import(request: Request,
                           code: str | None = Query(None, max_length=60, description="CSV: version code"),
                           name: str | None = Query(None, max_length=200), standard_ref: str | None = Query(None, max_length=60),
                           valid_from: str | None = Query(None, max_length=40),
                           principal: Principal = require("catalogue.write"),
                           session: Session = UnitOfWork) -> dict[str, Any]:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput([Problem("body must be UTF-8", ["body"])])
    if "csv" in request.headers.get("content-type", ""):
        doc = reference.catalogue_from_csv(text, {"code": code, "name": name or code, "standard_ref": standard_ref,
                                                  "valid_from": valid_from})
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput([Problem(f"invalid JSON: {exc.msg}", ["body"])])
    out = reference.import_catalogue(session, principal, doc)
    return out


@router.get("/catalogue/versions/{code}/export", tags=["catalogue"], summary="导出目录版本 Export a version")
def catalogue_export(code: str = Path(..., max_length=60), format: str = Query("json", pattern=r"^(json|csv)$"),
                     principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> Response:
    content, media = reference.export_catalogue(session, code, format)
    return Response(content, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="catalogue-{code}.{format}"'})


@router.post("/catalogue/versions/{code}/status", tags=["catalogue"], summary="发布/停用目录版本 Publish or retire")
def catalogue_status(code: str = Path(..., max_length=60), status: str = Query(..., pattern=r"^(published|retired)$"),
                     valid_from: dt.datetime | None = Query(None), principal: Principal = require("catalogue.write"),
                     session: Session = UnitOfWork) -> dict[str, Any]:
    if valid_from is not None and valid_from.tzinfo is None:
        raise InvalidInput([Problem("valid_from needs a time-zone offset", ["query", "valid_from"])])
    out = reference.set_version_status(session, principal, code, status, valid_from)
    return out


@router.get("/catalogue/route", tags=["catalogue"], summary="派单建议（目录规则 + 位置）Routing proposal")
def catalogue_route(category_code: str = Query(..., pattern=r"^\d{4,16}$"), lat: float = Query(..., ge=-90, le=90),
                    lon: float = Query(..., ge=-180, le=180), principal: Principal = require("catalogue.read"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    import numpy as np

    cat = reference.resolve_category(session, category_code, ["query", "category_code"])
    where = places.locate(session, np.array([lon]), np.array([lat]))[0]
    if where is None:
        raise InvalidInput([Problem("点位不在本区范围内 the point is outside the district", ["query", "lat"])])
    p = reference.propose_route(session, cat, where.grid_code, where.street_code)
    return {"category_code": cat.code, "category_name": cat.name_zh, "rule": p.rule, "explanation": p.explanation,
            "department_code": p.department_code, "department_name": reference.department_name(session, p.department_code),
            "co_department_codes": list(p.co_department_codes), "grid_code": where.grid_code,
            "street_code": where.street_code}


@router.get("/departments", tags=["catalogue"], summary="专业部门与街镇城运中心 Departments")
def list_departments(kind: str | None = Query(None, max_length=24), area: str | None = Query(None, pattern=r"^\d{6,15}$"),
                     principal: Principal = require("catalogue.read"),
                     session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return [{"id": d.id, "code": d.code, "name": d.name, "name_en": d.name_en, "kind": d.kind, "area_code": d.area_code,
             "active": d.active} for d in reference.list_departments(session, kind=kind, area_prefix=area)]


@router.put("/departments", tags=["catalogue"], summary="新增/修改部门 Upsert departments")
def put_departments(body: list[schemas.DepartmentIn], principal: Principal = require("catalogue.write"),
                    session: Session = UnitOfWork) -> dict[str, int]:
    out = reference.upsert_departments(session, principal, [d.model_dump() for d in body])
    return out


@router.get("/calendars", tags=["catalogue"], summary="工作日历版本 Working calendars")
def list_calendars(principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return reference.list_calendars(session)


@router.get("/calendars/active", tags=["catalogue"], summary="现行工作日历（节假日、调休）Active calendar")
def active_calendar(principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    return reference.export_calendar(session)


@router.post("/calendars", tags=["catalogue"], status_code=201, summary="导入工作日历新版本 Import a calendar version")
def import_calendar(body: schemas.CalendarIn, principal: Principal = require("catalogue.write"),
                    session: Session = UnitOfWork) -> dict[str, Any]:
    out = reference.import_calendar(session, principal, body.doc())
    return out


@router.get("/calendars/due", tags=["catalogue"], summary="计算时限到期时间 Compute a due time")
def calendar_due(start: dt.datetime = Query(...), amount: float = Query(..., gt=0, le=1000),
                 unit: str = Query(..., pattern=r"^(working_hour|working_day|natural_hour|natural_day)$"),
                 principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    if start.tzinfo is None:
        raise InvalidInput([Problem("start needs a time-zone offset", ["query", "start"])])
    _cid, cal = reference.active_calendar(session)
    due = service.add_working_time(start, amount, unit, cal)
    return {"start": start, "amount": amount, "unit": unit, "due_at": due,
            "due_local": due.astimezone(ZoneInfo(cal.timezone)).isoformat(), "calendar": cal.name}


@router.get("/escalation-rules", tags=["catalogue"], summary="升级规则 Escalation rules")
def get_rules(principal: Principal = require("catalogue.read"), session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return reference.list_escalation_rules(session)


@router.put("/escalation-rules", tags=["catalogue"], summary="替换升级规则 Replace escalation rules")
def put_rules(body: list[schemas.EscalationRuleIn] = Body(..., max_length=200),
              principal: Principal = require("catalogue.write"),
              session: Session = UnitOfWork) -> list[dict[str, Any]]:
    out = reference.replace_escalation_rules(session, principal, [r.model_dump() for r in body])
    return out
