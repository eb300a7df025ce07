"""Accounts, sign-in, sessions, API keys, roles as data, and the principal of each request.

Every function that a user triggers takes a ``Session`` and the acting ``Principal``; functions
that change something audit it in the same transaction; the request's unit of work commits
(``cityops.uow``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cityops import clock
from cityops.config import get_settings
from cityops.db import database_key
from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem, Unauthorized
from cityops.security import audit, catalog, powers, scope, throttle
from cityops.security.models import (
    Account,
    AccountRole,
    ApiKey,
    AuthSession,
    PasswordHistory,
    Permission,
    Role,
    RolePermission,
)
from cityops.security.principal import SYSTEM, Principal, code_prefix_clause
from cityops.security.ratelimit import check_rate
from cityops.security.scope import Located, ScopedKind

SESSION_COOKIE = "cityops_session"
CSRF_COOKIE = "cityops_csrf"
CSRF_HEADER = "X-CSRF-Token"
API_KEY_HEADER = "X-API-Key"
TOUCH_EVERY = dt.timedelta(seconds=60)  # last_seen is written at most once a minute per session
PASSWORD_HISTORY = 5
MAX_KEY_DAYS = 730  # an API key lives at most two years
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("cityops-dummy-password-for-timing")


# ----------------------------------------------------------------------------------------------
# errors


def unauthorized(msg: str, loc: list[str | int] | None = None, type_: str = "unauthorized", *,
                 persist: bool = False) -> Unauthorized:
    exc = Unauthorized([Problem(msg, loc or ["credentials"], type_)], persist=persist)
    exc.headers = {"WWW-Authenticate": "Bearer"}  # type: ignore[attr-defined]
    return exc


# ----------------------------------------------------------------------------------------------
# passwords


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problems(password: str, username: str | None = None, loc: str = "password") -> list[Problem]:
    """Complexity rules (等保 身份鉴别): length >= 10, at least 3 of 4 character classes,
    not containing the username, no long runs of one character."""
    problems: list[Problem] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(Problem(f"密码至少 {MIN_PASSWORD_LENGTH} 位 password must have at least "
                                f"{MIN_PASSWORD_LENGTH} characters", [loc], "password_policy"))
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    if classes < 3:
        problems.append(Problem("密码须包含大写、小写、数字、符号中的至少三类 password needs 3 of: upper case, "
                                "lower case, digits, symbols", [loc], "password_policy"))
    if username and len(username) >= 3 and username.lower() in password.lower():
        problems.append(Problem("密码不得包含用户名 password must not contain the username", [loc], "password_policy"))
    if re.search(r"(.)\1{3,}", password):
        problems.append(Problem("密码不得含 4 个以上连续相同字符 password must not repeat a character 4 times",
                                [loc], "password_policy"))
    return problems


def _check_history(session: Session, account: Account, password: str) -> None:
    hashes = [account.password_hash] + list(session.scalars(
        select(PasswordHistory.password_hash).where(PasswordHistory.account_id == account.id)
        .order_by(PasswordHistory.id.desc()).limit(PASSWORD_HISTORY)))
    if any(verify_password(h, password) for h in hashes):
        raise InvalidInput([Problem(f"新密码不得与最近 {PASSWORD_HISTORY} 次密码相同 the new password must differ "
                                    f"from the last {PASSWORD_HISTORY}", ["new_password"], "password_policy")])


def _set_password(session: Session, account: Account, password: str, *, must_change: bool = False) -> None:
    if account.id is not None and account.password_hash:
        session.add(PasswordHistory(account_id=account.id, password_hash=account.password_hash))
    account.password_hash = hash_password(password)
    account.password_changed_at = clock.now()
    account.must_change_password = must_change


def password_expired(account: Account) -> bool:
    if account.must_change_password:
        return True
    if account.password_expiry_exempt:
        return False
    max_age = get_settings().password_max_age_days
    return max_age > 0 and account.password_changed_at + dt.timedelta(days=max_age) < clock.now()


def generate_password(nbytes: int = 12, username: str | None = None) -> str:
    """A random password that meets the complexity rules (for ``username`` when given)."""
    while True:
        pw = secrets.token_urlsafe(nbytes) + "-7a"
        if not password_problems(pw, username):
            return pw


# ----------------------------------------------------------------------------------------------
# four eyes (changes to the administrators need a second person: cityops.security.foureyes)


def _four_eyes(principal: Principal, approved: bool, kind: str, loc: list[str | int]) -> None:
    if approved or principal.kind == "system":
        return
    raise Conflict([Problem("四眼原则：对管理员及管理权限的变更须由另一名同权管理员批准，请提交 POST "
                            "/api/v1/security/admin-changes (four eyes: a change to an administrator needs a "
                            f"second administrator of the same power; propose it as kind {kind!r})", loc,
                            "four_eyes_required")])


# ----------------------------------------------------------------------------------------------
# roles and permissions as data


def ensure_catalog(session: Session, *, reset: bool = False) -> dict[str, int]:
    """Load the permission/role catalogue (``catalog.py``) into the tables. Existing roles keep the
    permissions a 安全管理员 gave them unless ``reset``; a permission new to the database (a feature
    added since) is granted to the built-in roles the catalogue gives it to; labels are refreshed.
    Idempotent."""
    added = {"permissions": 0, "roles": 0, "grants": 0}
    have_perm = {p.name: p for p in session.scalars(select(Permission))}
    fresh: set[str] = set()  # permissions this run brings (a new feature): built-in roles get them
    for name, (zh, en) in catalog.PERMISSIONS.items():
        if name in have_perm:
            have_perm[name].label_zh, have_perm[name].label_en = zh, en
        else:
            session.add(Permission(name=name, label_zh=zh, label_en=en))
            added["permissions"] += 1
            if have_perm:
                fresh.add(name)
    session.flush()
    have_role = {r.code: r for r in session.scalars(select(Role))}
    for code, (zh, en, perms, triad) in catalog.ROLES.items():
        role = have_role.get(code)
        new = role is None
        if role is None:
            role = Role(code=code, label_zh=zh, label_en=en, admin_triad=triad, builtin=True)
            session.add(role)
            added["roles"] += 1
        else:
            role.label_zh, role.label_en, role.admin_triad = zh, en, triad
        session.flush()
        if new or reset:
            if reset:
                session.execute(delete(RolePermission).where(RolePermission.role_code == code))
            for p in sorted(perms):
                session.add(RolePermission(role_code=code, permission_name=p))
                added["grants"] += 1
        elif role.builtin:  # grants a 安全管理员 changed stay; a feature's new permissions reach the role
            for p in sorted(perms & fresh):
                session.add(RolePermission(role_code=code, permission_name=p))
                added["grants"] += 1
    session.flush()
    return added


def triad_roles(session: Session) -> set[str]:
    return set(session.scalars(select(Role.code).where(Role.admin_triad.is_(True))))


def role_permissions(session: Session) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {code: set() for code in session.scalars(select(Role.code))}
    for role, perm in session.execute(select(RolePermission.role_code, RolePermission.permission_name)):
        out.setdefault(role, set()).add(perm)
    return out


def list_roles(session: Session) -> list[dict[str, Any]]:
    perms = role_permissions(session)
    return [{"code": r.code, "label_zh": r.label_zh, "label_en": r.label_en, "admin_triad": r.admin_triad,
             "builtin": r.builtin, "permissions": sorted(perms.get(r.code, set()))}
            for r in session.scalars(select(Role).order_by(Role.code))]


def list_permissions(session: Session) -> list[dict[str, Any]]:
    return [{"name": p.name, "label_zh": p.label_zh, "label_en": p.label_en}
            for p in session.scalars(select(Permission).order_by(Permission.name))]


def set_role_permissions(session: Session, principal: Principal, code: str, permissions: list[str], *,
                         approved: bool = False) -> dict[str, Any]:
    role = session.get(Role, code)
    if role is None:
        raise NotFound([Problem(f"角色不存在 no role {code!r}", ["path", "code"], "not_found")])
    known = set(session.scalars(select(Permission.name)))
    unknown = [p for p in permissions if p not in known]
    if unknown:
        raise InvalidInput([Problem(f"未知权限 unknown permission {p!r}", ["body", "permissions", i], "unknown")
                            for i, p in enumerate(permissions) if p in unknown])
    if code in principal.roles:
        raise Forbidden([Problem("不得修改本人所持角色的权限 you may not change a role you hold",
                                 ["path", "code"], "separation_of_duties")])
    before = role_permissions(session).get(code, set())
    after = set(permissions)
    powers.check_one_power(after, ["body", "permissions"], "角色")
    powers.check_role_holders(session, code, after, ["body", "permissions"])
    if powers.powers_of(before | after) and before != after:
        _four_eyes(principal, approved, "role.permissions", ["path", "code"])
    session.execute(delete(RolePermission).where(RolePermission.role_code == code))
    clear_auth_cache()
    for p in sorted(after):
        session.add(RolePermission(role_code=code, permission_name=p))
    role.updated_at = clock.now()
    audit.record(session, principal, "role.permissions", "role", code,
                 detail={"added": sorted(after - before), "removed": sorted(before - after)})
    return next(r for r in list_roles(session) if r["code"] == code)


def create_role(session: Session, principal: Principal, code: str, label_zh: str, label_en: str,
                permissions: list[str], *, approved: bool = False) -> dict[str, Any]:
    if session.get(Role, code) is not None:
        raise Conflict([Problem(f"角色已存在 role {code!r} exists", ["body", "code"], "exists")])
    powers.check_one_power(permissions, ["body", "permissions"], "角色")
    if powers.powers_of(permissions):
        _four_eyes(principal, approved, "role.create", ["body", "permissions"])
    session.add(Role(code=code, label_zh=label_zh, label_en=label_en, admin_triad=False, builtin=False))
    session.flush()
    audit.record(session, principal, "role.create", "role", code, detail={"label_zh": label_zh})
    return set_role_permissions(session, principal, code, permissions, approved=True)


# ----------------------------------------------------------------------------------------------
# accounts


# Accounts and API keys are scoped by the area they belong to (area only).
ACCOUNT_SCOPE = ScopedKind("account", Located(code=Account.area_code))
API_KEY_SCOPE = ScopedKind("api_key", Located(code=ApiKey.area_code))


def _account_scope(principal: Principal) -> ColumnElement[bool]:
    return scope.clause(principal, ACCOUNT_SCOPE)


def _check_area(session: Session, principal: Principal, area_code: str | None, loc: list[str | int]) -> None:
    if area_code is None:
        if not principal.is_district_wide:
            raise InvalidInput([Problem("须指定本辖区内的区域 area_code required (within your area)", loc, "scope")])
        return
    if not re.fullmatch(r"\d{6}|\d{9}|\d{12}|\d{15}", area_code):
        raise InvalidInput([Problem("区域代码应为 6/9/12/15 位数字 area code must have 6, 9, 12 or 15 digits",
                                    loc, "pattern")])
    if principal.kind != "system" and not principal.is_district_wide and not area_code.startswith(
            principal.area_code or "\x00"):
        raise InvalidInput([Problem("区域超出本人辖区 area outside your own area", loc, "scope")])
    if principal.kind == "system":  # seeds, tests and the CLI may precede the areas
        return
    from cityops.geo.models import Area

    if session.get(Area, area_code) is None:
        raise InvalidInput([Problem(f"区域不存在 unknown area {area_code}", loc, "unknown")])


def _check_roles(session: Session, roles: list[str], loc: list[str | int]) -> None:
    known = set(session.scalars(select(Role.code)))
    problems = [Problem(f"未知角色 unknown role {r!r}", [*loc, i], "unknown") for i, r in enumerate(roles)
                if r not in known]
    if problems:
        raise InvalidInput(problems)
    held = sorted(set(roles) & triad_roles(session))
    if len(held) > 1:
        labels = {r.code: r.label_zh for r in session.scalars(select(Role).where(Role.code.in_(held)))}
        raise Conflict([Problem("三权分立：同一账号不得兼任 " + "、".join(labels[h] for h in held)
                                + f" (separation of duties: one account may not hold {' and '.join(held)})",
                                loc, "separation_of_duties")])
    powers.check_one_power(powers.role_permissions_of(session, roles), loc, "账号")


def create_account(session: Session, principal: Principal, username: str, password: str | None = None, *,
                   roles: list[str] | None = None, area_code: str | None = None,
                   department_code: str | None = None, display_name: str | None = None,
                   expiry_exempt: bool = False, must_change: bool = False,
                   ) -> tuple[Account, str]:
    """Create an account; returns it and the initial password (generated when not given)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{3,64}", username):
        raise InvalidInput([Problem("用户名 3-64 位字母、数字、_ . - username: 3-64 of letters, digits, _ . -",
                                    ["body", "username"], "pattern")])
    if session.scalar(select(Account.id).where(func.lower(Account.username) == username.lower())) is not None:
        raise Conflict([Problem(f"用户名已存在 username {username!r} exists", ["body", "username"], "exists")])
    _check_area(session, principal, area_code, ["body", "area_code"])
    if roles:
        _check_roles(session, roles, ["body", "roles"])
    generated = password is None
    pw = password or generate_password(username=username)
    problems = password_problems(pw, username, "password")
    if problems:
        for p in problems:
            p.loc = ["body", "password"]
        raise InvalidInput(problems)
    acc = Account(username=username, display_name=display_name, area_code=area_code,
                  department_code=department_code, created_by=principal.username,
                  password_expiry_exempt=expiry_exempt, password_hash="")
    _set_password(session, acc, pw, must_change=must_change or (generated and principal.kind != "system"))
    session.add(acc)
    session.flush()
    for r in roles or []:
        session.add(AccountRole(account_id=acc.id, role_code=r))
    audit.record(session, principal, "account.create", "account", acc.id,
                 detail={"username": username, "area_code": area_code, "department_code": department_code,
                         "roles": sorted(roles or [])})
    return acc, pw


