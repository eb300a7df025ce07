"""Personal data: the field catalogue (data class per GB/T 43697 and a sensitivity flag),
masking of records, audited unmasking, approved unmasked exports, and reading the audit log.

Domains declare their fields at import time::

    from cityops.security.privacy import declare_fields, F
    PERSON_FIELDS = declare_fields("person", [
        F("name", "姓名", "name", "important", True, "name"),
        F("id_number", "身份证号", "ID number", "important", True, "id_number"),
        ...])

and mask their output with ``mask_record(row, PERSON_FIELDS, principal)``; with
``unmask_reason`` (and the ``person.unmask`` permission) one record comes back clear and the
unmask is audited.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Forbidden, InvalidInput, NotFound, Problem
from cityops.lifecycle import Context, Machine
from cityops.lifecycle import service as lifecycle
from cityops.security import audit, masking
from cityops.security.models import AuditLog, ExportRequest
from cityops.security.principal import Principal

DATA_CLASSES: dict[str, tuple[str, str]] = {
    "core": ("核心数据", "core data"),
    "important": ("重要数据", "important data"),
    "general": ("一般数据", "general data"),
}

UNMASK_PERMISSION = "person.unmask"
MIN_REASON = 4


def _id_mode() -> str:
    return os.environ.get("CITYOPS_ID_MASK_MODE", "6+4")


MASKERS: dict[str, Callable[[Any], Any]] = {
    "name": masking.mask_name,
    "id_number": lambda v: masking.mask_id_number(v, _id_mode()),
    "phone": masking.mask_phone,
    "address": masking.mask_address,
    "plate": masking.mask_plate,
    "bank_card": masking.mask_bank_card,
    "email": masking.mask_email,
    "ip": masking.mask_ip,
    "birth_date": lambda v: None if v is None else str(v)[:4] + "-**-**",
    "hide": lambda v: None if v is None else "******",
}


@dataclass(frozen=True)
class FieldSpec:
    field: str
    label_zh: str
    label_en: str
    data_class: str = "general"
    sensitive: bool = False
    masker: str | None = None
    entity: str = ""

    def mask(self, value: Any) -> Any:
        if not self.sensitive or self.masker is None or value is None:
            return value
        return MASKERS[self.masker](value)


def F(field: str, label_zh: str, label_en: str, data_class: str = "general", sensitive: bool = False,
      masker: str | None = None) -> FieldSpec:
    return FieldSpec(field, label_zh, label_en, data_class, sensitive, masker)


_REGISTRY: dict[str, dict[str, FieldSpec]] = {}


def declare_fields(entity: str, specs: Iterable[FieldSpec]) -> dict[str, FieldSpec]:
    """Register an entity's fields in the catalogue; returns {field: spec}."""
    out: dict[str, FieldSpec] = {}
    for s in specs:
        if s.data_class not in DATA_CLASSES:
            raise ValueError(f"{entity}.{s.field}: data class {s.data_class!r} not in {list(DATA_CLASSES)}")
        if s.masker is not None and s.masker not in MASKERS:
            raise ValueError(f"{entity}.{s.field}: unknown masker {s.masker!r}")
        out[s.field] = FieldSpec(s.field, s.label_zh, s.label_en, s.data_class, s.sensitive, s.masker, entity)
    _REGISTRY.setdefault(entity, {}).update(out)
    return dict(_REGISTRY[entity])


def fields_for(entity: str) -> dict[str, FieldSpec]:
    return dict(_REGISTRY.get(entity, {}))


def field_catalogue() -> list[dict[str, Any]]:
    return [{"entity": e, "field": s.field, "label_zh": s.label_zh, "label_en": s.label_en,
             "data_class": s.data_class, "data_class_label": DATA_CLASSES[s.data_class][0],
             "sensitive": s.sensitive, "masker": s.masker}
            for e in sorted(_REGISTRY) for s in _REGISTRY[e].values()]


# The platform's own personal fields (accounts, audit source addresses, area responsibles).
declare_fields("account", [F("display_name", "姓名", "name", "general", False),
                           F("username", "用户名", "username")])
declare_fields("audit_log", [F("source_ip", "来源地址", "source address", "general", True, "ip")])
declare_fields("area_responsible", [F("name", "责任人", "responsible person", "general", False),
                                    F("phone", "联系电话", "phone", "important", True, "phone")])


def _specs(field_specs: Mapping[str, FieldSpec] | Iterable[FieldSpec] | str) -> Mapping[str, FieldSpec]:
    if isinstance(field_specs, str):
        return fields_for(field_specs)
    if isinstance(field_specs, Mapping):
        return field_specs
    return {s.field: s for s in field_specs}


