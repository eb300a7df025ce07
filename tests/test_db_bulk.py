"""cityops.db.bulk_insert / insert_rows write exactly what SQLAlchemy's own INSERT writes (bind
processors: UTC datetimes, JSON, booleans; Python-side defaults of omitted columns), and
insert_rows hands out the ids the rows get."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from cityops.db import bulk_insert, insert_rows
from cityops.jobs.models import OutboxItem, Timer


def test_bulk_insert_writes_what_sqlalchemy_writes(session):
    t = Timer.__table__
    at = dt.datetime(2026, 5, 1, 8, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    base = {"kind": "bulk.test", "ref_type": "x", "ref_is_int": True, "due_at": at, "run_at": at,
            "payload": {"a": [1, "二"], "b": None}, "status": "pending"}
    # some columns left out on purpose: their Python defaults must apply (attempts, max_attempts, created_at)
    session.execute(insert(t), [{**base, "ref_id": "ref-sa"}])
    bulk_insert(session, t, [{**base, "ref_id": "ref-bulk"}])
    session.flush()
    rows = {r.ref_id: dict(r._mapping) for r in session.execute(select(t).where(t.c.kind == "bulk.test"))}
    session.rollback()
    a, b = rows["ref-sa"], rows["ref-bulk"]
    for k in a:
        if k in ("id", "ref_id", "created_at"):
            continue
        assert a[k] == b[k], (k, a[k], b[k])
    assert b["due_at"] == at and b["due_at"].tzinfo is not None
    assert b["attempts"] == 0 and b["created_at"] is not None


def test_insert_rows_returns_the_ids_the_rows_get(session):
    t = OutboxItem.__table__
    now = dt.datetime.now(dt.UTC)
    rows = [{"topic": "bulk.ids", "payload": {"n": n}, "dedupe_key": None, "status": "pending", "run_at": now,
             "attempts": 0, "max_attempts": 3, "created_at": now} for n in range(5)]
    ids = insert_rows(session, t, rows)
    got = dict(session.execute(select(t.c.id, t.c.payload).where(t.c.topic == "bulk.ids")).all())
    session.rollback()
    assert len(set(ids)) == 5 and ids == sorted(ids)
    assert {i: got[i]["n"] for i in ids} == {i: n for n, i in enumerate(ids)}
