"""Routes of the evaluation (绩效评价): thin wrappers around ``cityops.cases.evaluation``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from cityops.cases import evaluation
from cityops.security.deps import require
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/evaluation", tags=["evaluation"])

SUBJECT = Path(..., pattern="^(" + "|".join(evaluation.SUBJECTS) + ")$",
               description="supervisor / intake_operator / shift_lead / dispatcher / department / street / community "
                           "/ grid / hotline")
FROM = Query(None, alias="from", max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$",
             description="first day (Asia/Shanghai), default: 29 days before 'to'")
TO = Query(None, alias="to", max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$", description="last day, default: today")
AREA = Query(None, pattern=r"^(\d{6}|\d{9}|\d{12}|\d{15})$", description="区划/网格代码 only cases in this area")
VERSION = Query(None, ge=1, le=100_000, description="scheme version (default: the one in force)")
CODE = Query(None, max_length=40, description="scheme code (default: the one in force)")


def _run(session: Session, principal: Principal, subject: str, date_from: str | None, date_to: str | None,
         area: str | None, scheme_version: int | None, scheme: str | None) -> dict[str, Any]:
    return evaluation.evaluate(session, principal, subject, date_from=evaluation.parse_date(date_from, "from"),
                               date_to=evaluation.parse_date(date_to, "to"), area=area, scheme_version=scheme_version,
                               scheme_code=scheme)


@router.get("/schemes", summary="考核方案（权重、计分、等级，版本化）Evaluation schemes")
def list_schemes(principal: Principal = require("evaluation.read"),
                 session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return evaluation.list_schemes(session)


@router.post("/schemes", status_code=201, summary="新增考核方案版本 New scheme version")
def save_scheme(doc: dict[str, Any] = Body(..., description="cityops-evaluation-scheme/1 document"),
                principal: Principal = require("catalogue.write"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return evaluation.save_scheme(session, principal, doc)


@router.get("/{subject}.csv", summary="绩效评价 CSV Evaluation as CSV")
def evaluation_csv(subject: str = SUBJECT, date_from: str | None = FROM, date_to: str | None = TO,
                   area: str | None = AREA, scheme_version: int | None = VERSION, scheme: str | None = CODE,
                   lang: str = Query("zh", pattern="^(zh|en)$"),
                   principal: Principal = require("evaluation.read"),
                   session: Session = UnitOfWork) -> Response:
    res = _run(session, principal, subject, date_from, date_to, area, scheme_version, scheme)
    name = f"evaluation-{subject}-{res['from']}-{res['to']}.csv"
    return Response(evaluation.to_csv(res, lang), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{subject}", summary="绩效评价（岗位/部门/区域/12345）Evaluation of posts, departments, areas, 12345")
def evaluate(subject: str = SUBJECT, date_from: str | None = FROM, date_to: str | None = TO,
             area: str | None = AREA, scheme_version: int | None = VERSION, scheme: str | None = CODE,
             principal: Principal = require("evaluation.read"),
             session: Session = UnitOfWork) -> dict[str, Any]:
    return _run(session, principal, subject, date_from, date_to, area, scheme_version, scheme)
