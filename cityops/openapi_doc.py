"""The OpenAPI document, made to tell the truth about what every route can answer.

FastAPI documents the success status and 422 only. Every route here can also answer, whatever its
handler does (see ``cityops.uow``, ``cityops.edge``, ``cityops.security.deps``):

* **401 / 403** — a route that needs a principal (not ``public_route``): no or bad credentials, a
  permission or area it lacks;
* **404** — a path id or code that does not exist (and the spec's 404 under Open311);
* **400 / 409** — a domain rule (``CityOpsError``): 400 for a refused input, 409 for a state conflict
  (writes);
* **413** — a body over the route's limit (methods with a body);
* **422** — validation, naming the field (``{"detail": [{"loc", "msg", "type"}]}``);
* **429** — the rate limits of public and sign-in routes;
* **503** — a transaction that lost every retry (``Retry-After``).

The error bodies have one schema, ``Error``. Open311 routes answer only the spec's 400/403/404
documents (XML or JSON by suffix, body schema ``Open311Errors``). Responses that are not JSON
(CSV exports, the event stream, the Atom feed) are documented with their real media type.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object", "title": "Error", "required": ["detail"],
    "properties": {"detail": {"anyOf": [{"type": "array", "items": {
        "type": "object", "required": ["msg"],
        "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                       "msg": {"type": "string"}, "type": {"type": "string"}}}},
        # the framework's own answers (unparsable body, unknown path) carry a sentence
        {"type": "string"}]}},
}
OPEN311_ERRORS = {"type": "array", "title": "Open311Errors", "items": {
    "type": "object", "required": ["code", "description"],
    "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}}}
DESCRIPTIONS = {
    "400": "请求被业务规则拒绝 Refused by a domain rule", "401": "未登录或凭据无效 Not authenticated",
    "403": "无权限或超出辖区 Forbidden (permission or area)", "404": "不存在 Not found",
    "409": "状态冲突 Conflict with the current state", "413": "请求体过大 Body too large",
    "422": "字段校验失败 Validation error (names the field)", "429": "请求过于频繁 Too many requests",
    "503": "系统繁忙，请稍后重试 Busy: retry after Retry-After seconds",
}
# path suffix → the media type of the 200 answer, where the handler does not say it itself
MEDIA_BY_SUFFIX = {".csv": "text/csv", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   ".atom": "application/atom+xml", "/stream": "text/event-stream"}
BODY_METHODS = {"post", "put", "patch", "delete"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(code: str, schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}
    if code in ("503", "429"):
        out["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return out


def complete(spec: dict[str, Any], public: set[tuple[str, str]]) -> dict[str, Any]:
    """``spec`` with the statuses, error schemas and media types every operation can answer.
    ``public``: (path, METHOD) of the routes that need no principal."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    schemas["Open311Errors"] = OPEN311_ERRORS
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            if path.startswith("/open311/"):
                for code in ("400", "403", "404"):
                    responses[code] = {"description": "GeoReport v2 error document", "content": {
                        "application/json": {"schema": _ref("Open311Errors")}, "text/xml": {"schema": {"type": "string"}}}}
                responses["503"] = _response("503", _ref("Error"))
                continue
            codes = ["400", "404", "422", "503"]
            if (path, method.upper()) not in public:
                codes += ["401", "403"]
            else:
                codes += ["429", "403"] + (["401"] if path.startswith("/api/v1/auth/") else [])
            if method in BODY_METHODS:
                codes += ["409", "413"]
            for code in codes:
                existing = responses.get(code)
                if existing is None or "content" not in existing:
                    responses[code] = _response(code, _ref("Error"))
                elif code == "422":
                    existing["content"] = {"application/json": {"schema": _ref("Error")}}
            ok = responses.get("200")
            if ok is not None:
                for suffix, media in MEDIA_BY_SUFFIX.items():
                    if path.endswith(suffix) and media not in ok.get("content", {}):
                        schema: dict[str, Any] = {"type": "string"}
                        if media == "text/event-stream":  # each event: data (JSON text), event, id, retry
                            schema = {"type": "object", "properties": {"data": {"type": "string"}}}
                        ok["content"] = {media: {"schema": schema}}
    return spec


def install(app: Any) -> None:
    """Make ``app.openapi()`` answer the completed document (built once, cached like FastAPI's)."""
    from fastapi.openapi.utils import get_openapi

    from cityops.security.deps import api_routes

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes, tags=app.openapi_tags)
            public = {(p, m) for p, methods, rule, _r in api_routes(app) if rule in (None, "public") for m in methods}
            app.openapi_schema = complete(spec, public)
        return dict(app.openapi_schema)

    app.openapi = openapi


__all__ = ["complete", "install"]