def account_roles(session: Session, account_id: int) -> list[str]:
    return sorted(session.scalars(select(AccountRole.role_code).where(AccountRole.account_id == account_id)))


def account_out(session: Session, acc: Account) -> dict[str, Any]:
    return {"id": acc.id, "username": acc.username, "display_name": acc.display_name, "area_code": acc.area_code,
            "department_code": acc.department_code, "active": acc.active, "roles": account_roles(session, acc.id),
            "locked_until": acc.locked_until if acc.locked_until and acc.locked_until > clock.now() else None,
            "failed_logins": acc.failed_logins, "last_login_at": acc.last_login_at,
            "password_changed_at": acc.password_changed_at, "password_expired": password_expired(acc),
            "created_at": acc.created_at}


def get_account(session: Session, principal: Principal, account_id: int) -> Account:
    acc = session.scalar(select(Account).where(Account.id == account_id, _account_scope(principal)))
    if acc is None:
        raise NotFound([Problem(f"账号不存在 no account {account_id}", ["path", "account_id"], "not_found")])
    return acc


def list_accounts(session: Session, principal: Principal, *, q: str | None = None, role: str | None = None,
                  area_code: str | None = None, page: int = 1, page_size: int = 50) -> tuple[int, list[Account]]:
    stmt = select(Account).where(_account_scope(principal))
    if q:
        stmt = stmt.where(or_(Account.username.icontains(q, autoescape=True),
                              Account.display_name.icontains(q, autoescape=True)))
    if role:
        stmt = stmt.where(Account.id.in_(select(AccountRole.account_id).where(AccountRole.role_code == role)))
    if area_code:
        stmt = stmt.where(code_prefix_clause(Account.area_code, area_code))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(session.scalars(stmt.order_by(Account.username).offset((page - 1) * page_size).limit(page_size)))
    return int(total), rows


