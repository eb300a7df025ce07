"""FastAPI application factory: one app serving the REST API (/api/v1), Open311 (/open311/v2)
and the console (/)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cityops import __version__
from cityops.errors import CityOpsError
from cityops.logging import configure_logging
from cityops.plugins import import_optional

# Each domain package exposes ``router`` in its ``api`` module; the order is the order in /docs.
# Routes are matched in this order (linearly), so the busiest domain comes first: a report
# (POST /api/v1/cases) then matches after a handful of routes instead of ~90 (bench intake).
# No two domains share a path template, so the order changes nothing else.
DOMAIN_APIS = [
    "cityops.cases.api",
    "cityops.security.api",
    "cityops.geo.api",
    "cityops.geo.basemap_api",
    "cityops.registry.api",
    "cityops.cases.open311",
    "cityops.cases.evaluation_api",
    "cityops.console.api",
    "cityops.jobs.api",
    "cityops.ai.api",
    "cityops.emergency.api",
    "cityops.emergency.api_command",
    "cityops.emergency.api_warnings",
    "cityops.emergency.pages",
    "cityops.indicators.api",
    "cityops.health.api",
    "cityops.outbreak.api",
    "cityops.outbreak.pages",
    "cityops.resources.api",
    "cityops.resources.pages",
]

OPENAPI_TAGS = [
    {"name": "health", "description": "存活检查 Liveness"},
    {"name": "auth", "description": "登录与账号 Accounts, tokens, API keys"},
    {"name": "security", "description": "角色、审计、数据安全屋 Roles, audit, data safe room"},
    {"name": "areas", "description": "行政区划与网格 Administrative areas and unit grids"},
    {"name": "layers", "description": "多格合一 Grid layers, topology, crosswalk"},
    {"name": "basemap", "description": "底图 Roads, water, named places; place search"},
    {"name": "registry", "description": "基础数据 人、地、房、物、组织 Base data"},
    {"name": "cases", "description": "一网统管 案件闭环 Case workflow"},
    {"name": "catalogue", "description": "部件事件目录、时限、工作日历 Catalogue and calendar"},
    {"name": "evaluation", "description": "绩效评价 Evaluation"},
    {"name": "classify", "description": "智能派单 Smart dispatch: classification, place, learning loop"},
    {"name": "emergency", "description": "应急指挥：突发事件、预案与任务、信息报告、CAP 预警、动员 Emergency command"},
    {"name": "outbreak", "description": "战时疫情指挥：病例、流调、管控区、保供、日报 Outbreak command"},
    {"name": "vital-signs", "description": "城市运行体征与预警 Vital signs: indicators, devices, readings, warnings"},
    {"name": "public-health", "description": "公共卫生监测预警：哨点、症状监测、暴发探测、预警信号 Public-health surveillance"},
    {"name": "open311", "description": "Open311 GeoReport v2"},
    {"name": "console", "description": "城运驾驶舱 Console data"},
    {"name": "emergency-planning", "description": "应急资源调度、疏散与覆盖分析 Dispatch, evacuation and coverage planning"},
    {"name": "resources", "description": "应急资源信息库：仓储台账、调运、征用、避难场所 Resource database, stock ledger, shipments, requisition"},
    {"name": "notifications", "description": "站内消息 In-app notifications"},
    {"name": "webhooks", "description": "推送订阅与后台任务 Webhooks, outbox and job status"},
]


def create_app(**overrides: Any) -> FastAPI:
    configure_logging()
    app = FastAPI(
        title="cityops 城运 API",
        version=__version__,
        description="城市运行一网统管平台 — city operations, closed-loop cases, early warning and "
        "emergency response for a Chinese district (model user: 上海市松江区 310117).",
        openapi_tags=OPENAPI_TAGS,
        docs_url=None,
        redoc_url=None,
        **overrides,
    )

    @app.exception_handler(CityOpsError)
    async def _cityops_error(_request: Request, exc: CityOpsError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.body(), headers=getattr(exc, "headers", None))

    # A number the database cannot hold (e.g. an id beyond 64 bits) is bad input, not a server fault.
    from sqlalchemy.exc import DataError

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": [{
            "loc": ["request"], "type": "value_error.out_of_range",
            "msg": "a value is out of the range the database can store (数值超出范围)"}]})

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and a NaN/Infinity sent as JSON (Python's json accepts
        # them) cannot be written back out: that answered 500 instead of 422
        from fastapi.encoders import jsonable_encoder

        return JSONResponse(status_code=422, content={"detail": _finite(jsonable_encoder(exc.errors()))})

    from fastapi import Depends

    from cityops.security.deps import public_route

    @app.get("/healthz", tags=["health"], summary="存活检查 Liveness probe", dependencies=[Depends(public_route)])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    _offline_docs(app)
    from cityops.openapi_doc import install

    install(app)  # every status, error schema and media type a route can answer (issue 16.4)
    from cityops.uow import RetryBusy

    app.add_middleware(RetryBusy)  # innermost: a unit of work that lost a race runs again
    from cityops.edge import BodyGuard, RejectNul

    app.add_middleware(BodyGuard)  # size, NaN/Infinity, surrogates, control characters, depth: 4xx
    app.add_middleware(RejectNul)

    for name in DOMAIN_APIS:
        module = import_optional(name)
        if module is None:  # domain not built yet
            continue
        setup = getattr(module, "setup_app", None)
        if setup is not None:
            setup(app)
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
    return app


def _finite(v: Any) -> Any:
    """``v`` with every non-finite float replaced by its text (JSON has no NaN/Infinity)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, str):  # a lone surrogate cannot be written out as UTF-8
        return v.encode("utf-8", "replace").decode("utf-8")
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _offline_docs(app: FastAPI) -> None:
    """/docs: Swagger UI served from the swagger-ui-bundle package (no CDN, works offline)."""
    import swagger_ui_bundle
    from fastapi import Depends
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    from cityops.security.deps import public_route

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(public_route)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — 接口文档",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js", swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False, dependencies=[Depends(public_route)])
    async def docs_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
