"""The keyed audit chain and its anchors (issue 17): every tampering — UPDATE, DELETE, INSERT OR
REPLACE, TRUNCATE, a deleted tail, a re-hash of the tail without the key and with a stolen key — is
refused by the database guard and, done behind its back as a superuser could, detected by
``cityops audit verify`` naming where."""

from __future__ import annotations

import json

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from cityops.security import anchors, audit
from cityops.security.principal import Principal
from tests.conftest import BACKEND


def _cli() -> typer.Typer:
    from cityops.security.cli import register

    app = typer.Typer()
    register(app)
    return app


def _verify_cli() -> tuple[int, str]:
    res = CliRunner().invoke(_cli(), ["audit", "verify"])
    return res.exit_code, res.output + (res.stderr if res.stderr_bytes is not None else "")


def _write_rows(n: int) -> None:
    from cityops.db import session_scope

    p = Principal(username="t_tamper_writer", roles=frozenset({"dispatcher"}), account_id=7, source_ip="10.0.0.9")
    for i in range(n):
        with session_scope() as s:
            audit.record(s, p, "case.update", "case", i + 1, detail={"i": i, "城": "松江"})


def _anchor() -> anchors.Anchor:
    from cityops.db import session_scope

    with session_scope() as s:
        return anchors.write_anchor(s)


def _tamper(*sqls: str) -> None:
    """Change the table behind the application's back, as a database superuser could."""
    from cityops.db import get_engine

    with get_engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_replace"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        for sql in sqls:
            conn.execute(text(sql))


def _refused(sql: str) -> str:
    from cityops.db import session_scope

    with pytest.raises(Exception) as exc:  # noqa: B017 - the driver's error class differs per backend
        with session_scope() as s:
            s.execute(text(sql))
    return str(exc.value)


def _rows(lo: int, hi: int) -> list[dict]:
    from cityops.db import session_scope
    from cityops.security.models import AuditLog

    with session_scope() as s:
        out = []
        for seq in range(lo, hi + 1):
            r = s.get(AuditLog, seq)
            out.append({c: getattr(r, c) for c in audit._COLS})
        return out


def _rehash_sql(rows: list[dict], prev: str, hasher) -> list[str]:
    """UPDATE statements re-hashing ``rows`` (object_id of the first changed to 'forged')."""
    stmts = []
    for i, r in enumerate(rows):
        oid = "forged" if i == 0 else r["object_id"]
        h = hasher(prev, r["seq"], r["at"], r["username"], r["account_id"], r["roles"], r["action"],
                   r["object_type"], oid, r["result"], r["source_ip"], r["detail"])
        stmts.append(f"UPDATE audit_log SET object_id = '{oid}', prev_hash = '{prev}', hash = '{h}' "
                     f"WHERE seq = {r['seq']}")
        prev = h
    return stmts


def test_keyed_chain_verifies_and_key_is_outside_the_database(fresh_url):
    _write_rows(4)
    _anchor()
    code, out = _verify_cli()
    assert code == 0, out
    assert "4 rows" in out and "1 anchors" in out
    # the hash is an HMAC with the audit key: plain SHA-256 of the content does not reproduce it
    r = _rows(2, 2)[0]
    args = [r[c] for c in audit._COLS[:11]]
    assert audit.legacy_row_hash(r["prev_hash"], *args) != r["hash"]
    assert audit.row_hash(r["prev_hash"], *args) == r["hash"]


def test_update_is_refused_and_detected(fresh_url):
    _write_rows(6)
    assert "append-only" in _refused("UPDATE audit_log SET result = 'ok2' WHERE seq = 2")
    _tamper("UPDATE audit_log SET object_id = '999' WHERE seq = 4")
    code, out = _verify_cli()
    assert code == 1 and "row 4" in out and "changed" in out, out


def test_delete_is_refused_and_detected(fresh_url):
    _write_rows(6)
    assert "append-only" in _refused("DELETE FROM audit_log WHERE seq = 3")
    _tamper("DELETE FROM audit_log WHERE seq = 3")
    code, out = _verify_cli()
    assert code == 1 and "row 4" in out and "missing" in out, out


