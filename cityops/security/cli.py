"""Security sub-commands: ``cityops security init``, ``cityops audit verify`` / ``anchor``,
``cityops demo-accounts``."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

security_app = typer.Typer(help="accounts and roles 账号与角色", no_args_is_help=True)
audit_app = typer.Typer(help="audit log 审计日志", no_args_is_help=True)


@security_app.command("init")
def init(reset: bool = typer.Option(False, "--reset", help="restore the built-in roles' default permissions"),
         admins: bool = typer.Option(False, "--admins", help="create sysadmin / secadmin / auditor with random "
                                                             "passwords (printed once) if missing")) -> None:
    """Load permissions and roles (角色权限) from the catalogue; optionally the three administrators."""
    from sqlalchemy import select

    from cityops.config import get_settings
    from cityops.db import session_scope
    from cityops.security import anchors, service
    from cityops.security.models import Account, install_audit_guard
    from cityops.security.principal import SYSTEM

    with session_scope() as session:
        added = service.ensure_catalog(session, reset=reset)
        install_audit_guard(session.connection())
        anchors.arm(session)
        created: list[dict[str, str]] = []
        if admins:
            for username, role in (("sysadmin", "sys_admin"), ("secadmin", "sec_admin"), ("auditor", "audit_admin")):
                if session.scalar(select(Account.id).where(Account.username == username)) is None:
                    _acc, pw = service.create_account(session, SYSTEM, username, None, roles=[role],
                                                      area_code=get_settings().district_code, must_change=True)
                    created.append({"username": username, "role": role, "initial_password": pw})
    typer.echo(json.dumps({"added": added, "admins": created}, ensure_ascii=False, indent=2))


@audit_app.command("verify")
def verify() -> None:
    """Walk the keyed hash chain and compare it with its anchors (校验审计链); exit 1 naming where."""
    from cityops.db import session_scope
    from cityops.security import anchors

    with session_scope() as session:
        res = anchors.verify(session)
        where = anchors.anchor_file(session)
    if res.ok:
        legacy = f", {res.legacy_rows} unkeyed rows from before the keyed chain" if res.legacy_rows else ""
        typer.echo(f"audit chain OK: {res.checked} rows, {res.anchors} anchors ({where}){legacy} 审计链完整")
        return
    typer.echo(f"audit chain BROKEN at row {res.first_broken_seq}: {res.reason} "
               f"(审计链在第 {res.first_broken_seq} 行断裂; {res.checked} rows verified before it)", err=True)
    raise typer.Exit(1)


@audit_app.command("anchor")
def anchor(outbox: bool = typer.Option(True, help="also send the anchor to the outbox (audit.anchor)")) -> None:
    """Anchor the chain head now (file beside the database + outbox) 锚定审计链."""
    from cityops.db import session_scope
    from cityops.security import anchors

    with session_scope() as session:
        a = anchors.write_anchor(session, outbox=outbox)
        where = anchors.anchor_file(session)
    typer.echo(f"anchored row {a.seq} {a.hash[:16]}… at {a.at} -> {where}")


def demo_accounts(seed: int = typer.Option(20210220, help="the demo seed used by `cityops seed demo`")) -> None:
    """Print the demo accounts and integration API keys as JSON (演示账号)."""
    from cityops.db import session_scope
    from cityops.security.seed import demo_logins

    try:
        with session_scope() as session:
            data: dict[str, Any] = demo_logins(session, seed)
    except Exception:  # noqa: BLE001 - no database yet: still print the seed's credentials
        data = demo_logins(None, seed)
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def print_demo_logins(console: Console, seed: int = 20210220) -> None:
    """A short table of demo logins (used by ``cityops demo``)."""
    from cityops.security.seed import demo_logins

    data = demo_logins(None, seed)
    table = Table(title="演示账号 demo accounts (passwords exist only in the demo seed)", show_lines=False)
    for col in ("username", "password", "role", "area", "dept"):
        table.add_column(col)
    for a in data["accounts"]:
        table.add_row(a["username"], a["password"], a["role_label"], a["area_code"] or "", a["department"] or "")
    console.print(table)
    for k in data["api_keys"]:
        console.print(f"API key [bold]{k['name']}[/bold] ({', '.join(k['permissions'])}): X-API-Key: {k['key']}")
    console.print("all of them: `cityops demo-accounts`")


def register(app: typer.Typer) -> None:
    app.add_typer(security_app, name="security")
    app.add_typer(audit_app, name="audit")
    app.command("demo-accounts")(demo_accounts)