def update_account(session: Session, principal: Principal, account_id: int, changes: dict[str, Any], *,
                   approved: bool = False) -> Account:
    clear_auth_cache()
    acc = get_account(session, principal, account_id)
    if powers.check_may_act_on(session, principal, acc.id, ["path", "account_id"]):
        _four_eyes(principal, approved, "account.update", ["path", "account_id"])
    if "area_code" in changes:
        _check_area(session, principal, changes["area_code"], ["body", "area_code"])
    if acc.id == principal.account_id and changes.get("active") is False:
        raise Conflict([Problem("不能停用本人账号 you cannot deactivate yourself", ["body", "active"], "self")])
    before = {k: getattr(acc, k) for k in changes}
    for k, v in changes.items():
        setattr(acc, k, v)
    if changes.get("active") is False:
        _revoke_sessions(session, acc.id, "deactivated")
    audit.record(session, principal, "account.update", "account", acc.id,
                 detail={"before": before, "after": changes})
    return acc


def set_account_roles(session: Session, principal: Principal, account_id: int, roles: list[str], *,
                      approved: bool = False) -> Account:
    acc = get_account(session, principal, account_id)
    if acc.id == principal.account_id:
        raise Forbidden([Problem("不得给自己授权 you may not change your own roles", ["path", "account_id"],
                                 "separation_of_duties")])
    _check_roles(session, roles, ["body", "roles"])
    before = account_roles(session, acc.id)
    if set(before) != set(roles) and powers.powers_of(powers.role_permissions_of(session, [*before, *roles])):
        _four_eyes(principal, approved, "account.roles", ["body", "roles"])
    session.execute(delete(AccountRole).where(AccountRole.account_id == acc.id))
    clear_auth_cache()
    for r in sorted(set(roles)):
        session.add(AccountRole(account_id=acc.id, role_code=r))
    audit.record(session, principal, "account.roles", "account", acc.id,
                 detail={"before": before, "after": sorted(set(roles))})
    return acc