def check_unmask(principal: Principal, reason: str | None) -> str:
    """Raise unless ``principal`` may unmask (permission ``person.unmask`` and a stated reason)."""
    if not principal.can(UNMASK_PERMISSION):
        raise Forbidden([Problem(f"查看明文需要权限 {UNMASK_PERMISSION} permission {UNMASK_PERMISSION} required to "
                                 "unmask", ["query", "unmask_reason"], "forbidden")])
    text = (reason or "").strip()
    if len(text) < MIN_REASON:
        raise InvalidInput([Problem(f"查看明文须填写事由（至少 {MIN_REASON} 个字） a reason of at least {MIN_REASON} "
                                    "characters is required to unmask", ["query", "unmask_reason"], "missing")])
    return text


def mask_record(obj: Mapping[str, Any], field_specs: Mapping[str, FieldSpec] | Iterable[FieldSpec] | str,
                principal: Principal, unmask_reason: str | None = None, *, session: Session | None = None,
                object_type: str | None = None, object_id: object = None) -> dict[str, Any]:
    """A copy of ``obj`` with every sensitive field masked. With ``unmask_reason`` the record comes
    back clear, provided the principal holds ``person.unmask``; the unmask is audited (action
    ``unmask``) in ``session`` (required then) with the reason and the fields shown."""
    specs = _specs(field_specs)
    if unmask_reason is not None:
        reason = check_unmask(principal, unmask_reason)
        if session is None:
            raise ValueError("mask_record(unmask_reason=...) needs session= so that the unmask is audited")
        shown = sorted(f for f, s in specs.items() if s.sensitive and f in obj)
        audit.record(session, principal, "unmask", object_type or next(iter(specs.values())).entity or "record",
                     object_id if object_id is not None else obj.get("id"), detail={"reason": reason, "fields": shown})
        return dict(obj)
    out = dict(obj)
    for f, s in specs.items():
        if f in out and s.sensitive:
            out[f] = s.mask(out[f])
    return out


def masked_fields(field_specs: Mapping[str, FieldSpec] | Iterable[FieldSpec] | str) -> list[str]:
    return sorted(f for f, s in _specs(field_specs).items() if s.sensitive)


# ----------------------------------------------------------------------------------------------
# export requests


def request_export(session: Session, principal: Principal, object_type: str, purpose: str,
                   fields: list[str], filters: dict[str, Any]) -> ExportRequest:
    specs = fields_for(object_type)
    unknown = [f for f in fields if specs and f not in specs]
    if unknown:
        raise InvalidInput([Problem(f"未知字段 unknown field {f!r} of {object_type}", ["body", "fields", i], "unknown")
                            for i, f in enumerate(fields) if f in unknown])
    row = ExportRequest(requested_by=principal.username, requester_id=principal.account_id, object_type=object_type,
                        purpose=purpose.strip(), fields=fields, filters=filters, status="pending",
                        created_at=clock.now())
    session.add(row)
    session.flush()
    audit.record(session, principal, "export.request", "export_request", row.id,
                 detail={"object_type": object_type, "purpose": purpose, "fields": fields, "filters": filters})
    return row


def list_export_requests(session: Session, principal: Principal, status: str | None = None) -> list[ExportRequest]:
    stmt = select(ExportRequest).order_by(ExportRequest.id.desc())
    if status:
        stmt = stmt.where(ExportRequest.status == status)
    return list(session.scalars(stmt.limit(500)))


def _decided(ctx: Context) -> None:
    row, now = ctx.obj, clock.now()
    row.decided_by, row.decided_at = ctx.principal.username, now
    row.decision_note = (ctx.body or {}).get("note")
    approve = ctx.transition is not None and ctx.transition.action == "approve"
    row.expires_at = now + dt.timedelta(days=int((ctx.body or {}).get("valid_days", 7))) if approve else None


def _not_requester(ctx: Context) -> str | None:
    """Decisions are never the requester's; using the approval is only the requester's."""
    mine = ctx.obj.requested_by == ctx.principal.username
    if ctx.transition is not None and ctx.transition.action == "use":
        return None if mine else "只能由申请人本人使用 only the requester may use the approval"
    if mine:
        return "不得审批本人的申请 you may not decide on your own request (separation of duties)"
    return None


EXPORT_MACHINE = Machine(
    name="export_request",
    states={"pending": {"zh": "待审批", "en": "pending"}, "approved": {"zh": "已批准", "en": "approved"},
            "rejected": {"zh": "已驳回", "en": "rejected"}, "used": {"zh": "已使用", "en": "used"}},
    actions={"approve": {"zh": "批准", "en": "approve"}, "reject": {"zh": "驳回", "en": "reject"},
             "use": {"zh": "使用（一次性）", "en": "use (once)"}},
    default_permission="export.approve", effects={"decided": _decided}, actor_check=_not_requester,
    state_attr="status")
EXPORT_TABLE = EXPORT_MACHINE.load_file(Path(__file__).resolve().parent / "data" / "export_lifecycle.json")


