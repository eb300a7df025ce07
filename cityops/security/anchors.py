"""Anchors of the audit chain's head, kept where the database cannot change them.

The keyed chain (``cityops.security.audit``) shows any change made without the key, but not the
loss of its newest rows (a ``TRUNCATE``, a deleted tail) nor a re-hash by someone who stole the
key. An anchor is the chain's head — ``(seq, hash)`` with the time — signed with the audit key
(HMAC-SHA256) and written

* as one JSON line appended to the anchor file of the database (``CITYOPS_AUDIT_ANCHOR_DIR``;
  default: beside a SQLite file, else ``var/audit-anchors/``), fsync'ed; and
* to the outbox as the event ``audit.anchor`` (``cityops.jobs``), so that a configured webhook
  receiver — another system, another administrator — keeps its own copy.

``write_anchor`` runs every ``CITYOPS_AUDIT_ANCHOR_MINUTES`` (the timer ``audit.anchor_head`` of
``cityops.security.jobs``, armed by ``cityops security init`` and the demo seed) and on
``cityops audit anchor``. ``verify`` walks the chain and then compares it with every anchor: an
anchored row that is missing (truncation, deleted tail) or has another hash (re-written) is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cityops import clock
from cityops.config import ROOT, get_settings
from cityops.security import audit

TOPIC = "audit.anchor"  # outbox event (for webhook receivers)
TIMER = "audit.anchor_head"  # the periodic timer


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str
    db: str
    mac: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at, "db": self.db, "mac": self.mac}


def database_name(session: Session) -> str:
    """A stable name of the session's database (no credentials): ``sqlite:<file name>`` or
    ``postgresql:<host>:<port>/<database>``."""
    url = session.get_bind().engine.url
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{Path(url.database or 'memory').name}"
    return f"{url.get_backend_name()}:{url.host or 'local'}:{url.port or 5432}/{url.database}"


def anchor_file(session: Session) -> Path:
    """The anchor file of the session's database."""
    url = session.get_bind().engine.url
    configured = get_settings().audit_anchor_dir
    if configured:
        folder = Path(configured)
    elif url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        folder = Path(url.database).resolve().parent
    else:
        folder = ROOT / "var" / "audit-anchors"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", database_name(session))
    return folder / f"{stem}.audit-anchors.jsonl"


def _mac(db: str, seq: int, head_hash: str, at: str) -> str:
    msg = f"anchor|{db}|{seq}|{head_hash}|{at}".encode()
    return hmac.new(audit.audit_key(), msg, hashlib.sha256).hexdigest()


def write_anchor(session: Session, *, outbox: bool = True) -> Anchor:
    """Anchor the chain's current (committed) head: append it to the anchor file and, with
    ``outbox``, enqueue ``audit.anchor`` in the caller's transaction. Returns the anchor."""
    seq, head_hash = audit.head(session)
    db = database_name(session)
    at = clock.now().astimezone(dt.UTC).isoformat(timespec="seconds")
    anchor = Anchor(seq, head_hash, at, db, _mac(db, seq, head_hash, at))
    path = anchor_file(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(anchor.as_dict(), separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if outbox:
        from cityops.jobs.service import enqueue

        enqueue(session, TOPIC, anchor.as_dict())
    return anchor


@dataclass
class AnchorProblem:
    line: int
    reason: str


def read_anchors(session: Session) -> tuple[list[Anchor], list[AnchorProblem]]:
    """The anchors of this database in file order, and the lines that are not genuine anchors."""
    path = anchor_file(session)
    if not path.exists():
        return [], []
    db = database_name(session)
    out: list[Anchor] = []
    problems: list[AnchorProblem] = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
            a = Anchor(int(d["seq"]), str(d["hash"]), str(d["at"]), str(d["db"]), str(d["mac"]))
        except (ValueError, KeyError, TypeError):
            problems.append(AnchorProblem(n, f"anchor file line {n} is not an anchor"))
            continue
        if a.db != db:
            continue
        if not hmac.compare_digest(a.mac, _mac(a.db, a.seq, a.hash, a.at)):
            problems.append(AnchorProblem(n, f"anchor file line {n} (row {a.seq}) is not signed with the audit key"))
            continue
        out.append(a)
    return out, problems


def verify(session: Session) -> audit.VerifyResult:
    """The chain (``audit.verify``) and its anchors: the first break is named."""
    anchors, problems = read_anchors(session)
    res = audit.verify(session, watch={a.seq for a in anchors})
    res.anchors = len(anchors)
    if not res.ok:
        return res
    if problems:
        res.ok, res.reason = False, problems[0].reason
        return res
    prev_seq = 0
    for a in sorted(anchors, key=lambda a: a.seq):
        if a.seq == 0:
            continue
        if a.seq > res.last_seq:
            res.ok, res.first_broken_seq = False, res.last_seq + 1
            res.reason = (f"rows {res.last_seq + 1}..{a.seq} are missing: the anchor of {a.at} saw the chain at row "
                          f"{a.seq}, it now ends at row {res.last_seq} (truncated or tail deleted)")
            return res
        if res.seen.get(a.seq) != a.hash:
            res.ok, res.first_broken_seq = False, a.seq
            res.reason = (f"row {a.seq} differs from the anchor of {a.at}: the chain was re-written between rows "
                          f"{prev_seq + 1} and {a.seq} (re-hashed)")
            return res
        prev_seq = a.seq
    return res


def arm(session: Session, now: dt.datetime | None = None) -> dt.datetime:
    """Arm (or move) the periodic anchor timer; returns its due time."""
    from cityops.jobs.service import schedule_timer

    at = (now or clock.now()) + dt.timedelta(minutes=max(1, get_settings().audit_anchor_minutes))
    schedule_timer(session, TIMER, "audit_log", "head", at, {"what": "anchor the audit chain head"})
    return at
