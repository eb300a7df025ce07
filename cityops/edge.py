"""Input hygiene at the edge: what no route should have to think about.

``BodyGuard`` (ASGI middleware, outermost) reads the request body before any route does and
answers 4xx, never 5xx, for:

* a body larger than the route's limit → **413** (``Content-Length`` checked before reading, the
  stream counted otherwise). The default is ``DEFAULT_LIMIT``; imports and bulk readings have
  larger ones (``LIMITS``, by path) and keep their own finer checks;
* a JSON body holding ``NaN``, ``Infinity`` or a number beyond float range (``1e309``; JSON has
  none of them, Python's parser accepts them), a lone UTF-16 surrogate (``"\\ud800"``: not
  representable in UTF-8, so neither storable nor echoable), a character that XML 1.0 forbids
  (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+FFFE, U+FFFF: the Open311 and CAP documents
  built from stored text must stay well-formed), or nested deeper than ``MAX_DEPTH`` → **422**
  naming the field (``loc`` = ``["body", key, index, ...]``) and the reason.

Only suspicious bodies are parsed here (those containing an escape, a constant, an exponent or
many brackets); an ordinary report costs one ``bytes.count`` and a regex scan. Form bodies (Open311)
are checked by their own route (:func:`xml_unsafe`), XML output is cleaned once more on the way
out (:func:`xml_clean`) so that even hostile stored data cannot break a document.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from cityops.errors import Problem

DEFAULT_LIMIT = 2 * 2**20
# (path regex, limit): imports and bulk endpoints take big files and check them further themselves
LIMITS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"/import(/|$)|/import/hotline$"), 128 * 2**20),
    (re.compile(r"^/api/v1/readings$"), 64 * 2**20),
    (re.compile(r"/media$"), 32 * 2**20),
]
MAX_DEPTH = 64
# imports validate every value themselves and list every bad row at once (all-or-nothing): for them
# the edge checks size and depth only, so that one NaN does not hide the other problems
DEPTH_ONLY = re.compile(r"/import(/hotline)?$")
# characters XML 1.0 does not allow (§2.2 Char), and lone surrogates
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SUSPICIOUS = re.compile(rb"\\u|NaN|Infinity|\d[eE]|\d{300}")


def limit_for(path: str) -> int:
    for pattern, limit in LIMITS:
        if pattern.search(path):
            return limit
    return DEFAULT_LIMIT


def xml_unsafe(text: str) -> bool:
    """``text`` holds a character XML 1.0 forbids (or a lone surrogate)."""
    return XML_FORBIDDEN.search(text) is not None


def xml_clean(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (used when writing XML documents)."""
    return XML_FORBIDDEN.sub("", text)


class _Bad:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(s: str) -> Any:
    v = float(s)
    return v if math.isfinite(v) else _Bad(s)


def json_problems(body: bytes, depth_only: bool = False) -> list[Problem]:
    """What is wrong with a JSON body that the platform must not take in (see the module doc);
    an empty list for a body that is fine, or that is not JSON at all (the route says so)."""
    if not _SUSPICIOUS.search(body) and body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return []
    try:
        value = json.loads(body, parse_constant=_Bad, parse_float=_float)
    except RecursionError:
        return [Problem(f"JSON 嵌套过深 the JSON is nested deeper than {MAX_DEPTH} levels", ["body"], "too_deep")]
    except (ValueError, UnicodeDecodeError):
        return []  # not JSON: FastAPI's own 422 (json_invalid) says so
    problems: list[Problem] = []
    _walk(value, ["body"], 0, problems, depth_only)
    return problems[:20]


