"""Open311 GeoReport v2 at ``/open311/v2`` (thin routes + XML / JSON rendering).

The format is the suffix (``.xml`` mandatory, ``.json`` optional) with the spec's content types;
errors are the spec's documents (XML ``<errors><error><code/><description/></error></errors>``,
JSON an array) with HTTP 400, 403 or 404 only. Every GET is public; POST requests needs an
``api_key`` (form field, or the ``X-API-Key`` header) holding ``open311.post``: the route is
declared ``public_route`` because the key travels in the form body and a missing / bad key must
be the spec's 403 document, not the platform's 401. The logic is in
:mod:`cityops.cases.open311_service`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityops.cases import open311_service as svc
from cityops.edge import xml_clean
from cityops.errors import CityOpsError
from cityops.security.deps import public_route
from cityops.uow import UnitOfWork

PREFIX = "/open311/v2"
router = APIRouter(prefix=PREFIX, tags=["open311"], dependencies=[Depends(public_route)])
CONTENT_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
# XML element names of list items: container -> item
LIST_ITEMS = {"services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
              "endpoints": "endpoint", "formats": "format", "notes": "note", "errors": "error"}

FMT_DOC = "xml 或 json（后缀）format suffix: xml or json"
QUERY_DOC = {
    "jurisdiction_id": "310117 (optional: one jurisdiction)",
    "lang": "zh (default) or en: language of names and notes",
}
REQUEST_QUERY = {
    "service_request_id": "comma-separated ids; when present every other argument is ignored",
    "service_code": "comma-separated service codes",
    "start_date": "W3C date-time with a time zone; filters requested_datetime",
    "end_date": "W3C date-time; at most 90 days after start_date",
    "status": "open, closed or both (comma-separated)",
    "page": "extension: page number (1-based)",
    "page_size": "extension: 1-1000 (default 1000)",
    "extensions": "true: include notes (update history) and extended_attributes",
}
POST_FIELDS = {
    "api_key": {"type": "string", "description": "API key with the open311.post permission (required)"},
    "jurisdiction_id": {"type": "string"},
    "service_code": {"type": "string", "description": "from services.xml (required)"},
    "lat": {"type": "string", "description": "WGS-84 latitude (with long)"},
    "long": {"type": "string", "description": "WGS-84 longitude (with lat)"},
    "address_string": {"type": "string", "description": "or: the address, most specific first"},
    "address_id": {"type": "string", "description": "or: a building code (楼栋编码) of the base data"},
    "email": {"type": "string"}, "device_id": {"type": "string"}, "account_id": {"type": "string"},
    "first_name": {"type": "string"}, "last_name": {"type": "string"}, "phone": {"type": "string"},
    "description": {"type": "string", "description": "plain text, at most 4000 characters"},
    "media_url": {"type": "string", "description": "URL of a photo"},
}


def _params(names: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": k, "in": "query", "required": False, "schema": {"type": "string"}, "description": v}
            for k, v in names.items()]


def _doc(extra_query: dict[str, str] | None = None, post: bool = False) -> dict[str, Any]:
    """OpenAPI description of the raw-parsed arguments (documentation only: the handlers read the
    request themselves so that no argument can produce a non-spec 422)."""
    out: dict[str, Any] = {"parameters": _params({**QUERY_DOC, **(extra_query or {})}),
                           "responses": {"400": {"description": "spec error document"},
                                         "403": {"description": "spec error document (api_key)"},
                                         "404": {"description": "spec error document"}}}
    if post:
        out["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": POST_FIELDS, "required": ["api_key", "service_code"]}}}}
    return out


# ---------------------------------------------------------------- rendering


def _xml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _xml_into(parent: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, list):
        el = ET.SubElement(parent, name)
        item = LIST_ITEMS.get(name, "item")
        for v in value:
            _xml_into(el, item, v)
    elif isinstance(value, dict):
        el = ET.SubElement(parent, name)
        for k, v in value.items():
            _xml_into(el, k, v)
    else:
        el = ET.SubElement(parent, name)
        if value is not None:
            el.text = _xml_value(value)


def to_xml(root: str, value: Any) -> bytes:
    """A spec document: ``root`` holding a list (items named per LIST_ITEMS) or an object."""
    el = ET.Element(root)
    if isinstance(value, list):
        item = LIST_ITEMS.get(root, "item")
        for v in value:
            _xml_into(el, item, v)
    else:
        for k, v in value.items():
            _xml_into(el, k, v)
    # no character XML 1.0 forbids, whatever is stored (they are not markup: removing them is safe)
    return ("<?xml version='1.0' encoding='utf-8'?>\n" + xml_clean(ET.tostring(el, encoding="unicode"))).encode()


def _json(value: Any) -> bytes:
    import json

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), ensure_ascii=False).encode("utf-8")


def render(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    body = to_xml(root, value) if fmt == "xml" else _json(value)
    return Response(content=body, status_code=status, media_type=CONTENT_TYPES[fmt])


def error_response(fmt: str, exc: svc.Open311Error) -> Response:
    fmt = fmt if fmt in CONTENT_TYPES else "xml"
    errors = [{"code": code, "description": desc} for code, desc in exc.errors]
    return render(fmt, "errors", errors, exc.status)


def _fmt(value: str) -> str:
    f = value.lower()
    if f not in CONTENT_TYPES:
        raise svc.not_found(f"format {value!r} not offered: use .xml or .json")
    return f


def _lang(request: Request) -> str:
    v = (request.query_params.get("lang") or "").lower()
    if v.startswith("en"):
        return "en"
    if not v and request.headers.get("accept-language", "").lower().startswith("en"):
        return "en"
    return "zh"


def _run(fmt: str, fn: Callable[[str], Response]) -> Response:
    try:
        return fn(_fmt(fmt))
    except svc.Open311Error as exc:
        return error_response(fmt.lower(), exc)
    except CityOpsError as exc:
        return error_response(fmt.lower(), svc.from_cityops(exc))
    except SQLAlchemyError as exc:
        return _back_office(fmt, exc)


def _back_office(fmt: str, exc: SQLAlchemyError) -> Response:
    """A database failure: one that may pass is raised again (RetryBusy runs the request again and
    answers 503 with Retry-After at worst); any other is the spec's 400 for a back-office failure."""
    from cityops.uow import retryable

    if retryable(exc):
        raise exc
    return error_response(fmt.lower(), svc.bad("the case system is busy or unavailable; try again shortly"))


