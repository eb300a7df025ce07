"""Time partitions of the raw readings on PostgreSQL (native declarative partitioning).

``indicator_reading`` is ``PARTITION BY RANGE (ts)`` with one partition per UTC day
(``indicator_reading_pYYYYMMDD``). Partitions are created ahead (``ensure_partitions``: from the
oldest day the retention keeps up to ``ahead_days`` after today) and dropped whole by retention
(``drop_expired``) — no row-by-row DELETE. The same function runs in both ways the schema is
built: after ``create_all`` (a DDL event on the table) and in the Alembic migration, and then
daily (the retention timer) and when an ingest process starts. On SQLite the table is one
WITHOUT ROWID B-tree and retention deletes a key range (``ts`` leads the key).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import event, text

DAY_MS = 86_400_000
PREFIX = "indicator_reading_p"
_NAME = re.compile(r"^indicator_reading_p(\d{8})$")


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def existing(conn: Any) -> dict[dt.date, str]:
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'indicator_reading'")).scalars().all()
    out = {}
    for name in rows:
        m = _NAME.match(name)
        if m:
            out[dt.datetime.strptime(m.group(1), "%Y%m%d").date()] = name
    return out


def ensure_partitions(conn: Any, *, retention_days: int | None = None, ahead_days: int = 7,
                      today: dt.date | None = None) -> list[str]:
    """Create the missing daily partitions from the oldest retained day to ``ahead_days`` after
    today (PostgreSQL; nothing elsewhere). Returns the names created."""
    if conn.dialect.name != "postgresql":
        return []
    from cityops.indicators.settings import get_indicator_settings

    keep = get_indicator_settings().raw_retention_days if retention_days is None else retention_days
    today = today or dt.datetime.now(dt.UTC).date()
    have = existing(conn)
    made = []
    day = today - dt.timedelta(days=keep + 1)
    while day <= today + dt.timedelta(days=ahead_days):
        if day not in have:
            name = f"{PREFIX}{day:%Y%m%d}"
            conn.execute(text(f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF indicator_reading '
                              f"FOR VALUES FROM ({_ms(day)}) TO ({_ms(day + dt.timedelta(days=1))})"))
            made.append(name)
        day += dt.timedelta(days=1)
    return made


def drop_expired(conn: Any, cutoff_ms: int) -> list[str]:
    """Drop the partitions wholly older than ``cutoff_ms`` (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return []
    dropped = []
    for day, name in sorted(existing(conn).items()):
        if _ms(day + dt.timedelta(days=1)) <= cutoff_ms:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            dropped.append(name)
    return dropped


def install_ddl_event(table: Any) -> None:
    """After ``CREATE TABLE indicator_reading`` (``create_all``): create its partitions."""

    @event.listens_for(table, "after_create")
    def _after_create(target: Any, connection: Any, **kw: Any) -> None:
        ensure_partitions(connection)