def unlock_account(session: Session, principal: Principal, account_id: int) -> Account:
    acc = get_account(session, principal, account_id)
    powers.check_may_act_on(session, principal, acc.id, ["path", "account_id"])
    acc.locked_until = None
    acc.failed_logins = 0
    audit.record(session, principal, "account.unlock", "account", acc.id)
    return acc


def reset_password(session: Session, principal: Principal, account_id: int, *, approved: bool = False) -> str:
    """A temporary password (shown once) that must be changed at the next sign-in."""
    acc = get_account(session, principal, account_id)
    if acc.id == principal.account_id:
        raise Forbidden([Problem("请用 POST /api/v1/auth/password 修改本人密码 change your own password with "
                                 "POST /api/v1/auth/password", ["path", "account_id"], "self")])
    if powers.check_may_act_on(session, principal, acc.id, ["path", "account_id"]):
        _four_eyes(principal, approved, "account.reset_password", ["path", "account_id"])
    pw = generate_password(username=acc.username)
    _set_password(session, acc, pw, must_change=True)
    _revoke_sessions(session, acc.id, "password_reset")
    audit.record(session, principal, "account.reset_password", "account", acc.id)
    return pw


def change_password(session: Session, username: str, old_password: str, new_password: str,
                    source_ip: str | None) -> None:
    """Self-service change with the old password (also for expired passwords)."""
    acc = _authenticate(session, username, old_password, source_ip, allow_expired=True)
    problems = password_problems(new_password, acc.username, "new_password")
    if problems:
        for p in problems:
            p.loc = ["body", "new_password"]
        raise InvalidInput(problems)
    _check_history(session, acc, new_password)
    _set_password(session, acc, new_password)
    _revoke_sessions(session, acc.id, "password_changed")
    audit.record(session, _principal_for(session, acc, source_ip), "password.change", "account", acc.id)


