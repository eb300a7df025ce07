"""ASGI middleware: security headers, CSRF for cookie-authenticated unsafe requests, and the
per-application rate limiter. Pure ASGI (no BaseHTTPMiddleware) so streaming responses and SSE
pass through untouched."""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI

from cityops.security import ratelimit

Scope = dict[str, Any]

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
# The Swagger UI page (served offline from the swagger-ui-bundle package) carries an inline bootstrap script.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_EXEMPT = {"/api/v1/auth/login", "/api/v1/auth/token"}


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else CSP

        async def _send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                for k, v in ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                             (b"referrer-policy", b"strict-origin-when-cross-origin"),
                             (b"content-security-policy", csp.encode()),
                             (b"permissions-policy", b"geolocation=(self), camera=(), microphone=()"),
                             (b"cross-origin-opener-policy", b"same-origin")):
                    if k not in have:
                        headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, _send)


class CSRFGuard:
    """Double-submit check: a request authenticated by the console cookie that changes something
    must echo the CSRF token (header ``X-CSRF-Token`` or form field ``csrf_token``), which is the
    HMAC of the session cookie under the server secret. Bearer and API-key requests are exempt
    (browsers never add those by themselves)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in UNSAFE or scope.get("path") in CSRF_EXEMPT:
            await self.app(scope, receive, send)
            return
        from cityops.security.service import API_KEY_HEADER, CSRF_HEADER, SESSION_COOKIE, csrf_token_for

        headers = _headers(scope)
        if "authorization" in headers or API_KEY_HEADER.lower() in headers or "cookie" not in headers:
            await self.app(scope, receive, send)
            return
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers["cookie"])
        except Exception:  # noqa: BLE001 - malformed cookie header: treat as no session
            await self.app(scope, receive, send)
            return
        if SESSION_COOKIE not in jar:
            await self.app(scope, receive, send)
            return
        expected = csrf_token_for(jar[SESSION_COOKIE].value)
        given = headers.get(CSRF_HEADER.lower())
        replay: list[dict[str, Any]] = []
        if given is None and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = b""
            while True:
                msg = await receive()
                replay.append(msg)
                if msg["type"] != "http.request":
                    break
                body += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            given = (parse_qs(body.decode("utf-8", "replace")).get("csrf_token") or [""])[0] or None
        if not given or not hmac.compare_digest(given, expected):
            payload = json.dumps({"detail": [{"loc": ["header", CSRF_HEADER],
                                              "msg": "CSRF 校验失败：缺少或错误的 X-CSRF-Token missing or wrong CSRF "
                                                     "token (send the cityops_csrf cookie value)",
                                              "type": "csrf"}]}, ensure_ascii=False).encode("utf-8")
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        if replay:
            queue = list(replay)

            async def _receive() -> dict[str, Any]:
                if queue:
                    return queue.pop(0)
                got: dict[str, Any] = await receive()
                return got

            await self.app(scope, _receive, send)
            return
        await self.app(scope, receive, send)


class RateLimitContext:
    def __init__(self, app: Any, limiter: ratelimit.RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        token = ratelimit.current.set(self.limiter)
        try:
            await self.app(scope, receive, send)
        finally:
            ratelimit.current.reset(token)


def install(app: FastAPI) -> None:
    limiter = ratelimit.RateLimiter()
    app.state.rate_limiter = limiter
    # added last = outermost: headers on every answer, including CSRF refusals
    app.add_middleware(RateLimitContext, limiter=limiter)
    app.add_middleware(CSRFGuard)
    app.add_middleware(SecurityHeaders)
