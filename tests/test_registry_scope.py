"""Area scoping of base data: the index-friendly form (equality on the code column of the caller's
level, ``located_clause``) selects exactly the rows of the grid-code prefix range, for every kind,
level, filter and instant; and on SQLite the scoped page and count are served by the partial
``(level_code, entity_id, id) WHERE valid_to IS NULL`` indexes (no sort, no table scan)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, or_, select

from cityops.errors import NotFound
from cityops.registry import service as registry
from cityops.registry.models import MODELS, Person
from cityops.security.principal import SYSTEM, Principal


def _user(area: str | None) -> Principal:
    return Principal(username=f"scope_{area}", area_code=area,
                     permissions=frozenset({"person.read", "registry.read"}))


def _ids(session, stmt) -> list[int]:
    return [r.entity_id for r in session.scalars(stmt)]


def _by_prefix(session, model, prefix: str | None, at: dt.datetime | None = None) -> list[int]:
    """What the scope means: versions valid at ``at`` whose grid code starts with ``prefix``."""
    stmt = select(model.entity_id).where(registry.version_clause(model, at))
    if prefix is not None:
        stmt = stmt.where(model.grid_code.startswith(prefix))
    return sorted(session.scalars(stmt))


def _codes(session, model) -> tuple[str, str, str]:
    row = session.execute(select(model.grid_code, model.community_code, model.street_code)
                          .where(model.valid_to.is_(None)).order_by(model.id).limit(1)).first()
    if row is None:
        pytest.skip(f"no demo rows in {model.__tablename__}")
    return row.grid_code, row.community_code, row.street_code


def test_located_codes_are_prefixes_of_the_grid_code(session):
    """The equality scope is right only if every record's street and community codes are the
    prefixes of its grid code."""
    for model in MODELS.values():
        bad = session.scalar(select(func.count()).select_from(model).where(or_(
            model.street_code != func.substr(model.grid_code, 1, 9),
            model.community_code != func.substr(model.grid_code, 1, 12))))
        assert bad == 0, model.__tablename__


@pytest.mark.parametrize("kind", list(MODELS))
def test_scope_selects_the_prefix_range(session, kind):
    model = MODELS[kind]
    grid, community, street = _codes(session, model)
    areas = [street, community, grid, street[:7], community[:10], "310117", "3101", "310118", None]
    for area in areas:
        stmt = registry.query(session, _user(area), kind)
        got = sorted(_ids(session, stmt))
        want = [] if area is None else _by_prefix(session, model, area)
        assert got == want, (kind, area)
        assert registry.count_of(session, stmt) == len(want), (kind, area)
    assert sorted(_ids(session, registry.query(session, SYSTEM, kind))) == _by_prefix(session, model, None)
    # the area filter of the list (any prefix), inside the system's and a street operator's scope
    for area in (street, community, grid, street[:7], "310117", "310118"):
        want = _by_prefix(session, model, area)
        assert sorted(_ids(session, registry.query(session, SYSTEM, kind, area_code=area))) == want, (kind, area)
        inside = [i for i in want if i in set(_by_prefix(session, model, street))]
        got = sorted(_ids(session, registry.query(session, _user(street), kind, area_code=area)))
        assert got == inside, (kind, area)
    # versions valid at a past / present instant: prefix range on grid_code
    at = dt.datetime.now(dt.UTC)
    for area in (street, community, grid):
        got = sorted(_ids(session, registry.query(session, _user(area), kind, as_of=at)))
        assert got == _by_prefix(session, model, area, registry.as_of_instant(at)), (kind, area)


def test_out_of_scope_record_is_not_found_and_counts_follow_the_scope(session):
    grid, community, street = _codes(session, Person)
    inside = session.scalar(select(Person.entity_id).where(Person.valid_to.is_(None), Person.street_code == street)
                            .limit(1))
    outside = session.scalar(select(Person.entity_id).where(Person.valid_to.is_(None), Person.street_code != street)
                             .limit(1))
    op = _user(street)
    assert registry._get_row(session, op, "persons", inside, None).entity_id == inside
    with pytest.raises(NotFound):
        registry._get_row(session, op, "persons", outside, None)
    counts = registry.counts(session, op)
    for kind, model in MODELS.items():
        assert counts[kind] == len(_by_prefix(session, model, street)), kind
    assert registry.counts(session, _user(grid))["persons"] == len(_by_prefix(session, Person, grid))
    session.rollback()


def _plan(session, stmt) -> str:
    sql = str(stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    return " | ".join(r[-1] for r in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all())


@pytest.mark.parametrize("level", ["street", "community", "grid"])
def test_sqlite_serves_the_scoped_page_and_count_from_the_partial_index(session, level):
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's planner has no statistics here: its choice is deterministic")
    grid, community, street = _codes(session, Person)
    area = {"street": street, "community": community, "grid": grid}[level]
    stmt = registry.query(session, _user(area), "persons")
    page = _plan(session, stmt.order_by(Person.entity_id, Person.id).limit(50))
    assert f"ix_registry_person_current_{level}" in page and "TEMP B-TREE" not in page, page
    count = _plan(session, stmt.order_by(None).with_only_columns(func.count(), maintain_column_froms=True))
    # an index search on the scope's column (for a grid the full grid_code index will do as well:
    # a grid holds a few hundred records)
    assert count.startswith("SEARCH registry_person USING") and f"({level}_code=?)" in count, count
    if level != "grid":
        assert f"ix_registry_person_current_{level}" in count, count
    # the kind filter is answered from the same index (its columns are in it)
    filtered = registry.query(session, _user(area), "persons", kind_filter="registered")
    page = _plan(session, filtered.order_by(Person.entity_id, Person.id).limit(50))
    assert f"ix_registry_person_current_{level}" in page and "TEMP B-TREE" not in page, page
    session.rollback()