# ----------------------------------------------------------------------------------------------
# sign-in


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The CSRF token bound to a console session (double-submit, HMAC-signed)."""
    key = get_settings().secret_key.encode("utf-8")
    return hmac.new(key, b"csrf|" + session_token.encode("utf-8"), hashlib.sha256).hexdigest()


def _bad_credentials() -> Unauthorized:
    """The one answer of every failed sign-in: same message, location and type whether the user is
    unknown, inactive, locked or the password wrong (no username enumeration)."""
    return unauthorized(throttle.BAD_CREDENTIALS, ["body"], persist=True)


def _authenticate(session: Session, username: str, password: str, source_ip: str | None, *,
                  allow_expired: bool = False) -> Account:
    """Check a password. Every failure costs one argon2 verification (also for unknown users and
    locked accounts: same timing) and answers ``_bad_credentials``; locks refuse new sign-ins only."""
    settings = get_settings()
    check_rate(f"login:{source_ip}:{username.lower()}", settings.login_rate_per_minute, what="sign-in attempts")
    check_rate(f"login-ip:{source_ip}", settings.login_rate_per_minute * 10, what="sign-in attempts")
    now = clock.now()
    acc = session.scalar(select(Account).where(Account.username == username))

    def fail(reason: str, result: str = "failed", actor: Principal | None = None, **detail: Any) -> Unauthorized:
        if throttle.source_failed(session, source_ip):
            audit.record(session, actor, "lockout", "signin_source", (source_ip or "-")[:80],
                         detail={"minutes": settings.lockout_minutes}, username=username[:80], source_ip=source_ip)
        audit.record(session, actor, "login_failed", "account", acc.id if acc else None, result=result,
                     detail={"reason": reason, **detail}, username=username[:80], source_ip=source_ip)
        return _bad_credentials()

    if throttle.source_locked(session, source_ip):
        verify_password(_DUMMY_HASH, password)
        raise fail("source_locked", "locked")
    if acc is None or not acc.active:
        verify_password(_DUMMY_HASH, password)
        raise fail("unknown_user" if acc is None else "inactive")
    actor = _principal_for(session, acc, source_ip)
    if acc.locked_until is not None:
        if acc.locked_until > now:
            verify_password(_DUMMY_HASH, password)
            raise fail("locked", "locked", actor, locked_until=acc.locked_until.isoformat())
        acc.locked_until = None
        acc.failed_logins = 0
        audit.record(session, actor, "unlock", "account", acc.id, detail={"reason": "lock expired"})
    if not verify_password(acc.password_hash, password):
        acc.failed_logins += 1
        exc = fail("bad_password", "failed", actor, failed_logins=acc.failed_logins)
        if acc.failed_logins >= settings.lockout_threshold:
            acc.locked_until = now + dt.timedelta(minutes=settings.lockout_minutes)
            audit.record(session, actor, "lockout", "account", acc.id,
                         detail={"failed_logins": acc.failed_logins, "minutes": settings.lockout_minutes})
            _notify_locked(session, acc, source_ip)
        raise exc
    if _hasher.check_needs_rehash(acc.password_hash):
        acc.password_hash = hash_password(password)
    if not allow_expired and password_expired(acc):
        audit.record(session, actor, "login_failed", "account", acc.id, result="expired",
                     detail={"reason": "password_expired"})
        raise unauthorized("密码已过期或须修改，请通过 POST /api/v1/auth/password 修改 password expired: change it "
                           "at POST /api/v1/auth/password", ["body", "password"], "password_expired", persist=True)
    acc.failed_logins = 0
    return acc


def _notify_locked(session: Session, acc: Account, source_ip: str | None) -> None:
    """Tell the owner of a locked account (in-app inbox; open sessions keep working)."""
    from cityops.jobs.service import notify

    until = (acc.locked_until or clock.now()).astimezone(dt.timezone(dt.timedelta(hours=8)))
    minutes = get_settings().lockout_minutes
    notify(session, account_ids=[acc.id], severity="warning", title="账号登录已临时锁定 sign-in locked",
           body=f"连续 {acc.failed_logins} 次密码错误（来源 {source_ip or '-'}），新的登录将暂停至 {until:%H:%M}"
                f"（{minutes} 分钟）；已登录的会话不受影响。如非本人操作，请联系系统管理员。 "
                f"{acc.failed_logins} wrong passwords (from {source_ip or '-'}): new sign-ins are locked for "
                f"{minutes} min; your open sessions keep working.")


@dataclass
class LoginResult:
    token: str
    account: Account
    expires_at: dt.datetime
    csrf: str | None = None


def login(session: Session, username: str, password: str, source_ip: str | None, kind: str = "bearer") -> LoginResult:
    """Check the password (lockout, expiry, rate limit) and open a session row."""
    settings = get_settings()
    acc = _authenticate(session, username, password, source_ip)
    now = clock.now()
    if settings.single_session:
        _revoke_sessions(session, acc.id, "single_session")
    token = ("cos_" if kind == "cookie" else "cot_") + secrets.token_urlsafe(32)
    expires = now + (dt.timedelta(hours=settings.session_absolute_hours) if kind == "cookie"
                     else dt.timedelta(minutes=settings.token_minutes))
    row = AuthSession(token_hash=_token_hash(token), account_id=acc.id, kind=kind, created_at=now, last_seen=now,
                      expires_at=expires, source_ip=source_ip)
    session.add(row)
    acc.last_login_at = now
    session.flush()
    audit.record(session, _principal_for(session, acc, source_ip, session_id=str(row.id)), "login", "account",
                 acc.id, detail={"kind": kind})
    return LoginResult(token, acc, expires, csrf_token_for(token) if kind == "cookie" else None)


def _revoke_sessions(session: Session, account_id: int, reason: str) -> None:
    clear_auth_cache()
    session.execute(update(AuthSession).where(AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None))
                    .values(revoked_at=clock.now(), revoked_reason=reason))


def logout(session: Session, token: str | None, source_ip: str | None) -> bool:
    if not token:
        return False
    row = session.scalar(select(AuthSession).where(AuthSession.token_hash == _token_hash(token)))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = clock.now()
    row.revoked_reason = "logout"
    clear_auth_cache()
    acc = session.get(Account, row.account_id)
    if acc is not None:
        audit.record(session, _principal_for(session, acc, source_ip, session_id=str(row.id)), "logout", "account",
                     acc.id)
    return True


# ----------------------------------------------------------------------------------------------
# principal


_dept_ids: dict[tuple[str, str], int] = {}


def _department_id(session: Session, code: str | None) -> int | None:
    """The id of the cases domain's department with this code (cached per database)."""
    if not code:
        return None
    key = (database_key(session), code)
    if key in _dept_ids:
        return _dept_ids[key]
    try:
        from cityops.cases.models import Department
    except (ModuleNotFoundError, ImportError):
        return None
    did = session.scalar(select(Department.id).where(Department.code == code))
    if did is not None:
        _dept_ids[key] = int(did)
    return did