def _walk(v: Any, loc: list[str | int], depth: int, out: list[Problem], depth_only: bool = False) -> None:
    if len(out) >= 20:
        return
    if depth > MAX_DEPTH:
        out.append(Problem(f"JSON 嵌套过深 the JSON is nested deeper than {MAX_DEPTH} levels", loc[:1], "too_deep"))
        return
    if depth_only:
        if isinstance(v, dict | list):
            for x in v.values() if isinstance(v, dict) else v:
                if isinstance(x, dict | list):
                    _walk(x, loc, depth + 1, out, True)
        return
    if isinstance(v, _Bad):
        out.append(Problem(f"数值无效 {v.text} is not a finite number (JSON has no NaN or Infinity)", loc,
                           "value_error.not_finite"))
    elif isinstance(v, str):
        _text(v, loc, out)
    elif isinstance(v, dict):
        for k, x in v.items():
            if isinstance(k, str) and xml_unsafe(k):
                out.append(Problem("键名含非法字符 a key holds a control character or a lone surrogate",
                                   [*loc, _printable(k)], "value_error.control_character"))
                continue
            _walk(x, [*loc, k], depth + 1, out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _walk(x, [*loc, i], depth + 1, out)


def _text(s: str, loc: list[str | int], out: list[Problem]) -> None:
    m = XML_FORBIDDEN.search(s)
    if m is None:
        return
    ch = m.group()
    if "\ud800" <= ch <= "\udfff":
        out.append(Problem("文本含孤立代理字符 the text holds a lone UTF-16 surrogate, which is not a character",
                           loc, "value_error.surrogate"))
    else:
        out.append(Problem(f"文本含控制字符 U+{ord(ch):04X}, which text fields may not hold (XML 1.0 forbids it)",
                           loc, "value_error.control_character"))


def _printable(k: str) -> str:
    return XML_FORBIDDEN.sub("\ufffd", k)


class BodyGuard:
    """ASGI middleware (see the module doc). The body is read whole and replayed to the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # disconnected
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (ctype.endswith(b"json") or ctype == b""):
            problems = json_problems(body, depth_only=DEPTH_ONLY.search(scope.get("path", "")) is not None)
            if problems:
                await _unprocessable(scope, receive, send, problems)
                return
        await self.app(scope, _replay([body], None), send)


def _replay(chunks: list[bytes], final: dict[str, Any] | None) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            if final is not None:
                return final
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _too_large(scope: Any, receive: Any, send: Any, limit: int) -> None:
    await _answer(scope, receive, send, 413, [Problem(
        f"请求体过大 the request body is larger than {limit // 2**20} MB, the limit of this route", ["body"],
        "too_large")])


async def _unprocessable(scope: Any, receive: Any, send: Any, problems: list[Problem]) -> None:
    await _answer(scope, receive, send, 422, problems)


async def _answer(scope: Any, receive: Any, send: Any, status: int, problems: list[Problem]) -> None:
    from fastapi.responses import JSONResponse, Response

    path = scope.get("path", "")
    response: Response
    if path.startswith("/open311/"):
        response = open311_error(path, [p.msg for p in problems], status)
    else:
        response = JSONResponse(status_code=status, content={"detail": [p.as_dict() for p in problems]})
    await response(scope, receive, send)


def open311_error(path: str, messages: list[str], code: int) -> Any:
    """The GeoReport v2 error document (HTTP 400; ``code`` in the body may be more specific), in
    the format of the path's suffix (XML when it is not ``.json``)."""
    from xml.sax.saxutils import escape

    from fastapi.responses import Response

    last = path.rsplit("/", 1)[-1]
    if last.lower().endswith(".json"):
        body = json.dumps([{"code": code, "description": m} for m in messages], ensure_ascii=False)
        return Response(body.encode(), status_code=400, media_type="application/json; charset=utf-8")
    items = "".join(f"<error><code>{code}</code><description>{escape(xml_clean(m))}</description></error>"
                    for m in messages)
    xml = f"<?xml version='1.0' encoding='utf-8'?>\n<errors>{items}</errors>"
    return Response(xml.encode(), status_code=400, media_type="text/xml; charset=utf-8")


class RejectNul:
    """Refuse a URL carrying a NUL character (%00): no text column of PostgreSQL can hold it, and
    streaming answers (CSV exports) could otherwise fail after their first bytes were sent. 422
    naming the query, or under ``/open311`` the spec's 400 error document."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("query_string", b"") + scope.get("raw_path", b"")
            if b"%00" in raw or b"\x00" in raw or "\x00" in scope.get("path", ""):
                await _answer(scope, receive, send, 422, [Problem(
                    "the URL contains a NUL character (%00), which is not allowed (地址含非法空字符)", ["query"],
                    "value_error.nul")])
                return
        await self.app(scope, receive, send)


__all__ = ["BodyGuard", "RejectNul", "open311_error", "check_zip", "DEFAULT_LIMIT", "LIMITS", "MAX_DEPTH", "json_problems", "limit_for", "xml_clean",
           "xml_unsafe"]


MAX_UNZIPPED = 256 * 2**20
MAX_RATIO = 200


def check_zip(data: bytes, loc: list[str | int]) -> None:
    """Refuse (422) a ZIP container (XLSX) that would expand beyond ``MAX_UNZIPPED`` bytes or whose
    members expand more than ``MAX_RATIO`` times (a zip bomb), from its directory, before reading it."""
    import io
    import zipfile

    from cityops.errors import InvalidInput

    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a ZIP: the reader says what is wrong
    total = sum(i.file_size for i in infos)
    worst = max((i.file_size / max(i.compress_size, 1) for i in infos if i.file_size > 2**20), default=0.0)
    if total > MAX_UNZIPPED or worst > MAX_RATIO:
        raise InvalidInput([Problem(
            f"压缩文件展开过大 the file expands to {total // 2**20} MB (at most {MAX_UNZIPPED // 2**20} MB, "
            f"{MAX_RATIO}x per part): not read", loc, "too_large")])
