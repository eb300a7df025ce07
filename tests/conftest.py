"""Test fixtures. The suite runs on SQLite by default and on PostgreSQL + PostGIS when
``CITYOPS_TEST_DATABASE_URL`` points at a server (``make test`` runs both halves).

* ``db_url``   — a database for this test session (per xdist worker), migrated and seeded with
                 the small demo district once;
* ``client``   — a FastAPI TestClient on that database;
* ``session``  — a SQLAlchemy session on it;
* ``fresh_url``— a brand-new empty migrated database for tests that need a clean slate.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("CITYOPS_TEST_DATABASE_URL", "")
# every TestClient request comes from the one address "testclient": the per-source sign-in lock
# (issue 17) would lock the whole suite out; tests/test_security_signin.py sets it low itself
os.environ.setdefault("CITYOPS_SOURCE_LOCKOUT_THRESHOLD", "1000000")
# tests compare the console's 30-day rate with the evaluation right after changing cases
os.environ.setdefault("CITYOPS_CONSOLE_ONTIME_TTL_S", "0")
BACKEND = "postgresql" if PG_URL else "sqlite"


def _new_database(tmp: Path, tag: str) -> str:
    if not PG_URL:
        return f"sqlite:///{tmp / f'{tag}-{uuid.uuid4().hex[:8]}.db'}"
    from cityops.db import create_postgis_database

    return create_postgis_database(PG_URL, f"t_{tag}_{uuid.uuid4().hex[:10]}")


def use_database(url: str) -> None:
    from cityops.db import reset_engine

    os.environ["CITYOPS_DATABASE_URL"] = url
    reset_engine()


def migrate(url: str) -> None:
    """Create the schema from the models (fast); ``test_migrations`` checks separately that the
    Alembic migrations produce exactly this schema."""
    from cityops.db import make_engine
    from cityops.models import load_all

    engine = make_engine(url)
    load_all().metadata.create_all(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cityops-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def db_url(tmp_root: Path) -> str:
    """Migrated, seeded (small demo district) database shared by the session."""
    url = _new_database(tmp_root, "main")
    migrate(url)
    use_database(url)
    from cityops.db import session_scope
    from cityops.demo.seed import seed_demo

    with session_scope() as s:
        seed_demo(s, small=True)
    return url


@pytest.fixture()
def fresh_url(tmp_root: Path) -> Iterator[str]:
    """A new, migrated, empty database; the shared one is selected again afterwards."""
    url = _new_database(tmp_root, "fresh")
    migrate(url)
    prev = os.environ.get("CITYOPS_DATABASE_URL")
    use_database(url)
    yield url
    if prev:
        use_database(prev)


@pytest.fixture()
def session(db_url: str) -> Iterator[object]:
    use_database(db_url)
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture()
def client(db_url: str) -> Iterator[object]:
    use_database(db_url)
    from fastapi.testclient import TestClient

    from cityops.app import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture()
def fresh_client(fresh_url: str) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from cityops.app import create_app

    with TestClient(create_app()) as c:
        yield c
