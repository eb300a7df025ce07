"""Accounts and sign-in: OAuth2 token flow, console cookie + CSRF, lockout with timed unlock,
idle timeout, password policy and expiry, single session, API keys, rate limit, headers."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cityops import clock
from cityops.config import get_settings
from cityops.security.models import AuditLog
from tests.helpers import auth_headers, make_user


@pytest.fixture()
def shifted_clock():
    """Move the security clock: ``shift(minutes=16)``; restored afterwards."""
    offset = [dt.timedelta(0)]
    clock.set_clock(lambda: dt.datetime.now(dt.UTC) + offset[0])

    def shift(**kw):
        offset[0] += dt.timedelta(**kw)

    yield shift
    clock.set_clock(None)


def _audit(session, username, action):
    """Audit rows (as plain objects); ends the read so that SQLite's write lock is not held."""
    try:
        rows = session.scalars(select(AuditLog).where(AuditLog.username == username, AuditLog.action == action)
                               .order_by(AuditLog.seq)).all()
        for r in rows:
            session.expunge(r)
        return rows
    finally:
        session.rollback()


def test_token_flow_and_me(client, session):
    user, pw = make_user(session, "t_auth_disp", ["dispatcher"], area_code="310117001")
    r = client.post("/api/v1/auth/token", data={"username": user, "password": pw})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert me["username"] == user and me["roles"] == ["dispatcher"] and me["area_code"] == "310117001"
    assert "case.read" in me["permissions"] and "派遣员" in me["role_labels"]
    assert _audit(session, user, "login")[-1].source_ip == "testclient"


