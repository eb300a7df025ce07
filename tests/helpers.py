"""Helpers for tests that need signed-in users (security helper's public test API).

    from tests.helpers import make_user, auth_headers
    user, pw = make_user(session, "yy_op", ["street_operator"], area_code="310117001")
    h = auth_headers(client, user, pw)
    client.get("/api/v1/...", headers=h)
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select


def test_password(username: str) -> str:
    """The deterministic password make_user gives ``username``.

    It meets the complexity rules for every username: the hex digits are separated by "!", so no
    character repeats and no username (letters, digits, _ . - only) can be a substring."""
    digest = hashlib.sha256(f"cityops-test|{username}".encode()).hexdigest()[:8]
    return "Tt#" + "!".join(digest) + "!7q"


def make_user(session: Any, username: str, roles: list[str] | tuple[str, ...], area_code: str | None = None,
              department_code: str | None = None) -> tuple[str, str]:
    """Create (or reset) an account with these roles and scope; commits. Returns (username, password).

    Calling it again with the same username resets roles, scope, password and lockout."""
    from cityops.security import service
    from cityops.security.models import Account, AccountRole
    from cityops.security.principal import SYSTEM

    service.ensure_catalog(session)
    service.clear_auth_cache()  # roles/scope change below: no principal of this process may outlive it
    password = test_password(username)
    acc = session.scalar(select(Account).where(Account.username == username))
    if acc is None:
        service.create_account(session, SYSTEM, username, password, roles=list(roles), area_code=area_code,
                               department_code=department_code)
        session.commit()
        return username, password
    service._check_roles(session, list(roles), ["roles"])
    acc.area_code, acc.department_code, acc.active = area_code, department_code, True
    acc.failed_logins, acc.locked_until, acc.must_change_password = 0, None, False
    acc.password_changed_at = service.clock.now()
    if not service.verify_password(acc.password_hash, password):
        acc.password_hash = service.hash_password(password)
    session.execute(delete(AccountRole).where(AccountRole.account_id == acc.id))
    for r in sorted(set(roles)):
        session.add(AccountRole(account_id=acc.id, role_code=r))
    session.commit()
    return username, password


def auth_headers(client: Any, username: str, password: str) -> dict[str, str]:
    """Sign in through POST /api/v1/auth/token and return the Authorization header."""
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, f"sign-in of {username} failed: {r.status_code} {r.text}"
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def principal_of(session: Any, username: str) -> Any:
    """The Principal of an existing account (to call services directly)."""
    from cityops.security.service import principal_for_username

    return principal_for_username(session, username)