def _principal_for(session: Session, acc: Account, source_ip: str | None, session_id: str | None = None) -> Principal:
    roles = frozenset(session.scalars(select(AccountRole.role_code).where(AccountRole.account_id == acc.id)))
    perms = frozenset(session.scalars(
        select(RolePermission.permission_name).join(AccountRole, AccountRole.role_code == RolePermission.role_code)
        .where(AccountRole.account_id == acc.id)))
    return Principal(username=acc.username, kind="user", account_id=acc.id, roles=roles, permissions=perms,
                     area_code=acc.area_code, department_id=_department_id(session, acc.department_code),
                     department_code=acc.department_code, source_ip=source_ip, session_id=session_id)


def principal_for_username(session: Session, username: str, source_ip: str | None = None) -> Principal:
    """The principal of an account (for jobs acting on a user's behalf, and tests)."""
    acc = session.scalar(select(Account).where(Account.username == username))
    if acc is None:
        raise NotFound([Problem(f"账号不存在 no account {username!r}", ["username"], "not_found")])
    return _principal_for(session, acc, source_ip)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def credentials(request: Request) -> tuple[str, str] | None:
    """(kind, secret) of the request's credentials: bearer, api_key or cookie."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return "bearer", value.strip()
        raise unauthorized("仅支持 Bearer 令牌 only Bearer tokens are accepted", ["header", "Authorization"])
    key = request.headers.get(API_KEY_HEADER)
    if key:
        return "api_key", key.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return "cookie", cookie
    return None


# Principals of recently checked credentials, per process: a credential checked less than
# ``auth_cache_seconds`` ago is not looked up again (absolute expiry and the idle timeout are still
# checked against the clock on every request). Sign-out, revocation, password, role and account
# changes made by this process clear it at once; those made by another process take effect within
# ``auth_cache_seconds`` (default 1 s; 0 checks the database on every request).
_auth_cache: dict[tuple[str, str], tuple[float, Principal, dt.datetime, dt.datetime]] = {}
_AUTH_CACHE_MAX = 10_000


def clear_auth_cache() -> None:
    _auth_cache.clear()


def cached_principal(request: Request) -> Principal | None:
    """The principal of the request's credentials if they were checked moments ago, else None
    (then ``resolve_principal`` checks them in the database)."""
    ttl = get_settings().auth_cache_seconds
    cred = credentials(request) if ttl > 0 else None
    if cred is None:
        return None
    hit = _auth_cache.get((cred[0], _token_hash(cred[1])))
    if hit is None or time.monotonic() - hit[0] > ttl:
        return None
    _checked, principal, last_seen, expires_at = hit
    now = clock.now()
    if expires_at <= now or now - last_seen > TOUCH_EVERY or now < last_seen:
        return None  # expired, or due for the last_seen touch (and the idle check): ask the database
    ip = client_ip(request)
    return principal if principal.source_ip == ip else dataclasses.replace(principal, source_ip=ip)


def _remember(kind: str, secret: str, principal: Principal, last_seen: dt.datetime, expires_at: dt.datetime) -> None:
    if get_settings().auth_cache_seconds <= 0:
        return
    if len(_auth_cache) >= _AUTH_CACHE_MAX:
        _auth_cache.clear()
    _auth_cache[(kind, _token_hash(secret))] = (time.monotonic(), principal, last_seen, expires_at)


def resolve_principal(request: Request) -> Principal:
    """The caller of a request, from a bearer token, the console cookie or an X-API-Key.

    Raises ``Unauthorized`` (401, ``WWW-Authenticate: Bearer``) when missing, unknown, revoked,
    expired or idle for longer than ``session_idle_minutes``."""
    cred = credentials(request)
    if cred is None:
        raise unauthorized("需要登录 authentication required", ["header", "Authorization"])
    return principal_for_credentials(cred[0], cred[1], client_ip(request))


def principal_for_api_key(key: str, source_ip: str | None) -> Principal:
    """The principal of an integration key given some other way than the X-API-Key header (the
    Open311 ``api_key`` form field); unknown or revoked: ``Unauthorized``."""
    return principal_for_credentials("api_key", key, source_ip)


def principal_for_credentials(kind: str, secret: str, source_ip: str | None) -> Principal:
    """Check credentials (``bearer`` / ``cookie`` / ``api_key``) in their own read transaction."""
    from cityops.db import get_engine

    with get_engine().connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # a read transaction (plain BEGIN): resolving does not take SQLite's write lock
            conn.info["write"] = False
        try:
            with Session(bind=conn) as session:
                try:
                    if kind == "api_key":
                        return _principal_from_key(session, secret, source_ip)
                    return _principal_from_session(session, secret, source_ip, kind)
                finally:
                    session.rollback()
        finally:
            if sqlite:
                conn.info["write"] = True


def _write(fn: Any) -> None:
    """Run ``fn(session)`` in its own write transaction and commit."""
    from cityops.db import get_sessionmaker

    with get_sessionmaker()() as session:
        fn(session)
        session.commit()


_SESSION_Q = (select(AuthSession.id, AuthSession.kind, AuthSession.last_seen, AuthSession.expires_at,
                      AuthSession.revoked_at, Account.id.label("account_id"), Account.username, Account.active,
                      Account.area_code, Account.department_code)
              .outerjoin(Account, Account.id == AuthSession.account_id)
              .where(AuthSession.token_hash == bindparam("h")))
_GRANTS_Q = (select(AccountRole.role_code, RolePermission.permission_name)
             .outerjoin(RolePermission, RolePermission.role_code == AccountRole.role_code)
             .where(AccountRole.account_id == bindparam("aid")))


def _principal_from_session(session: Session, token: str, ip: str | None, kind: str) -> Principal:
    """Two Core queries per request (the session with its account; the roles with their
    permissions): the bearer-token check is on the path of every API call."""
    settings = get_settings()
    conn = session.connection()
    row = conn.execute(_SESSION_Q, {"h": _token_hash(token)}).first()
    if row is None or row.revoked_at is not None:
        raise unauthorized("登录已失效，请重新登录 session invalid or signed out", ["header", "Authorization"])
    if (kind == "cookie") != (row.kind == "cookie"):
        raise unauthorized("凭据类型不符 credential used in the wrong place", ["header", "Authorization"])
    now = clock.now()
    if row.account_id is None or not row.active:
        raise unauthorized("账号已停用 account disabled", ["header", "Authorization"])
    if row.expires_at <= now:
        raise unauthorized("登录已过期，请重新登录 session expired", ["header", "Authorization"], "session_expired")
    grants = conn.execute(_GRANTS_Q, {"aid": row.account_id}).all()
    principal = Principal(username=row.username, kind="user", account_id=row.account_id,
                          roles=frozenset(g[0] for g in grants), permissions=frozenset(g[1] for g in grants if g[1]),
                          area_code=row.area_code, department_id=_department_id(session, row.department_code),
                          department_code=row.department_code, source_ip=ip, session_id=str(row.id))
    sid = row.id
    if now - row.last_seen > dt.timedelta(minutes=settings.session_idle_minutes):
        def revoke(ws: Session) -> None:
            ws.execute(update(AuthSession).where(AuthSession.id == sid, AuthSession.revoked_at.is_(None))
                       .values(revoked_at=now, revoked_reason="idle"))
            audit.record(ws, principal, "session_timeout", "account", principal.account_id,
                         detail={"idle_minutes": settings.session_idle_minutes})

        _write(revoke)
        raise unauthorized("长时间未操作，已自动退出 session ended after inactivity", ["header", "Authorization"],
                           "session_idle")
    last_seen = row.last_seen
    if now - row.last_seen > TOUCH_EVERY:
        _write(lambda ws: ws.execute(update(AuthSession).where(AuthSession.id == sid).values(last_seen=now)))
        last_seen = now
    _remember(kind, token, principal, last_seen, row.expires_at)
    return principal


# ----------------------------------------------------------------------------------------------
# API keys


def _principal_from_key(session: Session, key: str, ip: str | None) -> Principal:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _token_hash(key)))
    if row is None or row.revoked_at is not None:
        raise unauthorized("接口密钥无效或已吊销 API key invalid or revoked", ["header", API_KEY_HEADER])
    if row.expires_at is not None and row.expires_at <= clock.now():
        raise unauthorized("接口密钥已过期 API key expired", ["header", API_KEY_HEADER], "expired")
    known = set(catalog.PERMISSIONS) - powers.NOT_DELEGABLE
    principal = Principal(username=f"apikey:{row.name}", kind="api_key", account_id=None,
                          permissions=frozenset(p for p in row.permissions if p in known),
                          area_code=row.area_code, department_code=row.department_code,
                          department_id=_department_id(session, row.department_code), source_ip=ip,
                          extra={"api_key_id": row.id})
    now = clock.now()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        kid = row.id
        _write(lambda ws: ws.execute(update(ApiKey).where(ApiKey.id == kid).values(last_used_at=now)))
    return principal


def create_api_key(session: Session, principal: Principal, name: str, permissions: list[str], *,
                   area_code: str | None = None, department_code: str | None = None,
                   description: str | None = None, key: str | None = None,
                   expires_days: int = 365) -> tuple[ApiKey, str]:
    """Create an integration key; the clear key is returned once and only its SHA-256 is kept."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{3,64}", name):
        raise InvalidInput([Problem("名称 3-64 位字母、数字、_ . - name: 3-64 of letters, digits, _ . -",
                                    ["body", "name"], "pattern")])
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise Conflict([Problem(f"密钥名称已存在 key name {name!r} exists", ["body", "name"], "exists")])
    problems = [Problem(f"未知权限 unknown permission {p!r}", ["body", "permissions", i], "unknown")
                for i, p in enumerate(permissions) if p not in catalog.PERMISSIONS]
    if not permissions:
        problems.append(Problem("至少授予一项权限 at least one permission", ["body", "permissions"], "missing"))
    if problems:
        raise InvalidInput(problems)
    powers.check_delegable(principal, permissions, ["body", "permissions"], "接口密钥")
    if not 1 <= expires_days <= MAX_KEY_DAYS:
        raise InvalidInput([Problem(f"有效期 1-{MAX_KEY_DAYS} 天 expires_days must be 1..{MAX_KEY_DAYS}",
                                    ["body", "expires_days"], "range")])
    area = area_code or get_settings().district_code
    _check_area(session, principal, area, ["body", "area_code"])
    clear = key or ("cok_" + secrets.token_urlsafe(32))
    row = ApiKey(name=name, prefix=clear[:12], key_hash=_token_hash(clear), permissions=sorted(set(permissions)),
                 area_code=area, department_code=department_code, description=description,
                 created_by=principal.username, created_at=clock.now(),
                 expires_at=clock.now() + dt.timedelta(days=expires_days))
    session.add(row)
    session.flush()
    audit.record(session, principal, "apikey.create", "api_key", row.id,
                 detail={"name": name, "permissions": row.permissions, "area_code": area,
                         "expires_days": expires_days})
    return row, clear


def list_api_keys(session: Session, principal: Principal) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(scope.clause(principal, API_KEY_SCOPE)).order_by(ApiKey.name)))


def revoke_api_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.id == key_id, scope.clause(principal, API_KEY_SCOPE)))
    if row is None:
        raise NotFound([Problem(f"密钥不存在 no API key {key_id}", ["path", "key_id"], "not_found")])
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        audit.record(session, principal, "apikey.revoke", "api_key", row.id, detail={"name": row.name})
    return row


def api_key_out(row: ApiKey) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "permissions": row.permissions,
            "area_code": row.area_code, "department_code": row.department_code, "description": row.description,
            "created_by": row.created_by, "created_at": row.created_at, "revoked_at": row.revoked_at,
            "last_used_at": row.last_used_at, "expires_at": row.expires_at}


__all__ = ["SYSTEM", "resolve_principal", "create_account", "login", "ensure_catalog"]
