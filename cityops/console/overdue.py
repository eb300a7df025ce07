"""超期在办 / 临期在办 up front: the cases behind the console's red and yellow cards, most overdue (or
soonest due) first, each with how long it is overdue (or how long is left), the step it waits at
and the department that owns it; and how many are stuck at each step.

Reads go through the console's filters (``service.where_clauses``: the one case scope, then the
page's filters), so the list and the cards count the same cases."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cityops.cases import inbox
from cityops.cases import sla as case_sla
from cityops.cases.models import Case
from cityops.console import service
from cityops.errors import InvalidInput, Problem
from cityops.security.principal import Principal

KINDS = ("overdue", "near")


def board(session: Session, principal: Principal, f: service.Filters, kind: str = "overdue", limit: int = 20,
          lang: str = "zh", now: dt.datetime | None = None) -> dict[str, Any]:
    """The TOP list and the stuck-at-step counts of ``kind`` (overdue: due passed; near: yellow)."""
    if kind not in KINDS:
        raise InvalidInput([Problem("kind 应为 overdue 或 near must be overdue or near", ["query", "kind"])])
    now = now or case_sla.now()
    w = service.where_clauses(session, principal, f, now, with_period=False)
    w.append(service.is_open())
    cond = Case.due_at <= now if kind == "overdue" else and_(Case.due_at > now, Case.yellow_at <= now)
    w.append(cond)
    total = int(session.scalar(select(func.count()).select_from(Case).where(*w)) or 0)
    cases = list(session.scalars(select(Case).where(*w).order_by(Case.due_at.asc(), Case.id.asc()).limit(limit)))
    stuck = [{"state": s, "label": service.state_label(s, lang), "count": int(n)}
             for s, n in session.execute(select(Case.state, func.count()).where(*w).group_by(Case.state)
                                         .order_by(func.count().desc(), Case.state))]
    owners = session.execute(select(Case.lead_department_code, func.count()).where(*w)
                             .group_by(Case.lead_department_code).order_by(func.count().desc()).limit(10)).all()
    names = service.department_names(session)
    by_owner = [{"code": c, "name": ((names[c][1] or names[c][0]) if lang == "en" else names[c][0])
                 if c and c in names else None, "count": int(n)} for c, n in owners]
    return {"kind": kind, "total": total, "at": now.isoformat(), "stuck": stuck, "by_owner": by_owner,
            "items": [inbox.item(session, c, now, lang) for c in cases]}


__all__ = ["board", "KINDS"]
