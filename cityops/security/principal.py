"""Who is acting: the principal every service function receives.

A principal is resolved once per request (``cityops.security.deps.get_principal``) from a
bearer token, the console's session cookie or an integration API key. Services never look
at the request; they take a ``Principal`` and narrow every query with it
(``cityops.security.scope``: one rule rendered as SQL, a NumPy mask or a single answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

from cityops.config import get_settings

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
        """True when the principal sees the whole district: system, or an area code that covers it
        (the district's own code or a prefix of it, e.g. the city's)."""
        if self.kind == "system":
            return True
        return self.area_code is not None and get_settings().district_code.startswith(self.area_code)

    def role_label(self) -> str:
        return ",".join(sorted(self.roles)) or self.kind


SYSTEM = Principal(username="system", kind="system", area_code=None)


def code_prefix_clause(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, written as a range so that a B-tree index is used
    on SQLite and PostgreSQL alike (codes are digits, ':' sorts right after '9')."""
    return and_(column >= prefix, column < prefix + ":")
