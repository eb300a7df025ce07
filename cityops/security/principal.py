"""Who is acting: the principal every service function receives.

A principal is resolved once per request (``cityops.security.deps.get_principal``) from a
bearer token, the console's session cookie or an integration API key. Services never look
at the request; they take a ``Principal`` and narrow every query with it
(see ``area_clause`` and each domain's ``readable_statement``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, false, true
from sqlalchemy.sql.elements import ColumnElement

PrincipalKind = Literal["user", "api_key", "system", "anonymous"]


@dataclass(frozen=True)
class Principal:
    username: str
    kind: PrincipalKind = "user"
    account_id: int | None = None
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    # Area scope: the account's area code (district 6, street 9, community 12, grid 15 digits);
    # None means no area scope (only department-scoped or system principals).
    area_code: str | None = None
    department_id: int | None = None
    department_code: str | None = None
    source_ip: str | None = None
    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def can(self, permission: str) -> bool:
        return self.kind == "system" or permission in self.permissions

    @property
    def is_district_wide(self) -> bool:
        """True when the principal sees the whole district (system, or area = district code)."""
        return self.kind == "system" or (self.area_code is not None and len(self.area_code) <= 6)

    def role_label(self) -> str:
        return ",".join(sorted(self.roles)) or self.kind


SYSTEM = Principal(username="system", kind="system", area_code=None)


def code_prefix_clause(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, written as a range so that a B-tree index is used
    on SQLite and PostgreSQL alike (codes are digits, ':' sorts right after '9')."""
    return and_(column >= prefix, column < prefix + ":")


def area_clause(principal: Principal, column: Any) -> ColumnElement[bool]:
    """The area part of a principal's scope over a column holding an area code
    (any level: the code of a grid starts with its community's, street's and district's)."""
    if principal.kind == "system":
        return true()
    if principal.area_code is None:
        return false()
    return code_prefix_clause(column, principal.area_code)


def located_clause(principal: Principal, street_column: Any, community_column: Any,
                   grid_column: Any) -> ColumnElement[bool]:
    """The area scope over rows that carry street (9), community (12) and grid (15) codes: an
    equality on the column of the principal's level, so that an index ``(level_code, id)`` serves
    both the filter and the ORDER BY of a page (see bench/scoped_list.py). Same rows as
    ``area_clause(principal, grid_column)``."""
    if principal.kind == "system" or principal.is_district_wide:
        return true()
    code = principal.area_code
    if code is None:
        return false()
    column = {9: street_column, 12: community_column, 15: grid_column}.get(len(code))
    if column is None:
        return code_prefix_clause(grid_column, code)
    return column == code
