"""Domain errors that map to clear HTTP 4xx answers.

Services raise these; ``cityops.app`` turns them into JSON bodies of the form
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` (the same envelope as
FastAPI's validation errors), so a client always learns which field, row or feature
was wrong and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Problem:
    msg: str
    loc: list[str | int] = field(default_factory=list)
    type: str = "value_error"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"loc": self.loc, "msg": self.msg, "type": self.type}
        d.update(self.extra)
        return d


class CityOpsError(Exception):
    status_code = 400

    def __init__(self, problems: list[Problem] | str, *, persist: bool = False, **extra: Any) -> None:
        """``persist``: the request's unit of work is committed although the request fails (what
        was written before the error must stay: a failed sign-in's counter, the audit row of a
        refused run); otherwise it is rolled back (``cityops.uow``)."""
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = problems
        self.persist = persist
        self.extra = extra
        super().__init__("; ".join(p.msg for p in problems))

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": [p.as_dict() for p in self.problems]}
        body.update(self.extra)
        return body


class InvalidInput(CityOpsError):
    status_code = 422


class NotFound(CityOpsError):
    status_code = 404


class Forbidden(CityOpsError):
    status_code = 403


class Unauthorized(CityOpsError):
    status_code = 401


class Conflict(CityOpsError):
    status_code = 409


class TooManyRequests(CityOpsError):
    status_code = 429
