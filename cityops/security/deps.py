"""FastAPI dependencies for authentication and authorisation.

Every route declares exactly one access rule, so that the permission-matrix test can read
them from the route table:

* ``Depends(public_route)`` — open to anyone (public data, citizen intake, Open311 GETs);
* ``require("case.read")`` — a signed-in principal holding that permission (roles are data:
  role -> permissions in the database). The dependency returns the ``Principal``.

Area/department scoping is NOT done here: services narrow every query with the principal.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from cityops.errors import Forbidden, Problem
from cityops.security.principal import Principal


def get_principal(request: Request) -> Principal:
    """Resolve the caller (bearer token, console session cookie or X-API-Key).

    Implemented in ``cityops.security.service.resolve_principal``."""
    from cityops.security.service import resolve_principal

    return resolve_principal(request)


def public_route() -> None:
    """Marker: the route is deliberately open to anonymous callers."""
    return None


class Permission:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, principal: Principal = Depends(get_principal)) -> Principal:
        if not principal.can(self.name):
            raise Forbidden([Problem(f"permission {self.name} required", ["permission"], "forbidden")])
        return principal

    def __repr__(self) -> str:
        return f"Permission({self.name!r})"


def require(name: str) -> Any:
    return Depends(Permission(name))


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
