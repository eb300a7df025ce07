"""Security tables: accounts, roles and permissions as data, sessions, API keys, the
hash-chained audit log, export requests and the data safe room."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class Permission(Base):
    __tablename__ = "permission"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(100))
    label_en: Mapped[str] = mapped_column(String(100))


class Role(Base):
    __tablename__ = "role"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(100))
    label_en: Mapped[str] = mapped_column(String(100))
    # one of the three separated administrator roles (三权分立)
    admin_triad: Mapped[bool] = mapped_column(Boolean, default=False)
    builtin: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolePermission(Base):
    __tablename__ = "role_permission"

    role_code: Mapped[str] = mapped_column(ForeignKey("role.code", ondelete="CASCADE"), primary_key=True)
    permission_name: Mapped[str] = mapped_column(ForeignKey("permission.name", ondelete="CASCADE"), primary_key=True)


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # demo / service accounts may be exempt from periodic change; ordinary accounts are not
    password_expiry_exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # area scope: district (6) / street (9) / community (12) / grid (15) code
    area_code: Mapped[str | None] = mapped_column(String(15), index=True)
    # department scope (code of cityops.cases department; no FK to avoid a cycle between domains)
    department_code: Mapped[str | None] = mapped_column(String(40), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))


class AccountRole(Base):
    __tablename__ = "account_role"

    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    role_code: Mapped[str] = mapped_column(ForeignKey("role.code", ondelete="CASCADE"), primary_key=True)


class PasswordHistory(Base):
    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthSession(Base):
    """A signed-in session (bearer token or console cookie). Only the SHA-256 of the token is kept."""

    __tablename__ = "auth_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # bearer / cookie
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    source_ip: Mapped[str | None] = mapped_column(String(64))


class SigninSource(Base):
    """Failed sign-ins per source address (the per-source lock of new sign-ins)."""

    __tablename__ = "signin_source"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """An integration key (Open311 client, sensors, hotline import). Shown once; SHA-256 at rest."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    area_code: Mapped[str | None] = mapped_column(String(15))
    department_code: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # keys expire (None only on keys made before expiry existed)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditLog(Base):
    """Append-only, keyed hash chain. ``seq`` is assigned under a lock as last + 1;
    ``hash`` = HMAC-SHA256(audit key, prev_hash + canonical content), the key outside the database.
    Never updated or deleted by the app."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    account_id: Mapped[int | None] = mapped_column(Integer)
    roles: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))
    result: Mapped[str] = mapped_column(String(20))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)  # canonical JSON text (hashed as stored)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_audit_log_object", AuditLog.object_type, AuditLog.object_id)

# The table refuses UPDATE, DELETE and TRUNCATE (PostgreSQL: trigger function, row and statement
# triggers, and the privileges are revoked from PUBLIC and the connecting role) and UPDATE, DELETE
# and INSERT OR REPLACE (SQLite: triggers; REPLACE deletes without firing delete triggers, so a
# BEFORE INSERT trigger refuses a row whose seq exists). A database superuser can still bypass it
# (``SET session_replication_role = replica`` / ``DROP TRIGGER``), which is what the tamper tests
# do: ``cityops audit verify`` (keyed chain + anchors) then names where.
PG_AUDIT_GUARD = [
    """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only (' || TG_OP || ' refused)';
END;
$$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER",
]
SQLITE_AUDIT_GUARD = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_replace BEFORE INSERT ON audit_log "
    "WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq) "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only (INSERT OR REPLACE refused)'); END",
]


def install_audit_guard(conn: Any) -> None:
    """Create the append-only triggers (idempotent). Called when the table is created and by
    ``cityops security init`` / the demo seed (databases built by Alembic migrations)."""
    stmts = PG_AUDIT_GUARD if conn.dialect.name == "postgresql" else SQLITE_AUDIT_GUARD
    for sql in stmts:
        conn.exec_driver_sql(sql)


@event.listens_for(AuditLog.__table__, "after_create")
def _audit_guard_after_create(_table: Any, conn: Any, **_kw: Any) -> None:
    install_audit_guard(conn)


class AdminChange(Base):
    """A change to an administrator (三权分立 four-eyes): proposed by one holder of a power, applied
    when a second one approves it (``cityops.security.foureyes``)."""

    __tablename__ = "admin_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # account.roles / account.update / account.reset_password / role.*
    target: Mapped[str] = mapped_column(String(64))  # account id or role code
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    permission: Mapped[str] = mapped_column(String(64))  # what proposer and approver must hold
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)  # pending/applied/rejected
    requested_by: Mapped[str] = mapped_column(String(64))
    requester_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(String(500))
    # what applying it returned (e.g. the temporary password is NOT kept: only that one was issued)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ExportRequest(Base):
    """A request to export sensitive fields unmasked; a 安全管理员 (export.approve) decides."""

    __tablename__ = "export_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(64), index=True)
    requester_id: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str] = mapped_column(String(40))  # e.g. person, case
    purpose: Mapped[str] = mapped_column(String(500))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending/approved/rejected/used
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SafeRoomQuery(Base):
    """A named, parameterised aggregate query of the data safe room (数据安全屋)."""

    __tablename__ = "saferoom_query"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    sql: Mapped[str] = mapped_column(Text)
    # {"param": {"type": "string|integer|number|date", "required": bool, "pattern": "...", ...}}
    params_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # output columns that are counts of persons (small values get suppressed)
    count_columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    # other aggregate outputs (sums, averages) hidden together with a small group's counts
    measure_columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending/approved/rejected/retired (saferoom_lifecycle.json)
    proposed_by: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
