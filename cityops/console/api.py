"""Routes of the ops console: pages (server-rendered), static bundles, console data and the live
stream. Thin: parsing here, logic in ``cityops.console.service`` / ``briefing``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from cityops.console import briefing, i18n, live, overdue, service, views
from cityops.console.views import render, require_page
from cityops.security.deps import public_route, require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter()


def setup_app(app: FastAPI) -> None:
    app.add_exception_handler(views.LoginRequired, views.login_required_handler)
    app.add_exception_handler(views.PageForbidden, views.page_forbidden_handler)


# ---------------------------------------------------------------------------------------------- static

@router.get("/static/{bundle}/{path:path}", include_in_schema=False, dependencies=[Depends(public_route)])
async def static_file(bundle: str, path: str, request: Request) -> Response:
    """Our own JS/CSS and the xstatic packages' Leaflet and Leaflet.markercluster."""
    return await views.static_response(bundle, path, request)


@router.get("/favicon.ico", include_in_schema=False, dependencies=[Depends(public_route)])
def favicon() -> Response:
    return RedirectResponse(views.static_url("console", "favicon.svg"), status_code=301)


# ---------------------------------------------------------------------------------------------- pages

def _optional_principal(request: Request) -> Principal | None:
    from cityops.security.deps import get_principal

    try:
        return get_principal(request)
    except Exception:  # noqa: BLE001 - any failure means "not signed in" for a public page
        return None


@router.get("/login", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(public_route)])
def login_page(request: Request, next: str = Query("/", max_length=500)) -> Response:
    nxt = views.safe_next(next)
    return render(request, "login.html", "login", None, next_url=nxt)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def console_page(request: Request, principal: Principal = require_page("console.view")) -> Response:
    return render(request, "console.html", "console", principal, with_q=False)



@router.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
def inbox_page(request: Request, bucket: str | None = Query(None, max_length=40, pattern=r"^[a-z_]+$"),
               principal: Principal = require_page("case.read")) -> Response:
    return render(request, "inbox.html", "inbox", principal, bucket=bucket)


@router.get("/m", response_class=HTMLResponse, include_in_schema=False)
def mobile_page(request: Request, principal: Principal = require_page("case.read")) -> Response:
    """我的任务: the phone-first landing (a grid worker's 核实 / 核查 of today, and 上报)."""
    return render(request, "mobile.html", "mobile", principal)


@router.get("/cases", response_class=HTMLResponse, include_in_schema=False)
def cases_page(request: Request, principal: Principal = require_page("console.view")) -> Response:
    return render(request, "cases.html", "cases", principal)


@router.get("/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
def case_page(request: Request, case_id: str = Path(..., max_length=20, pattern=r"^\d{1,20}$"),
              principal: Principal = require_page("console.view")) -> Response:
    return render(request, "case_detail.html", "cases", principal, case_id=case_id)


@router.get("/workstation", response_class=HTMLResponse, include_in_schema=False)
def workstation_page(request: Request, area: str | None = Query(None, max_length=15, pattern=r"^\d{6,15}$"),
                     principal: Principal = require_page("console.view"),
                     session: Session = UnitOfWork) -> Response:
    ctx = service.workstation_context(session, principal, area, i18n.pick_lang(request))
    return render(request, "workstation.html", "workstation", principal, **ctx)


@router.get("/report", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(public_route)])
def report_page(request: Request) -> Response:
    """The mobile report page: open to citizens; a signed-in grid worker reports as himself."""
    return render(request, "report.html", "report", _optional_principal(request))



@router.get("/briefing", response_class=HTMLResponse, include_in_schema=False)
def briefing_page(request: Request, date: str | None = Query(None, max_length=10),
                  principal: Principal = require_page("console.view"),
                  session: Session = UnitOfWork) -> Response:
    lang = i18n.pick_lang(request)
    day = briefing.parse_day(date)
    body = briefing.render_html(briefing.briefing_data(session, principal, day, lang), lang, standalone=False)
    return render(request, "briefing.html", "briefing", principal, body=body, day=day.isoformat(),
                  max_day=i18n.today_local().isoformat(), archive=briefing.archive(session, principal))


