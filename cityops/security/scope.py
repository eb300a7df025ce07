"""One access scope for every read (Polar's ``get_readable_statement`` idea).

A principal's scope is ONE rule, decided here from the principal and the kind of object, and
rendered three ways from that same rule:

* ``clause(principal, kind)``  — the SQL WHERE clause of a list, count, map, export or stream;
* ``mask(principal, kind, ...)`` — the NumPy mask over an in-memory snapshot (the console);
* ``allows(principal, kind, ...)`` — the Python answer for one object already in hand.

The rule (docs/architecture.md, "Access"):

* ``system``: everything;
* a principal with a department, over objects that departments handle (cases, warnings,
  incidents, tasks ...): the objects its department handles now, narrowed to its area when its
  area is below the district;
* otherwise, over located objects: the objects inside its area (the whole district for a
  district-wide principal);
* a principal with neither an area nor an applicable department: nothing.

A kind of object (``ScopedKind``) is declared by its own domain, next to its models, with the
columns that carry its place and, when departments handle it, how to ask "does department D
handle this row". Services never write their own scope conditions: they call ``clause``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, false, true
from sqlalchemy.sql.elements import ColumnElement

from cityops.security.principal import Principal, code_prefix_clause


@dataclass(frozen=True)
class Located:
    """The columns that place a row: street (9), community (12), grid (15) codes, or one column
    holding an area code of any level (``code``). Area codes are hierarchical by prefix."""

    street: Any = None
    community: Any = None
    grid: Any = None
    code: Any = None

    def within(self, area: str) -> ColumnElement[bool]:
        """Rows inside ``area``: equality on the column of the area's level when the row carries
        it (index-friendly: ``(street_code, id)`` serves filter and page order), else the prefix
        range on the finest column."""
        by_level = {9: self.street, 12: self.community, 15: self.grid}.get(len(area))
        if by_level is not None:
            return by_level == area  # type: ignore[no-any-return]
        column = self.grid if self.grid is not None else self.code
        if column is None:
            column = self.community if self.community is not None else self.street
        if column is None:
            return false()
        return code_prefix_clause(column, area)


@dataclass(frozen=True)
class ScopedKind:
    """A kind of scoped object. ``handled_by(department_code)`` is the SQL condition "department
    handles this row" for kinds that departments handle (None: area-scoped only)."""

    name: str
    located: Located | None = None
    handled_by: Callable[[str], ColumnElement[bool]] | None = None


@dataclass(frozen=True)
class Rule:
    """What one principal may see of one kind: everything, nothing, or the rows inside ``area``
    (None: anywhere) AND, when ``department`` is set, handled by that department."""

    everything: bool = False
    nothing: bool = False
    area: str | None = None
    department: str | None = None

    def describe(self) -> str:
        if self.everything:
            return "all"
        if self.nothing:
            return "none"
        parts = ([f"department {self.department}"] if self.department else []) + (
            [f"area {self.area}"] if self.area else [])
        return " and ".join(parts) or "all"


EVERYTHING = Rule(everything=True)
NOTHING = Rule(nothing=True)


def rule(principal: Principal, kind: ScopedKind) -> Rule:
    """THE scope rule (the only place it is written)."""
    if principal.kind == "system":
        return EVERYTHING
    area = principal.area_code if principal.area_code and not principal.is_district_wide else None
    if principal.department_code and kind.handled_by is not None:
        return Rule(department=principal.department_code, area=area)
    if principal.area_code:
        return EVERYTHING if area is None else Rule(area=area)
    return NOTHING


def clause(principal: Principal, kind: ScopedKind, *, joined_department: str | None = None) -> ColumnElement[bool]:
    """The rule as a SQL WHERE clause over ``kind``'s columns. ``joined_department``: the caller's
    statement already keeps only the rows that department handles (a join that drives the query
    through the department's index), so the rule's "handled by" part is not repeated for it."""
    r = rule(principal, kind)
    if r.everything:
        return true()
    if r.nothing:
        return false()
    parts: list[ColumnElement[bool]] = []
    if r.department is not None and r.department != joined_department:
        assert kind.handled_by is not None
        parts.append(kind.handled_by(r.department))
    if r.area is not None:
        parts.append(kind.located.within(r.area) if kind.located is not None else false())
    if not parts:
        return true()
    return parts[0] if len(parts) == 1 else and_(*parts)


def mask(principal: Principal, kind: ScopedKind, n: int, *, within: Callable[[str], np.ndarray],
         handled_by: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
    """The rule as a boolean mask over ``n`` snapshot rows; ``within(area)`` and
    ``handled_by(department)`` are the snapshot's renderings of ``Located.within`` and
    ``ScopedKind.handled_by``."""
    r = rule(principal, kind)
    if r.everything:
        return np.ones(n, dtype=bool)
    if r.nothing:
        return np.zeros(n, dtype=bool)
    m = np.ones(n, dtype=bool)
    if r.department is not None:
        if handled_by is None:
            raise TypeError(f"the snapshot of {kind.name} cannot tell which department handles a row")
        m &= handled_by(r.department)
    if r.area is not None:
        m &= within(r.area)
    return m


def allows(principal: Principal, kind: ScopedKind, *, area_code: str | None,
           departments: Iterable[str] = ()) -> bool:
    """The rule for one object: its area code (any level) and the departments handling it now."""
    r = rule(principal, kind)
    if r.everything:
        return True
    if r.nothing:
        return False
    if r.department is not None and r.department not in set(departments):
        return False
    return r.area is None or (area_code is not None and area_code.startswith(r.area))


def scope_label(principal: Principal, kind: ScopedKind) -> str:
    """For logs and the console's "你看到的是 …" line."""
    return rule(principal, kind).describe()


__all__ = ["Located", "ScopedKind", "Rule", "rule", "clause", "mask", "allows", "scope_label"]