def test_insert_or_replace_is_refused_and_detected(fresh_url):
    _write_rows(5)
    r = _rows(3, 3)[0]
    if BACKEND == "sqlite":
        sql = ("INSERT OR REPLACE INTO audit_log (seq, at, username, account_id, roles, action, object_type, "
               "object_id, result, source_ip, detail, prev_hash, hash) SELECT seq, at, username, account_id, roles, "
               "action, object_type, 'replaced', result, source_ip, detail, prev_hash, hash FROM audit_log "
               "WHERE seq = 3")
    else:
        sql = ("INSERT INTO audit_log (seq, at, username, account_id, roles, action, object_type, object_id, result, "
               "source_ip, detail, prev_hash, hash) SELECT seq, at, username, account_id, roles, action, object_type, "
               "'replaced', result, source_ip, detail, prev_hash, hash FROM audit_log WHERE seq = 3 "
               "ON CONFLICT (seq) DO UPDATE SET object_id = EXCLUDED.object_id")
    assert "append-only" in _refused(sql)
    _tamper(sql)
    assert _rows(3, 3)[0]["object_id"] == "replaced" != r["object_id"]
    code, out = _verify_cli()
    assert code == 1 and "row 3" in out and "changed" in out, out


def test_truncate_is_refused_and_detected_by_the_anchor(fresh_url):
    _write_rows(5)
    a = _anchor()
    assert a.seq == 5
    sql = "TRUNCATE audit_log" if BACKEND == "postgresql" else "DELETE FROM audit_log"
    msg = _refused(sql)
    assert "append-only" in msg or "permission denied" in msg
    _tamper(sql)
    code, out = _verify_cli()
    assert code == 1 and "rows 1..5 are missing" in out and "truncated" in out, out


def test_deleted_tail_is_detected_by_the_anchor(fresh_url):
    _write_rows(6)
    _anchor()
    _tamper("DELETE FROM audit_log WHERE seq >= 5")
    code, out = _verify_cli()
    assert code == 1 and "rows 5..6 are missing" in out, out


def test_full_rehash_of_the_tail_without_the_key_is_named(fresh_url):
    _write_rows(6)
    rows = _rows(3, 6)
    # re-hash rows 3..6 as the old unkeyed chain did (and with a guessed key): the first is named
    _tamper(*_rehash_sql(rows, _rows(2, 2)[0]["hash"], audit.legacy_row_hash))
    code, out = _verify_cli()
    assert code == 1 and "row 3" in out and "re-hashed" in out, out


def test_full_rehash_with_a_guessed_key_is_named(fresh_url):
    _write_rows(6)
    rows = _rows(2, 6)

    def guessed(*args):
        return audit.row_hash(*args, key=b"not-the-audit-key-0123456789")

    _tamper(*_rehash_sql(rows, _rows(1, 1)[0]["hash"], guessed))
    code, out = _verify_cli()
    assert code == 1 and "row 2" in out, out


def test_full_rehash_with_a_stolen_key_is_caught_by_the_anchor(fresh_url):
    _write_rows(4)
    _anchor()  # anchors row 4
    _write_rows(3)
    _anchor()  # anchors row 7
    rows = _rows(5, 7)
    _tamper(*_rehash_sql(rows, _rows(4, 4)[0]["hash"], audit.row_hash))
    code, out = _verify_cli()
    assert code == 1 and "row 7 differs from the anchor" in out and "between rows 5 and 7" in out, out


def test_a_forged_anchor_line_is_named(fresh_url):
    from cityops.db import session_scope

    _write_rows(3)
    a = _anchor()
    with session_scope() as s:
        path = anchors.anchor_file(s)
    forged = {**a.as_dict(), "seq": 99}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(forged) + "\n")
    code, out = _verify_cli()
    assert code == 1 and "line 2" in out and "not signed" in out, out


def test_anchor_timer_writes_an_anchor_sends_it_out_and_rearms(fresh_url):
    from sqlalchemy import select

    from cityops.db import session_scope
    from cityops.jobs.models import OutboxItem as Outbox
    from cityops.jobs.models import Timer
    from cityops.security.jobs import anchor_chain_head

    _write_rows(2)
    with session_scope() as s:
        anchor_chain_head(s, {})
    with session_scope() as s:
        got, problems = anchors.read_anchors(s)
        assert not problems and [x.seq for x in got] == [2]
        ev = s.scalars(select(Outbox).where(Outbox.topic == anchors.TOPIC)).all()
        assert len(ev) == 1 and ev[0].payload["seq"] == 2 and ev[0].payload["mac"] == got[0].mac
        t = s.scalar(select(Timer).where(Timer.kind == anchors.TIMER))
        assert t is not None and t.status == "pending"
    code, out = _verify_cli()
    assert code == 0, out
