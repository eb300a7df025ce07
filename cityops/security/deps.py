"""FastAPI dependencies for authentication and authorisation.

Every route declares exactly one access rule, so that the permission-matrix test can read
them from the route table:

* ``Depends(public_route)`` — open to anyone (public data, citizen intake, Open311 GETs);
* ``require("case.read")`` — a signed-in principal holding that permission (roles are data:
  role -> permissions in the database). The dependency returns the ``Principal``;
* ``signed_in()`` — any signed-in principal (own profile, own notifications, logout).

Area/department scoping is NOT done here: services narrow every query with the principal.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from cityops.errors import Forbidden, Problem
from cityops.security.principal import Principal

# Declared so that the OpenAPI document carries the security schemes ("Authorize" in /docs);
# the credentials themselves are read by ``resolve_principal``.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False,
                                     description="OAuth2 password flow: POST /api/v1/auth/token")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="integration API key (Open311 clients, sensors, 12345 import)")


def get_principal(request: Request) -> Principal:
    """Resolve the caller (bearer token, console session cookie or X-API-Key); blocking (call it
    from a worker thread). Implemented in ``cityops.security.service``."""
    from cityops.security.service import cached_principal, resolve_principal

    return cached_principal(request) or resolve_principal(request)


async def principal_dependency(request: Request, _token: str | None = Depends(oauth2_scheme),
                               _key: str | None = Depends(api_key_scheme)) -> Principal:
    """The dependency behind ``require`` / ``signed_in``: credentials checked moments ago come from
    memory (no thread hop, no query); others are checked in the database on a worker thread."""
    from cityops.security.service import cached_principal, resolve_principal

    hit = cached_principal(request)
    if hit is not None:
        return hit
    return await run_in_threadpool(resolve_principal, request)


def optional_principal(request: Request) -> Principal | None:
    """The caller if credentials came with the request, else None (for public routes that
    show more to signed-in callers). Bad credentials still answer 401."""
    from cityops.security.service import credentials, resolve_principal

    if credentials(request) is None:
        return None
    return resolve_principal(request)


async def public_route() -> None:
    """Marker: the route is deliberately open to anonymous callers (async: no thread hop)."""
    return None


class Permission:
    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, principal: Principal = Depends(principal_dependency)) -> Principal:
        # async: a check in memory needs no hop to the thread pool (principal_dependency does its I/O there)
        if not principal.can(self.name):
            raise Forbidden([Problem(f"permission {self.name} required", ["permission"], "forbidden")])
        return principal

    def __repr__(self) -> str:
        return f"Permission({self.name!r})"


class Authenticated(Permission):
    """Any signed-in principal (own profile, own notifications); no permission needed."""

    def __init__(self) -> None:
        super().__init__(AUTHENTICATED)

    async def __call__(self, principal: Principal = Depends(principal_dependency)) -> Principal:
        return principal

    def __repr__(self) -> str:
        return "Authenticated()"


AUTHENTICATED = "authenticated"


def require(name: str) -> Any:
    return Depends(Permission(name))


def signed_in() -> Any:
    """Rule for routes open to every signed-in principal (``route_rule`` -> 'authenticated')."""
    return Depends(Authenticated())


def route_rule(route: Any) -> str | None:
    """The access rule of a route: a permission name, 'public', or None if it has none."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        call = dep.call
        if isinstance(call, Permission):
            return call.name
        if call is public_route:
            return "public"
        stack.extend(dep.dependencies)
    return None


def api_routes(app: Any) -> list[tuple[str, set[str], str | None, Any]]:
    """(path, methods, rule, route) of every API route of ``app`` (routes of included routers too;
    FastAPI >= 0.16x keeps included routers as nested objects). Docs/OpenAPI pages are skipped."""
    from fastapi.routing import APIRoute

    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI flattens included routes
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    out: list[tuple[str, set[str], str | None, Any]] = []
    for ctx in contexts:
        original = getattr(ctx, "original_route", ctx)
        if not isinstance(original, APIRoute):
            continue
        out.append((ctx.path, set(ctx.methods or ()), route_rule(ctx), ctx))
    return out
