"""Hash-chained audit log: append-only, tamper detection by `cityops audit verify`, concurrent
writers, reading only by 审计管理员 (acceptance, issue 3)."""

from __future__ import annotations

import threading

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from cityops.security import audit
from cityops.security.principal import Principal


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

    p = Principal(username="t_audit_writer", roles=frozenset({"dispatcher"}), account_id=7, source_ip="10.0.0.9")
    for i in range(n):
        with session_scope() as s:
            audit.record(s, p, "case.update", "case", i + 1, detail={"i": i, "城": "松江"})


def _tamper(sql: str) -> None:
    """Change the table behind the application's back, as a database superuser could."""
    from cityops.db import get_engine

    engine = get_engine()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        conn.execute(text(sql))


def test_chain_verifies_and_is_append_only(fresh_url):
    from cityops.db import session_scope

    _write_rows(6)
    code, out = _verify_cli()
    assert code == 0, out
    assert "6 rows" in out
    with pytest.raises(Exception) as exc:  # noqa: B017 - the DB driver's error class differs per backend
        with session_scope() as s:
            s.execute(text("UPDATE audit_log SET result = 'ok2' WHERE seq = 2"))
    assert "append-only" in str(exc.value)
    with pytest.raises(Exception) as exc:  # noqa: B017
        with session_scope() as s:
            s.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    assert "append-only" in str(exc.value)


def test_changed_row_is_named(fresh_url):
    _write_rows(6)
    _tamper("UPDATE audit_log SET object_id = '999' WHERE seq = 4")
    code, out = _verify_cli()
    assert code == 1
    assert "row 4" in out and "changed" in out


def test_changed_row_with_recomputed_hash_is_caught_at_next_row(fresh_url):
    from cityops.db import session_scope

    _write_rows(5)
    with session_scope() as s:
        r = s.execute(text("SELECT seq, at, username, account_id, roles, action, object_type, object_id, result, "
                           "source_ip, detail, prev_hash FROM audit_log WHERE seq = 2")).one()
    from cityops.db import UTCDateTime  # noqa: F401 - `at` comes back as stored; re-read through the model
    from cityops.security.models import AuditLog

    with session_scope() as s:
        row = s.get(AuditLog, 2)
        forged = audit.row_hash(r.prev_hash, 2, row.at, r.username, r.account_id, r.roles, r.action, r.object_type,
                                "forged", r.result, r.source_ip, r.detail)
    _tamper(f"UPDATE audit_log SET object_id = 'forged', hash = '{forged}' WHERE seq = 2")
    code, out = _verify_cli()
    assert code == 1 and "row 3" in out


def test_deleted_row_is_named(fresh_url):
    _write_rows(6)
    _tamper("DELETE FROM audit_log WHERE seq = 3")
    code, out = _verify_cli()
    assert code == 1
    assert "row 4" in out and "missing" in out


def test_concurrent_writers_keep_one_chain(fresh_url):
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _write_rows(15)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    from cityops.db import session_scope

    with session_scope() as s:
        res = audit.verify(s)
    assert res.ok and res.checked == 90, res


def test_audit_api_only_for_audit_admin(client, session):
    from tests.helpers import auth_headers, make_user

    auditor, apw = make_user(session, "t_audit_reader", ["audit_admin"], area_code="310117")
    sysadm, spw = make_user(session, "t_audit_sys", ["sys_admin"], area_code="310117")
    secadm, xpw = make_user(session, "t_audit_sec", ["sec_admin"], area_code="310117")
    ha = auth_headers(client, auditor, apw)
    for user, pw in ((sysadm, spw), (secadm, xpw)):
        assert client.get("/api/v1/audit", headers=auth_headers(client, user, pw)).status_code == 403
    r = client.get("/api/v1/audit", headers=ha, params={"username": sysadm, "action": "login"})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] >= 1 and all(i["username"] == sysadm and i["action"] == "login" for i in body["items"])
    item = body["items"][0]
    assert {"at", "roles", "object_type", "object_id", "result", "source_ip", "prev_hash", "hash"} <= set(item)
    assert item["roles"] == "sys_admin" and item["source_ip"] == "testclient"
    r = client.get("/api/v1/audit", headers=ha, params={"since": "2020-01-01T00:00:00"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    assert client.get("/api/v1/audit/verify", headers=ha).json()["ok"] is True
    # nothing in the API changes or deletes audit rows
    from cityops.security.deps import api_routes

    for path, methods, _rule, _r in api_routes(client.app):
        if path.startswith("/api/v1/audit"):
            assert methods <= {"GET", "HEAD"}, (path, methods)
