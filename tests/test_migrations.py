"""`cityops db upgrade` (Alembic) must produce exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cityops.db import make_engine
from cityops.migrate import upgrade
from cityops.models import load_all


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False, "include_object": _ours})
            return compare_metadata(ctx, load_all().metadata)
    finally:
        engine.dispose()


def _ours(obj, name, type_, reflected, compare_to):  # PostGIS' own tables are not ours
    return not (type_ == "table" and reflected and compare_to is None)


def test_alembic_head_matches_models(tmp_root, request):
    from tests.conftest import _new_database

    url = _new_database(tmp_root, "mig")
    upgrade(url)
    diff = _diff(url)
    assert diff == [], f"migrations and models differ; regenerate: {diff[:5]}"


def test_alembic_installs_the_audit_guard(tmp_root):
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tests.conftest import _new_database

    url = _new_database(tmp_root, "mig2")
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_log (seq, at, username, roles, action, object_type, object_id, result, "
                              "source_ip, detail, prev_hash, hash) VALUES (1, CURRENT_TIMESTAMP, 'x', 'r', 'a', 'o', '1', "
                              "'ok', NULL, '{}', 'p', 'h')"))
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET result = 'changed'"))
    finally:
        engine.dispose()