def decide_export(session: Session, principal: Principal, request_id: int, approve: bool, note: str | None,
                  valid_days: int = 7) -> ExportRequest:
    """Approve or reject a pending request (409 once decided; 403 for its requester)."""
    row = session.get(ExportRequest, request_id)
    if row is None:
        raise NotFound([Problem(f"申请不存在 no export request {request_id}", ["path", "request_id"], "not_found")])
    lifecycle.perform(session, principal, EXPORT_TABLE, row, "approve" if approve else "reject",
                      {"note": note, "valid_days": valid_days},
                      audit_detail={"note": note, "requested_by": row.requested_by, "object_type": row.object_type})
    return row


def use_export_approval(session: Session, principal: Principal, object_type: str,
                        request_id: int | None) -> ExportRequest | None:
    """For exporters: ``None`` when no request is named (export masked); otherwise the approved
    request of this principal for this object type, marked used (single use) and audited.
    Raises Forbidden when the request is not approved, expired, used, or someone else's."""
    if request_id is None:
        return None
    row = session.get(ExportRequest, request_id)
    problem: str | None = None
    if row is None or row.requested_by != principal.username or row.object_type != object_type:
        problem = "没有本人的此类导出申请 no export request of yours for this data"
    elif row.status != "approved":
        problem = f"导出申请状态为 {row.status}，未获批准 export request is {row.status}, not approved"
    elif row.expires_at is not None and row.expires_at < clock.now():
        problem = "导出申请已过期 export approval expired"
    if problem:
        audit.record(session, principal, "export.unmasked", object_type, request_id, result="denied",
                     detail={"reason": problem})
        raise Forbidden([Problem(problem, ["query", "export_request_id"], "export_not_approved")], persist=True)
    assert row is not None
    ctx = Context(session, principal, row, extra={"object_type": EXPORT_MACHINE.name})
    EXPORT_TABLE.apply(ctx, EXPORT_TABLE.transitions[("approved", "use")])  # checked above: the requester's own
    lifecycle.write_timeline(ctx, "approved", "used")
    audit.record(session, principal, "export.unmasked", object_type, request_id,
                 detail={"purpose": row.purpose, "approved_by": row.decided_by})
    return row


def export_row(obj: Mapping[str, Any], field_specs: Mapping[str, FieldSpec] | Iterable[FieldSpec] | str,
               approval: ExportRequest | None) -> dict[str, Any]:
    """One exported row: masked unless an approved request covers it (its ``fields``, or all
    sensitive fields when the request lists none)."""
    specs = _specs(field_specs)
    out = dict(obj)
    clear = set(approval.fields or specs) if approval is not None else set()
    for f, s in specs.items():
        if f in out and s.sensitive and f not in clear:
            out[f] = s.mask(out[f])
    return out


def export_request_out(r: ExportRequest) -> dict[str, Any]:
    return {"id": r.id, "requested_by": r.requested_by, "object_type": r.object_type, "purpose": r.purpose,
            "fields": r.fields, "filters": r.filters, "status": r.status, "decided_by": r.decided_by,
            "decided_at": r.decided_at, "decision_note": r.decision_note, "expires_at": r.expires_at,
            "created_at": r.created_at}


# ----------------------------------------------------------------------------------------------
# reading the audit log (审计管理员 only, via audit.read)


def list_audit(session: Session, principal: Principal, *, action: str | None = None, username: str | None = None,
               object_type: str | None = None, object_id: str | None = None, result: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None, page: int = 1,
               page_size: int = 100) -> tuple[int, list[dict[str, Any]]]:
    stmt = select(AuditLog)
    for col, val in ((AuditLog.action, action), (AuditLog.username, username), (AuditLog.object_type, object_type),
                     (AuditLog.object_id, object_id), (AuditLog.result, result)):
        if val is not None:
            stmt = stmt.where(col == val)
    for name, t in (("since", since), ("until", until)):
        if t is not None and t.tzinfo is None:
            raise InvalidInput([Problem("时间须带时区 time needs a UTC offset, e.g. 2024-05-01T08:00:00+08:00",
                                        ["query", name], "timezone")])
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.at < until)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = session.scalars(stmt.order_by(AuditLog.seq.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    items = [{"seq": r.seq, "at": r.at, "username": r.username, "account_id": r.account_id, "roles": r.roles,
              "action": r.action, "object_type": r.object_type, "object_id": r.object_id, "result": r.result,
              "source_ip": r.source_ip, "detail": json.loads(r.detail) if r.detail else None,
              "prev_hash": r.prev_hash, "hash": r.hash} for r in rows]
    audit.record(session, principal, "audit.read", "audit_log", None,
                 detail={k: v for k, v in (("action", action), ("username", username), ("object_type", object_type),
                                           ("object_id", object_id), ("result", result), ("page", page)) if v})
    return total, items
