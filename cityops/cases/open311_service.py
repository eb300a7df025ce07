"""Open311 GeoReport v2 on top of the case engine: services from the catalogue, service
definitions (attributes as data), POST request through the one intake path (source and channel
``open311``: a citizen report, so it is verified on site before registration), queries with the
spec's filters plus ``page`` / ``page_size``, one request, and the ``notes`` update history.

Everything here returns plain data (dicts / lists); ``cityops.cases.open311`` renders XML or
JSON and turns :class:`Open311Error` into the spec's error documents. Personal data never
leaves through Open311: no reporter fields at all; for channels whose text is confidential
(12345 hotline, referrals, media tips) the description is withheld, the address cut to the
street and the point rounded to about 100 m.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cityops.cases import intake as _intake
from cityops.cases import places, sla
from cityops.cases import reference as ref
from cityops.cases.models import (
    Case,
    CaseEvent,
    CaseReport,
    CaseStep,
    CatalogueVersion,
    case_no,
    parse_case_no,
)
from cityops.config import get_settings
from cityops.edge import xml_clean, xml_unsafe
from cityops.errors import CityOpsError
from cityops.security.masking import mask_address
from cityops.security.principal import Principal

TZ = ZoneInfo("Asia/Shanghai")
DATA = Path(__file__).resolve().parent / "data"
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
SOURCE = "open311"
PERMISSION = "open311.post"
MAX_DESCRIPTION = 4000
MAX_SPAN = dt.timedelta(days=90)
MAX_REQUESTS = 1000
MAX_IDS = 200
# channels whose text and exact place are published (the reporter meant them to be seen, or no
# person wrote them); everything else is withheld / coarsened
PUBLISHED_SOURCES = frozenset({"open311", "public", "supervisor", "video_ai", "iot"})
SUBMIT_EVENT = "open311_submit"
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
_HTML = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
_PHONE = re.compile(r"^[0-9+\- ]{3,30}$")


class Open311Error(Exception):
    """One or more spec errors; ``status`` is 400, 403 or 404 (the only ones the spec allows)."""

    def __init__(self, status: int, errors: list[tuple[int, str]] | str) -> None:
        if isinstance(errors, str):
            errors = [(status, errors)]
        assert status in (400, 403, 404)
        self.status = status
        self.errors = errors
        super().__init__("; ".join(d for _, d in errors))


def bad(msg: str) -> Open311Error:
    return Open311Error(400, msg)


def not_found(msg: str) -> Open311Error:
    return Open311Error(404, msg)


def from_cityops(exc: CityOpsError) -> Open311Error:
    """A case-engine error as spec errors: 404 stays 404, 401/403 become 403, the rest 400."""
    status = 404 if exc.status_code == 404 else 403 if exc.status_code in (401, 403) else 400
    errors = []
    for p in exc.problems:
        where = ".".join(str(x) for x in p.loc if x not in ("body", "query", "path", "header"))
        errors.append((status, f"{where}: {p.msg}" if where else p.msg))
    return Open311Error(status, errors or [(status, str(exc))])


def iso(v: dt.datetime | None) -> str | None:
    """W3C date-time with the +08:00 offset, whole seconds."""
    if v is None:
        return None
    return v.astimezone(TZ).replace(microsecond=0).isoformat()


def jurisdiction_ids() -> set[str]:
    code = get_settings().district_code
    return {code, f"{code}.cn", "songjiang.gov.cn", "songjiang.sh.gov.cn"}


def check_jurisdiction(value: str | None) -> None:
    if value and value.strip() and value.strip() not in jurisdiction_ids():
        raise not_found(f"jurisdiction_id {value!r} not found; this endpoint serves {get_settings().district_code} "
                        "(松江区) only")


# ---------------------------------------------------------------- services


@lru_cache(maxsize=1)
def _attribute_doc() -> dict[str, Any]:
    with open(DATA / "open311_attributes.json", encoding="utf-8") as fh:
        return dict(json.load(fh))


def attributes_for(cat: ref.CategoryInfo) -> list[dict[str, Any]]:
    """The service-definition attributes of a category (empty: metadata=false)."""
    doc = _attribute_doc()
    rows = [*doc.get("by_kind", {}).get(cat.kind, []), *doc.get("by_name", {}).get(cat.name_zh, [])]
    if not rows:
        return []
    out: list[dict[str, Any]] = []
    if cat.registration_criteria:
        out.append({"variable": False, "code": "criteria", "datatype": "text", "required": False,
                    "datatype_description": None, "order": 1,
                    "description": f"立案条件：{cat.registration_criteria}", "values": []})
    for a in rows:
        out.append({"variable": True, "code": a["code"], "datatype": a["datatype"], "required": bool(a.get("required")),
                    "datatype_description": a.get("datatype_description"), "order": len(out) + 1,
                    "description": f"{a['description']} {a.get('description_en', '')}".strip(),
                    "values": [{"key": v["key"], "name": v["name"]} for v in a.get("values", [])]})
    return out


def _active(session: Session) -> dict[str, ref.CategoryInfo]:
    cat = ref.catalogue(session)
    if cat.active_id is None:
        raise bad("no published catalogue: the service list is empty (import a catalogue first)")
    return cat.by_version.get(cat.active_id, {})


def _group(cat: ref.CategoryInfo, major: str | None, lang: str) -> str:
    kind = ref.KIND_LABELS.get(cat.kind, (cat.kind, cat.kind))
    if lang == "en":
        return f"{kind[1]}: {major or cat.major_code}"
    return f"{major or cat.major_code}（{kind[0]}）"


def _majors(session: Session, version_id: int) -> dict[str, str | None]:
    from cityops.cases.models import Category

    return {code: major for code, major in session.execute(
        select(Category.code, Category.major_name).where(Category.version_id == version_id))}


def service_out(cat: ref.CategoryInfo, major: str | None, lang: str) -> dict[str, Any]:
    kind = ref.KIND_LABELS.get(cat.kind, (cat.kind, cat.kind))
    name = (cat.name_en or cat.name_zh) if lang == "en" else cat.name_zh
    desc = cat.registration_criteria or cat.name_zh
    if lang != "en" and cat.name_en:
        desc = f"{desc}（{cat.name_en}）"
    keywords = [x for x in (cat.name_zh, cat.name_en, major, kind[0], kind[1]) if x]
    return {"service_code": cat.code, "service_name": name, "description": desc,
            "metadata": bool(attributes_for(cat)), "type": "realtime", "keywords": ",".join(keywords),
            "group": _group(cat, major, lang)}


def list_services(session: Session, lang: str = "zh") -> list[dict[str, Any]]:
    cats = _active(session)
    version_id = ref.catalogue(session).active_id
    majors = _majors(session, int(version_id or 0))
    rows = sorted((c for c in cats.values() if c.enabled), key=lambda c: (c.kind != "component", c.code))
    return [service_out(c, majors.get(c.code), lang) for c in rows]


def resolve_service(session: Session, code: str | None) -> ref.CategoryInfo:
    if code is None or not code.strip():
        raise bad("service_code is required")
    code = code.strip()
    if not code.isdigit() or len(code) > 16:
        raise not_found(f"service_code {code!r} not found")
    try:
        return ref.resolve_category(session, code, ["service_code"])
    except CityOpsError:
        raise not_found(f"service_code {code!r} not found (GET services.xml lists the codes)")


def service_definition(session: Session, code: str) -> dict[str, Any]:
    cat = resolve_service(session, code)
    return {"service_code": cat.code, "attributes": attributes_for(cat)}


def discovery(session: Session, base_url: str) -> dict[str, Any]:
    changed = session.scalar(select(func.max(CatalogueVersion.imported_at)))
    stamp = iso(changed) or iso(sla.now())
    return {
        "changeset": stamp,
        "contact": "上海市松江区城市运行管理中心 Songjiang District City Operations Centre (cityops), "
                   "12345 市民服务热线",
        "key_service": "POST 提交诉求需要 api_key：由系统管理员在 cityops 中签发具有 open311.post 权限的接口密钥 "
                       "(POST /api/v1/security/api-keys). GET requests need no key.",
        "endpoints": [{"specification": SPEC_URL, "url": base_url.rstrip("/"), "changeset": stamp,
                       "type": "production", "formats": ["text/xml", "application/json"]}],
    }


# ---------------------------------------------------------------- POST request


@dataclass
class Form:
    """The POST body as single values (last wins) and lists (``attribute[code][]``)."""

    single: dict[str, str]
    multi: dict[str, list[str]]

    def get(self, key: str) -> str | None:
        v = self.single.get(key)
        if v is None:
            return None
        v = v.strip()
        return v or None  # empty optional arguments count as absent


def principal_for_key(key: str | None, source_ip: str | None) -> Principal:
    """The principal of an Open311 ``api_key``, checked by the security module as an ``X-API-Key``
    header is (its own read transaction; revoked / unknown keys refused);
    403 unless it holds ``open311.post``."""
    if not key:
        raise Open311Error(403, "api_key is required to POST a service request")
    from cityops.security import service as security

    try:
        principal = security.principal_for_api_key(key, source_ip)
    except CityOpsError:
        raise Open311Error(403, "invalid api_key (unknown or revoked)")
    if not principal.can(PERMISSION):
        raise Open311Error(403, f"this api_key may not post service requests (needs {PERMISSION})")
    return principal


def _attributes(cat: ref.CategoryInfo, form: Form) -> tuple[dict[str, Any], list[str]]:
    defs = {a["code"]: a for a in attributes_for(cat) if a["variable"]}
    got: dict[str, Any] = {}
    errs: list[str] = []
    given: dict[str, list[str]] = {}
    for k, vs in form.multi.items():
        m = re.fullmatch(r"attribute\[([^\]]+)\](\[\])?", k)
        if m:
            vals = [v.strip() for v in vs if v.strip()]
            if vals:
                given.setdefault(m.group(1), []).extend(vals)
    for code in given:
        if code not in defs:
            errs.append(f"attribute[{code}]: unknown attribute of service {cat.code} "
                        f"(its attributes: {', '.join(defs) or 'none'})")
    for code, a in defs.items():
        vals = given.get(code, [])
        if not vals:
            if a["required"]:
                errs.append(f"attribute[{code}] is required ({a['description']})")
            continue
        keys = {v["key"] for v in a["values"]}
        dtype = a["datatype"]
        if dtype == "multivaluelist":
            bad_ = [v for v in vals if v not in keys]
            if bad_:
                errs.append(f"attribute[{code}]: {', '.join(bad_)} not among {', '.join(sorted(keys))}")
            else:
                got[code] = sorted(set(vals))
            continue
        if len(vals) > 1:
            errs.append(f"attribute[{code}] takes one value")
            continue
        v = vals[0]
        if dtype == "singlevaluelist":
            if v not in keys:
                errs.append(f"attribute[{code}]: {v!r} not among {', '.join(sorted(keys))}")
            else:
                got[code] = v
        elif dtype == "number":
            try:
                num = float(v)
                if not np.isfinite(num):
                    raise ValueError
                got[code] = num
            except ValueError:
                errs.append(f"attribute[{code}]: {v!r} is not a number")
        elif dtype == "datetime":
            try:
                d = parse_datetime(v, f"attribute[{code}]")
                got[code] = iso(d)
            except Open311Error as exc:
                errs.extend(d for _, d in exc.errors)
        else:
            limit = 200 if dtype == "string" else 2000
            if len(v) > limit:
                errs.append(f"attribute[{code}] is longer than {limit} characters")
            else:
                got[code] = v
    return got, errs


def _float(v: str | None, name: str, lo: float, hi: float, errs: list[str]) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
        if not np.isfinite(f) or not lo <= f <= hi:
            raise ValueError
        return f
    except ValueError:
        errs.append(f"{name} must be a number between {lo:g} and {hi:g} (WGS-84 degrees)")
        return None


def _norm_address(s: str) -> str:
    s = re.sub(r"\s+", "", s)
    for p in ("中国", "上海市", "上海", "松江区"):
        if s.startswith(p):
            s = s[len(p):]
    return s


def locate_address(session: Session, address: str | None, address_id: str | None) -> tuple[float, float, str]:
    """(lon, lat, address) of an ``address_id`` (楼栋编码 of the base data) or an
    ``address_string`` (a building's door-plate address or a key place's name / address, exact
    or an unambiguous ending). 400 when nothing (or more than one place) matches."""
    try:
        from cityops.registry.models import Building, Place
    except ImportError:  # pragma: no cover - registry is part of the tree
        raise bad("address lookup is not available here; send lat and long")
    if address_id:
        row = session.execute(select(Building.lon, Building.lat, Building.address).where(
            Building.code == address_id, Building.valid_to.is_(None))).first()
        if row is None or row.lon is None:
            raise bad(f"address_id {address_id!r} is not a known building code (楼栋编码); send lat and long")
        return float(row.lon), float(row.lat), str(row.address)
    assert address is not None
    want = _norm_address(address)
    if len(want) < 4:
        raise bad("address_string is too short to locate; send lat and long")
    candidates: list[tuple[float, float, str]] = []
    for model, cols in ((Building, (Building.address,)), (Place, (Place.name, Place.address))):
        for col in cols:
            rows = session.execute(select(model.lon, model.lat, col).where(
                model.valid_to.is_(None), col.endswith(want, autoescape=True), model.lon.is_not(None)).limit(20)).all()
            for lon, lat, text_ in rows:
                if _norm_address(str(text_)).endswith(want):
                    candidates.append((float(lon or 0.0), float(lat or 0.0), str(text_)))
    exact = [c for c in candidates if _norm_address(c[2]) == want]
    pick = exact or candidates
    spots = {(round(c[0], 5), round(c[1], 5)) for c in pick}
    if not pick:
        raise bad(f"address_string {address!r} could not be located (no building or key place with this address); "
                  "send lat and long")
    if len(spots) > 1:
        raise bad(f"address_string {address!r} is ambiguous ({len(spots)} places match); give the full address or "
                  "lat and long")
    return pick[0][0], pick[0][1], address.strip()


def create_request(session: Session, form: Form, *, header_key: str | None, source_ip: str | None,
                   idempotency_key: str | None = None) -> list[dict[str, Any]]:
    """POST requests: validate everything (all problems listed), then the one intake path.
    Commits. Returns the ``service_requests`` list (one item)."""
    principal = principal_for_key(form.get("api_key") or header_key, source_ip)
    check_jurisdiction(form.get("jurisdiction_id"))
    cat = resolve_service(session, form.get("service_code"))
    errs: list[str] = []
    for k, values in form.multi.items():
        if xml_unsafe(k) or any(xml_unsafe(v) for v in values):
            errs.append(f"{xml_clean(k)} holds a control character (e.g. U+000B) or a lone surrogate, "
                        "which a service request may not contain")
    lat_s, lon_s = form.get("lat"), form.get("long")
    address, address_id = form.get("address_string"), form.get("address_id")
    if (lat_s is None) != (lon_s is None):
        errs.append("lat and long go together: give both or neither")
    lat = _float(lat_s, "lat", -90, 90, errs)
    lon = _float(lon_s, "long", -180, 180, errs)
    if lat_s is None and lon_s is None and not address and not address_id:
        errs.append("a location is required: lat and long, or address_string, or address_id")
    if address and len(address) > 300:
        errs.append("address_string is longer than 300 characters")
    description = form.single.get("description")
    if description is not None:
        description = description.strip() or None
    if description and len(description) > MAX_DESCRIPTION:
        errs.append(f"description is longer than {MAX_DESCRIPTION} characters ({len(description)})")
    if description and _HTML.search(description):
        errs.append("description must be plain text (no HTML)")
    media_url = form.get("media_url")
    if media_url and (len(media_url) > 500 or not re.fullmatch(r"https?://[^\s<>\"]+", media_url)):
        errs.append("media_url must be an http(s) URL of at most 500 characters")
    email, phone = form.get("email"), form.get("phone")
    if email and not _EMAIL.fullmatch(email):
        errs.append("email is not an e-mail address")
    if phone and not _PHONE.fullmatch(phone):
        errs.append("phone may hold digits, spaces, + and - (3-30 characters)")
    first, last = form.get("first_name"), form.get("last_name")
    if (first and len(first) > 30) or (last and len(last) > 30):
        errs.append("first_name and last_name are at most 30 characters each")
    for k in ("device_id", "account_id"):
        v = form.get(k)
        if v and len(v) > 64:
            errs.append(f"{k} is at most 64 characters")
    attrs, attr_errs = _attributes(cat, form)
    errs += attr_errs
    if errs:
        raise Open311Error(400, [(400, e) for e in errs])
    if lat is None or lon is None:
        lon, lat, address = locate_address(session, address, address_id)
    where = places.locate(session, np.array([lon]), np.array([lat]))[0]
    if where is None:
        raise bad("the location is outside the jurisdiction (松江区 310117)")
    name = reporter_name(first, last)
    at = sla.now()
    extras = {k: v for k, v in {"attributes": attrs, "media_url": media_url, "device_id": form.get("device_id"),
                                "account_id": form.get("account_id"), "service_code": form.get("service_code"),
                                "address_id": form.get("address_id"),
                                "jurisdiction_id": form.get("jurisdiction_id")}.items() if v}
    item = _intake.IntakeItem(
        source=SOURCE, channel=SOURCE, cat=cat, lon=float(lon), lat=float(lat), where=where, at=at,
        title=_intake._title(cat, None, address), description=description, address=address,
        urgency=cat.urgency_default, reporter_name=name or None, reporter_phone=phone,
        reporter_account_id=None, public=False)

    def run() -> dict[str, Any]:
        res = _intake.intake(session, principal, item)
        notes = _attribute_note(cat, attrs)
        session.add(CaseEvent(case_id=res["case_id"], at=at, actor=principal.username,
                              actor_roles=principal.role_label()[:200], action=SUBMIT_EVENT,
                              from_state=res["state"], to_state=res["state"],
                              note=notes or None, data={"report_id": res["report_id"], **extras}, attachments=[]))
        session.flush()
        return res

    body = {k: v for k, v in form.single.items() if k != "api_key"} | {
        k: v for k, v in form.multi.items() if k.startswith("attribute[")}
    try:
        _status, res, _replayed = _intake.run_idempotent(session, principal, idempotency_key, body, run)
    except CityOpsError as exc:
        session.rollback()
        raise from_cityops(exc)
    except OperationalError as exc:
        session.rollback()
        from cityops.uow import retryable

        if retryable(exc):
            raise  # RetryBusy runs the request again (503 with Retry-After at worst)
        raise bad("the case system is busy or unavailable; try again shortly")
    if res["linked"]:
        notice = (f"已有相同诉求正在办理，您的上报已并入该诉求（共 {res['reporter_count']} 人反映）。"
                  f"Your report was linked to an open request about the same problem ({res['reporter_count']} reporters).")
    else:
        notice = "已受理，将派网格员现场核实后立案派遣。Received: a grid worker will verify it on site before it is dispatched."
    # the id (realtime) and a token for clients that follow the token flow (GET tokens/{token})
    out: dict[str, Any] = {"service_request_id": res["case_no"], "token": token_for(int(res["report_id"])),
                           "service_notice": notice}
    if form.get("account_id"):
        out["account_id"] = form.get("account_id")
    return [out]


def reporter_name(first: str | None, last: str | None) -> str | None:
    """Chinese names are family name first (张三); Latin ones given name first."""
    parts = [x for x in (first, last) if x]
    if not parts:
        return None
    if all(x.isascii() for x in parts):
        return " ".join(parts)[:60]
    return "".join(x for x in (last, first) if x)[:60]


def _attribute_note(cat: ref.CategoryInfo, attrs: dict[str, Any]) -> str:
    defs = {a["code"]: a for a in attributes_for(cat)}
    parts = []
    for code, v in attrs.items():
        a = defs.get(code)
        if a is None:
            continue
        names: dict[str, str] = {str(x["key"]): str(x["name"]) for x in a["values"]}
        if isinstance(v, list):
            shown = "、".join(names.get(str(x), str(x)) for x in v)
        elif isinstance(v, str):
            shown = names.get(v, v)
        else:
            shown = f"{v:g}"
        parts.append(f"{a['description'].split(' ')[0]}：{shown}")
    return "；".join(parts)


# ---------------------------------------------------------------- GET requests


def parse_datetime(v: str, name: str) -> dt.datetime:
    s = v.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        raise bad(f"{name} {v!r} is not a W3C date-time (e.g. 2026-01-01T00:00:00+08:00)")
    if d.tzinfo is None:
        raise bad(f"{name} {v!r} needs a time zone (Z or ±HH:MM)")
    return d.astimezone(dt.UTC)


def _int(v: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if v is None:
        return default
    if not v.isdigit() or not lo <= int(v) <= hi:
        raise bad(f"{name} must be an integer from {lo} to {hi}")
    return int(v)


def query_requests(session: Session, params: dict[str, str | None], lang: str = "zh") -> list[dict[str, Any]]:
    """GET requests with the spec's arguments (empty = absent) and ``page`` / ``page_size``,
    ``extensions=true`` (notes + extended_attributes)."""
    p = {k: (v.strip() if v and v.strip() else None) for k, v in params.items()}
    check_jurisdiction(p.get("jurisdiction_id"))
    ext = (p.get("extensions") or "").lower() == "true"
    ids_s = p.get("service_request_id")
    if ids_s:
        refs = [x.strip() for x in ids_s.split(",") if x.strip()]
        if len(refs) > MAX_IDS:
            raise bad(f"at most {MAX_IDS} service_request_id values per query")
        ids = [i for i in (_case_id(r) for r in refs) if i is not None]
        rows = list(session.scalars(select(Case).where(Case.id.in_(ids or [-1])))) if ids else []
        wanted = set(refs)
        rows = [c for c in rows if case_no(c.id, c.reported_at) in wanted]  # ids match exactly
        rows.sort(key=lambda c: (c.reported_at, c.id), reverse=True)
        return requests_out(session, rows, notes=ext, extended=ext, lang=lang)
    stmt = select(Case)
    codes = [x.strip() for x in (p.get("service_code") or "").split(",") if x.strip()]
    if codes:
        cat_ids: set[int] = set()
        cw = ref.catalogue(session).crosswalk
        for c in codes:
            info = resolve_service(session, c)
            cat_ids.add(info.id)
            cat_ids.update(cw.get(info.id, []))
        stmt = stmt.where(Case.category_id.in_(sorted(cat_ids)))
    statuses = [x.strip().lower() for x in (p.get("status") or "").split(",") if x.strip()]
    if any(s not in ("open", "closed") for s in statuses):
        raise bad("status must be open, closed or both (comma-separated)")
    if statuses and set(statuses) != {"open", "closed"}:
        opened = Case.state.in_(ref.OPEN_STATES)
        stmt = stmt.where(opened if statuses[0] == "open" else ~opened)
    start_s, end_s = p.get("start_date"), p.get("end_date")
    start = parse_datetime(start_s, "start_date") if start_s else None
    end = parse_datetime(end_s, "end_date") if end_s else None
    if start and end and end < start:
        raise bad("end_date is before start_date")
    if start and end and end - start > MAX_SPAN:
        raise bad("start_date and end_date may span at most 90 days")
    if start is None and end is None:
        end = sla.now() + dt.timedelta(seconds=1)
        start = end - MAX_SPAN
    elif start is None:
        assert end is not None
        start = end - MAX_SPAN
    elif end is None:
        end = start + MAX_SPAN
    stmt = stmt.where(Case.reported_at >= start, Case.reported_at <= end)
    page = _int(p.get("page"), "page", 1, 1, 100_000)
    size = _int(p.get("page_size"), "page_size", MAX_REQUESTS, 1, MAX_REQUESTS)
    if page * size > 200_000:
        raise bad("page * page_size may not exceed 200,000: narrow the dates")
    rows = list(session.scalars(stmt.order_by(Case.reported_at.desc(), Case.id.desc())
                                .offset((page - 1) * size).limit(size)))
    return requests_out(session, rows, notes=ext, extended=ext, lang=lang)


def _case_id(ref_: str) -> int | None:
    if not ref_.isdigit() or len(ref_) > 20:
        return None
    return parse_case_no(ref_)


def get_request(session: Session, request_id: str, lang: str = "zh") -> list[dict[str, Any]]:
    rid = request_id.strip()
    cid = _case_id(rid) if len(rid) >= 15 else None  # only a full case number: ``1`` is not request 1
    case = session.get(Case, cid) if cid is not None else None
    if case is None or case_no(case.id, case.reported_at) != rid:
        raise not_found(f"service_request_id {request_id!r} not found")
    return requests_out(session, [case], notes=True, extended=True, lang=lang)


def status_of(state: str) -> str:
    return "open" if state in ref.OPEN_STATES else "closed"


def _label(state: str, lang: str) -> str:
    s = ref.STATES.get(state, {})
    zh, en = s.get("zh", state), s.get("en", state)
    return en if lang == "en" else f"{zh} {en}"


def requests_out(session: Session, rows: list[Case], *, notes: bool, extended: bool,
                 lang: str = "zh") -> list[dict[str, Any]]:
    """The spec's request fields for cases (page of rows), with a handful of IN queries."""
    if not rows:
        return []
    ids = [c.id for c in rows]
    cats = ref.catalogue(session).by_id
    depts = ref.departments(session)
    handle_due = dict(session.execute(select(CaseStep.case_id, func.max(CaseStep.due_at)).where(
        CaseStep.case_id.in_(ids), CaseStep.step == "handle", CaseStep.status != "cancelled")
        .group_by(CaseStep.case_id)).all())
    media: dict[int, str] = {}
    address_ids: dict[int, str] = {}
    for cid, data in session.execute(select(CaseEvent.case_id, CaseEvent.data).where(
            CaseEvent.case_id.in_(ids), CaseEvent.action == SUBMIT_EVENT).order_by(CaseEvent.id)):
        if isinstance(data, dict) and data.get("media_url") and cid not in media:
            media[cid] = str(data["media_url"])
        if isinstance(data, dict) and data.get("address_id") and cid not in address_ids:
            address_ids[cid] = str(data["address_id"])
    history: dict[int, list[dict[str, Any]]] = {}
    if notes:
        for e in session.execute(select(CaseEvent.case_id, CaseEvent.at, CaseEvent.action, CaseEvent.from_state,
                                        CaseEvent.to_state).where(CaseEvent.case_id.in_(ids))
                                 .order_by(CaseEvent.id)):
            n = note_of(e.action, e.from_state, e.to_state, e.at, lang)
            if n is not None:
                history.setdefault(e.case_id, []).append(n)
    names = places.area_names(session) if extended else {}
    out = []
    for c in rows:
        cat = cats.get(c.category_id)
        published = c.source in PUBLISHED_SOURCES
        dept = depts.get(c.lead_department_code or "")
        status = status_of(c.state)
        note = _label(c.state, lang)
        if status == "closed":
            if c.duplicate_of_id:
                dup = session.get(Case, c.duplicate_of_id)
                if dup is not None:
                    note += f"：已合并至 {case_no(dup.id, dup.reported_at)} merged into another request"
            elif c.closure_reason == "self_handled":
                note += "：监督员现场自行处置 fixed on the spot by the grid worker"
            elif c.state == "voided":  # never the staff's own words (note_of's rule: they may name people)
                note += "：经审核不予受理 closed without action after review"
            elif c.state == "not_registered":
                note += "：经核实不属于立案范围 not within the registration criteria"
        if c.satisfaction and c.state == "evaluated":
            note += f"（回访评价 follow-up: {c.satisfaction}）"
        updated = {"closed": c.closed_at, "evaluated": c.closed_at, "voided": c.voided_at,
                   "not_registered": c.not_registered_at}.get(c.state) or c.updated_at
        item: dict[str, Any] = {
            "service_request_id": case_no(c.id, c.reported_at),
            "status": status,
            "status_notes": note,
            "service_name": ((cat.name_en or cat.name_zh) if lang == "en" else cat.name_zh) if cat else c.category_code,
            "service_code": c.category_code,
            "description": (c.description if published else None),
            "agency_responsible": (dept.name_en or dept.name if lang == "en" else dept.name) if dept else None,
            "service_notice": None,
            "requested_datetime": iso(c.reported_at),
            "updated_datetime": iso(updated),
            "expected_datetime": iso(handle_due.get(c.id)),
            "address": c.address if published else mask_address(c.address),
            "address_id": address_ids.get(c.id),
            "zipcode": None,
            "lat": c.lat if published else round(c.lat, 3),
            "long": c.lon if published else round(c.lon, 3),
            "media_url": media.get(c.id),
        }
        if notes:
            item["notes"] = history.get(c.id, [])
        if extended:
            item["extended_attributes"] = {
                "state": c.state, "state_label": ref.STATES.get(c.state, {}).get("zh", c.state),
                "street_code": c.street_code, "street_name": names.get(c.street_code),
                "community_code": c.community_code if published else None,
                "grid_code": c.grid_code if published else None, "urgency": c.urgency,
                "reporter_count": c.reporter_count, "channel": c.source,
                "sla": sla.sla_of(c.due_at, c.yellow_at, sla.now()) if status == "open" else None,
            }
        out.append(item)
    return out


