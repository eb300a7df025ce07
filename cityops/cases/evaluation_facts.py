"""Daily facts of the evaluation (``evaluation_fact``): what ``cityops.cases.evaluation`` counts for
one Asia/Shanghai day, per subject key and street, kept by the worker so that a period's
evaluation sums a few thousand small rows instead of scanning the events of every case.

* **Building** a day (``evaluation_jobs.build_day``) runs the evaluation's own SQL over that day
  alone, grouped also by the case's street; the rows replace the day's facts.
* **Staleness**: a day's counts can change after the day (a later 退单 makes a dispatch
  inaccurate, a step open past its deadline is finished later, a voided registration). Every change
  of a case writes a ``case_event``; ``mark_changes`` takes the events after the stored mark and
  marks stale every earlier day on which those cases had an event or a step deadline or finish.
* **Reading** (``plan``): a period's days that are built and not stale come from the facts; the
  others, and today always, from the history (``evaluation.raw_counts``). The facts serve the
  district and a street (their scope is a street or the whole district); a department account,
  a community or grid scope and an area filter below the street read the history (their
  populations are small).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Text, cast, delete, func, select
from sqlalchemy.orm import Session

from cityops.cases.evaluation_models import EvaluationFact, EvaluationFactDay, EvaluationFactMark
from cityops.cases.models import Case, CaseEvent, CaseStep
from cityops.config import get_settings
from cityops.security.principal import Principal

TZ = ZoneInfo("Asia/Shanghai")
SEP = "\x1f"
KIND = "evaluation.facts"  # the worker's timer that keeps the facts (cityops.cases.evaluation_jobs)
EVERY_S = 60.0
ALL_STREETS = ""


def street_of(principal: Principal, area: str | None) -> str | None:
    """The street the facts are read for ('' = the whole district), or None when they cannot serve
    this principal and area (a department's scope, a community or grid)."""
    if principal.kind != "system" and principal.department_code is not None:
        return None
    district = get_settings().district_code
    if principal.kind == "system" or principal.is_district_wide:
        mine = ALL_STREETS
    elif principal.area_code is not None and len(principal.area_code) == 9:
        mine = principal.area_code
    else:
        return None
    if area is None or area == district or (len(area) == 6 and district.startswith(area)):
        return mine
    if len(area) == 9 and (mine == ALL_STREETS or mine == area):
        return area
    return None


def local_day(t: dt.datetime) -> dt.date:
    return t.astimezone(TZ).date()


def plan(session: Session, d_from: dt.date, d_to: dt.date, today: dt.date
         ) -> tuple[list[dt.date], list[tuple[dt.date, dt.date]]]:
    """(days read from the facts, ranges of days read from the history)."""
    good = set(session.scalars(select(EvaluationFactDay.day).where(
        EvaluationFactDay.day >= d_from, EvaluationFactDay.day <= d_to, EvaluationFactDay.dirty.is_(False),
        EvaluationFactDay.built_at.is_not(None))))
    if good:  # changes the worker has not marked yet: those days from the history too
        mark = session.get(EvaluationFactMark, 1)
        good -= touched_days(session, mark.last_event_id if mark else 0, limit=20_000)
    fact_days: list[dt.date] = []
    live: list[tuple[dt.date, dt.date]] = []
    d = d_from
    while d <= d_to:
        if d in good and d < today:
            fact_days.append(d)
        elif live and live[-1][1] == d - dt.timedelta(days=1):
            live[-1] = (live[-1][0], d)
        else:
            live.append((d, d))
        d += dt.timedelta(days=1)
    return fact_days, live


def read(session: Session, subject: str, days: list[dt.date], street: str) -> dict[str, dict[str, Any]]:
    """The facts of ``subject`` on ``days`` summed per key (``street`` '' = every street)."""
    stmt = select(EvaluationFact.key, cast(EvaluationFact.metrics, Text)).where(
        EvaluationFact.subject == subject, EvaluationFact.day >= min(days), EvaluationFact.day <= max(days))
    if len(days) != (max(days) - min(days)).days + 1:
        stmt = stmt.where(EvaluationFact.day.in_(days))
    if street:
        stmt = stmt.where(EvaluationFact.street_code == street)
    out: dict[str, dict[str, Any]] = {}
    for key, text in session.execute(stmt):  # the JSON text, decoded by orjson (4x the JSON type's speed)
        row = out.setdefault(key, {})
        for k, v in orjson.loads(text).items():
            row[k] = row.get(k, 0) + v
    return out


def read_by_day(session: Session, subject: str, days: list[dt.date], street: str,
                fields: tuple[str, ...]) -> dict[dt.date, dict[str, float]]:
    """``fields`` of ``subject`` summed per day over every key."""
    out: dict[dt.date, dict[str, float]] = {}
    if not days:
        return out
    stmt = select(EvaluationFact.day, cast(EvaluationFact.metrics, Text)).where(
        EvaluationFact.subject == subject, EvaluationFact.day.in_(days))
    if street:
        stmt = stmt.where(EvaluationFact.street_code == street)
    for day, text in session.execute(stmt):
        metrics = orjson.loads(text)
        row = out.setdefault(day, dict.fromkeys(fields, 0.0))
        for f in fields:
            row[f] += metrics.get(f, 0)
    return out


def add(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Sum raw counts key by key (every count and hour total of the evaluation is additive over days)."""
    out: dict[str, dict[str, Any]] = {}
    for p in parts:
        for key, row in p.items():
            o = out.setdefault(key, {})
            for k, v in row.items():
                o[k] = o.get(k, 0) + v
    return out


def write_day(session: Session, day: dt.date, rows: dict[str, dict[str, dict[str, Any]]],
              at: dt.datetime) -> int:
    """Replace the facts of ``day`` by ``rows`` (subject -> "key<SEP>street" -> counts)."""
    session.execute(delete(EvaluationFact).where(EvaluationFact.day == day))
    n = 0
    objs = []
    for subject, keyed in rows.items():
        for composite, metrics in keyed.items():
            key, _sep, street = composite.partition(SEP)
            objs.append(EvaluationFact(subject=subject, day=day, street_code=street, key=key[:80], metrics=metrics))
            n += 1
    session.add_all(objs)
    mark = session.get(EvaluationFactDay, day)
    if mark is None:
        session.add(EvaluationFactDay(day=day, built_at=at, dirty=False, rows=n))
    else:
        mark.built_at, mark.dirty, mark.rows = at, False, n
    session.flush()
    return n


def _days_of(session: Session, case_ids: list[int]) -> set[dt.date]:
    """The local days on which these cases had an event, a step deadline or finish, or their report."""
    touched: set[dt.date] = set()
    for i in range(0, len(case_ids), 500):
        part = case_ids[i:i + 500]
        for (at,) in session.execute(select(CaseEvent.at).where(CaseEvent.case_id.in_(part))):
            touched.add(local_day(at))
        for due, fin in session.execute(select(CaseStep.due_at, CaseStep.finished_at)
                                        .where(CaseStep.case_id.in_(part))):
            for t in (due, fin):
                if t is not None:
                    touched.add(local_day(t))
        for (rep,) in session.execute(select(Case.reported_at).where(Case.id.in_(part))):
            touched.add(local_day(rep))
    return touched


def touched_days(session: Session, after_id: int, limit: int) -> set[dt.date]:
    """Days touched by the events after ``after_id`` (read only; ``limit`` events at most, beyond
    which every day counts as touched until the worker catches up)."""
    ids = sorted(set(session.scalars(select(CaseEvent.case_id).where(CaseEvent.id > after_id).limit(limit + 1))))
    if not ids:
        return set()
    n = session.scalar(select(func.count()).select_from(
        select(CaseEvent.id).where(CaseEvent.id > after_id).limit(limit + 1).subquery())) or 0
    if n > limit:
        return set(session.scalars(select(EvaluationFactDay.day)))
    return _days_of(session, ids)


def mark_changes(session: Session, today: dt.date, chunk: int = 5000) -> int:
    """Mark stale the days that changes since the stored mark touch; returns how many days."""
    mark = session.get(EvaluationFactMark, 1)
    if mark is None:
        mark = EvaluationFactMark(id=1, last_event_id=0)
        session.add(mark)
        session.flush()
        # a fresh mark: nothing built yet, every day is missing anyway
        mark.last_event_id = int(session.scalar(select(func.max(CaseEvent.id))) or 0)
        return 0
    touched: set[dt.date] = set()
    while True:
        ev = session.execute(select(CaseEvent.id, CaseEvent.case_id).where(CaseEvent.id > mark.last_event_id)
                             .order_by(CaseEvent.id).limit(chunk)).all()
        if not ev:
            break
        touched |= _days_of(session, sorted({c for _i, c in ev}))
        mark.last_event_id = int(ev[-1][0])
    mark.updated_at = dt.datetime.now(dt.UTC)
    days = sorted(d for d in touched if d < today)
    if days:
        for row in session.scalars(select(EvaluationFactDay).where(EvaluationFactDay.day.in_(days))):
            row.dirty = True
    session.flush()
    return len(days)


def days_to_build(session: Session, today: dt.date, limit: int) -> list[dt.date]:
    """Stale days first (newest first), then the missing days since the first report."""
    dirty = list(session.scalars(select(EvaluationFactDay.day).where(EvaluationFactDay.dirty.is_(True))
                                 .order_by(EvaluationFactDay.day.desc()).limit(limit)))
    first = session.scalar(select(func.min(Case.reported_at)))
    if first is None or len(dirty) >= limit:
        return dirty
    built = set(session.scalars(select(EvaluationFactDay.day)))
    out = list(dirty)
    d = today - dt.timedelta(days=1)
    stop = local_day(first)
    while d >= stop and len(out) < limit:
        if d not in built:
            out.append(d)
        d -= dt.timedelta(days=1)
    return out


def arm(session: Session, at: dt.datetime | None = None) -> None:
    """Arm (or move) the facts timer; its handler re-arms it every ``EVERY_S`` seconds."""
    from cityops.jobs.service import now, schedule_timer

    schedule_timer(session, KIND, "evaluation", "facts", at or now(), {"what": "evaluation daily facts"})


__all__ = ["arm", "KIND", "SEP", "street_of", "plan", "read", "add", "write_day", "mark_changes", "days_to_build"]
