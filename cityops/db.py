"""Database engine, sessions and the shared column types.

SQLite (WAL) is the embedded default; PostgreSQL + PostGIS is the path for scale.
Geometries are WGS-84 (EPSG:4326) shapely objects in Python; on PostgreSQL they are
stored as PostGIS ``geometry(Geometry, 4326)``, on SQLite as WKB blobs.
"""

from __future__ import annotations

import datetime as dt
import operator
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import DateTime, LargeBinary, MetaData, create_engine, event, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator, UserDefinedType

from cityops.config import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    """The real UTC time (column defaults); the platform's clock is ``cityops.clock.now``."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class _PostGISGeometry(UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geometry(Geometry,4326)"

    def bind_expression(self, bindvalue: Any) -> Any:
        return func.ST_GeomFromWKB(bindvalue, 4326)

    def column_expression(self, col: Any) -> Any:
        # typed as Geometry so that the decorator turns the WKB into a shapely object
        return func.ST_AsBinary(col, type_=Geometry())


class Geometry(TypeDecorator[Any]):
    """A shapely geometry in WGS-84. PostGIS geometry on PostgreSQL, WKB blob elsewhere."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostGISGeometry())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        if value is None:
            return None
        return bytes(shapely.to_wkb(value, include_srid=False))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return shapely.from_wkb(bytes(value))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(get_settings().sqlite_busy_timeout_ms)}")
    cur.close()


def make_engine(url: str | None = None, **kw: Any) -> Engine:
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # keep as many connections as the server has threads: an overflow connection is opened and
        # closed per checkout, and opening one (with its PRAGMAs) costs more than a small request
        if "poolclass" not in kw and path and path != ":memory:":
            kw.setdefault("pool_size", 40)
            kw.setdefault("max_overflow", 40)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy issue BEGIN itself: a writing transaction takes the lock up front
        # (BEGIN IMMEDIATE) so that concurrent writers queue instead of failing; a reading one
        # (execution option ``cityops_write=False``, see ``get_sessionmaker``) is deferred and never
        # takes the lock (WAL readers and the writer do not block each other).

        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _r: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            write = conn.get_execution_options().get("cityops_write", True) and conn.info.get("write", True)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    kw.setdefault("pool_pre_ping", True)
    return create_engine(url, **kw)


@lru_cache
def get_engine() -> Engine:
    return make_engine()


@lru_cache
def get_sessionmaker(write: bool = True) -> sessionmaker[Session]:
    """Sessions of the database. ``write=False``: reading transactions (on SQLite a deferred BEGIN
    that never takes the write lock; the same on PostgreSQL, where every transaction is MVCC)."""
    engine = get_engine()
    bind = engine if write else engine.execution_options(cityops_write=False)
    return sessionmaker(bind=bind, expire_on_commit=False)


def reset_engine() -> None:
    """Forget the cached engine (tests switch databases through the environment)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
    get_settings.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


_database_keys: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def database_key(session: Session) -> str:
    """A key naming the session's database (its URL, rendered once per engine) for per-database caches."""
    engine = session.get_bind().engine
    key = _database_keys.get(engine)
    if key is None:
        key = _database_keys[engine] = str(engine.url)
    return key


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many rows with one executemany and return their ids, in order.

    The ids are taken first (PostgreSQL: the table's sequence; SQLite: after the largest id, which
    is safe because every SQLite write transaction holds the database's write lock from its
    BEGIN IMMEDIATE), so no per-row RETURNING round trip is needed."""
    if not rows:
        return []
    n = len(rows)
    if session.get_bind().dialect.name == "postgresql":
        ids = [int(v) for v in session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n}).scalars()]
    else:
        top = int(session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one())
        ids = list(range(top + 1, top + n + 1))
    for r, i in zip(rows, ids, strict=True):
        r["id"] = i
    bulk_insert(session, table, rows)
    return ids


_bulk: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[str] | None, list[Any], list[tuple[str, Any]]]] = {}


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany of INSERTs of ``rows`` (dicts with the same keys), handed straight to the
    driver: the statement is compiled once per (dialect, table, columns); each value goes through
    its column's bind processor and missing columns get their Python-side defaults, as with
    ``session.execute(insert(table), rows)``, without SQLAlchemy's per-row bookkeeping (a third of
    a set-based intake's time, bench intake)."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    cols = tuple(rows[0])
    key = (dialect.name, table.name, cols)
    plan = _bulk.get(key)
    if plan is None:
        defaults: list[tuple[str, Any]] = []
        for c in table.c:
            if c.key in cols or c.default is None:
                continue
            d = c.default
            if d.is_scalar:
                defaults.append((c.key, lambda v=d.arg: v))
            elif d.is_callable:
                defaults.append((c.key, lambda f=d.arg: f(None)))
            else:  # a SQL expression or sequence default: let SQLAlchemy do it
                session.execute(insert(table), rows)
                return
        names = list(cols) + [k for k, _f in defaults]
        compiled = insert(table).compile(dialect=dialect, column_keys=names)
        order = list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        procs = [table.c[n].type._cached_bind_processor(dialect) for n in (order or names)]
        plan = (str(compiled), order, procs, defaults)
        _bulk[key] = plan
    sql, order, procs, defaults = plan
    if defaults:
        rows = [{**r, **{k: f() for k, f in defaults}} for r in rows]
    params: list[Any]
    if order is not None:  # positional (SQLite): values by C-level itemgetter, then the processed ones
        get = operator.itemgetter(*order)
        todo = [(i, p) for i, p in enumerate(procs) if p is not None]
        if len(order) == 1:
            params = [(get(r),) for r in rows]
        else:
            params = [get(r) for r in rows]
        if todo:
            lists = [list(v) for v in params]
            for v in lists:
                for i, p in todo:
                    v[i] = p(v[i])
            params = [tuple(v) for v in lists]
    else:  # named (psycopg)
        names = list(rows[0])
        todo_n = [(n, p) for n, p in zip(names, procs, strict=True) if p is not None]
        params = []
        for r in rows:
            d = dict(r)
            for n, p in todo_n:
                d[n] = p(d[n])
            params.append(d)
    conn.exec_driver_sql(sql, params)


def create_postgis_database(server_url: str, name: str, *, replace: bool = False) -> str:
    """Create database ``name`` with PostGIS on the server of ``server_url``; return its URL
    (used by the tests and benchmarks for throwaway databases). ``replace``: drop it first."""
    from sqlalchemy.engine import make_url

    if replace:
        drop_database(server_url, name)
    base = make_url(server_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()
    return url


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (if it exists; its sessions are ended) on the server of ``server_url``."""
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
