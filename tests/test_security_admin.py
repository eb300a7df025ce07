"""Account and role administration: 三权分立, scoped account lists, audited changes."""

from __future__ import annotations

from sqlalchemy import select

from cityops.security.models import AuditLog
from tests.helpers import auth_headers, make_user


def _actions(session, username):
    rows = session.scalars(select(AuditLog.action).where(AuditLog.username == username)).all()
    session.rollback()
    return set(rows)


def test_separation_of_three_admin_powers(client, session):
    sec, spw = make_user(session, "t_adm_sec", ["sec_admin"], area_code="310117")
    sysa, ypw = make_user(session, "t_adm_sys", ["sys_admin"], area_code="310117")
    target, _ = make_user(session, "t_adm_target", ["dispatcher"], area_code="310117")
    hs, hy = auth_headers(client, sec, spw), auth_headers(client, sysa, ypw)
    tid = client.get("/api/v1/security/accounts", headers=hy, params={"q": target}).json()["items"][0]["id"]
    r = client.put(f"/api/v1/security/accounts/{tid}/roles", headers=hs, json={"roles": ["sys_admin", "audit_admin"]})
    assert r.status_code == 409
    assert "三权分立" in r.json()["detail"][0]["msg"] and r.json()["detail"][0]["loc"] == ["body", "roles"]
    # the system administrator manages accounts but cannot grant roles
    assert client.put(f"/api/v1/security/accounts/{tid}/roles", headers=hy,
                      json={"roles": ["shift_lead"]}).status_code == 403
    r = client.put(f"/api/v1/security/accounts/{tid}/roles", headers=hs, json={"roles": ["shift_lead"]})
    assert r.status_code == 200 and r.json()["roles"] == ["shift_lead"]
    r = client.put(f"/api/v1/security/accounts/{tid}/roles", headers=hs, json={"roles": ["no_such_role"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "roles", 0]
    # nobody changes their own roles or a role they hold
    me = client.get("/api/v1/security/accounts", headers=hy, params={"q": sec}).json()["items"][0]["id"]
    assert client.put(f"/api/v1/security/accounts/{me}/roles", headers=hs,
                      json={"roles": ["sec_admin"]}).status_code == 403
    assert client.put("/api/v1/security/roles/sec_admin/permissions", headers=hs,
                      json={"permissions": ["role.manage", "audit.read"]}).status_code == 403
    # the audit log is for the audit administrator only
    assert client.get("/api/v1/audit", headers=hs).status_code == 403
    assert client.get("/api/v1/audit", headers=hy).status_code == 403
    assert {"account.roles"} <= _actions(session, sec)


def test_role_permission_change_applies_and_is_audited(client, session):
    sec, spw = make_user(session, "t_adm_sec2", ["sec_admin"], area_code="310117")
    hs = auth_headers(client, sec, spw)
    r = client.post("/api/v1/security/roles", headers=hs, json={"code": "t_viewer", "label_zh": "测试查看员",
                                                               "label_en": "test viewer", "permissions": []})
    assert r.status_code == 201, r.text
    user, pw = make_user(session, "t_adm_viewer", ["t_viewer"], area_code="310117")
    hv = auth_headers(client, user, pw)
    assert client.get("/api/v1/registry/counts", headers=hv).status_code == 403
    r = client.put("/api/v1/security/roles/t_viewer/permissions", headers=hs, json={"permissions": ["registry.read"]})
    assert r.status_code == 200 and r.json()["permissions"] == ["registry.read"]
    assert client.get("/api/v1/registry/counts", headers=hv).status_code == 200  # same token, new rights
    r = client.put("/api/v1/security/roles/t_viewer/permissions", headers=hs, json={"permissions": ["nope"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "permissions", 0]
    assert {"role.create", "role.permissions"} <= _actions(session, sec)


def test_account_management_is_scoped_and_audited(client, session):
    street_admin, pw = make_user(session, "t_adm_yy_sys", ["sys_admin"], area_code="310117001")
    h = auth_headers(client, street_admin, pw)
    listed = client.get("/api/v1/security/accounts", headers=h, params={"page_size": 500}).json()
    assert listed["total"] >= 1
    assert all(a["area_code"] and a["area_code"].startswith("310117001") for a in listed["items"])
    ss = client.get("/api/v1/security/accounts", headers=h, params={"q": "ss_street"}).json()
    assert ss["total"] == 0
    from cityops.security.models import Account

    ss_id = session.scalar(select(Account.id).where(Account.username == "ss_street"))
    session.rollback()
    assert client.get(f"/api/v1/security/accounts/{ss_id}", headers=h).status_code == 404
    # creating outside one's own area is refused, inside works; a generated password must be changed
    r = client.post("/api/v1/security/accounts", headers=h, json={"username": "t_adm_new_ss", "area_code": "310117103"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "area_code"]
    r = client.post("/api/v1/security/accounts", headers=h, json={"username": "t_adm_new_yy",
                                                                  "area_code": "310117001001"})
    assert r.status_code == 201, r.text
    tmp = r.json()["initial_password"]
    assert tmp and r.json()["roles"] == []
    r = client.post("/api/v1/auth/token", data={"username": "t_adm_new_yy", "password": tmp})
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "password_expired"
    r = client.post("/api/v1/security/accounts", headers=h, json={"username": "t_adm_weak", "area_code": "310117001",
                                                                  "password": "abc"})
    assert r.status_code == 422 and all(d["loc"] == ["body", "password"] for d in r.json()["detail"])
    assert "account.create" in _actions(session, street_admin)


def test_a_new_permission_reaches_the_builtin_roles_and_kept_changes_stay(fresh_url):
    """Upgrading a database whose roles were edited: a permission new to the database is granted to the
    built-in roles the catalogue gives it to; a grant the security administrator removed stays removed."""
    from sqlalchemy import delete

    from cityops.db import session_scope
    from cityops.security import catalog, service
    from cityops.security.models import Permission, RolePermission

    with session_scope() as s:
        service.ensure_catalog(s)
        # a 安全管理员 took case.export from the dispatcher; and pretend emergency.plan did not exist yet
        s.execute(delete(RolePermission).where(RolePermission.role_code == "dispatcher",
                                               RolePermission.permission_name == "case.export"))
        s.execute(delete(RolePermission).where(RolePermission.permission_name == "emergency.plan"))
        s.execute(delete(Permission).where(Permission.name == "emergency.plan"))
    with session_scope() as s:
        service.ensure_catalog(s)
        got = service.role_permissions(s)
    want = {code for code, (_zh, _en, perms, _t) in catalog.ROLES.items() if "emergency.plan" in perms}
    assert want and {code for code, perms in got.items() if "emergency.plan" in perms} == want
    assert "case.export" not in got["dispatcher"]

