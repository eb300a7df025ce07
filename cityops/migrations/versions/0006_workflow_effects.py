"""case workflow: every effect is named in the transition table (rows written before this carry only
the old names; the code used to act on action names), and 自行处置 is a row of the table

Only databases whose table was copied into ``case_transition`` need this (the shipped table,
``data/workflow.json``, is used when it is empty).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ADD = {"verify": ["record_verification"], "inspect": ["record_inspection"], "evaluate": ["record_satisfaction"],
       "merge": ["release_all"], "void": ["release_all"], "not_register": ["release_all"],
       "dispatch": ["notify_assigned"], "reassign": ["stamp_dispatched", "notify_assigned", "urgent_dispatched"],
       "rework": ["stamp_dispatched", "notify_assigned"], "send_back": ["notify_sent_back"],
       "oversee": ["notify_oversight"], "chase": ["notify_oversight"], "request_extension": ["notify_extension"]}


def _list(v: object) -> list[str]:
    if isinstance(v, str):
        v = json.loads(v)
    return list(v or [])  # type: ignore[call-overload]


def upgrade() -> None:
    conn = op.get_bind()
    t = sa.table("case_transition", sa.column("id", sa.Integer), sa.column("from_state", sa.String),
                 sa.column("action", sa.String), sa.column("to_state", sa.String), sa.column("roles", sa.JSON),
                 sa.column("permission", sa.String), sa.column("required", sa.JSON), sa.column("guard", sa.String),
                 sa.column("department", sa.String), sa.column("start_steps", sa.JSON),
                 sa.column("finish_steps", sa.JSON), sa.column("cancel_steps", sa.JSON),
                 sa.column("effects", sa.JSON), sa.column("sort", sa.Integer))
    rows = list(conn.execute(sa.select(t.c.id, t.c.action, t.c.effects)))
    if not rows:
        return
    for rid, action, effects in rows:
        eff = _list(effects)
        for e in ADD.get(action, []):
            if e not in eff:
                eff.append(e)
        conn.execute(sa.update(t).where(t.c.id == rid).values(effects=eff))
    if not any(a == "self_handle" for _i, a, _e in rows):
        conn.execute(sa.insert(t).values(from_state="reported", action="self_handle", to_state="closed",
                                         roles=["supervisor"], permission="case.report", required=[],
                                         guard="at_intake", department=None, start_steps=[], finish_steps=["*"],
                                         cancel_steps=[], effects=[], sort=-1))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM case_transition WHERE action = 'self_handle'"))