def test_anonymous_and_bad_token_are_401_with_challenge(client):
    r = client.get("/api/v1/auth/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["detail"][0]["loc"] == ["header", "Authorization"]
    r = client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_openapi_has_oauth2_password_scheme(client):
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    flows = [s for s in schemes.values() if s.get("type") == "oauth2"]
    assert flows and flows[0]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert any(s.get("type") == "apiKey" and s.get("name") == "X-API-Key" for s in schemes.values())


def test_five_wrong_passwords_lock_and_lock_lifts_after_configured_time(client, session, shifted_clock):
    user, pw = make_user(session, "t_auth_lock", ["supervisor"], area_code="310117001")
    threshold = get_settings().lockout_threshold
    for _i in range(threshold):
        r = client.post("/api/v1/auth/token", data={"username": user, "password": "Wrong-pass-123"})
        assert r.status_code == 401, r.text
    wrong = r.content  # the answer does not tell that the account is locked now (no enumeration)
    # the right password is refused while locked, with the same answer
    r = client.post("/api/v1/auth/token", data={"username": user, "password": pw})
    assert r.status_code == 401 and r.content == wrong, r.text
    assert len(_audit(session, user, "lockout")) == 1
    assert len(_audit(session, user, "login_failed")) == threshold + 1
    shifted_clock(minutes=get_settings().lockout_minutes - 1)
    assert client.post("/api/v1/auth/token", data={"username": user, "password": pw}).status_code == 401
    shifted_clock(minutes=2)
    r = client.post("/api/v1/auth/token", data={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    assert _audit(session, user, "unlock")


def test_successful_login_resets_failure_count(client, session):
    user, pw = make_user(session, "t_auth_reset", ["supervisor"], area_code="310117001")
    for _ in range(get_settings().lockout_threshold - 1):
        client.post("/api/v1/auth/token", data={"username": user, "password": "Wrong-pass-123"})
    assert client.post("/api/v1/auth/token", data={"username": user, "password": pw}).status_code == 200
    for _ in range(get_settings().lockout_threshold - 1):
        client.post("/api/v1/auth/token", data={"username": user, "password": "Wrong-pass-123"})
    assert client.post("/api/v1/auth/token", data={"username": user, "password": pw}).status_code == 200


def test_unknown_user_failed_login_is_audited(client, session):
    r = client.post("/api/v1/auth/token", data={"username": "t_nobody_here", "password": "x"})
    assert r.status_code == 401
    rows = _audit(session, "t_nobody_here", "login_failed")
    assert rows and rows[-1].result == "failed" and "unknown_user" in rows[-1].detail


def test_idle_session_times_out(client, session, shifted_clock, monkeypatch):
    monkeypatch.setattr(get_settings(), "token_minutes", 600)
    user, pw = make_user(session, "t_auth_idle", ["dispatcher"], area_code="310117")
    h = auth_headers(client, user, pw)
    assert client.get("/api/v1/auth/me", headers=h).status_code == 200
    shifted_clock(minutes=get_settings().session_idle_minutes - 5)
    assert client.get("/api/v1/auth/me", headers=h).status_code == 200  # activity refreshes last_seen
    shifted_clock(minutes=get_settings().session_idle_minutes - 5)
    assert client.get("/api/v1/auth/me", headers=h).status_code == 200
    shifted_clock(minutes=get_settings().session_idle_minutes + 1)
    r = client.get("/api/v1/auth/me", headers=h)
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "session_idle"
    assert _audit(session, user, "session_timeout")


def test_token_absolute_expiry(client, session, shifted_clock):
    user, pw = make_user(session, "t_auth_expiry", ["dispatcher"], area_code="310117")
    h = auth_headers(client, user, pw)
    for _ in range(get_settings().token_minutes // 20 + 1):
        shifted_clock(minutes=20)
        r = client.get("/api/v1/auth/me", headers=h)
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "session_expired"


def test_password_policy_and_change_and_expiry(client, session, shifted_clock):
    user, pw = make_user(session, "t_auth_pw", ["dispatcher"], area_code="310117")
    r = client.post("/api/v1/auth/password", json={"username": user, "old_password": pw, "new_password": "short"})
    assert r.status_code == 422
    msgs = [d["msg"] for d in r.json()["detail"]]
    assert any("10" in m for m in msgs) and all(d["loc"] == ["body", "new_password"] for d in r.json()["detail"])
    r = client.post("/api/v1/auth/password", json={"username": user, "old_password": pw, "new_password": pw})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "password_policy"
    new = "Nw$-harbour-42x"
    r = client.post("/api/v1/auth/password", json={"username": user, "old_password": pw, "new_password": new})
    assert r.status_code == 204, r.text
    assert client.post("/api/v1/auth/token", data={"username": user, "password": pw}).status_code == 401
    assert client.post("/api/v1/auth/token", data={"username": user, "password": new}).status_code == 200
    shifted_clock(days=get_settings().password_max_age_days + 1)
    r = client.post("/api/v1/auth/token", data={"username": user, "password": new})
    assert r.status_code == 401 and r.json()["detail"][0]["type"] == "password_expired"
    r = client.post("/api/v1/auth/password", json={"username": user, "old_password": new,
                                                   "new_password": "Fresh#-pine-2025"})
    assert r.status_code == 204
    assert client.post("/api/v1/auth/token", data={"username": user, "password": "Fresh#-pine-2025"}).status_code == 200


def test_single_active_session(client, session, monkeypatch):
    user, pw = make_user(session, "t_auth_single", ["dispatcher"], area_code="310117")
    monkeypatch.setattr(get_settings(), "single_session", True)
    h1 = auth_headers(client, user, pw)
    h2 = auth_headers(client, user, pw)
    assert client.get("/api/v1/auth/me", headers=h1).status_code == 401
    assert client.get("/api/v1/auth/me", headers=h2).status_code == 200


def test_logout_revokes_token(client, session):
    user, pw = make_user(session, "t_auth_logout", ["dispatcher"], area_code="310117")
    h = auth_headers(client, user, pw)
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert client.get("/api/v1/auth/me", headers=h).status_code == 401
    assert _audit(session, user, "logout")


def test_console_cookie_login_and_csrf(client, session):
    user, pw = make_user(session, "t_auth_cookie", ["sys_admin"], area_code="310117")
    r = client.post("/api/v1/auth/login", json={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    set_cookie = r.headers.get_list("set-cookie")
    sess = next(c for c in set_cookie if c.startswith("cityops_session="))
    assert "httponly" in sess.lower() and "samesite=strict" in sess.lower()
    csrf = r.json()["csrf_token"]
    assert client.cookies.get("cityops_csrf") == csrf
    # cookie authenticates reads
    assert client.get("/api/v1/auth/me").json()["username"] == user
    # unsafe request without the CSRF token: 403; with a wrong one: 403; with it: passes
    body = {"username": "t_auth_cookie_new", "area_code": "310117"}
    r = client.post("/api/v1/security/accounts", json=body)
    assert r.status_code == 403 and r.json()["detail"][0]["type"] == "csrf"
    r = client.post("/api/v1/security/accounts", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    r = client.post("/api/v1/security/accounts", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    # form posts may carry the token as a field
    r = client.post("/api/v1/auth/logout", data={"csrf_token": "bad"})
    assert r.status_code == 403
    r = client.post("/api/v1/auth/logout", data={"csrf_token": csrf})
    assert r.status_code == 204
    client.cookies.clear()
    assert client.get("/api/v1/auth/me").status_code == 401


def test_bearer_token_not_accepted_as_cookie(client, session):
    user, pw = make_user(session, "t_auth_kind", ["dispatcher"], area_code="310117")
    token = auth_headers(client, user, pw)["Authorization"].split()[1]
    client.cookies.set("cityops_session", token)
    try:
        assert client.get("/api/v1/auth/me").status_code == 401
    finally:
        client.cookies.clear()


def test_security_headers(client):
    r = client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"]
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_login_rate_limit(client, session, monkeypatch):
    user, _pw = make_user(session, "t_auth_rate", ["dispatcher"], area_code="310117")
    monkeypatch.setattr(get_settings(), "login_rate_per_minute", 4)
    codes = []
    for _ in range(12):
        r = client.post("/api/v1/auth/token", data={"username": user, "password": "Wrong-pass-123"})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and r.json()["detail"][0]["type"] == "rate_limited"
            break
    assert codes[-1] == 429 and 429 not in codes[:4], codes


def test_check_rate_helper():
    from cityops.errors import TooManyRequests
    from cityops.security.ratelimit import RateLimiter, check_rate, current

    token = current.set(RateLimiter())
    try:
        for _ in range(3):
            check_rate("intake:1.2.3.4", 3)
        with pytest.raises(TooManyRequests) as exc:
            check_rate("intake:1.2.3.4", 3)
        assert exc.value.status_code == 429 and exc.value.headers["Retry-After"]
        check_rate("intake:5.6.7.8", 3)  # other keys unaffected
    finally:
        current.reset(token)


def test_api_keys_scoped_shown_once_revocable(client, session):
    admin, pw = make_user(session, "t_auth_keyadmin", ["sys_admin"], area_code="310117")
    h = auth_headers(client, admin, pw)
    # a key carries only what its maker holds (the system administrator holds no signal.ingest)
    r = client.post("/api/v1/security/api-keys", headers=h,
                    json={"name": "t-sensor-0", "permissions": ["signal.ingest"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "permissions", 0], r.text
    assert r.json()["detail"][0]["type"] == "least_privilege"
    r = client.post("/api/v1/security/api-keys", headers=h,
                    json={"name": "t-sensor-1", "permissions": ["registry.write"], "expires_days": 30})
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"]
    key = r.json()["key"]
    listed = client.get("/api/v1/security/api-keys", headers=h).json()
    assert all("key" not in k for k in listed) and any(k["name"] == "t-sensor-1" for k in listed)
    from cityops.security.models import ApiKey

    row = session.scalar(select(ApiKey).where(ApiKey.name == "t-sensor-1"))
    key_id, key_hash = row.id, row.key_hash
    session.rollback()
    assert key_hash != key and key not in key_hash and len(key_hash) == 64
    me = client.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()
    assert me["kind"] == "api_key" and me["permissions"] == ["registry.write"]
    # an API key cannot do what it was not given
    assert client.get("/api/v1/security/accounts", headers={"X-API-Key": key}).status_code == 403
    # admin permissions cannot be put on a key
    r = client.post("/api/v1/security/api-keys", headers=h, json={"name": "t-bad", "permissions": ["audit.read"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "permissions", 0]
    assert client.delete(f"/api/v1/security/api-keys/{key_id}", headers=h).status_code == 200
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_demo_accounts_and_keys_work(client):
    from cityops.security.seed import demo_key, demo_password

    r = client.post("/api/v1/auth/token", data={"username": "yy_street", "password": demo_password("yy_street")})
    assert r.status_code == 200
    me = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + r.json()["access_token"]}).json()
    assert me["area_code"] == "310117001" and me["roles"] == ["street_operator"]
    me = client.get("/api/v1/auth/me", headers={"X-API-Key": demo_key("demo-open311")}).json()
    assert "open311.post" in me["permissions"]
