"""The hash-chained audit trail (安全审计).

``record`` appends one row in the caller's transaction: time (UTC), account, roles, action, object,
result, source address and a JSON detail. Each row stores the previous row's hash and its own
SHA-256 over (previous hash + canonical content), so changing a row breaks its own hash and
deleting one breaks the link of the row after the gap. Appends are serialised: on PostgreSQL with
a transaction-scoped advisory lock, on SQLite by the write lock every transaction takes
(``BEGIN IMMEDIATE``). ``verify`` walks the chain and names the first broken row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cityops import clock
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


def row_hash(prev_hash: str, seq: int, at: dt.datetime, username: str, account_id: int | None, roles: str,
             action: str, object_type: str, object_id: str | None, result: str, source_ip: str | None,
             detail: str | None) -> str:
    content = json.dumps([seq, _iso(at), username, account_id, roles, action, object_type, object_id, result,
                          source_ip, detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + "|" + content).encode("utf-8")).hexdigest()


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
                     e.result[:20], ip, det)
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

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_seq": self.first_broken_seq,
                "reason": self.reason}


_COLS = ["seq", "at", "username", "account_id", "roles", "action", "object_type", "object_id", "result",
         "source_ip", "detail", "prev_hash", "hash"]


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain in ``seq`` order; stop at the first broken row."""
    prev_hash = GENESIS
    prev_seq = 0
    checked = 0
    while True:
        rows = session.execute(select(*[AuditLog.__table__.c[n] for n in _COLS]).where(AuditLog.seq > prev_seq)
                               .order_by(AuditLog.seq).limit(batch)).all()
        if not rows:
            break
        for r in rows:
            if r.seq != prev_seq + 1:
                return VerifyResult(False, checked, r.seq,
                                    f"rows {prev_seq + 1}..{r.seq - 1} are missing before row {r.seq}")
            if r.prev_hash != prev_hash:
                return VerifyResult(False, checked, r.seq,
                                    f"row {r.seq} does not link to row {prev_seq} (previous row changed or deleted)")
            expect = row_hash(r.prev_hash, r.seq, r.at, r.username, r.account_id, r.roles, r.action, r.object_type,
                              r.object_id, r.result, r.source_ip, r.detail)
            if expect != r.hash:
                return VerifyResult(False, checked, r.seq, f"row {r.seq} content does not match its hash (changed)")
            prev_hash, prev_seq = r.hash, r.seq
            checked += 1
    return VerifyResult(True, checked)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditLog)) or 0)
