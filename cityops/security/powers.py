"""三权分立 as rules the service enforces (issue 17), not conventions of the demo roles.

The three administrative powers are sets of permissions:

* 系统管理 system — accounts and configuration of access: ``account.manage``, ``apikey.manage``;
* 安全管理 security — roles, permissions, approvals: ``role.manage``, ``saferoom.approve``,
  ``export.approve``;
* 审计管理 audit — reading the audit log: ``audit.read``.

Rules (checked on every path: new role, role edit, grant of roles, new account):

1. no role and no account may carry permissions of two powers (409 naming them);
2. an administrator never acts on the account of another power (reset, unlock, edit, disable;
   granting it roles): 403;
3. changes to the administrators themselves — granting or removing an administrative role, a role
   edit that adds or removes an administrative permission, resetting, unlocking, editing or
   disabling an administrator — need a second person of the same power (``four_eyes``);
4. API keys and delegations carry only permissions their maker holds, never an administrative one.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.errors import Conflict, Forbidden, InvalidInput, Problem
from cityops.security.models import AccountRole, RolePermission
from cityops.security.principal import Principal

POWERS: dict[str, frozenset[str]] = {
    "system": frozenset({"account.manage", "apikey.manage"}),
    "security": frozenset({"role.manage", "saferoom.approve", "export.approve"}),
    "audit": frozenset({"audit.read"}),
}
LABELS = {"system": ("系统管理", "system administration"), "security": ("安全管理", "security administration"),
          "audit": ("审计管理", "audit administration")}
ADMIN_PERMISSIONS: frozenset[str] = frozenset().union(*POWERS.values())
# never on an API key or a delegation: the powers, and clear personal data
NOT_DELEGABLE: frozenset[str] = ADMIN_PERMISSIONS | {"person.unmask"}


def powers_of(permissions: Iterable[str]) -> set[str]:
    perms = set(permissions)
    return {name for name, ps in POWERS.items() if perms & ps}


def principal_powers(principal: Principal) -> set[str]:
    return set() if principal.kind == "system" else powers_of(principal.permissions)


def _label(powers: Iterable[str]) -> tuple[str, str]:
    ps = sorted(powers)
    return "、".join(LABELS[p][0] for p in ps), " and ".join(LABELS[p][1] for p in ps)


def check_one_power(permissions: Iterable[str], loc: list[str | int], what: str) -> None:
    """Refuse (409) a set of permissions that combines two administrative powers."""
    held = powers_of(permissions)
    if len(held) > 1:
        zh, en = _label(held)
        raise Conflict([Problem(f"三权分立：{what}不得同时具有{zh}权限 (separation of powers: one {what_en(what)} may "
                                f"not combine {en})", loc, "separation_of_duties")])


def what_en(what: str) -> str:
    return {"角色": "role", "账号": "account", "接口密钥": "API key", "委托": "delegation"}.get(what, what)


def role_permissions_of(session: Session, roles: Iterable[str]) -> set[str]:
    codes = sorted(set(roles))
    if not codes:
        return set()
    return set(session.scalars(select(RolePermission.permission_name).where(RolePermission.role_code.in_(codes))))


def account_permissions(session: Session, account_id: int) -> set[str]:
    return set(session.scalars(
        select(RolePermission.permission_name).join(AccountRole, AccountRole.role_code == RolePermission.role_code)
        .where(AccountRole.account_id == account_id)))


def account_powers(session: Session, account_id: int) -> set[str]:
    return powers_of(account_permissions(session, account_id))


def holders_of_role(session: Session, code: str) -> list[int]:
    return list(session.scalars(select(AccountRole.account_id).where(AccountRole.role_code == code)))


def check_role_holders(session: Session, code: str, new_permissions: set[str], loc: list[str | int]) -> None:
    """A role edit must not give any holder of the role two powers (through its other roles)."""
    for account_id in holders_of_role(session, code):
        others = [r for r in session.scalars(select(AccountRole.role_code).where(
            AccountRole.account_id == account_id, AccountRole.role_code != code))]
        held = powers_of(role_permissions_of(session, others) | new_permissions)
        if len(held) > 1:
            zh, en = _label(held)
            raise Conflict([Problem(f"三权分立：持有该角色的账号 {account_id} 将同时具有{zh}权限 (separation of powers: "
                                    f"account {account_id} holding this role would combine {en})", loc,
                                    "separation_of_duties")])


def check_may_act_on(session: Session, principal: Principal, account_id: int, loc: list[str | int]) -> set[str]:
    """Refuse (403) an administrator acting on an account of another power; returns the target's
    powers (the caller asks for four eyes when it has any)."""
    target = account_powers(session, account_id)
    mine = principal_powers(principal)
    if principal.kind != "system" and target - mine:
        zh, en = _label(target - mine)
        raise Forbidden([Problem(f"三权分立：不得操作{zh}人员的账号 (separation of powers: you may not act on an account "
                                 f"holding {en})", loc, "separation_of_duties")])
    return target


def check_delegable(principal: Principal, permissions: list[str], loc: list[str | int], what: str) -> None:
    """A key / delegation carries only permissions its maker holds, and never an administrative
    one (422 naming each permission)."""
    problems = []
    for i, p in enumerate(permissions):
        if p in NOT_DELEGABLE:
            problems.append(Problem(f"{what}不得授予管理或明文权限 a {what_en(what)} may not hold {p!r}", [*loc, i],
                                    "forbidden"))
        elif principal.kind != "system" and p not in principal.permissions:
            problems.append(Problem(f"不得授予本人没有的权限 you do not hold {p!r} yourself", [*loc, i], "least_privilege"))
    if problems:
        raise InvalidInput(problems)