# ---------------------------------------------------------------- routes


@router.get("/discovery.{fmt}", summary="服务发现 Service discovery", openapi_extra=_doc())
def discovery(request: Request, fmt: str, session: Session = UnitOfWork) -> Response:
    base = str(request.base_url).rstrip("/") + PREFIX
    return _run(fmt, lambda f: render(f, "discovery", svc.discovery(session, base)))


@router.get("/services.{fmt}", summary="服务（诉求类别）列表 Service list", openapi_extra=_doc())
def services(request: Request, fmt: str, session: Session = UnitOfWork) -> Response:
    def go(f: str) -> Response:
        svc.check_jurisdiction(request.query_params.get("jurisdiction_id"))
        return render(f, "services", svc.list_services(session, _lang(request)))

    return _run(fmt, go)


@router.get("/services/{service_code}.{fmt}", summary="服务定义（附加问题）Service definition", openapi_extra=_doc())
def service_definition(request: Request, service_code: str, fmt: str,
                       session: Session = UnitOfWork) -> Response:
    def go(f: str) -> Response:
        svc.check_jurisdiction(request.query_params.get("jurisdiction_id"))
        return render(f, "service_definition", svc.service_definition(session, service_code))

    return _run(fmt, go)


@router.post("/requests.{fmt}", summary="提交诉求（需 api_key）Create a service request",
             openapi_extra=_doc(post=True))
async def create_request(request: Request, fmt: str, session: Session = UnitOfWork) -> Response:
    try:
        f = _fmt(fmt)
        ctype = request.headers.get("content-type", "").lower()
        if not ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            raise svc.bad("the body must be application/x-www-form-urlencoded (Open311 POST)")
        try:
            raw = await request.form()
        except Exception:  # noqa: BLE001 - any unparsable body is the client's error
            raise svc.bad("the form body could not be parsed")
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for k, v in raw.multi_items():
            if not isinstance(v, str):
                continue  # uploaded files are not part of GeoReport v2 (media_url only)
            single[k] = v
            multi.setdefault(k, []).append(v)
        form = svc.Form(single, multi)
        from cityops.security.service import API_KEY_HEADER, client_ip

        idem = request.headers.get("idempotency-key")
        if idem is not None and not 1 <= len(idem) <= 200:
            raise svc.bad("Idempotency-Key must be 1-200 characters")
        # the intake is blocking database work: off the event loop
        # api_key: the form field, the query string (open311.org's swagger declares it there), or the header
        header_key = request.query_params.get("api_key") or request.headers.get(API_KEY_HEADER)
        out = await run_in_threadpool(svc.create_request, session, form, header_key=header_key,
                                      source_ip=client_ip(request), idempotency_key=idem)
        return render(f, "service_requests", out)
    except svc.Open311Error as exc:
        return error_response(fmt.lower(), exc)
    except CityOpsError as exc:
        return error_response(fmt.lower(), svc.from_cityops(exc))
    except SQLAlchemyError as exc:
        return _back_office(fmt, exc)


@router.get("/requests.{fmt}", summary="查询诉求 Query service requests", openapi_extra=_doc(REQUEST_QUERY))
def query_requests(request: Request, fmt: str, session: Session = UnitOfWork) -> Response:
    params = {k: request.query_params.get(k) for k in (*REQUEST_QUERY, "jurisdiction_id")}
    return _run(fmt, lambda f: render(f, "service_requests", svc.query_requests(session, params, _lang(request))))


@router.get("/requests/{service_request_id}.{fmt}", summary="查询单个诉求 One service request", openapi_extra=_doc())
def get_request(request: Request, service_request_id: str, fmt: str,
                session: Session = UnitOfWork) -> Response:
    def go(f: str) -> Response:
        svc.check_jurisdiction(request.query_params.get("jurisdiction_id"))
        return render(f, "service_requests", svc.get_request(session, service_request_id, _lang(request)))

    return _run(fmt, go)


@router.get("/tokens/{token}.{fmt}", summary="令牌换诉求编号（本系统均为实时）Token lookup", openapi_extra=_doc())
def get_token(token: str, fmt: str, session: Session = UnitOfWork) -> Response:
    return _run(fmt, lambda f: render(f, "service_requests", svc.resolve_token(session, token)))


@router.api_route("/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
def unknown(rest: str) -> Response:
    fmt = rest.rsplit(".", 1)[-1].lower() if "." in rest else "xml"
    return error_response(fmt, svc.not_found(f"no such Open311 resource: {PREFIX}/{rest}"))
