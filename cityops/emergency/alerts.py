"""Public warnings (预警信息发布): drafts, the approval workflow (``data/warning_lifecycle.json``:
approver ≠ drafter), and the CAP 1.2 message issued at every publish / update / cancel.

Every issued message is validated against the OASIS XSD before it is stored (a message that does
not validate is refused, naming the XSD's reason); the stored XML is what the public ``.cap`` URL
and the Atom feed serve, so an export is one indexed read. Issuing also tells the street and
community workstations of the warned areas (last-mile delivery, 敲门入户) and enqueues
``public_warning.issued`` for the outbound channels (webhooks).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cityops.emergency import cap, machines, rules
from cityops.emergency.models_command import Incident, PublicWarning, WarningMessage
from cityops.emergency.scopes import WARNING_SCOPE
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.geo import geojson
from cityops.jobs import service as jobs
from cityops.lifecycle import Context
from cityops.lifecycle import service as lifecycle
from cityops.security import audit, scope
from cityops.security.principal import Principal

CapCategory = Literal["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
                      "CBRNE", "Other"]
ResponseType = Literal["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]


class WarningChanges(BaseModel):
    """What an update may change (everything optional)."""

    model_config = ConfigDict(extra="forbid")
    level: Literal["red", "orange", "yellow", "blue"] | None = None
    headline: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    instruction: str | None = Field(default=None, max_length=4000)
    headline_en: str | None = Field(default=None, max_length=200)
    description_en: str | None = Field(default=None, max_length=4000)
    instruction_en: str | None = Field(default=None, max_length=4000)
    certainty: Certainty | None = None
    response_type: ResponseType | None = None
    area_codes: list[str] | None = Field(default=None, min_length=1, max_length=50)
    onset_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    note: str | None = Field(default=None, max_length=300)


class WarningIn(WarningChanges):
    """A new draft."""

    level: Literal["red", "orange", "yellow", "blue"]
    status: Literal["Actual", "Exercise"] = "Actual"
    event: str = Field(min_length=1, max_length=60)
    event_en: str | None = Field(default=None, max_length=60)
    cap_category: CapCategory | None = None
    headline: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    incident: str | None = Field(default=None, max_length=24)
    effective_at: dt.datetime | None = None


def now() -> dt.datetime:
    return jobs.now()


def _check_times(values: dict[str, Any], loc: list[str | int]) -> list[Problem]:
    out = []
    for k in ("effective_at", "onset_at", "expires_at"):
        v = values.get(k)
        if v is not None and v.tzinfo is None:
            out.append(Problem("时间须带时区 the time needs a time zone", [*loc, k], "value_error"))
    exp, onset = values.get("expires_at"), values.get("onset_at") or values.get("effective_at")
    if exp is not None and onset is not None and exp.tzinfo and onset.tzinfo and exp <= onset:
        out.append(Problem("失效时间须晚于生效时间 expires_at must be after onset/effective", [*loc, "expires_at"],
                           "value_error"))
    return out


def _areas(session: Session, codes: list[str], loc: list[str | int]) -> list[dict[str, Any]]:
    from cityops.config import get_settings
    from cityops.geo import service as geo

    out, probs = [], []
    for i, c in enumerate(codes):
        if not (isinstance(c, str) and c.isdigit() and len(c) in (6, 9, 12, 15)
                and c.startswith(get_settings().district_code)):
            probs.append(Problem(f"区划代码无效 not an area code of the district: {c!r}", [*loc, i], "value_error"))
            continue
        try:
            a = geo.get_area(session, c)
        except NotFound:
            probs.append(Problem(f"未知区划 unknown area {c}", [*loc, i], "unknown"))
            continue
        out.append({"code": a.code, "name": a.name, "geometry": a.geom})
    if probs:
        raise InvalidInput(probs)
    return out


def _common_area(codes: list[str]) -> str:
    best = codes[0]
    for c in codes[1:]:
        n = 0
        while n < min(len(best), len(c)) and best[n] == c[n]:
            n += 1
        best = best[:n]
    for n in (15, 12, 9, 6):
        if len(best) >= n:
            return best[:n]
    return codes[0][:6]


def draft(session: Session, principal: Principal, body: WarningIn) -> dict[str, Any]:
    """A new warning draft (status Actual or Exercise), optionally for an incident."""
    from cityops.config import get_settings
    from cityops.emergency import incidents

    values = body.model_dump()
    probs = _check_times(values, ["body"])
    if probs:
        raise InvalidInput(probs)
    inc = incidents.get_incident(session, principal, body.incident) if body.incident else None
    codes = body.area_codes or ([inc.area_code] if inc else [get_settings().district_code])
    areas = _areas(session, codes, ["body", "area_codes"])
    if not scope.allows(principal, WARNING_SCOPE, area_code=_common_area(codes)):
        raise InvalidInput([Problem("预警范围不在你的辖区 the warned area is outside your area", ["body", "area_codes"],
                                    "outside")])
    cat = body.cap_category
    if cat is None:
        cat = rules.resolve_kind(inc.category, inc.subtype).subtype.cap_category if inc else "Met"
    at = now()
    w = PublicWarning(incident_id=inc.id if inc else None, state="draft", level=body.level,
                      status="Exercise" if (body.status == "Exercise" or (inc is not None and inc.exercise)) else "Actual",
                      event=body.event, event_en=body.event_en, cap_category=cat,
                      certainty=body.certainty or "Likely", response_type=body.response_type, headline=body.headline,
                      description=body.description, instruction=body.instruction, headline_en=body.headline_en,
                      description_en=body.description_en, instruction_en=body.instruction_en,
                      area_codes=[a["code"] for a in areas], area_code=_common_area(codes),
                      area_desc="、".join(a["name"] for a in areas)[:300], effective_at=body.effective_at,
                      onset_at=body.onset_at, expires_at=body.expires_at, note=body.note,
                      drafted_by=principal.username[:80], drafted_by_id=principal.account_id, created_at=at,
                      updated_at=at)
    session.add(w)
    session.flush()
    lifecycle.add_entry(session, principal, "public_warning", w.id, "draft", at=at, to_state="draft",
                        note=w.headline, data={"level": w.level, "status": w.status})
    audit.record(session, principal, "public_warning.draft", "public_warning", w.id)
    jobs.enqueue(session, "public_warning.drafted", {"id": w.id, "level": w.level, "status": w.status,
                                                     "area_code": w.area_code, "incident_id": w.incident_id})
    session.flush()
    return detail(session, principal, w)


def edit_draft(session: Session, principal: Principal, warning_id: int, changes: WarningChanges) -> dict[str, Any]:
    """Change a draft (only in state draft: otherwise 409 naming the state and the actions allowed)."""
    w = get_warning(session, principal, warning_id, for_update=True)
    if w.state != "draft":
        raise machines.warning_table().illegal(Context(session, principal, w), "edit")
    _apply(session, w, changes.model_dump(exclude_unset=True), ["body"])
    lifecycle.add_entry(session, principal, "public_warning", w.id, "edit", at=now(), from_state=w.state,
                        to_state=w.state, data={"fields": sorted(changes.model_dump(exclude_unset=True))})
    session.flush()
    return detail(session, principal, w)


def _apply(session: Session, w: PublicWarning, values: dict[str, Any], loc: list[str | int]) -> list[str]:
    merged = {"onset_at": w.onset_at, "effective_at": w.effective_at, "expires_at": w.expires_at, **values}
    probs = _check_times(merged, loc)
    if probs:
        raise InvalidInput(probs)
    if values.get("area_codes"):
        areas = _areas(session, values["area_codes"], [*loc, "area_codes"])
        values["area_codes"] = [a["code"] for a in areas]
        w.area_code = _common_area(values["area_codes"])
        w.area_desc = "、".join(a["name"] for a in areas)[:300]
    for k, v in values.items():
        if v is not None or k in ("instruction", "note", "expires_at", "onset_at"):
            setattr(w, k, v)
    w.updated_at = now()
    return sorted(values)


# ---------------------------------------------------------------- effects of the table


def record_approval(ctx: Context) -> None:
    w: PublicWarning = ctx.obj
    w.approved_by, w.approved_by_id, w.approved_at = ctx.principal.username[:80], ctx.principal.account_id, ctx.at


def clear_approval(ctx: Context) -> None:
    w: PublicWarning = ctx.obj
    w.approved_by = w.approved_by_id = w.approved_at = None


def apply_changes(ctx: Context) -> None:
    try:
        ch = WarningChanges.model_validate(ctx.body.get("changes"))
    except ValidationError as exc:
        raise InvalidInput(rules.pydantic_problems(exc, ["body", "changes"]))
    ctx.data["changed"] = _apply(ctx.session, ctx.obj, ch.model_dump(exclude_unset=True), ["body", "changes"])


def issue_alert(ctx: Context) -> None:
    _issue(ctx, "Alert")


def issue_update(ctx: Context) -> None:
    _issue(ctx, "Update")


def issue_cancel(ctx: Context) -> None:
    ctx.obj.cancelled_at = ctx.at
    _issue(ctx, "Cancel", cancel_reason=str(ctx.body.get("reason") or ""))


def fields(session: Session, w: PublicWarning) -> dict[str, Any]:
    out = {k: getattr(w, k) for k in ("id", "level", "event", "event_en", "cap_category", "certainty", "response_type",
                                      "headline", "description", "instruction", "headline_en", "description_en",
                                      "instruction_en", "effective_at", "onset_at", "expires_at", "note")}
    if w.incident_id:
        out["incident_code"] = session.scalar(select(Incident.code).where(Incident.id == w.incident_id))
    return out


def build(session: Session, w: PublicWarning, *, msg_type: str, status: str, identifier: str, sent: dt.datetime,
          references: str | None, extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """(JSON doc, XML) of a message for ``w``, validated against the OASIS XSD (422 if not valid)."""
    areas = _areas(session, list(w.area_codes), ["body", "area_codes"])
    if w.geom is not None and len(areas) == 1:
        areas[0]["geometry"] = w.geom
    doc = cap.alert_doc({**fields(session, w), **(extra or {})}, identifier=identifier, sent=sent, msg_type=msg_type,
                        status=status, references=references, areas=areas)
    xml = cap.to_xml(doc)
    errors = cap.validation_errors(xml)
    if errors:
        raise InvalidInput([Problem(f"CAP 1.2 校验未通过 the CAP message does not validate: {e}", ["body"], "cap_invalid")
                            for e in errors[:10]])
    return doc, xml


def _issue(ctx: Context, msg_type: str, **extra: Any) -> None:
    s, w, at = ctx.session, ctx.obj, ctx.at
    prof = rules.cap_profile()
    seq = w.message_count + 1
    identifier = f"{prof.identifier_prefix}-{w.id:06d}-{seq:02d}"
    earlier = s.execute(select(WarningMessage.sender, WarningMessage.identifier, WarningMessage.sent_text)
                        .where(WarningMessage.warning_id == w.id).order_by(WarningMessage.seq)).all()
    refs = " ".join(cap.reference_of(*r) for r in earlier) if msg_type != "Alert" and earlier else None
    doc, xml = build(s, w, msg_type=msg_type, status=w.status, identifier=identifier, sent=at, references=refs,
                     extra=extra)
    s.add(WarningMessage(warning_id=w.id, seq=seq, identifier=identifier, sender=prof.sender, sent_at=at,
                         sent_text=doc["alert"]["sent"], msg_type=msg_type, status=w.status, references=refs, xml=xml,
                         doc=doc))
    w.message_count = seq
    forget_cap(w.id)
    if msg_type == "Alert":
        w.published_at = at
    ctx.data.update({"identifier": identifier, "msg_type": msg_type, "references": refs})
    tag = "【演练】" if w.status == "Exercise" else ""
    verb = {"Alert": "发布", "Update": "调整", "Cancel": "解除"}[msg_type]
    colour = prof.levels[w.level].zh
    notes = []
    for code in w.area_codes:
        for role in ("street_operator", "community_operator"):
            notes.append(dict(role=role, area_code=code, title=f"{tag}{verb}{w.event}{colour}预警：{w.headline}"[:200],
                              body=(w.instruction or w.description)[:1000], link=f"/emergency/warnings/{w.id}",
                              severity="critical" if w.level in ("red", "orange") else "warning"))
    jobs.notify_many(s, notes)
    jobs.enqueue(s, "public_warning.issued", {"id": w.id, "identifier": identifier, "msg_type": msg_type,
                                              "status": w.status, "level": w.level, "area_code": w.area_code,
                                              "url": f"/api/v1/emergency/warnings/{w.id}.cap"})


# ---------------------------------------------------------------- reads


def readable(principal: Principal) -> Any:
    return select(PublicWarning).where(scope.clause(principal, WARNING_SCOPE))


def get_warning(session: Session, principal: Principal, warning_id: int, *, for_update: bool = False) -> PublicWarning:
    stmt = readable(principal).where(PublicWarning.id == warning_id)
    if for_update:
        stmt = stmt.with_for_update()
    w: PublicWarning | None = session.scalar(stmt)
    if w is None:
        raise NotFound([Problem(f"未找到预警 warning {warning_id} not found", ["path", "warning_id"], "not_found")])
    return w


def summary(w: PublicWarning, lang: str = "zh") -> dict[str, Any]:
    lv = rules.cap_profile().levels[w.level]  # type: ignore[index]
    return {"id": w.id, "incident_id": w.incident_id, "state": w.state,
            "state_name": machines.WARNING.states[w.state]["en" if lang == "en" else "zh"], "level": w.level,
            "level_name": lv.en if lang == "en" else lv.zh, "status": w.status, "event": w.event,
            "headline": w.headline, "area_codes": w.area_codes, "area_desc": w.area_desc, "drafted_by": w.drafted_by,
            "approved_by": w.approved_by, "published_at": w.published_at, "cancelled_at": w.cancelled_at,
            "expires_at": w.expires_at, "message_count": w.message_count, "updated_at": w.updated_at,
            "cap_url": f"/api/v1/emergency/warnings/{w.id}.cap" if w.message_count else None}


def detail(session: Session, principal: Principal, w: PublicWarning, lang: str = "zh") -> dict[str, Any]:
    out = summary(w, lang)
    out.update({k: getattr(w, k) for k in ("description", "instruction", "headline_en", "description_en",
                                           "instruction_en", "event_en", "cap_category", "certainty", "response_type",
                                           "effective_at", "onset_at", "note", "approved_at")})
    out["geometry"] = geojson.geometry(w.geom)
    out["messages"] = [{"seq": m.seq, "identifier": m.identifier, "sent": m.sent_text, "msg_type": m.msg_type,
                        "status": m.status, "references": m.references}
                       for m in session.scalars(select(WarningMessage).where(WarningMessage.warning_id == w.id)
                                                .order_by(WarningMessage.seq))]
    out["actions"] = lifecycle.allowed_actions(session, principal, machines.warning_table(), w)
    out["timeline"] = machines.label_timeline(lifecycle.timeline(session, "public_warning", w.id), machines.WARNING, lang)
    return out


def list_warnings(session: Session, principal: Principal, *, state: list[str] | None = None, status: str | None = None,
                  incident: int | None = None, page: int = 1, page_size: int = 50, lang: str = "zh") -> dict[str, Any]:
    stmt = readable(principal)
    if state:
        bad = [x for x in state if x not in machines.WARNING.states]
        if bad:
            raise InvalidInput([Problem(f"未知状态 unknown state {bad[0]!r}", ["query", "state"], "unknown")])
        stmt = stmt.where(PublicWarning.state.in_(state))
    if status:
        stmt = stmt.where(PublicWarning.status == status)
    if incident is not None:
        stmt = stmt.where(PublicWarning.incident_id == incident)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(PublicWarning.updated_at.desc(), PublicWarning.id.desc())
                           .offset((page - 1) * page_size).limit(page_size)).all()
    return {"total": total, "page": page, "page_size": page_size, "items": [summary(w, lang) for w in rows]}


def act(session: Session, principal: Principal, warning_id: int, action: str, body: dict[str, Any]) -> dict[str, Any]:
    w = get_warning(session, principal, warning_id, for_update=True)
    lifecycle.perform(session, principal, machines.warning_table(), w, action, body,
                      event={"area_code": w.area_code, "status": w.status, "level": w.level})
    w.updated_at = now()
    session.flush()
    return detail(session, principal, w)


def cap_preview(session: Session, principal: Principal, warning_id: int) -> str:
    """A draft as a CAP message with status Draft (validated, not stored)."""
    w = get_warning(session, principal, warning_id)
    prof = rules.cap_profile()
    _doc, xml = build(session, w, msg_type="Alert", status="Draft", references=None, sent=now(),
                      identifier=f"{prof.identifier_prefix}-{w.id:06d}-draft{w.message_count + 1:02d}")
    return xml


def _issued(session: Session, warning_id: int, seq: int | None) -> WarningMessage:
    stmt = select(WarningMessage).where(WarningMessage.warning_id == warning_id)
    stmt = stmt.where(WarningMessage.seq == seq) if seq is not None else stmt.order_by(WarningMessage.seq.desc())
    m = session.scalars(stmt.limit(1)).first()
    if m is None:
        raise NotFound([Problem(f"预警 {warning_id} 无已发布的 CAP 消息 warning {warning_id} has no issued CAP message",
                                ["path", "warning_id"], "not_found")])
    return m


def cap_xml(session: Session, warning_id: int, seq: int | None = None) -> str:
    """The issued CAP message (the latest, or number ``seq``): public information."""
    return _issued(session, warning_id, seq).xml


# Exports of issued messages (public, polled by feeds): a message never changes once issued, so a
# message by number is cached for good (bounded); "the latest" of a warning for CAP_TTL_S seconds
# (the responses say max-age=30). Issuing in this process forgets the warning's latest at once;
# another process may serve the previous message for at most CAP_TTL_S.
CAP_TTL_S = 1.0
_CAP_MAX = 4096
_cap_cache: OrderedDict[tuple[int, int | None], tuple[float, str]] = OrderedDict()
_cap_lock = threading.Lock()


def cached_cap(warning_id: int, seq: int | None) -> str | None:
    with _cap_lock:
        hit = _cap_cache.get((warning_id, seq))
        if hit is None or (seq is None and time.monotonic() - hit[0] > CAP_TTL_S):
            return None
        _cap_cache.move_to_end((warning_id, seq))
        return hit[1]


def load_cap(warning_id: int, seq: int | None) -> str:
    """The message from the database (a read-only session of its own: the export route takes no unit
    of work, it only reads), remembered for ``cached_cap``."""
    from cityops.db import get_sessionmaker

    with get_sessionmaker(False)() as s:
        m = _issued(s, warning_id, seq)
        xml, got = m.xml, m.seq
        s.rollback()
    with _cap_lock:
        stamp = time.monotonic()
        _cap_cache[(warning_id, seq)] = (stamp, xml)
        _cap_cache[(warning_id, got)] = (stamp, xml)
        while len(_cap_cache) > _CAP_MAX:
            _cap_cache.popitem(last=False)
    return xml


def forget_cap(warning_id: int) -> None:
    with _cap_lock:
        _cap_cache.pop((warning_id, None), None)


def cap_json(session: Session, warning_id: int, seq: int | None = None) -> dict[str, Any]:
    return dict(_issued(session, warning_id, seq).doc)


def feed(session: Session, base_url: str, *, cancelled_hours: float = 24.0) -> str:
    """Atom feed of the current CAP messages: the latest message of every published warning not
    expired, and of warnings cancelled in the last ``cancelled_hours``."""
    at = now()
    latest = (select(WarningMessage.warning_id, func.max(WarningMessage.seq).label("seq"))
              .group_by(WarningMessage.warning_id).subquery())
    rows = session.execute(
        select(WarningMessage, PublicWarning)
        .join(latest, (latest.c.warning_id == WarningMessage.warning_id) & (latest.c.seq == WarningMessage.seq))
        .join(PublicWarning, PublicWarning.id == WarningMessage.warning_id)
        .where(or_((PublicWarning.state == "published")
                   & or_(PublicWarning.expires_at.is_(None), PublicWarning.expires_at > at),
                   (PublicWarning.state == "cancelled")
                   & (PublicWarning.cancelled_at > at - dt.timedelta(hours=cancelled_hours))))
        .order_by(WarningMessage.sent_at.desc())).all()
    prof = rules.cap_profile()
    entries = [{"identifier": m.identifier, "title": f"{w.headline}（{prof.levels[w.level].zh}，{m.msg_type}）",  # type: ignore[index]
                "sent_text": m.sent_text, "url": f"{base_url}/api/v1/emergency/warnings/{w.id}.cap",
                "summary": w.description[:500], "xml": m.xml} for m, w in rows]
    updated = rows[0][0].sent_at if rows else at
    return cap.atom_feed(entries, self_url=f"{base_url}/api/v1/emergency/warnings/feed.atom", updated=updated)

