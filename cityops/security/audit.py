"""The keyed, hash-chained audit trail (安全审计).

``record`` appends one row in the caller's transaction: time (UTC), account, roles, action, object,
result, source address and a JSON detail. Each row stores the previous row's hash and its own
HMAC-SHA256 over (previous hash + canonical content) with a key kept OUTSIDE the database
(``CITYOPS_AUDIT_KEY`` or the key file ``CITYOPS_AUDIT_KEY_FILE``, default ``var/audit.key``), so
changing a row breaks its own hash, deleting one breaks the link of the row after the gap, and
someone who can write the table but does not hold the key cannot recompute the tail. Appends are
serialised: on PostgreSQL with a transaction-scoped advisory lock, on SQLite by the write lock
every transaction takes (``BEGIN IMMEDIATE``). ``verify`` walks the chain and names the first
broken row; ``cityops.security.anchors`` adds the comparison with the anchors of the chain head
(truncation, re-hashing with a stolen key).

Rows written before the chain was keyed (plain SHA-256, databases older than this version) are
accepted only before the first keyed row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cityops import clock
from cityops.config import ROOT, get_settings
from cityops.db import bulk_insert
from cityops.security.models import AuditLog
from cityops.security.principal import Principal

GENESIS = "0" * 64
_LOCK_KEY = 0x63697479_61756469  # "cityaudi"


def canonical_detail(detail: dict[str, Any] | None) -> str | None:
    if detail is None:
        return None
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


_key_lock = threading.Lock()
_keys: dict[tuple[str, str], bytes] = {}
_macs: dict[bytes, hmac.HMAC] = {}


def key_file_path() -> Path:
    configured = get_settings().audit_key_file
    return Path(configured) if configured else ROOT / "var" / "audit.key"


def audit_key() -> bytes:
    """The HMAC key of the chain: ``CITYOPS_AUDIT_KEY``, else the key file (32 random bytes, hex,
    created with mode 0600 when missing). Never stored in the database."""
    s = get_settings()
    cache_key = (s.audit_key, s.audit_key_file)
    key = _keys.get(cache_key)
    if key is not None:
        return key
    with _key_lock:
        if s.audit_key:
            key = s.audit_key.encode("utf-8")
        else:
            path = key_file_path()
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, secrets.token_hex(32).encode("ascii"))
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)
            key = path.read_bytes().strip()
        if len(key) < 16:
            raise RuntimeError("the audit key must have at least 16 bytes (CITYOPS_AUDIT_KEY / key file)")
        _keys[cache_key] = key
        return key


def _content(prev_hash: str, seq: int, at: dt.datetime, username: str, account_id: int | None, roles: str,
             action: str, object_type: str, object_id: str | None, result: str, source_ip: str | None,
             detail: str | None) -> bytes:
    content = json.dumps([seq, _iso(at), username, account_id, roles, action, object_type, object_id, result,
                          source_ip, detail], ensure_ascii=False, separators=(",", ":"))
    return (prev_hash + "|" + content).encode("utf-8")


def row_hash(prev_hash: str, seq: int, at: dt.datetime, username: str, account_id: int | None, roles: str,
             action: str, object_type: str, object_id: str | None, result: str, source_ip: str | None,
             detail: str | None, *, key: bytes | None = None) -> str:
    """HMAC-SHA256 (RFC 2104) of (previous hash | canonical content) with the audit key."""
    msg = _content(prev_hash, seq, at, username, account_id, roles, action, object_type, object_id, result,
                   source_ip, detail)
    k = key if key is not None else audit_key()
    base = _macs.get(k)
    if base is None:  # the keyed inner/outer state, computed once per key (copy() is cheap)
        base = _macs[k] = hmac.new(k, digestmod=hashlib.sha256)
    h = base.copy()
    h.update(msg)
    return h.hexdigest()


def legacy_row_hash(prev_hash: str, seq: int, at: dt.datetime, username: str, account_id: int | None, roles: str,
                    action: str, object_type: str, object_id: str | None, result: str, source_ip: str | None,
                    detail: str | None) -> str:
    """The unkeyed SHA-256 of rows written before the chain was keyed."""
    return hashlib.sha256(_content(prev_hash, seq, at, username, account_id, roles, action, object_type,
                                   object_id, result, source_ip, detail)).hexdigest()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


@dataclass
class Entry:
    """One audit row to append (see ``record``)."""

    principal: Principal | None
    action: str
    object_type: str
    object_id: object = None
    result: str = "ok"
    detail: dict[str, Any] | None = None
    username: str | None = None
    source_ip: str | None = None


def record(session: Session, principal: Principal | None, action: str, object_type: str,
           object_id: object = None, result: str = "ok", detail: dict[str, Any] | None = None,
           *, username: str | None = None, source_ip: str | None = None) -> None:
    """Append an audit row in the caller's transaction (it is kept only if the caller commits).

    ``username`` / ``source_ip`` override the principal's (failed logins have no principal)."""
    record_many(session, [Entry(principal, action, object_type, object_id, result, detail, username, source_ip)])


