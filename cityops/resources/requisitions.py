"""Requisition (征用) of private resources with its legal record (emergency.md §8): the deciding
authority must be a government (or its department) at county level or above (2024 突发事件应对法
Art. 12); the record holds the legal basis, owner, item and condition before, the take-over, the
return and condition after, the compensation (amount, basis, approval, payment). The lifecycle is
a table (``data/requisition_lifecycle.json``); ``close`` needs the complete return and
compensation records. Printable notice (《应急处置征用通知书》) and return receipt.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import InvalidInput, Problem
from cityops.lifecycle import Context
from cityops.lifecycle import service as lifecycle
from cityops.resources import machines, schemas
from cityops.resources.models import Requisition
from cityops.resources.scopes import get_scoped, readable
from cityops.resources.service import place_codes
from cityops.resources.shipments import incident_id_of, new_code
from cityops.security import audit
from cityops.security.masking import mask_name, mask_phone
from cityops.security.principal import Principal

TZ = ZoneInfo("Asia/Shanghai")
LEVELS = {"county": "县（区）级", "city": "市级", "province": "省级", "national": "国家级"}


def register(session: Session, principal: Principal, body: schemas.RequisitionIn) -> dict[str, Any]:
    codes = place_codes(session, [(body.lon, body.lat)], [["body"]])[0]
    probs = []
    if not body.take_first and not body.notice_no:
        probs.append(Problem("需填写征用通知书编号（先行征用的可后补） the requisition notice number is needed "
                             "(unless taken first, paperwork later)", ["body", "notice_no"], "missing"))
    if body.take_first and body.paperwork_due is None:
        probs.append(Problem("先行征用须给出补办手续期限 taken first: the deadline for the paperwork is needed",
                             ["body", "paperwork_due"], "missing"))
    if probs:
        raise InvalidInput(probs)
    data = body.model_dump(exclude={"incident"})
    for k in ("paperwork_due", "planned_return"):
        if data[k] is not None:
            data[k] = clock.aware(data[k], k)
    r = Requisition(code=new_code("ZY"), incident_id=incident_id_of(session, principal, body.incident),
                    state="registered", created_by=principal.username[:120], created_at=clock.now(), **data, **codes)
    session.add(r)
    session.flush()
    lifecycle.add_entry(session, principal, "rs_requisition", r.id, "register", to_state="registered")
    audit.record(session, principal, "rs_requisition.register", "rs_requisition", r.id,
                 detail={"authority": r.authority, "item": r.item})
    return out(r, principal)


def out(r: Requisition, principal: Principal | None = None, unmask: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {c.key: getattr(r, c.key) for c in Requisition.__table__.columns}
    if not unmask:
        if r.owner_kind == "person":
            d["owner_name"] = mask_name(r.owner_name)
        d["owner_contact"] = mask_phone(r.owner_contact)
    d["state_label"] = machines.REQUISITION.state_label(r.state)
    d["authority_level_label"] = LEVELS.get(r.authority_level, r.authority_level)
    d["missing_for_close"] = [p.loc[-1] for p in machines.records_missing(r)]
    return d


def detail(session: Session, principal: Principal, ref: str) -> dict[str, Any]:
    r = get_scoped(session, principal, Requisition, ref, loc="requisition")
    d = out(r, principal)
    d["timeline"] = lifecycle.timeline(session, "rs_requisition", r.id)
    d["allowed_actions"] = lifecycle.allowed_actions(session, principal, machines.requisition_table(), r)
    return d


def list_requisitions(session: Session, principal: Principal, *, state: str | None = None, incident: int | None = None,
                      page: int = 1, page_size: int = 100) -> dict[str, Any]:
    stmt = readable(principal, Requisition)
    if state:
        stmt = stmt.where(Requisition.state == state)
    if incident is not None:
        stmt = stmt.where(Requisition.incident_id == incident)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = session.scalars(stmt.order_by(Requisition.id).offset((page - 1) * page_size).limit(page_size))
    return {"total": total, "items": [out(r, principal) for r in rows]}


def act(session: Session, principal: Principal, ref: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    r = get_scoped(session, principal, Requisition, ref, for_update=True, loc="requisition")
    lifecycle.perform(session, principal, machines.requisition_table(), r, action, body, at=clock.now())
    return detail(session, principal, str(r.id))


# ---------------------------------------------------------------- effects


def _when(ctx: Context, key: str) -> dt.datetime:
    v = (ctx.body or {}).get(key)
    if v is None:
        return ctx.at
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    try:
        return clock.aware(v, key)
    except ValueError as exc:
        raise InvalidInput([Problem(f"{key} 须带时区 must carry a time zone", ["body", key], "value_error")]) from exc


def take_effect(ctx: Context) -> None:
    ctx.obj.taken_at = ctx.at


def return_effect(ctx: Context) -> None:
    r, b = ctx.obj, ctx.body or {}
    at = _when(ctx, "returned_at")
    if r.taken_at and at < r.taken_at:
        raise InvalidInput([Problem("归还时间早于征用时间 returned before it was taken", ["body", "returned_at"],
                                    "value_error")])
    r.returned_at, r.condition_after, r.damage = at, b.get("condition_after"), b.get("damage")
    ctx.data["returned_at"] = at


def compensation_effect(ctx: Context) -> None:
    r, b = ctx.obj, ctx.body or {}
    r.compensation_amount = float(b["amount"])
    r.compensation_basis = b.get("basis")
    r.compensation_approved_by = b.get("approved_by") or ctx.principal.username[:120]
    ctx.data["amount"] = r.compensation_amount


def payment_effect(ctx: Context) -> None:
    r, b = ctx.obj, ctx.body or {}
    if r.compensation_amount is None:
        raise InvalidInput([Problem("尚未登记补偿 record the compensation first", ["body", "paid_at"], "missing_record")])
    r.compensation_paid_at = _when(ctx, "paid_at")
    r.payment_ref = b.get("payment_ref")


# ---------------------------------------------------------------- printable documents


def _fmt(v: dt.datetime | None) -> str:
    return v.astimezone(TZ).strftime("%Y年%m月%d日 %H:%M") if v else "＿＿＿＿"


def document(session: Session, principal: Principal, ref: str, kind: str) -> str:
    """The printable notice (``notice``) or return receipt (``return``) as an HTML page (unmasked:
    it is handed to the owner; the read is audited)."""
    r = get_scoped(session, principal, Requisition, ref, loc="requisition")
    audit.record(session, principal, f"rs_requisition.print_{kind}", "rs_requisition", r.id)
    e = html.escape
    ids = "，".join(f"{e(k)}：{e(str(v))}" for k, v in (r.identifiers or {}).items()) or "—"
    rows = [("通知书编号", e(r.notice_no or "（先行征用，后补）")), ("决定机关", f"{e(r.authority)}（{LEVELS.get(r.authority_level, '')}）"),
            ("法律依据", e(r.legal_basis)), ("被征用人", e(r.owner_name)), ("联系方式", e(r.owner_contact or "—")),
            ("征用财产", f"{e(r.item)} × {r.quantity}"), ("标识", ids), ("征用前状况", e(r.condition_before)),
            ("评估机构", e(r.appraiser or "—")), ("用途", e(r.purpose or "—")), ("保管人", e(r.custodian or "—")),
            ("征用时间", _fmt(r.taken_at)), ("预计归还", _fmt(r.planned_return))]
    title = "应急处置征用通知书"
    if kind == "return":
        title = "征用财产归还及补偿确认书"
        rows += [("归还时间", _fmt(r.returned_at)), ("归还时状况", e(r.condition_after or "＿＿＿＿")),
                 ("损坏或灭失", e(r.damage or "无")),
                 ("补偿金额（元）", f"{r.compensation_amount:.2f}" if r.compensation_amount is not None else "＿＿＿＿"),
                 ("补偿依据", e(r.compensation_basis or "＿＿＿＿")), ("支付时间", _fmt(r.compensation_paid_at)),
                 ("支付凭证", e(r.payment_ref or "—"))]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>{title} {e(r.code)}</title>"
            "<style>body{font-family:serif;max-width:46em;margin:2em auto}table{width:100%;border-collapse:collapse}"
            "th,td{border:1px solid #333;padding:.4em;text-align:left}th{width:9em}</style></head><body>"
            f"<h1 style='text-align:center'>{title}</h1><p>编号：{e(r.code)}</p><table>{body}</table>"
            "<p>依据《中华人民共和国突发事件应对法》，被征用的财产使用完毕应当及时返还；财产被征用或者征用后毁损、灭失的，"
            "应当给予公平、合理的补偿。</p><p style='margin-top:3em'>决定机关（盖章）　　　　　　被征用人（签字）</p>"
            "</body></html>")
