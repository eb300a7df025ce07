from __future__ import annotations

from alembic import context

from cityops.db import get_engine, make_engine
from cityops.models import load_all

config = context.config
target_metadata = load_all().metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # PostGIS / tiger tables are not ours
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def run_migrations_online() -> None:
    url = config.attributes.get("url")
    engine = make_engine(url) if url else get_engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=include_object,
            compare_type=False,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