@router.get("/briefing.pdf", include_in_schema=False)
def briefing_pdf(request: Request, date: str | None = Query(None, max_length=10),
                 regenerate: bool = Query(False), principal: Principal = require_page("console.view"),
                 session: Session = UnitOfWork) -> Response:
    """The PDF of a day's briefing: the stored one (made by the 06:00 schedule or an earlier print);
    when there is none yet, or ``regenerate``, the print is queued for the worker (202)."""
    lang = i18n.pick_lang(request)
    day = briefing.parse_day(date)
    row = briefing.stored(session, principal, day, lang)
    if regenerate or row is None or row.pdf is None:
        briefing.request_generation(session, principal, day, lang)
        msg = ("城运日报正在后台生成，请约一分钟后刷新 the briefing is being printed in the background; reload in a minute"
               if lang != "en" else "The briefing is being printed in the background; reload in a minute.")
        return Response(msg, status_code=202, media_type="text/plain; charset=utf-8",
                        headers={"Retry-After": "30", "Cache-Control": "no-store"})
    name = f"briefing-{row.area_code}-{day.isoformat()}.pdf"
    return Response(row.pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store",
                             "X-PDF-Engine": row.pdf_engine or ""})



@router.get("/evaluation", response_class=HTMLResponse, include_in_schema=False)
def evaluation_page(request: Request, period: str = Query("30d", max_length=12),
                    principal: Principal = require_page("evaluation.read"),
                    session: Session = UnitOfWork) -> Response:
    lang = i18n.pick_lang(request)
    available, reason, rankings = service.evaluation_rankings(session, principal, period, lang)
    charts_ = service.evaluation_charts(session, principal, period, lang)
    periods = [{"value": k, "label": v[1] if lang == "en" else v[0]} for k, v in service.EVAL_PERIODS.items()]
    return render(request, "evaluation.html", "evaluation", principal, available=available, reason=reason,
                  rankings=rankings, charts=charts_, periods=periods, period=period)


