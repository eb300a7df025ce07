"""Pydantic I/O of the security API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime | None = None


class LoginIn(BaseModel):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=200)


class LoginOut(BaseModel):
    username: str
    display_name: str | None
    roles: list[str]
    permissions: list[str]
    area_code: str | None
    department_code: str | None
    expires_at: dt.datetime
    csrf_token: str


class PasswordChangeIn(BaseModel):
    username: str = Field(..., min_length=1, max_length=64)
    old_password: str = Field(..., min_length=1, max_length=200)
    new_password: str = Field(..., min_length=1, max_length=200)


class MeOut(BaseModel):
    username: str
    kind: str
    roles: list[str]
    role_labels: list[str]
    permissions: list[str]
    area_code: str | None
    department_code: str | None


class AccountOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    area_code: str | None
    department_code: str | None
    active: bool
    roles: list[str]
    locked_until: dt.datetime | None
    failed_logins: int
    last_login_at: dt.datetime | None
    password_changed_at: dt.datetime
    password_expired: bool
    created_at: dt.datetime


class AccountPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[AccountOut]


class AccountCreate(BaseModel):
    username: str = Field(..., min_length=3, max_length=64)
    display_name: str | None = Field(None, max_length=100)
    password: str | None = Field(None, max_length=200, description="omit to generate a temporary password")
    area_code: str | None = Field(None, pattern=r"^\d{6}(\d{3}){0,3}$")
    department_code: str | None = Field(None, max_length=40)


class AccountCreated(AccountOut):
    initial_password: str | None = Field(None, description="shown once; must be changed at first sign-in "
                                                           "when generated")


class AccountPatch(BaseModel):
    display_name: str | None = Field(None, max_length=100)
    area_code: str | None = Field(None, pattern=r"^\d{6}(\d{3}){0,3}$")
    department_code: str | None = Field(None, max_length=40)
    active: bool | None = None


class RolesIn(BaseModel):
    roles: list[str] = Field(..., max_length=20)


class PasswordOut(BaseModel):
    temporary_password: str


class RoleOut(BaseModel):
    code: str
    label_zh: str
    label_en: str
    admin_triad: bool
    builtin: bool
    permissions: list[str]


class RoleCreate(BaseModel):
    code: str = Field(..., pattern=r"^[a-z][a-z0-9_]{2,39}$")
    label_zh: str = Field(..., min_length=1, max_length=100)
    label_en: str = Field(..., min_length=1, max_length=100)
    permissions: list[str] = Field(default_factory=list)


class PermissionsIn(BaseModel):
    permissions: list[str]


class PermissionOut(BaseModel):
    name: str
    label_zh: str
    label_en: str


class ApiKeyIn(BaseModel):
    name: str = Field(..., min_length=3, max_length=64)
    permissions: list[str] = Field(..., min_length=1)
    area_code: str | None = Field(None, pattern=r"^\d{6}(\d{3}){0,3}$")
    department_code: str | None = Field(None, max_length=40)
    description: str | None = Field(None, max_length=200)
    expires_days: int = Field(365, ge=1, le=730, description="有效期（天） days until the key expires")


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    permissions: list[str]
    area_code: str | None
    department_code: str | None
    description: str | None
    created_by: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(..., description="the key itself: shown once, store it now")


class AuditOut(BaseModel):
    seq: int
    at: dt.datetime
    username: str
    account_id: int | None
    roles: str
    action: str
    object_type: str
    object_id: str | None
    result: str
    source_ip: str | None
    detail: Any
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[AuditOut]


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str | None
    last_seq: int = 0
    legacy_rows: int = 0
    anchors: int = 0


class FieldSpecOut(BaseModel):
    entity: str
    field: str
    label_zh: str
    label_en: str
    data_class: str
    data_class_label: str
    sensitive: bool
    masker: str | None


class ExportRequestIn(BaseModel):
    object_type: str = Field(..., min_length=1, max_length=40)
    purpose: str = Field(..., min_length=4, max_length=500)
    fields: list[str] = Field(default_factory=list)
    filters: dict[str, Any] = Field(default_factory=dict)


class ExportDecisionIn(BaseModel):
    approve: bool
    note: str | None = Field(None, max_length=500)
    valid_days: int = Field(7, ge=1, le=90)


class ExportRequestOut(BaseModel):
    id: int
    requested_by: str
    object_type: str
    purpose: str
    fields: list[str]
    filters: dict[str, Any]
    status: str
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    expires_at: dt.datetime | None
    created_at: dt.datetime


class SafeRoomQueryIn(BaseModel):
    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{2,63}$")
    title: str = Field(..., min_length=1, max_length=200)
    sql: str = Field(..., min_length=10, max_length=20000)
    params_schema: dict[str, dict[str, Any]] = Field(default_factory=dict)
    count_columns: list[str] = Field(..., min_length=1, description="columns that are counts of persons; the "
                                                                       "first one is the group size")
    measure_columns: list[str] = Field(default_factory=list, description="other aggregates (sums, averages) hidden "
                                                                          "when the group is small")


class SafeRoomQueryOut(BaseModel):
    id: int
    name: str
    title: str
    sql: str
    params_schema: dict[str, Any]
    count_columns: list[str]
    measure_columns: list[str]
    status: str
    proposed_by: str | None
    approved_by: str | None
    approved_at: dt.datetime | None


class SafeRoomDecisionIn(BaseModel):
    approve: bool


class SafeRoomResult(BaseModel):
    name: str
    k: int
    columns: list[str]
    rows: list[dict[str, Any]]
    suppressed_groups: int = Field(description="groups under k, dropped whole (keys included)")
    suppressed_rows: int | None = Field(description="persons in the dropped groups; null when fewer than k")
    note: str


class AdminChangeIn(BaseModel):
    kind: str = Field(..., max_length=40, description="account.roles / account.update / account.reset_password / "
                                                       "role.permissions / role.create")
    target: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$",
                        description="账号编号或角色代码 account id or role code")
    payload: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(..., min_length=1, max_length=500)


class AdminChangeDecisionIn(BaseModel):
    approve: bool
    note: str | None = Field(None, max_length=500)


class AdminChangeOut(BaseModel):
    id: int
    kind: str
    target: str
    payload: dict[str, Any]
    permission: str
    reason: str
    status: str
    requested_by: str
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    temporary_password: str | None = Field(None, description="重置密码时只显示一次 shown once, on approval of a reset")
