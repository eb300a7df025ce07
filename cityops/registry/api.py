"""Routes of the base data under /api/v1/registry: thin wrappers around ``cityops.registry.service``.

For each kind (buildings, households, persons, facilities, organisations, places)::

    GET    /{kind}                 list (filters, pagination, as_of; ?format=geojson for spatial kinds)
    GET    /{kind}.geojson         GeoJSON FeatureCollection (spatial kinds)
    GET    /{kind}.csv             CSV export, masked (registry.export)
    GET    /{kind}/columns         accepted import columns
    POST   /{kind}/import          import CSV / XLSX / GeoJSON (registry.write), 422 lists every error
    GET    /{kind}/{id}            one record (as_of); persons: ?unmask=true&reason=... (person.unmask)
    GET    /{kind}/{id}/history    all versions
    DELETE /{kind}/{id}            close the current version (registry.write)

Persons need ``person.read``; every other kind ``registry.read``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput, Problem
from cityops.exports import XLSX_TYPE
from cityops.geo.geojson import GeoJSONResponse
from cityops.registry import importers, schemas, service
from cityops.registry.codes import STATUSES
from cityops.registry.models import MODELS, SPATIAL_KINDS
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/registry", tags=["registry"])

MAX_UPLOAD = 100 * 1024 * 1024

AreaQ = Query(None, pattern=r"^\d{1,15}$", description="区划/网格编码前缀 area or grid code prefix")
TextQ = Query(None, max_length=100, description="名称/地址模糊查询（人口：可输入完整身份证号） text search")
AsOfQ = Query(None, max_length=40, pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
                                         r"(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)?$",
              description="历史时点：日期 YYYY-MM-DD（指当日结束，上海时间）或 ISO 时间 "
              "as of a date (end of that day, Asia/Shanghai) or an ISO datetime")


def kind_query(kind: str) -> Any:
    """The ``kind`` filter of one kind, with its real values (facilities: a type-code prefix)."""
    if kind == "facilities":
        pattern, doc = r"^(\d{2,5})?$", "部件类型代码前缀（2位大类，或大类+小类） type-code prefix"
    else:
        pattern = "^(" + "|".join(re.escape(v) for v in service.KIND_FILTERS[kind]) + ")?$"
        doc = "类别筛选 category filter: " + ", ".join(f"{k} {v}" for k, v in service.KIND_FILTERS[kind].items())
    return Query(None, alias="kind", max_length=30, pattern=pattern, description=doc)


def status_query(kind: str) -> Any:
    """Component status: facilities only (other kinds refuse it with a 422 and do not document it)."""
    if kind == "facilities":
        return Query(None, max_length=12, pattern="^(" + "|".join(STATUSES) + ")?$",
                     description="部件状态 component status: " + ", ".join(f"{k} {v[0]}" for k, v in STATUSES.items()))
    return Query(None, max_length=12, include_in_schema=False)
IdP = Path(..., ge=1, le=2**31 - 1, description="记录编号 record id")


@router.get("/kinds", response_model=list[schemas.KindInfo], summary="基础数据类型 Kinds of base data")
def kinds(principal: Principal = require("registry.read")) -> list[dict[str, Any]]:
    return [kind_info(k) for k in MODELS]


@router.get("/counts", response_model=dict[str, int], summary="各类记录数（辖区内） Counts in your area")
def counts(principal: Principal = require("registry.read"), area_code: str | None = AreaQ,
           as_of: str | None = AsOfQ, session: Session = UnitOfWork) -> dict[str, int]:
    return service.counts(session, principal, area_code=area_code, as_of=as_of)


def kind_info(kind: str) -> dict[str, Any]:
    zh, en = service.KIND_LABELS[kind]
    return {"kind": kind, "label": zh, "label_en": en, "key": MODELS[kind].KEY, "spatial": kind in SPATIAL_KINDS,
            "permission": service.READ_PERMISSION[kind], "filters": service.KIND_FILTERS[kind],
            "columns": importers.columns_doc(kind)}


def _register(kind: str) -> None:
    KindQ, StatusQ = kind_query(kind), status_query(kind)  # noqa: N806 - Query defaults, as above
    perm = service.READ_PERMISSION[kind]
    label = service.KIND_LABELS[kind][0]
    page_model = schemas.PAGES[kind]
    out_model = schemas.OUT[kind]
    spatial = kind in SPATIAL_KINDS

    @router.get(f"/{kind}/columns", response_model=schemas.KindInfo, summary=f"{label}：导入列说明 import columns",
                operation_id=f"registry_{kind}_columns")
    def columns(principal: Principal = require(perm)) -> dict[str, Any]:
        return kind_info(kind)

    if spatial:
        @router.get(f"/{kind}", response_model=None, summary=f"{label}：列表 list",
                    responses={200: {"model": page_model, "content": {"application/geo+json": {"schema": {
                        "$ref": "#/components/schemas/FeatureCollection"}}}}},
                    operation_id=f"registry_{kind}_list")
        def list_spatial(principal: Principal = require(perm), area_code: str | None = AreaQ,
                         kind_filter: str | None = KindQ, q: str | None = TextQ, as_of: str | None = AsOfQ,
                         status: str | None = StatusQ, page: int = Query(1, ge=1, le=1_000_000),
                         page_size: int = Query(50, ge=1, le=1000),
                         format: Literal["json", "geojson"] = Query("json", description="geojson: FeatureCollection"),
                         session: Session = UnitOfWork) -> Any:
            f = {"area_code": area_code, "kind_filter": kind_filter, "q": q, "as_of": as_of, "status": status}
            if format == "geojson":
                return GeoJSONResponse(service.geojson(session, principal, kind, page=page, page_size=page_size, **f))
            return page_model.model_validate(service.list_records(session, principal, kind, page=page,
                                                                  page_size=page_size, **f))

        @router.get(f"/{kind}.geojson", response_model=schemas.FeatureCollection, response_class=GeoJSONResponse,
                    summary=f"{label}：GeoJSON", operation_id=f"registry_{kind}_geojson")
        def as_geojson(principal: Principal = require(perm), area_code: str | None = AreaQ,
                       kind_filter: str | None = KindQ, q: str | None = TextQ, as_of: str | None = AsOfQ,
                       status: str | None = StatusQ, page: int = Query(1, ge=1, le=1_000_000),
                       page_size: int = Query(5000, ge=1, le=20_000),
                       session: Session = UnitOfWork) -> dict[str, Any]:
            return service.geojson(session, principal, kind, page=page, page_size=page_size, area_code=area_code,
                                   kind_filter=kind_filter, q=q, as_of=as_of, status=status)
    else:
        @router.get(f"/{kind}", response_model=page_model, summary=f"{label}：列表 list",
                    operation_id=f"registry_{kind}_list")
        def list_plain(principal: Principal = require(perm), area_code: str | None = AreaQ,
                       kind_filter: str | None = KindQ, q: str | None = TextQ, as_of: str | None = AsOfQ,
                       page: int = Query(1, ge=1, le=1_000_000), page_size: int = Query(50, ge=1, le=1000),
                       session: Session = UnitOfWork) -> dict[str, Any]:
            return service.list_records(session, principal, kind, page=page, page_size=page_size,
                                        area_code=area_code, kind_filter=kind_filter, q=q, as_of=as_of)

    @router.get(f"/{kind}.csv", summary=f"{label}：导出 CSV（脱敏） export CSV, masked",
                response_class=Response, responses={200: {"content": {"text/csv": {}}}},
                operation_id=f"registry_{kind}_export")
    def export(principal: Principal = require("registry.export"), area_code: str | None = AreaQ,
               kind_filter: str | None = KindQ, q: str | None = TextQ, as_of: str | None = AsOfQ,
               status: str | None = StatusQ, session: Session = UnitOfWork) -> Response:
        body = service.export_csv(session, principal, kind, area_code=area_code, kind_filter=kind_filter, q=q,
                                  as_of=as_of, status=status)
        return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'})

    @router.get(f"/{kind}.xlsx", summary=f"{label}：导出 XLSX（脱敏，列有类型） export XLSX, masked, typed columns",
                response_class=Response, responses={200: {"content": {XLSX_TYPE: {"schema": {
                    "type": "string", "format": "binary"}}}}},
                operation_id=f"registry_{kind}_export_xlsx")
    def export_xlsx(principal: Principal = require("registry.export"), area_code: str | None = AreaQ,
                    kind_filter: str | None = KindQ, q: str | None = TextQ, as_of: str | None = AsOfQ,
                    status: str | None = StatusQ, session: Session = UnitOfWork) -> Response:
        body = service.export_xlsx(session, principal, kind, area_code=area_code, kind_filter=kind_filter, q=q,
                                   as_of=as_of, status=status)
        return Response(body, media_type=XLSX_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{kind}.xlsx"'})

    @router.post(f"/{kind}/import", response_model=schemas.ImportReportOut,
                 summary=f"{label}：导入 CSV / XLSX / GeoJSON（全部通过才写入） import, all or nothing",
                 responses={422: {"description": "逐条列出所有错误（行号/要素号、字段、原因） every error listed"}},
                 operation_id=f"registry_{kind}_import")
    def import_(principal: Principal = require("registry.write"),
                file: UploadFile = File(..., description=".csv / .xlsx / .geojson"),
                dry_run: bool = Query(False, description="只校验不写入 validate only"),
                session: Session = UnitOfWork) -> dict[str, Any]:
        data = file.file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise InvalidInput([Problem(f"文件超过 {MAX_UPLOAD // 2**20} MB the file is larger than "
                                        f"{MAX_UPLOAD // 2**20} MB", ["file"], "too_large")])
        return service.import_file(session, principal, kind, file.filename or "upload", data, dry_run=dry_run)

    @router.get(f"/{kind}/{{id}}", response_model=out_model, summary=f"{label}：详情 one record",
                operation_id=f"registry_{kind}_get")
    def get(id: int = IdP, principal: Principal = require(perm), as_of: str | None = AsOfQ,
            unmask: bool = Query(False, description="人口：查看明文（需 person.unmask 和事由） persons: unmask"),
            reason: str | None = Query(None, max_length=200, description="查看明文的事由 reason for unmasking"),
            session: Session = UnitOfWork) -> dict[str, Any]:
        return service.get_record(session, principal, kind, id, as_of=as_of, unmask=unmask, reason=reason)

    @router.get(f"/{kind}/{{id}}/history", response_model=list[out_model],  # type: ignore[valid-type]
                summary=f"{label}：历史版本 all versions", operation_id=f"registry_{kind}_history")
    def history(id: int = IdP, principal: Principal = require(perm),
                session: Session = UnitOfWork) -> list[dict[str, Any]]:
        return service.history(session, principal, kind, id)

    @router.delete(f"/{kind}/{{id}}", response_model=schemas.RetiredOut,
                   summary=f"{label}：注销（关闭当前版本，保留历史） retire", operation_id=f"registry_{kind}_retire")
    def retire(id: int = IdP, principal: Principal = require("registry.write"),
               session: Session = UnitOfWork) -> dict[str, Any]:
        return service.retire(session, principal, kind, id)


for _kind in MODELS:
    _register(_kind)