def record_many(session: Session, entries: list[Entry]) -> None:
    """Append several audit rows in one step of the chain: one lock, one read of the chain's end,
    one multi-row INSERT (the hashes are chained here, in order)."""
    if not entries:
        return
    _lock_chain(session)
    last = session.execute(select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)).first()
    seq = last[0] if last else 0
    prev = last[1] if last else GENESIS
    at = clock.now().astimezone(dt.UTC)
    key = audit_key()
    rows = []
    for e in entries:
        p = e.principal
        seq += 1
        user = (e.username or (p.username if p else "anonymous"))[:80]
        account_id = p.account_id if p else None
        roles = (p.role_label() if p else "")[:200]
        ip = e.source_ip or (p.source_ip if p else None)
        oid = None if e.object_id is None else str(e.object_id)[:80]
        det = canonical_detail(e.detail)
        h = row_hash(prev, seq, at, user, account_id, roles, e.action[:40], e.object_type[:40], oid,
                     e.result[:20], ip, det, key=key)
        rows.append(dict(seq=seq, at=at, username=user, account_id=account_id, roles=roles, action=e.action[:40],
                         object_type=e.object_type[:40], object_id=oid, result=e.result[:20], source_ip=ip,
                         detail=det, prev_hash=prev, hash=h))
        prev = h
    bulk_insert(session, AuditLog.__table__, rows)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    last_seq: int = 0
    last_hash: str = GENESIS
    legacy_rows: int = 0
    anchors: int = 0
    # hashes found at the sequence numbers asked for (``verify(expect=...)``)
    seen: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_seq": self.first_broken_seq,
                "reason": self.reason, "last_seq": self.last_seq, "legacy_rows": self.legacy_rows,
                "anchors": self.anchors}


_COLS = ["seq", "at", "username", "account_id", "roles", "action", "object_type", "object_id", "result",
         "source_ip", "detail", "prev_hash", "hash"]


def verify(session: Session, batch: int = 5000, *, watch: set[int] | frozenset[int] = frozenset()) -> VerifyResult:
    """Walk the whole chain in ``seq`` order; stop at the first broken row. ``watch``: sequence
    numbers whose hashes to report in ``seen`` (the anchors' rows)."""
    key = audit_key()
    prev_hash = GENESIS
    prev_seq = 0
    checked = 0
    legacy = 0
    keyed_seen = False
    seen: dict[int, str] = {}

    def broken(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, reason, prev_seq, prev_hash, legacy, seen=seen)

    while True:
        rows = session.execute(select(*[AuditLog.__table__.c[n] for n in _COLS]).where(AuditLog.seq > prev_seq)
                               .order_by(AuditLog.seq).limit(batch)).all()
        if not rows:
            break
        for r in rows:
            if r.seq != prev_seq + 1:
                return broken(r.seq, f"rows {prev_seq + 1}..{r.seq - 1} are missing before row {r.seq} (deleted)")
            if r.prev_hash != prev_hash:
                return broken(r.seq, f"row {r.seq} does not link to row {prev_seq} (previous row changed or deleted)")
            args = (r.prev_hash, r.seq, r.at, r.username, r.account_id, r.roles, r.action, r.object_type,
                    r.object_id, r.result, r.source_ip, r.detail)
            if row_hash(*args, key=key) == r.hash:
                keyed_seen = True
            elif not keyed_seen and legacy_row_hash(*args) == r.hash:
                legacy += 1
            else:
                return broken(r.seq, f"row {r.seq} content does not match its keyed hash (changed or re-hashed)")
            if r.seq in watch:
                seen[r.seq] = r.hash
            prev_hash, prev_seq = r.hash, r.seq
            checked += 1
    return VerifyResult(True, checked, last_seq=prev_seq, last_hash=prev_hash, legacy_rows=legacy, seen=seen)


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the chain's newest row ((0, GENESIS) when empty)."""
    last = session.execute(select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)).first()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditLog)) or 0)
