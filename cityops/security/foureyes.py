"""Four eyes for changes to the administrators (三权分立, issue 17).

A change that the service refuses with ``four_eyes_required`` (granting or removing an
administrative role, editing a role that carries an administrative permission, resetting or
editing an administrator's account) is proposed here by one holder of the permission it needs and
applied when a SECOND holder — not the proposer and not the account it concerns — approves it.
Proposal, approval / rejection and the change itself are audited; proposals expire after
``VALID_DAYS``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.security import audit, powers, service
from cityops.security.models import AdminChange
from cityops.security.principal import Principal

VALID_DAYS = 3
# kind -> the permission proposer and approver must hold
KINDS: dict[str, str] = {
    "account.roles": "role.manage",
    "role.permissions": "role.manage",
    "role.create": "role.manage",
    "account.update": "account.manage",
    "account.reset_password": "account.manage",
}
_ACCOUNT_FIELDS = {"display_name", "area_code", "department_code", "active"}


def _check_payload(kind: str, target: str, payload: dict[str, Any]) -> list[Problem]:
    probs: list[Problem] = []
    if kind.startswith("account.") and not target.isdigit():
        probs.append(Problem("target 须为账号编号 target must be an account id", ["body", "target"], "pattern"))
    if kind == "account.roles" and not (isinstance(payload.get("roles"), list)
                                        and all(isinstance(r, str) for r in payload["roles"])):
        probs.append(Problem("payload.roles: 角色代码列表 a list of role codes", ["body", "payload", "roles"], "type"))
    if kind in ("role.permissions", "role.create") and not (
            isinstance(payload.get("permissions"), list) and all(isinstance(p, str) for p in payload["permissions"])):
        probs.append(Problem("payload.permissions: 权限列表 a list of permissions", ["body", "payload", "permissions"],
                             "type"))
    if kind == "role.create" and not all(isinstance(payload.get(k), str) and payload[k] for k in ("label_zh", "label_en")):
        probs.append(Problem("payload.label_zh / label_en 必填 required", ["body", "payload"], "missing"))
    if kind == "account.update":
        extra = sorted(set(payload) - _ACCOUNT_FIELDS)
        if extra or not payload:
            probs.append(Problem(f"payload 只能修改 {sorted(_ACCOUNT_FIELDS)} (got {extra or 'nothing'})",
                                 ["body", "payload"], "unknown"))
    return probs


def propose(session: Session, principal: Principal, kind: str, target: str, payload: dict[str, Any],
            reason: str) -> AdminChange:
    perm = KINDS.get(kind)
    if perm is None:
        raise InvalidInput([Problem(f"未知变更类型 unknown kind {kind!r} (one of {', '.join(KINDS)})",
                                    ["body", "kind"], "unknown")])
    if not principal.can(perm):
        raise Forbidden([Problem(f"需要权限 {perm} you need {perm!r} to propose {kind}", ["body", "kind"], "forbidden")])
    probs = _check_payload(kind, target, payload)
    if len(reason.strip()) < 4:
        probs.append(Problem("须说明事由（至少 4 个字） give a reason (at least 4 characters)", ["body", "reason"],
                             "missing"))
    if probs:
        raise InvalidInput(probs)
    if kind.startswith("account."):
        acc = service.get_account(session, principal, int(target))  # scoped: 404 outside the proposer's area
        if kind == "account.roles":  # granting roles is the security power's task, on any account
            if acc.id == principal.account_id:
                raise Forbidden([Problem("不得给自己授权 you may not change your own roles", ["body", "target"],
                                         "separation_of_duties")])
            service._check_roles(session, list(payload["roles"]), ["body", "payload", "roles"])
        else:
            powers.check_may_act_on(session, principal, acc.id, ["body", "target"])
    else:
        powers.check_one_power(payload["permissions"], ["body", "payload", "permissions"], "角色")
    now = clock.now()
    row = AdminChange(kind=kind, target=target, payload=payload, permission=perm, reason=reason.strip()[:500],
                      status="pending", requested_by=principal.username, requester_id=principal.account_id,
                      created_at=now, expires_at=now + dt.timedelta(days=VALID_DAYS))
    session.add(row)
    session.flush()
    audit.record(session, principal, "admin_change.propose", "admin_change", row.id,
                 detail={"kind": kind, "target": target, "payload": payload, "reason": row.reason})
    return row


def list_changes(session: Session, principal: Principal, status: str | None = None) -> list[AdminChange]:
    """The changes the caller may decide or has proposed (by the permission they need)."""
    kinds = [k for k, perm in KINDS.items() if principal.can(perm)]
    stmt = select(AdminChange).where(AdminChange.kind.in_(kinds))
    if status:
        stmt = stmt.where(AdminChange.status == status)
    return list(session.scalars(stmt.order_by(AdminChange.id.desc()).limit(500)))


def _apply(session: Session, approver: Principal, row: AdminChange) -> dict[str, Any]:
    p = row.payload
    if row.kind == "account.roles":
        acc = service.set_account_roles(session, approver, int(row.target), list(p["roles"]), approved=True)
        return {"account_id": acc.id, "roles": service.account_roles(session, acc.id)}
    if row.kind == "account.update":
        acc = service.update_account(session, approver, int(row.target), dict(p), approved=True)
        return {"account_id": acc.id}
    if row.kind == "account.reset_password":
        pw = service.reset_password(session, approver, int(row.target), approved=True)
        return {"account_id": int(row.target), "temporary_password": pw}
    if row.kind == "role.permissions":
        return service.set_role_permissions(session, approver, row.target, list(p["permissions"]), approved=True)
    return service.create_role(session, approver, row.target, str(p["label_zh"]), str(p["label_en"]),
                               list(p["permissions"]), approved=True)


def decide(session: Session, principal: Principal, change_id: int, approve: bool,
           note: str | None = None) -> tuple[AdminChange, dict[str, Any]]:
    """Approve (apply) or reject a proposal; the second person must hold the same permission and be
    neither the proposer nor the account concerned. Returns the row and what applying returned
    (a reset's temporary password is shown to the approver once, never stored)."""
    row = session.get(AdminChange, change_id)
    if row is None or not principal.can(row.permission):
        raise NotFound([Problem(f"变更申请不存在 no admin change {change_id}", ["path", "change_id"], "not_found")])
    if row.status != "pending":
        raise Conflict([Problem(f"该申请已处理 already {row.status}", ["path", "change_id"], "state")])
    if row.expires_at <= clock.now():
        raise Conflict([Problem("该申请已过期 the proposal has expired", ["path", "change_id"], "expired")])
    if principal.account_id is not None and (principal.account_id == row.requester_id
                                             or principal.username == row.requested_by):
        raise Forbidden([Problem("四眼原则：不得批准本人的申请 four eyes: a second person must decide",
                                 ["path", "change_id"], "separation_of_duties")])
    if row.kind.startswith("account.") and principal.account_id == int(row.target):
        raise Forbidden([Problem("不得批准涉及本人账号的申请 you may not decide a change to your own account",
                                 ["path", "change_id"], "separation_of_duties")])
    outcome: dict[str, Any] = {}
    if approve:
        outcome = _apply(session, principal, row)
    row.status = "applied" if approve else "rejected"
    row.decided_by, row.decided_at, row.decision_note = principal.username, clock.now(), (note or None)
    row.outcome = {k: v for k, v in outcome.items() if k != "temporary_password"} if approve else None
    audit.record(session, principal, "admin_change.approve" if approve else "admin_change.reject", "admin_change",
                 row.id, detail={"kind": row.kind, "target": row.target, "requested_by": row.requested_by,
                                 "note": note})
    return row, outcome


def change_out(row: AdminChange, outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "target": row.target, "payload": row.payload,
            "permission": row.permission, "reason": row.reason, "status": row.status,
            "requested_by": row.requested_by, "decided_by": row.decided_by, "decided_at": row.decided_at,
            "decision_note": row.decision_note, "created_at": row.created_at, "expires_at": row.expires_at,
            "temporary_password": (outcome or {}).get("temporary_password")}