@router.get("/evaluation.csv", include_in_schema=False)
def evaluation_csv(request: Request, kind: str = Query(..., pattern="^(departments|streets|workers)$"),
                   period: str = Query("30d", max_length=12), principal: Principal = require_page("evaluation.read"),
                   session: Session = UnitOfWork) -> Response:
    lang = i18n.pick_lang(request)
    available, reason, rankings = service.evaluation_rankings(session, principal, period, lang)
    if not available:
        return Response(f"评价接口尚未接入 evaluation not available: {reason}", status_code=503,
                        media_type="text/plain; charset=utf-8")
    return Response(service.evaluation_csv(rankings.get(kind, []), lang), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="evaluation-{kind}-{period}.csv"'})


# ---------------------------------------------------------------------------------------------- data

def _filters(period: str = Query("open", max_length=8, pattern=r"^(open|today|24h|7d|30d|all)$",
                                 description="open / today / 24h / 7d / 30d / all"),
             area: str | None = Query(None, max_length=15, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$",
                                      description="area code prefix (street/community/grid)"),
             street: str | None = Query(None, max_length=9, pattern=r"^\d{9}$"),
             community: str | None = Query(None, max_length=12, pattern=r"^\d{12}$"),
             category: str | None = Query(None, max_length=16), state: str | None = Query(None, max_length=20),
             sla: str | None = Query(None, max_length=6, pattern=r"^(green|yellow|red|none)$",
                                     description="green / yellow / red / none"),
             source: str | None = Query(None, max_length=16), department: str | None = Query(None, max_length=40),
             q: str | None = Query(None, max_length=100)) -> service.Filters:
    return service.Filters(period=period, area=area or None, street=street or None, community=community or None,
                           category=category or None, state=state or None, sla=sla or None, source=source or None,
                           department=department or None, q=q or None)


@router.get("/api/v1/console/meta", tags=["console"], summary="筛选项与图层 Filter options, layers and the caller's scope")
def console_meta(request: Request, principal: Principal = require("console.view"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return service.meta(session, principal, i18n.pick_lang(request))


@router.get("/api/v1/console/kpis", tags=["console"], summary="指标条 KPI strip (today, open, overdue, 按期结案率 by street)")
def console_kpis(f: service.Filters = Depends(_filters), principal: Principal = require("console.view"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return service.kpis(session, principal, f)


@router.get("/api/v1/console/overdue", tags=["console"],
            summary="超期/临期在办 TOP: overdue-by (or time left), step, owner; stuck-at-step counts")
def console_overdue(request: Request, f: service.Filters = Depends(_filters),
                    kind: str = Query("overdue", pattern="^(overdue|near)$"), limit: int = Query(20, ge=1, le=200),
                    principal: Principal = require("console.view"), session: Session = UnitOfWork) -> dict[str, Any]:
    return overdue.board(session, principal, f, kind, limit, i18n.pick_lang(request))


@router.get("/api/v1/console/map", tags=["console"],
            summary="地图案件 Cases in view: points, or server clusters when there are many")
def console_map(request: Request, f: service.Filters = Depends(_filters),
                bbox: str | None = Query(None, max_length=120, description="west,south,east,north (WGS-84)"),
                zoom: int = Query(11, ge=0, le=22), principal: Principal = require("console.view"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.map_data(session, principal, f, service.parse_bbox(bbox), zoom, i18n.pick_lang(request))


@router.get("/api/v1/console/choropleth", tags=["console"], summary="专题图 Case count, density or overdue count by area")
def console_choropleth(f: service.Filters = Depends(_filters),
                       level: str = Query("street", max_length=10, pattern=r"^(street|community|grid)$",
                                          description="street / community / grid"),
                       metric: str = Query("density", max_length=10, pattern=r"^(count|density|overdue)$",
                                           description="count / density / overdue"),
                       principal: Principal = require("console.view"),
                       session: Session = UnitOfWork) -> dict[str, Any]:
    return service.choropleth(session, principal, f, level, metric)


@router.get("/api/v1/console/todo", tags=["console"], summary="工作站今日待办 Workstation to-do")
def console_todo(request: Request, area: str | None = Query(None, max_length=15, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$"),
                 principal: Principal = require("console.view"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return service.todo(session, principal, area or principal.area_code, i18n.pick_lang(request))


@router.get("/api/v1/console/feed", tags=["console"], summary="最新动态 Latest case activity in scope")
def console_feed(request: Request, area: str | None = Query(None, max_length=15, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$"),
                 limit: int = Query(20, ge=1, le=200), principal: Principal = require("console.view"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": service.feed(session, principal, area, i18n.pick_lang(request), limit)}


@router.get("/api/v1/console/stream", tags=["console"],
            summary="实时动态 Live case activity in scope (text/event-stream, SSE)")
async def console_stream(request: Request, area: str | None = Query(None, max_length=15, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$"),
                         max_s: float = Query(300.0, ge=0.5, le=3600, description="close after this many seconds (0.5-3600) "
                                              "(the browser reconnects with Last-Event-ID)"),
                         principal: Principal = require("console.view")) -> StreamingResponse:
    service.check_area_param(principal, area)
    gen = live.stream(request.is_disconnected, principal, area, i18n.pick_lang(request),
                      request.headers.get("last-event-id"), max_s)
    return StreamingResponse(gen, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})



@router.get("/api/v1/console/report-categories", tags=["console"], dependencies=[Depends(public_route)],
            summary="上报类别 Categories for the report page (active catalogue)")
def report_categories(session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": service.report_categories(session)}


@router.get("/api/v1/console/my-reports", tags=["console"], summary="我的上报 Cases I reported")
def my_reports(request: Request, principal: Principal = require("case.report"),
               session: Session = UnitOfWork) -> dict[str, Any]:
    return {"items": service.my_reports(session, principal, i18n.pick_lang(request))}



@router.get("/api/v1/console/panels", tags=["console"],
            summary="侧栏面板 Side panels filled by later modules (warnings, incidents, resources)")
def console_panels(request: Request, principal: Principal = require("console.view"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return service.panels(session, principal, i18n.pick_lang(request))