# note types: the FixMyStreet / Chicago-style update history (submitted, opened, ..., closed)
NOTE_TYPES = {"report": "submitted", "accept": "opened", "request_verification": "investigating",
              "verify": "investigated", "register": "registered", "not_register": "closed", "void": "closed",
              "merge": "closed", "dispatch": "assigned", "reassign": "reassigned", "acknowledge": "in_progress",
              "send_back": "sent_back", "report_back": "action_taken", "request_inspection": "inspecting",
              "inspect": "inspected", "close": "closed", "rework": "reopened", "evaluate": "follow_up",
              "reopen": "reopened", "suspend": "on_hold", "resume": "in_progress", "link_report": "duplicate_linked",
              "self_handle": "closed", "escalate": "escalated", "oversee": "escalated"}


def note_of(action: str, from_state: str | None, to_state: str | None, at: dt.datetime,
            lang: str = "zh") -> dict[str, Any] | None:
    """One ``notes`` entry (no free text written by staff or reporters: it may name people)."""
    if action not in NOTE_TYPES:
        return None
    a = ref.ACTIONS.get(action, {})
    zh = a.get("zh") or {"report": "上报", "link_report": "重复上报（已合并）", "self_handle": "自行处置",
                         "escalate": "升级督办"}.get(action, action)
    en = a.get("en") or {"report": "reported", "link_report": "duplicate report linked",
                         "self_handle": "fixed on the spot", "escalate": "escalated"}.get(action, action)
    text = en if lang == "en" else f"{zh} {en}"
    if to_state and from_state and to_state != from_state:
        text += f" → {_label(to_state, lang)}"
    return {"datetime": iso(at), "description": text, "type": NOTE_TYPES[action]}


# ---------------------------------------------------------------- tokens


def token_for(report_id: int) -> str:
    """The token of one POST (its report): ``<report id>-<HMAC>``, so that it can be resolved
    without a table and cannot be guessed from an id."""
    import hashlib
    import hmac

    mac = hmac.new(get_settings().secret_key.encode(), f"open311-token:{report_id}".encode(), hashlib.sha256)
    return f"{report_id}-{mac.hexdigest()[:20]}"


def resolve_token(session: Session, token: str) -> list[dict[str, Any]]:
    """GET tokens/{token}: the request the token's POST created or was linked to."""
    import hmac

    head, _, _mac = token.strip().partition("-")
    if head.isdigit() and len(head) <= 18 and hmac.compare_digest(token_for(int(head)), token.strip()):
        report = session.get(CaseReport, int(head))
        case = session.get(Case, report.case_id) if report is not None else None
        if case is not None:
            return [{"service_request_id": case_no(case.id, case.reported_at), "token": token.strip()}]
    raise not_found(f"token {token!r} not found")
