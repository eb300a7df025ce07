"""The lifecycle mechanism (cityops.lifecycle): tables validated at load, decisions with the
right status codes, effects in table order, one timeline row, audit row and outbox event each."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.lifecycle import Context, Machine
from cityops.lifecycle.machine import PREVIOUS, Guarded, requirement_field
from cityops.security.principal import Principal


@dataclass
class Thing:
    id: int
    state: str = "draft"
    paused_from: str | None = None
    approved: bool = False


def _machine(log: list[str] | None = None) -> Machine:
    log = log if log is not None else []

    def mark(name: str):
        def fx(ctx: Context) -> None:
            log.append(name)
            ctx.data[name] = True
        return fx

    def pause(ctx: Context) -> None:
        ctx.obj.paused_from = ctx.obj.state

    return Machine(
        name="thing",
        states={"draft": {"zh": "草稿"}, "pending": {"zh": "待审"}, "approved": {"zh": "已批准"},
                "paused": {"zh": "暂停"}},
        actions={"submit": {"zh": "提交"}, "approve": {"zh": "批准"}, "pause": {"zh": "暂停"},
                 "resume": {"zh": "恢复"}, "reject": {"zh": "驳回"}},
        default_permission="thing.act",
        guards={"not_approved": Guarded(lambda c: not c.obj.approved, "已批准 already approved")},
        requirements={"reason": requirement_field("reason", "需填写原因 needs a reason")},
        effects={"first": mark("first"), "second": mark("second"), "pause": pause},
        previous_attr="paused_from", allow_previous=True)


ROWS = [
    {"from": "draft", "action": "submit", "to": "pending", "roles": ["clerk"], "effects": ["second", "first"]},
    {"from": "pending", "action": "approve", "to": "approved", "roles": ["boss"], "guard": "not_approved"},
    {"from": "pending", "action": "reject", "to": "draft", "roles": ["boss"], "required": ["reason"]},
    {"from": "pending", "action": "pause", "to": "paused", "roles": ["boss"], "effects": ["pause"]},
    {"from": "paused", "action": "resume", "to": PREVIOUS, "roles": ["boss"]},
]


def _who(*roles: str, perms: tuple[str, ...] = ("thing.act",)) -> Principal:
    return Principal(username="u_" + "_".join(roles), roles=frozenset(roles), permissions=frozenset(perms))


@pytest.mark.parametrize("row, loc, kind", [
    ({"from": "draft", "action": "submit", "to": "pending", "guard": "no_such_guard"}, [0, "guard"], "unknown_guard"),
    ({"from": "draft", "action": "submit", "to": "pending", "effects": ["first", "boom"]}, [0, "effects", 1],
     "unknown_effect"),
    ({"from": "draft", "action": "submit", "to": "pending", "required": ["photos"]}, [0, "required", 0],
     "unknown_requirement"),
    ({"from": "nowhere", "action": "submit", "to": "pending"}, [0, "from"], "unknown_state"),
    ({"from": "draft", "action": "fly", "to": "pending"}, [0, "action"], "unknown_action"),
    ({"from": "draft", "action": "submit", "to": "pending", "colour": "red"}, [0, "colour"], "unknown_column"),
])
def test_a_table_naming_an_unknown_name_is_refused_naming_it(row, loc, kind):
    with pytest.raises(InvalidInput) as ei:
        _machine().table([row], loc=["body"])
    assert any(p.loc == ["body", *loc] and p.type == kind for p in ei.value.problems), ei.value.problems


def test_duplicate_rows_and_all_problems_listed():
    rows = [ROWS[0], ROWS[0], {"from": "x", "action": "y"}]
    with pytest.raises(InvalidInput) as ei:
        _machine().table(rows)
    types = sorted(p.type for p in ei.value.problems)
    assert types == ["duplicate", "unknown_action", "unknown_state"]


def test_decisions_and_their_status_codes(session):
    log: list[str] = []
    m = _machine(log)
    table = m.table(ROWS)
    thing = Thing(1)
    ctx = Context(session, _who("boss"), thing)
    with pytest.raises(Conflict) as ei:  # boss may not submit; and nothing else is allowed in draft for him
        table.check(ctx, "approve")
    body = ei.value.body()
    assert body["state"] == "draft" and body["allowed_actions"] == []
    assert "draft" in ei.value.problems[0].msg and "approve" in ei.value.problems[0].msg
    with pytest.raises(NotFound):
        table.check(ctx, "teleport")
    with pytest.raises(Forbidden):
        table.check(Context(session, _who("boss"), thing), "submit")
    with pytest.raises(Forbidden):  # the role without the permission
        table.check(Context(session, _who("clerk", perms=()), thing), "submit")
    clerk = Context(session, _who("clerk"), thing)
    t = table.check(clerk, "submit")
    assert table.apply(clerk, t) == ("draft", "pending")
    assert log == ["second", "first"] and thing.state == "pending"  # effects in the table's order
    boss = Context(session, _who("boss"), thing)
    assert [a.action for a in table.allowed(boss)] == ["approve", "reject", "pause"]
    with pytest.raises(InvalidInput) as ei2:
        table.check(boss, "reject")
    assert ei2.value.problems[0].loc == ["body", "reason"]
    thing.approved = True
    with pytest.raises(Conflict) as ei3:
        table.check(Context(session, _who("boss"), thing), "approve")
    assert ei3.value.problems[0].type == "guard" and "approve" not in ei3.value.body()["allowed_actions"]
    p = Context(session, _who("boss"), thing)
    table.apply(p, table.check(p, "pause"))
    assert thing.state == "paused" and thing.paused_from == "pending"
    r = Context(session, _who("boss"), thing)
    assert table.apply(r, table.check(r, "resume")) == ("paused", "pending")


def test_perform_writes_one_timeline_row_audit_row_and_event(session):
    from cityops.jobs.models import OutboxItem
    from cityops.lifecycle import service
    from cityops.lifecycle.models import TimelineEntry
    from cityops.security.models import AuditLog

    table = _machine().table(ROWS)
    thing = Thing(424242)
    before = [session.scalar(select(func.count()).select_from(m)) for m in (TimelineEntry, AuditLog, OutboxItem)]
    service.perform(session, _who("clerk"), table, thing, "submit", {"note": "请审"})
    after = [session.scalar(select(func.count()).select_from(m)) for m in (TimelineEntry, AuditLog, OutboxItem)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    (row,) = service.timeline(session, "thing", 424242)
    assert (row["action"], row["from_state"], row["to_state"], row["note"]) == ("submit", "draft", "pending", "请审")
    assert row["data"] == {"second": True, "first": True}
    topic = session.scalar(select(OutboxItem.topic).order_by(OutboxItem.id.desc()).limit(1))
    assert topic == "thing.transition"
    session.rollback()


def test_problem_is_the_shared_error_shape():
    assert Problem("x", ["body", "a"]).as_dict() == {"loc": ["body", "a"], "msg": "x", "type": "value_error"}
