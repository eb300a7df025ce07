"""Routes of accounts, sign-in, roles, API keys, audit, field catalogue, export requests and the
data safe room, plus ``setup_app`` (security headers, CSRF, rate-limiter middleware)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.orm import Session

from cityops.config import get_settings
from cityops.security import anchors, audit, foureyes, privacy, saferoom, schemas, service
from cityops.security.deps import public_route, require, signed_in
from cityops.security.middleware import install as _install_middleware
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

router = APIRouter(prefix="/api/v1")


def setup_app(app: FastAPI) -> None:
    """Security headers, CSRF (double-submit, console cookie only) and the per-app rate limiter."""
    _install_middleware(app)


# ---------------------------------------------------------------------------------------------- auth


@router.post("/auth/token", response_model=schemas.TokenOut, tags=["auth"],
             summary="获取访问令牌 OAuth2 password flow (form: username, password)",
             dependencies=[Depends(public_route)])
def token(request: Request, form: OAuth2PasswordRequestForm = Depends(),
          session: Session = UnitOfWork) -> dict[str, Any]:
    res = service.login(session, form.username, form.password, service.client_ip(request), kind="bearer")
    return {"access_token": res.token, "token_type": "bearer", "expires_at": res.expires_at}


@router.post("/auth/login", response_model=schemas.LoginOut, tags=["auth"],
             summary="控制台登录 Console sign-in (sets an HttpOnly session cookie)",
             dependencies=[Depends(public_route)])
def login(request: Request, response: Response, body: schemas.LoginIn,
          session: Session = UnitOfWork) -> dict[str, Any]:
    res = service.login(session, body.username, body.password, service.client_ip(request), kind="cookie")
    secure = request.url.scheme == "https"
    max_age = int((res.expires_at - dt.datetime.now(dt.UTC)).total_seconds())
    response.set_cookie(service.SESSION_COOKIE, res.token, httponly=True, samesite="strict", secure=secure,
                        max_age=max_age, path="/")
    response.set_cookie(service.CSRF_COOKIE, res.csrf or "", httponly=False, samesite="strict", secure=secure,
                        max_age=max_age, path="/")
    p = service.principal_for_username(session, res.account.username)
    return {"username": res.account.username, "display_name": res.account.display_name,
            "roles": sorted(p.roles), "permissions": sorted(p.permissions), "area_code": p.area_code,
            "department_code": p.department_code, "expires_at": res.expires_at, "csrf_token": res.csrf}


@router.post("/auth/logout", status_code=204, tags=["auth"], summary="退出登录 Sign out (cookie or bearer)",
             dependencies=[Depends(public_route)])
def logout(request: Request, response: Response, session: Session = UnitOfWork) -> Response:
    cred = service.credentials(request)
    if cred is not None and cred[0] in ("bearer", "cookie"):
        service.logout(session, cred[1], service.client_ip(request))
    out = Response(status_code=204)
    out.delete_cookie(service.SESSION_COOKIE, path="/")
    out.delete_cookie(service.CSRF_COOKIE, path="/")
    return out


@router.post("/auth/password", status_code=204, tags=["auth"],
             summary="修改密码 Change password (with the old one; also for expired passwords)",
             dependencies=[Depends(public_route)])
def change_password(request: Request, body: schemas.PasswordChangeIn,
                    session: Session = UnitOfWork) -> Response:
    service.change_password(session, body.username, body.old_password, body.new_password, service.client_ip(request))
    return Response(status_code=204)


@router.get("/auth/me", response_model=schemas.MeOut, tags=["auth"], summary="当前用户 Who am I")
def me(principal: Principal = signed_in(), session: Session = UnitOfWork) -> dict[str, Any]:
    labels = {r["code"]: r["label_zh"] for r in service.list_roles(session)}
    return {"username": principal.username, "kind": principal.kind, "roles": sorted(principal.roles),
            "role_labels": [labels.get(r, r) for r in sorted(principal.roles)],
            "permissions": sorted(principal.permissions), "area_code": principal.area_code,
            "department_code": principal.department_code}


# ---------------------------------------------------------------------------------------------- accounts


@router.get("/security/accounts", response_model=schemas.AccountPage, tags=["auth"],
            summary="账号列表（本辖区） List accounts in your area")
def list_accounts(q: str | None = Query(None, max_length=64), role: str | None = Query(None, max_length=40),
                  area_code: str | None = Query(None, pattern=r"^\d{1,15}$"),
                  page: int = Query(1, ge=1, le=100_000), page_size: int = Query(50, ge=1, le=500),
                  principal: Principal = require("account.manage"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    total, rows = service.list_accounts(session, principal, q=q, role=role, area_code=area_code, page=page,
                                        page_size=page_size)
    return {"total": total, "page": page, "page_size": page_size,
            "items": [service.account_out(session, a) for a in rows]}


@router.post("/security/accounts", response_model=schemas.AccountCreated, status_code=201, tags=["auth"],
             summary="新建账号 Create an account (roles are granted by a 安全管理员)")
def create_account(body: schemas.AccountCreate, principal: Principal = require("account.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    acc, pw = service.create_account(session, principal, body.username, body.password, area_code=body.area_code,
                                     department_code=body.department_code, display_name=body.display_name)
    return {**service.account_out(session, acc), "initial_password": None if body.password else pw}


@router.get("/security/accounts/{account_id}", response_model=schemas.AccountOut, tags=["auth"],
            summary="账号详情 One account")
def get_account(account_id: int, principal: Principal = require("account.manage"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.account_out(session, service.get_account(session, principal, account_id))


@router.patch("/security/accounts/{account_id}", response_model=schemas.AccountOut, tags=["auth"],
              summary="修改账号 Edit an account (area, department, active)")
def patch_account(account_id: int, body: schemas.AccountPatch, principal: Principal = require("account.manage"),
                  session: Session = UnitOfWork) -> dict[str, Any]:
    acc = service.update_account(session, principal, account_id, body.model_dump(exclude_unset=True))
    return service.account_out(session, acc)


@router.put("/security/accounts/{account_id}/roles", response_model=schemas.AccountOut, tags=["security"],
            summary="授予角色（安全管理员） Set an account's roles (三权分立 enforced)")
def put_account_roles(account_id: int, body: schemas.RolesIn, principal: Principal = require("role.manage"),
                      session: Session = UnitOfWork) -> dict[str, Any]:
    acc = service.set_account_roles(session, principal, account_id, body.roles)
    return service.account_out(session, acc)


@router.post("/security/accounts/{account_id}/unlock", response_model=schemas.AccountOut, tags=["auth"],
             summary="解锁账号 Unlock an account")
def unlock_account(account_id: int, principal: Principal = require("account.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return service.account_out(session, service.unlock_account(session, principal, account_id))


@router.post("/security/accounts/{account_id}/reset-password", response_model=schemas.PasswordOut, tags=["auth"],
             summary="重置密码 Reset to a temporary password (shown once)")
def reset_password(account_id: int, principal: Principal = require("account.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return {"temporary_password": service.reset_password(session, principal, account_id)}


# ---------------------------------------------------------------------------------------------- roles


@router.get("/security/roles", response_model=list[schemas.RoleOut], tags=["security"],
            summary="角色与权限 Roles and their permissions")
def list_roles(principal: Principal = require("role.manage"),
               session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.list_roles(session)


@router.post("/security/roles", response_model=schemas.RoleOut, status_code=201, tags=["security"],
             summary="新建角色 Create a role")
def create_role(body: schemas.RoleCreate, principal: Principal = require("role.manage"),
                session: Session = UnitOfWork) -> dict[str, Any]:
    return service.create_role(session, principal, body.code, body.label_zh, body.label_en, body.permissions)


@router.put("/security/roles/{code}/permissions", response_model=schemas.RoleOut, tags=["security"],
            summary="修改角色权限 Set a role's permissions")
def put_role_permissions(code: str, body: schemas.PermissionsIn, principal: Principal = require("role.manage"),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    return service.set_role_permissions(session, principal, code, body.permissions)


@router.get("/security/permissions", response_model=list[schemas.PermissionOut], tags=["security"],
            summary="权限目录 Permission catalogue")
def list_permissions(principal: Principal = require("role.manage"),
                     session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return service.list_permissions(session)


# ---------------------------------------------------------------------------------------------- four eyes


@router.post("/security/admin-changes", response_model=schemas.AdminChangeOut, status_code=201, tags=["security"],
             summary="提交管理员变更（四眼原则） Propose a change to an administrator (a second person approves)")
def propose_admin_change(body: schemas.AdminChangeIn, principal: Principal = signed_in(),
                         session: Session = UnitOfWork) -> dict[str, Any]:
    return foureyes.change_out(foureyes.propose(session, principal, body.kind, body.target, body.payload,
                                                body.reason))


@router.get("/security/admin-changes", response_model=list[schemas.AdminChangeOut], tags=["security"],
            summary="管理员变更申请 Changes to administrators (the kinds you may decide)")
def list_admin_changes(status: str | None = Query(None, pattern="^(pending|applied|rejected)$"),
                       principal: Principal = signed_in(),
                       session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return [foureyes.change_out(r) for r in foureyes.list_changes(session, principal, status)]


@router.post("/security/admin-changes/{change_id}/decision", response_model=schemas.AdminChangeOut,
             tags=["security"], summary="批准或驳回管理员变更（须另一人） Approve or reject (a second person)")
def decide_admin_change(change_id: int, body: schemas.AdminChangeDecisionIn, principal: Principal = signed_in(),
                        session: Session = UnitOfWork) -> dict[str, Any]:
    row, outcome = foureyes.decide(session, principal, change_id, body.approve, body.note)
    return foureyes.change_out(row, outcome)


# ---------------------------------------------------------------------------------------------- API keys


@router.get("/security/api-keys", response_model=list[schemas.ApiKeyOut], tags=["auth"],
            summary="接口密钥 Integration API keys")
def list_api_keys(principal: Principal = require("apikey.manage"),
                  session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return [service.api_key_out(k) for k in service.list_api_keys(session, principal)]


@router.post("/security/api-keys", response_model=schemas.ApiKeyCreated, status_code=201, tags=["auth"],
             summary="新建接口密钥（只显示一次） Create an API key (shown once)")
def create_api_key(body: schemas.ApiKeyIn, principal: Principal = require("apikey.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    row, key = service.create_api_key(session, principal, body.name, body.permissions, area_code=body.area_code,
                                      department_code=body.department_code, description=body.description,
                                      expires_days=body.expires_days)
    return {**service.api_key_out(row), "key": key}


@router.delete("/security/api-keys/{key_id}", response_model=schemas.ApiKeyOut, tags=["auth"],
               summary="吊销接口密钥 Revoke an API key")
def revoke_api_key(key_id: int, principal: Principal = require("apikey.manage"),
                   session: Session = UnitOfWork) -> dict[str, Any]:
    return service.api_key_out(service.revoke_api_key(session, principal, key_id))


# ---------------------------------------------------------------------------------------------- audit


@router.get("/audit", response_model=schemas.AuditPage, tags=["security"],
            summary="审计日志（审计管理员） Audit log")
def list_audit(action: str | None = Query(None, max_length=40), username: str | None = Query(None, max_length=80),
               object_type: str | None = Query(None, max_length=40), object_id: str | None = Query(None, max_length=80),
               result: str | None = Query(None, max_length=20),
               since: dt.datetime | None = Query(None, description="ISO time, inclusive"),
               until: dt.datetime | None = Query(None, description="ISO time, exclusive"),
               page: int = Query(1, ge=1, le=1_000_000), page_size: int = Query(100, ge=1, le=1000),
               principal: Principal = require("audit.read"),
               session: Session = UnitOfWork) -> dict[str, Any]:
    total, rows = privacy.list_audit(session, principal, action=action, username=username, object_type=object_type,
                                     object_id=object_id, result=result, since=since, until=until, page=page,
                                     page_size=page_size)
    return {"total": total, "page": page, "page_size": page_size, "items": rows}


@router.get("/audit/verify", response_model=schemas.VerifyOut, tags=["security"],
            summary="校验审计哈希链 Verify the audit hash chain")
def verify_audit(principal: Principal = require("audit.read"),
                 session: Session = UnitOfWork) -> dict[str, Any]:
    res = anchors.verify(session)
    audit.record(session, principal, "audit.verify", "audit_log", None, result="ok" if res.ok else "broken",
                 detail=res.as_dict())
    return res.as_dict()


# ---------------------------------------------------------------------------------------------- personal data


@router.get("/security/fields", response_model=list[schemas.FieldSpecOut], tags=["security"],
            summary="数据分类分级目录 Field catalogue (GB/T 43697 class, sensitivity)")
def list_fields(principal: Principal = signed_in()) -> list[dict[str, Any]]:
    return privacy.field_catalogue()


@router.post("/security/export-requests", response_model=schemas.ExportRequestOut, status_code=201,
             tags=["security"], summary="申请明文导出 Request an unmasked export")
def create_export_request(body: schemas.ExportRequestIn, principal: Principal = signed_in(),
                          session: Session = UnitOfWork) -> dict[str, Any]:
    return privacy.export_request_out(privacy.request_export(session, principal, body.object_type, body.purpose,
                                                             body.fields, body.filters))


@router.get("/security/export-requests", response_model=list[schemas.ExportRequestOut], tags=["security"],
            summary="明文导出申请 Export requests")
def list_export_requests(status: str | None = Query(None, pattern="^(pending|approved|rejected|used)$"),
                         principal: Principal = require("export.approve"),
                         session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return [privacy.export_request_out(r) for r in privacy.list_export_requests(session, principal, status)]


@router.post("/security/export-requests/{request_id}/decision", response_model=schemas.ExportRequestOut,
             tags=["security"], summary="审批明文导出 Approve or reject an export request")
def decide_export_request(request_id: int, body: schemas.ExportDecisionIn,
                          principal: Principal = require("export.approve"),
                          session: Session = UnitOfWork) -> dict[str, Any]:
    return privacy.export_request_out(privacy.decide_export(session, principal, request_id, body.approve, body.note,
                                                            body.valid_days))


# ---------------------------------------------------------------------------------------------- safe room


@router.get("/saferoom/queries", response_model=list[schemas.SafeRoomQueryOut], tags=["security"],
            summary="数据安全屋查询目录 Safe-room queries")
def list_saferoom_queries(principal: Principal = require("saferoom.query"),
                          session: Session = UnitOfWork) -> list[dict[str, Any]]:
    return [saferoom.query_out(q) for q in saferoom.list_queries(session)]


@router.post("/saferoom/queries", response_model=schemas.SafeRoomQueryOut, status_code=201, tags=["security"],
             summary="提交聚合查询（待安全管理员审批） Propose an aggregate query")
def propose_saferoom_query(body: schemas.SafeRoomQueryIn, principal: Principal = require("saferoom.query"),
                           session: Session = UnitOfWork) -> dict[str, Any]:
    return saferoom.query_out(saferoom.propose(session, principal, body.name, body.title, body.sql,
                                               body.params_schema, body.count_columns,
                                               body.measure_columns))


@router.post("/saferoom/queries/{name}/decision", response_model=schemas.SafeRoomQueryOut, tags=["security"],
             summary="审批聚合查询 Approve or reject a safe-room query")
def decide_saferoom_query(name: str, body: schemas.SafeRoomDecisionIn,
                          principal: Principal = require("saferoom.approve"),
                          session: Session = UnitOfWork) -> dict[str, Any]:
    return saferoom.query_out(saferoom.decide(session, principal, name, body.approve))


@router.post("/saferoom/queries/{name}/run", response_model=schemas.SafeRoomResult, tags=["security"],
             summary="运行已批准的聚合查询（小格抑制） Run an approved query (small cells suppressed)")
def run_saferoom_query(name: str, params: dict[str, str | int | float | bool | None],
                       principal: Principal = require("saferoom.query"),
                       session: Session = UnitOfWork) -> dict[str, Any]:
    return saferoom.run(session, principal, name, params, k=get_settings().safe_room_k)
