"""三权分立 that cannot be walked around (issue 17): no role or account combines two administrative
powers by any path (new role, role edit, grant; through four eyes too), no administrator acts on an
account of another power, changes to administrators need a second person, and keys carry no more
than their maker."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cityops import clock
from cityops.security.models import AuditLog
from tests.helpers import auth_headers, make_user


def _id(client, h, username):
    return client.get("/api/v1/security/accounts", headers=h, params={"q": username}).json()["items"][0]["id"]


def _detail(r):
    return r.json()["detail"][0]


def test_no_role_combines_two_powers_by_any_path(client, session):
    sec, spw = make_user(session, "t_pw_sec", ["sec_admin"], area_code="310117")
    sysa, ypw = make_user(session, "t_pw_sys", ["sys_admin"], area_code="310117")
    aud, apw = make_user(session, "t_pw_aud", ["audit_admin"], area_code="310117")
    hs, hy, ha = (auth_headers(client, u, p) for u, p in ((sec, spw), (sysa, ypw), (aud, apw)))
    # bypass 1 of the issue: a new role holding account management, role management and audit reading
    for perms in (["account.manage", "role.manage", "audit.read"], ["role.manage", "audit.read"],
                  ["account.manage", "audit.read"], ["apikey.manage", "export.approve"]):
        r = client.post("/api/v1/security/roles", headers=hs,
                        json={"code": "t_pw_combo", "label_zh": "组合", "label_en": "combo", "permissions": perms})
        assert r.status_code == 409 and _detail(r)["type"] == "separation_of_duties", (perms, r.text)
        assert _detail(r)["loc"] == ["body", "permissions"] and "三权分立" in _detail(r)["msg"]
    # editing a role into a combination: refused (the built-in ones and a custom one)
    r = client.post("/api/v1/security/roles", headers=hs,
                    json={"code": "t_pw_reader", "label_zh": "只读", "label_en": "reader", "permissions": ["case.read"]})
    assert r.status_code == 201, r.text
    r = client.put("/api/v1/security/roles/audit_admin/permissions", headers=hs,
                   json={"permissions": ["audit.read", "account.manage"]})
    assert r.status_code == 409, r.text
    r = client.put("/api/v1/security/roles/t_pw_reader/permissions", headers=hs,
                   json={"permissions": ["case.read", "audit.read", "role.manage"]})
    assert r.status_code == 409, r.text
    # a role edit that would give a holder (through another role) a second power: refused
    holder, _ = make_user(session, "t_pw_holder", ["sys_admin", "t_pw_reader"], area_code="310117")
    r = client.put("/api/v1/security/roles/t_pw_reader/permissions", headers=hs,
                   json={"permissions": ["case.read", "audit.read"]})
    assert r.status_code == 409 and "t_pw_holder" not in r.text and "account" in _detail(r)["msg"], r.text
    # the system administrator and the auditor cannot touch roles at all
    for h in (hy, ha):
        assert client.post("/api/v1/security/roles", headers=h, json={
            "code": "t_pw_x", "label_zh": "x", "label_en": "x", "permissions": []}).status_code == 403
        assert client.put("/api/v1/security/roles/t_pw_reader/permissions", headers=h,
                          json={"permissions": ["audit.read"]}).status_code == 403
        r = client.post("/api/v1/security/admin-changes", headers=h, json={
            "kind": "role.permissions", "target": "t_pw_reader", "payload": {"permissions": ["audit.read"]},
            "reason": "测试组合权限"})
        assert r.status_code == 403, r.text


def test_no_account_combines_two_powers_by_any_grant(client, session):
    sec, spw = make_user(session, "t_pw_sec2", ["sec_admin"], area_code="310117")
    sec_b, bpw = make_user(session, "t_pw_sec2b", ["sec_admin"], area_code="310117")
    sysa, ypw = make_user(session, "t_pw_sys2", ["sys_admin"], area_code="310117")
    target, _ = make_user(session, "t_pw_target2", ["sys_admin"], area_code="310117")
    hs, hb, hy = (auth_headers(client, u, p) for u, p in ((sec, spw), (sec_b, bpw), (sysa, ypw)))
    tid = _id(client, hy, target)
    # a custom role with the audit power, granted on top of the system power: refused
    r = client.post("/api/v1/security/admin-changes", headers=hs, json={
        "kind": "role.create", "target": "t_pw_auditlike", "reason": "审计专岗角色",
        "payload": {"label_zh": "审计员2", "label_en": "auditor 2", "permissions": ["audit.read"]}})
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/security/admin-changes/{r.json()['id']}/decision", headers=hb, json={"approve": True})
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    for roles in (["sys_admin", "audit_admin"], ["sys_admin", "t_pw_auditlike"], ["sec_admin", "t_pw_auditlike"]):
        r = client.put(f"/api/v1/security/accounts/{tid}/roles", headers=hs, json={"roles": roles})
        assert r.status_code == 409 and _detail(r)["type"] == "separation_of_duties", (roles, r.text)
        # nor through four eyes: refused when proposed
        r = client.post("/api/v1/security/admin-changes", headers=hs, json={
            "kind": "account.roles", "target": str(tid), "payload": {"roles": roles}, "reason": "测试兼任"})
        assert r.status_code == 409 and _detail(r)["loc"] == ["body", "payload", "roles"], r.text
    # ... and when approved (the role became a second power after the proposal)
    r = client.post("/api/v1/security/roles", headers=hs, json={
        "code": "t_pw_late", "label_zh": "后改", "label_en": "late", "permissions": ["case.read"]})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/security/admin-changes", headers=hs, json={
        "kind": "account.roles", "target": str(tid), "payload": {"roles": ["sys_admin", "t_pw_late"]},
        "reason": "测试后改"})
    assert r.status_code == 201, r.text
    late = r.json()["id"]
    r = client.post("/api/v1/security/admin-changes", headers=hs, json={
        "kind": "role.permissions", "target": "t_pw_late", "payload": {"permissions": ["audit.read"]},
        "reason": "测试后改"})
    assert client.post(f"/api/v1/security/admin-changes/{r.json()['id']}/decision", headers=hb,
                       json={"approve": True}).status_code == 200
    r = client.post(f"/api/v1/security/admin-changes/{late}/decision", headers=hb, json={"approve": True})
    assert r.status_code == 409 and _detail(r)["type"] == "separation_of_duties", r.text
    # the system administrator cannot grant roles (bypass by any route)
    assert client.put(f"/api/v1/security/accounts/{tid}/roles", headers=hy,
                      json={"roles": ["audit_admin"]}).status_code == 403


def test_administrator_cannot_act_on_another_powers_account(client, session):
    sysa, ypw = make_user(session, "t_pw_sys3", ["sys_admin"], area_code="310117")
    aud, _ = make_user(session, "t_pw_aud3", ["audit_admin"], area_code="310117")
    sec, _ = make_user(session, "t_pw_sec3", ["sec_admin"], area_code="310117")
    hy = auth_headers(client, sysa, ypw)
    for victim in (aud, sec):
        vid = _id(client, hy, victim)
        # bypass 2 of the issue: resetting the auditor's password to sign in as the auditor
        for method, path, body in (("POST", f"/api/v1/security/accounts/{vid}/reset-password", None),
                                   ("PATCH", f"/api/v1/security/accounts/{vid}", {"active": False}),
                                   ("PATCH", f"/api/v1/security/accounts/{vid}", {"area_code": "310117001"}),
                                   ("POST", f"/api/v1/security/accounts/{vid}/unlock", None)):
            r = client.request(method, path, headers=hy, json=body)
            assert r.status_code == 403 and _detail(r)["type"] == "separation_of_duties", (path, r.text)
        r = client.post("/api/v1/security/admin-changes", headers=hy, json={
            "kind": "account.reset_password", "target": str(vid), "payload": {}, "reason": "忘记密码"})
        assert r.status_code == 403, r.text
    rows = session.scalars(select(AuditLog.action).where(AuditLog.username == sysa)).all()
    session.rollback()
    assert "account.reset_password" not in rows


def test_changes_to_administrators_need_a_second_person(client, session):
    sec, spw = make_user(session, "t_pw_sec4", ["sec_admin"], area_code="310117")
    sec_b, bpw = make_user(session, "t_pw_sec4b", ["sec_admin"], area_code="310117")
    sys1, pw1 = make_user(session, "t_pw_sys4", ["sys_admin"], area_code="310117")
    sys2, pw2 = make_user(session, "t_pw_sys4b", ["sys_admin"], area_code="310117")
    sys3, pw3 = make_user(session, "t_pw_sys4c", ["sys_admin"], area_code="310117")
    new, _ = make_user(session, "t_pw_new4", ["dispatcher"], area_code="310117")
    hs, hb = auth_headers(client, sec, spw), auth_headers(client, sec_b, bpw)
    h1, h3 = auth_headers(client, sys1, pw1), auth_headers(client, sys3, pw3)
    nid, s2 = _id(client, h1, new), _id(client, h1, sys2)
    # granting an administrative role: not directly ...
    r = client.put(f"/api/v1/security/accounts/{nid}/roles", headers=hs, json={"roles": ["audit_admin"]})
    assert r.status_code == 409 and _detail(r)["type"] == "four_eyes_required", r.text
    # ... but proposed by one and approved by another security administrator
    r = client.post("/api/v1/security/admin-changes", headers=hs, json={
        "kind": "account.roles", "target": str(nid), "payload": {"roles": ["audit_admin"]}, "reason": "新任审计管理员"})
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    cid = r.json()["id"]
    r = client.post(f"/api/v1/security/admin-changes/{cid}/decision", headers=hs, json={"approve": True})
    assert r.status_code == 403, r.text  # not the proposer
    assert client.post(f"/api/v1/security/admin-changes/{cid}/decision", headers=h1,
                       json={"approve": True}).status_code == 404  # not another power
    r = client.post(f"/api/v1/security/admin-changes/{cid}/decision", headers=hb, json={"approve": True, "note": "核准"})
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert "audit_admin" in client.get(f"/api/v1/security/accounts/{nid}", headers=h1).json()["roles"]
    assert client.post(f"/api/v1/security/admin-changes/{cid}/decision", headers=hb,
                       json={"approve": True}).status_code == 409  # decided once
    # resetting a fellow system administrator: four eyes too; the approver sees the password once
    r = client.post(f"/api/v1/security/accounts/{s2}/reset-password", headers=h1)
    assert r.status_code == 409 and _detail(r)["type"] == "four_eyes_required", r.text
    r = client.post("/api/v1/security/admin-changes", headers=h1, json={
        "kind": "account.reset_password", "target": str(s2), "payload": {}, "reason": "同事忘记密码"})
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/security/admin-changes/{r.json()['id']}/decision", headers=h3, json={"approve": True})
    assert r.status_code == 200 and r.json()["temporary_password"], r.text
    listed = client.get("/api/v1/security/admin-changes", headers=h3).json()
    assert all(x["temporary_password"] is None for x in listed)
    actions = set(session.scalars(select(AuditLog.action).where(AuditLog.object_type == "admin_change")).all())
    session.rollback()
    assert {"admin_change.propose", "admin_change.approve"} <= actions
    # ordinary (non-administrator) changes stay one-person
    dispatcher, _ = make_user(session, "t_pw_disp4", ["dispatcher"], area_code="310117")
    r = client.put(f"/api/v1/security/accounts/{_id(client, h1, dispatcher)}/roles", headers=hs,
                   json={"roles": ["shift_lead"]})
    assert r.status_code == 200, r.text


def test_keys_carry_no_more_than_their_maker_and_expire(client, session):
    sysa, ypw = make_user(session, "t_pw_keys", ["sys_admin"], area_code="310117")
    hy = auth_headers(client, sysa, ypw)
    # key escalation of the issue: a key with person/case export rights the maker lacks
    r = client.post("/api/v1/security/api-keys", headers=hy,
                    json={"name": "t-pw-export", "permissions": ["registry.export", "case.export", "registry.write"]})
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "permissions", 0], ["body", "permissions", 1]]
    r = client.post("/api/v1/security/api-keys", headers=hy,
                    json={"name": "t-pw-admin", "permissions": ["account.manage"]})
    assert r.status_code == 422 and _detail(r)["type"] == "forbidden"
    r = client.post("/api/v1/security/api-keys", headers=hy,
                    json={"name": "t-pw-short", "permissions": ["registry.write"], "expires_days": 1})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 200
    clock.set_clock(lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    try:
        r = client.get("/api/v1/auth/me", headers={"X-API-Key": key})
        assert r.status_code == 401 and _detail(r)["type"] == "expired"
    finally:
        clock.set_clock(None)
