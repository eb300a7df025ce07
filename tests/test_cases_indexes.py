"""Case lists at scale rely on indexes (bench/scoped_list.py): on SQLite (deterministic planner, no
statistics) a street's list with a state / category / overdue filter is served by the street's
composite indexes and its total is counted from an index alone; a page past the total reads
nothing and still answers the total."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cityops.cases import queries, sla
from cityops.cases.models import Case
from cityops.security.principal import SYSTEM, Principal

STREET = "310117001"
OP = Principal(username="ci_street", area_code=STREET, permissions=frozenset({"case.read"}))


def _plan(session, stmt) -> str:
    sql = str(stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    return " | ".join(r[-1] for r in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all())


def _statements(session, f: queries.CaseFilter):
    at = sla.now()
    stmt = queries.apply_filters(session, queries.readable_statement(session, OP), f, at)
    count = select(func.count()).select_from(stmt.order_by(None).with_only_columns(Case.id).subquery())
    page = stmt.order_by(*queries.SORTS["-reported_at"]).limit(50)
    return count, page


@pytest.mark.parametrize(("name", "f", "count_index", "page_index"), [
    ("all", queries.CaseFilter(), None, "ix_case_file_street_reported"),
    ("state", queries.CaseFilter(state=["dispatched"]), "ix_case_file_street_state_reported",
     "ix_case_file_street_state_reported"),
    ("open", queries.CaseFilter(open=True), "ix_case_file_street_state_reported", None),
    ("overdue", queries.CaseFilter(overdue=True), "ix_case_file_street_due_cover", None),
    ("sla_yellow", queries.CaseFilter(sla="yellow"), "ix_case_file_street_due_cover", None),
    ("urgency", queries.CaseFilter(urgency=["urgent"]), "ix_case_file_street_due_cover", None),
])
def test_sqlite_street_lists_use_the_street_indexes(session, name, f, count_index, page_index):
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's planner has no statistics here: its choice is deterministic")
    count, page = _statements(session, f)
    c = _plan(session, count)
    assert "COVERING INDEX" in c and "SCAN case_file" not in c, c
    if count_index:
        assert count_index in c, c
    p = _plan(session, page)
    assert "SCAN case_file" not in p, p
    if page_index:
        assert page_index in p and "TEMP B-TREE" not in p, p
    session.rollback()


def test_category_counts_are_index_only(session):
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite only")
    cat = session.scalar(select(Case.category_code).where(Case.street_code == STREET).limit(1))
    if cat is None:
        pytest.skip("no demo case in the street")
    count, _page = _statements(session, queries.CaseFilter(category=[cat]))
    c = _plan(session, count)
    assert "COVERING INDEX ix_case_file_street_category_reported" in c, c
    # district-wide category + state
    at = sla.now()
    stmt = queries.apply_filters(session, queries.readable_statement(session, SYSTEM),
                                 queries.CaseFilter(category=[cat], state=["dispatched"]), at)
    c = _plan(session, select(func.count()).select_from(stmt.order_by(None).with_only_columns(Case.id).subquery()))
    assert "COVERING INDEX ix_case_file_category_state_reported" in c, c
    session.rollback()


def test_a_page_past_the_end_is_empty_with_the_total(session):
    first = queries.list_cases(session, OP, queries.CaseFilter(), page=1, page_size=5)
    assert first["total"] > 0 and first["items"]
    past = queries.list_cases(session, OP, queries.CaseFilter(), page=first["total"] // 5 + 2, page_size=5)
    assert past["total"] == first["total"] and past["items"] == []
    # without the total the page is read (and is empty too)
    none = queries.list_cases(session, OP, queries.CaseFilter(), page=first["total"] // 5 + 2, page_size=5,
                              with_total=False)
    assert none["total"] == -1 and none["items"] == []
    last = queries.list_cases(session, OP, queries.CaseFilter(), page=(first["total"] - 1) // 5 + 1, page_size=5)
    assert 1 <= len(last["items"]) <= 5
    empty = queries.list_cases(session, SYSTEM, queries.CaseFilter(area="310117999"), page=1, page_size=5)
    assert empty["total"] == 0 and empty["items"] == []
    session.rollback()
