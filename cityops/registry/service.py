"""Base-data services: imports with history, scoped and masked reads, GeoJSON and CSV out.

Every read starts from ``readable(session, principal, kind, at)``: the versions valid at ``at``
(the current ones when ``at`` is None) inside the principal's area. Records outside the caller's
area do not exist for the caller (404, absent from lists, counts and exports).

Scoping is written so that an index serves it: for current versions an equality on the code
column of the area's level (``CURRENT_SCOPE``: street_code / community_code / grid_code), which
the partial indexes ``(level_code, entity_id, id) WHERE valid_to IS NULL`` turn into an ordered
index range (a page needs no sort, a count reads the index only); for past versions (``as_of``)
the prefix range on the indexed ``grid_code`` (``HISTORY_SCOPE``). Both select the same rows:
a record's street and community codes are the prefixes of its grid code.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cityops.config import get_settings
from cityops.db import utcnow
from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.exports import SafeWriter
from cityops.geo import geojson as gj
from cityops.geo.models import Area
from cityops.registry import importers as imp
from cityops.registry.codes import (
    ACCURACY_CLASSES,
    ORG_KINDS,
    STATUSES,
    CodeError,
    IdInfo,
    check_component_code,
    standard_ref,
)
from cityops.registry.models import MODELS, SPATIAL_KINDS, Building, Household, Organisation, Person, Place
from cityops.security import audit, masking, scope
from cityops.security.principal import Principal, code_prefix_clause
from cityops.security.privacy import F, check_unmask, declare_fields, mask_record
from cityops.security.scope import Located, ScopedKind

TZ = ZoneInfo("Asia/Shanghai")
log = logging.getLogger(__name__)

KIND_LABELS: dict[str, tuple[str, str]] = {
    "buildings": ("建筑（房）", "buildings"),
    "households": ("户", "households"),
    "persons": ("人口", "persons"),
    "facilities": ("部件（物）", "facilities / components"),
    "organisations": ("企业与组织", "enterprises and organisations"),
    "places": ("重点场所", "key places"),
}
KIND_ALIASES: dict[str, str] = {
    **{k: k for k in MODELS}, **{k[:-1]: k for k in MODELS if k.endswith("s")},
    "facility": "facilities", "components": "facilities", "component": "facilities", "部件": "facilities",
    "物": "facilities", "organizations": "organisations", "organization": "organisations",
    "enterprises": "organisations", "enterprise": "organisations", "企业": "organisations", "组织": "organisations",
    "单位": "organisations", "建筑": "buildings", "房屋": "buildings", "楼栋": "buildings", "房": "buildings",
    "户": "households", "住户": "households", "人口": "persons", "人员": "persons", "人": "persons",
    "people": "persons", "场所": "places", "重点场所": "places", "key_places": "places",
}

OBJECT_TYPE = {"buildings": "building", "households": "household", "persons": "person", "facilities": "facility",
               "organisations": "organisation", "places": "place"}

# what a user with only registry.read may see is everything but persons; persons need person.read
READ_PERMISSION = {k: ("person.read" if k == "persons" else "registry.read") for k in MODELS}

# ------------------------------------------------------------------ field catalogue (security)

PERSON_FIELDS = declare_fields("person", [
    F("name", "姓名", "name", "general", True, "name"),
    F("id_number", "身份证号", "ID number", "important", True, "id_number"),
    F("birth_date", "出生日期", "date of birth", "important", True, "birth_date"),
    F("phone", "手机号", "mobile phone", "general", True, "phone"),
    F("address", "居住地址", "home address", "general", True, "address"),
    F("gender", "性别", "gender"),
    F("household_code", "户号", "household"),
    F("registered", "户籍", "registered (hukou)"),
    F("resident", "常住", "resident"),
])
HOUSEHOLD_FIELDS = declare_fields("household", [
    F("address", "住址", "home address", "general", True, "address"),
    F("room", "室号", "room", "general", True, "hide"),
])
ORGANISATION_FIELDS = declare_fields("organisation", [
    F("phone", "联系电话", "phone", "general", True, "phone"),
    F("legal_rep", "法定代表人", "legal representative (public)"),
])


# ------------------------------------------------------------------ kinds and times


def resolve_kind(kind: str) -> str:
    k = KIND_ALIASES.get(kind.strip().lower()) if kind else None
    if k is None:
        raise NotFound([Problem(f"未知的基础数据类型 {kind!r}，可用：{', '.join(MODELS)} unknown kind {kind!r}",
                                ["path", "kind"], "not_found")])
    return k


def as_of_instant(value: dt.date | dt.datetime | str | None) -> dt.datetime | None:
    """The instant a query asks about. A date means the END of that day in Asia/Shanghai (the
    state after all changes of that day); a datetime without offset is Asia/Shanghai time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        s = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
                value = dt.date.fromisoformat(s)
            else:
                value = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput([Problem("as_of 应为日期 YYYY-MM-DD 或带时区的时间 as_of must be a date (YYYY-MM-DD) or an "
                                        "ISO datetime", ["query", "as_of"], "value_error")]) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=TZ)
        return value.astimezone(dt.UTC)
    next_day = dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), tzinfo=TZ)
    return (next_day - dt.timedelta(microseconds=1)).astimezone(dt.UTC)


def version_clause(model: Any, at: dt.datetime | None) -> Any:
    if at is None:
        return model.valid_to.is_(None)
    return and_(model.valid_from <= at, or_(model.valid_to.is_(None), model.valid_to > at))


def _in_district(code: str) -> bool:
    """A code of 6 digits or fewer that covers the whole district (every record lies in it)."""
    return len(code) <= 6 and get_settings().district_code.startswith(code)


# The scope of base data (``cityops.security.scope``): area only. Current versions are placed by the
# code of the caller's level (equality, served by the partial indexes); past versions by the prefix
# range on the indexed ``grid_code``. Both select the same rows.
CURRENT_SCOPE = {k: ScopedKind(k, Located(street=m.street_code, community=m.community_code, grid=m.grid_code))
                 for k, m in MODELS.items()}
HISTORY_SCOPE = {k: ScopedKind(k, Located(grid=m.grid_code)) for k, m in MODELS.items()}
_KIND_OF = {m: k for k, m in MODELS.items()}


def scope_clause(principal: Principal, model: Any, at: dt.datetime | None = None) -> Any:
    """The principal's scope over ``model``'s versions valid at ``at`` (None: current)."""
    kind = _KIND_OF[model]
    return scope.clause(principal, (CURRENT_SCOPE if at is None else HISTORY_SCOPE)[kind])


def area_filter(model: Any, code: str, at: dt.datetime | None = None) -> Any:
    """Records inside the area ``code`` (a code prefix), written like ``scope_clause``."""
    if at is None:
        if _in_district(code):
            return true()
        column = {9: model.street_code, 12: model.community_code, 15: model.grid_code}.get(len(code))
        if column is not None:
            return column == code
    return code_prefix_clause(model.grid_code, code)


def readable(session: Session, principal: Principal, kind: str, at: dt.datetime | None = None) -> Select[Any]:
    """Versions of ``kind`` valid at ``at`` that ``principal`` may see."""
    m = MODELS[kind]
    return select(m).where(version_clause(m, at), scope_clause(principal, m, at))


def _page(session: Session, stmt: Select[Any], model: Any, total: int, page: int, page_size: int) -> list[Any]:
    """One page in record order. A page past the total is not read: with a filter that matches
    nothing it would walk the whole scope in index order looking for a first row."""
    if total <= (page - 1) * page_size:
        return []
    return list(session.scalars(stmt.order_by(model.entity_id, model.id).offset((page - 1) * page_size)
                                .limit(page_size)))


def count_of(session: Session, stmt: Select[Any]) -> int:
    """The number of rows ``stmt`` (a ``select(Model)``) selects, as ``SELECT count(*) FROM table
    WHERE ...``: nothing but the index of the scope is read when the filters are on its columns."""
    return int(session.scalar(stmt.order_by(None).with_only_columns(func.count(), maintain_column_froms=True)) or 0)


# ------------------------------------------------------------------ output


def _area_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    codes = sorted({c for c in codes if c})
    out: dict[str, str] = {}
    for i in range(0, len(codes), 500):
        chunk = codes[i:i + 500]
        out.update(dict(session.execute(select(Area.code, Area.name).where(Area.code.in_(chunk),
                                                                           Area.valid_to.is_(None))).tuples().all()))
    return out


def _community_address(address: str | None, community: str | None) -> str | None:
    """An address cut to community level: district/street part of the address + community name."""
    if not address:
        return address
    base = masking.mask_address(address) or ""
    if community and base.endswith("****"):
        return base[:-4] + community + "****"
    return base


def _common(row: Any) -> dict[str, Any]:
    return {"id": row.entity_id, "version_id": row.id, "valid_from": row.valid_from, "valid_to": row.valid_to,
            "grid_code": row.grid_code, "community_code": row.community_code, "street_code": row.street_code,
            "synthetic": row.synthetic, "source": row.source}


def _point(row: Any) -> dict[str, Any]:
    return {"lon": row.lon, "lat": row.lat, "has_footprint": row.geom is not None and row.geom.geom_type != "Point"}


def record_dict(kind: str, row: Any) -> dict[str, Any]:
    """The full (unmasked) output of one version."""
    d = _common(row)
    if kind == "buildings":
        d.update(code=row.code, name=row.name, address=row.address, kind=row.kind,
                 kind_label=imp.BUILDING_KINDS.get(row.kind, (row.kind,))[0], compound=row.compound,
                 floors=row.floors, **_point(row))
    elif kind == "households":
        d.update(code=row.code, building_code=row.building_code, room=row.room, address=row.address, kind=row.kind,
                 kind_label=imp.HOUSEHOLD_KINDS.get(row.kind, (row.kind,))[0])
    elif kind == "persons":
        d.update(name=row.name, id_number=row.id_number, gender=row.gender,
                 gender_label="男" if row.gender == "male" else "女", birth_date=row.birth_date, phone=row.phone,
                 household_code=row.household_code, relation=row.relation, address=row.address,
                 registered=row.registered, resident=row.resident)
    elif kind == "facilities":
        d.update(code=row.code, standard_ref=row.standard_ref, major_code=row.major_code, minor_code=row.minor_code,
                 type_code=row.type_code, name=row.name, status=row.status,
                 status_label=STATUSES.get(row.status, (row.status,))[0], accuracy_class=row.accuracy_class,
                 accuracy_m=ACCURACY_CLASSES.get(row.accuracy_class, (None,))[0], competent_dept=row.competent_dept,
                 competent_code=row.competent_code, owner_unit=row.owner_unit, owner_code=row.owner_code,
                 maintenance_unit=row.maintenance_unit, maintenance_code=row.maintenance_code,
                 initial_date=row.initial_date, data_source=row.data_source, note=row.note, **_point(row))
    elif kind == "organisations":
        d.update(credit_code=row.credit_code, name=row.name, org_kind=row.org_kind,
                 org_kind_label=ORG_KINDS.get(row.org_kind, (row.org_kind,))[0], address=row.address,
                 industry=row.industry, legal_rep=row.legal_rep, phone=row.phone, employees=row.employees,
                 **_point(row))
    elif kind == "places":
        d.update(code=row.code, kind=row.kind, kind_label=imp.PLACE_KINDS.get(row.kind, (row.kind,))[0],
                 name=row.name, address=row.address, capacity=row.capacity, responsible_unit=row.responsible_unit,
                 phone=row.phone, **_point(row))
    return d


_SPECS = {"persons": PERSON_FIELDS, "households": HOUSEHOLD_FIELDS, "organisations": ORGANISATION_FIELDS}


def masked_dict(kind: str, row: Any, principal: Principal, names: dict[str, str]) -> dict[str, Any]:
    d = record_dict(kind, row)
    specs = _SPECS.get(kind)
    if specs is None:
        return d
    out = mask_record(d, specs, principal)
    if kind in ("persons", "households"):  # home addresses: cut to community level
        out["address"] = _community_address(d["address"], names.get(row.community_code))
    if kind == "persons":
        out["masked"] = True
    return out


# ------------------------------------------------------------------ list / get / history


def _filters(stmt: Select[Any], kind: str, *, area_code: str | None, kind_filter: str | None, q: str | None,
             status: str | None = None, at: dt.datetime | None = None) -> Select[Any]:
    m = MODELS[kind]
    if area_code:
        if not re.fullmatch(r"\d{1,15}", area_code):
            raise InvalidInput([Problem("area_code 应为区划/网格编码前缀（数字） area_code must be digits",
                                        ["query", "area_code"])])
        stmt = stmt.where(area_filter(m, area_code, at))
    if kind_filter:
        stmt = stmt.where(_kind_clause(kind, kind_filter))
    if status:
        if kind != "facilities" or status not in STATUSES:
            raise InvalidInput([Problem(f"status 可选：{', '.join(STATUSES)} status must be one of {', '.join(STATUSES)} "
                                        "(facilities only)", ["query", "status"])])
        stmt = stmt.where(m.status == status)
    if q:
        q = q.strip()
        if kind == "persons" and re.fullmatch(r"\d{17}[\dXx]", q):
            stmt = stmt.where(m.id_number == q.upper())
        else:
            conds = [m.name.contains(q, autoescape=True)] if hasattr(m, "name") else []
            if hasattr(m, "address"):
                conds.append(m.address.contains(q, autoescape=True))
            conds.append(getattr(m, m.KEY) == q)
            stmt = stmt.where(or_(*conds))
    return stmt


KIND_FILTERS: dict[str, dict[str, str]] = {
    "buildings": {k: v[0] for k, v in imp.BUILDING_KINDS.items()},
    "households": {k: v[0] for k, v in imp.HOUSEHOLD_KINDS.items()},
    "persons": {"registered": "户籍人口", "non_registered": "非户籍（来沪）人口", "resident": "常住（实有）人口",
                "separated": "人户分离（户籍不在住）"},
    "facilities": {"01": "公用设施", "02": "道路交通", "03": "市容环境", "04": "园林绿化", "05": "房屋土地",
                   "06": "其他设施"},
    "organisations": {k: v[0] for k, v in ORG_KINDS.items()},
    "places": {k: v[0] for k, v in imp.PLACE_KINDS.items()},
}


def _kind_clause(kind: str, value: str) -> Any:
    m = MODELS[kind]
    if kind == "facilities":
        if not re.fullmatch(r"\d{2,5}", value):
            raise InvalidInput([Problem("部件 kind 为类型代码前缀（2位大类，或大类+小类） for facilities, kind is a type-code "
                                        "prefix (2-digit major, or major + minor)", ["query", "kind"])])
        return code_prefix_clause(m.type_code, value)
    allowed = KIND_FILTERS[kind]
    if value not in allowed:
        raise InvalidInput([Problem(f"kind 可选：{', '.join(allowed)} kind must be one of {', '.join(allowed)}",
                                    ["query", "kind"])])
    if kind == "persons":
        return {"registered": m.registered.is_(True), "non_registered": m.registered.is_(False),
                "resident": m.resident.is_(True),
                "separated": and_(m.registered.is_(True), m.resident.is_(False))}[value]
    col = m.org_kind if kind == "organisations" else m.kind
    return col == value


def query(session: Session, principal: Principal, kind: str, *, area_code: str | None = None,
          kind_filter: str | None = None, q: str | None = None, status: str | None = None,
          as_of: dt.date | dt.datetime | str | None = None) -> Select[Any]:
    at = as_of_instant(as_of)
    return _filters(readable(session, principal, kind, at), kind, area_code=area_code, kind_filter=kind_filter, q=q,
                    status=status, at=at)


def list_records(session: Session, principal: Principal, kind: str, *, page: int = 1, page_size: int = 50,
                 **filters: Any) -> dict[str, Any]:
    kind = resolve_kind(kind)
    stmt = query(session, principal, kind, **filters)
    m = MODELS[kind]
    total = count_of(session, stmt)
    rows = _page(session, stmt, m, total, page, page_size)
    names = _area_names(session, (r.community_code for r in rows)) if kind in _SPECS else {}
    items = [masked_dict(kind, r, principal, names) for r in rows]
    if kind == "households":
        _add_member_counts(session, items, filters.get("as_of"))
    if kind == "persons":
        audit.record(session, principal, "list", "person", None,
                     detail={"filters": {k: str(v) for k, v in filters.items() if v is not None},
                             "page": page, "returned": len(items)})
    return {"total": total, "page": page, "page_size": page_size, "items": items}


def _add_member_counts(session: Session, items: list[dict[str, Any]], as_of: Any) -> None:
    codes = [i["code"] for i in items]
    if not codes:
        return
    at = as_of_instant(as_of)
    counts = dict(session.execute(select(Person.household_code, func.count()).where(
        Person.household_code.in_(codes), version_clause(Person, at)).group_by(Person.household_code)).tuples().all())
    for i in items:
        i["member_count"] = int(counts.get(i["code"], 0))


def _get_row(session: Session, principal: Principal, kind: str, entity_id: int, at: dt.datetime | None) -> Any:
    m = MODELS[kind]
    row = session.scalar(readable(session, principal, kind, at).where(m.entity_id == entity_id))
    if row is None:
        when = "" if at is None else f"（于 {at.astimezone(TZ):%Y-%m-%d %H:%M} 时）"
        raise NotFound([Problem(f"没有编号为 {entity_id} 的{KIND_LABELS[kind][0]}记录{when} no {kind} record {entity_id}",
                                ["path", "id"], "not_found")])
    return row


def get_record(session: Session, principal: Principal, kind: str, entity_id: int, *,
               as_of: dt.date | dt.datetime | str | None = None, unmask: bool = False,
               reason: str | None = None) -> dict[str, Any]:
    kind = resolve_kind(kind)
    at = as_of_instant(as_of)
    if unmask:
        if kind != "persons":
            raise InvalidInput([Problem("只有人口记录可以查看明文 only person records can be unmasked",
                                        ["query", "unmask"])])
        try:
            check_unmask(principal, reason)
        except (InvalidInput, Forbidden) as exc:
            for p in exc.problems:
                p.loc = ["query", "reason"]
            raise
    row = _get_row(session, principal, kind, entity_id, at)
    if kind == "persons" and unmask:
        out = mask_record(record_dict(kind, row), PERSON_FIELDS, principal, unmask_reason=reason, session=session,
                          object_type="person", object_id=entity_id)
        out["masked"] = False
        return out
    names = _area_names(session, [row.community_code]) if kind in _SPECS else {}
    out = masked_dict(kind, row, principal, names)
    if kind == "households":
        _add_member_counts(session, [out], as_of)
        if principal.can("person.read"):
            members = session.scalars(select(Person).where(Person.household_code == row.code,
                                                           version_clause(Person, at),
                                                           scope_clause(principal, Person, at))
                                      .order_by(Person.entity_id)).all()
            out["members"] = [{k: v for k, v in masked_dict("persons", p, principal, names).items()
                               if k in ("id", "name", "gender", "gender_label", "relation", "registered", "resident",
                                        "birth_date")} for p in members]
            audit.record(session, principal, "read", "household", entity_id, detail={"members": len(members)})
    if kind == "persons":
        audit.record(session, principal, "read", "person", entity_id, detail={"as_of": str(as_of) if as_of else None})
    return out


def history(session: Session, principal: Principal, kind: str, entity_id: int) -> list[dict[str, Any]]:
    kind = resolve_kind(kind)
    m = MODELS[kind]
    rows = list(session.scalars(select(m).where(m.entity_id == entity_id,
                                                scope.clause(principal, HISTORY_SCOPE[kind]))
                                .order_by(m.valid_from, m.id)))
    if not rows:
        raise NotFound([Problem(f"没有编号为 {entity_id} 的{KIND_LABELS[kind][0]}记录 no {kind} record {entity_id}",
                                ["path", "id"], "not_found")])
    names = _area_names(session, (r.community_code for r in rows)) if kind in _SPECS else {}
    out = [masked_dict(kind, r, principal, names) for r in rows]
    if kind == "persons":
        audit.record(session, principal, "history", "person", entity_id, detail={"versions": len(out)})
    return out


# ------------------------------------------------------------------ GeoJSON and CSV out


def geojson(session: Session, principal: Principal, kind: str, *, page: int = 1, page_size: int = 5000,
            **filters: Any) -> dict[str, Any]:
    kind = resolve_kind(kind)
    if kind not in SPATIAL_KINDS:
        raise InvalidInput([Problem(f"{kind} 没有几何位置，不提供 GeoJSON {kind} have no geometry: no GeoJSON",
                                    ["path", "kind"])])
    m = MODELS[kind]
    stmt = query(session, principal, kind, **filters)
    total = count_of(session, stmt)
    rows = _page(session, stmt, m, total, page, page_size)
    names: dict[str, str] = _area_names(session, (r.community_code for r in rows)) if kind in _SPECS else {}
    features = []
    for r in rows:
        props = masked_dict(kind, r, principal, names)
        features.append({"type": "Feature", "id": r.entity_id,
                         "geometry": gj.geometry(r.geom),
                         "properties": jsonable(props)})
    return {"type": "FeatureCollection", "features": features,
            "total": total, "page": page, "page_size": page_size}


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in d.items()}


EXPORT_META = [("id", "记录ID"), ("valid_from", "生效时间"), ("street_code", "街镇编码"),
               ("community_code", "社区编码"), ("grid_code", "网格编码")]
EXPORT_EXTRA = {
    "buildings": [("lon", "经度"), ("lat", "纬度")],
    "households": [("member_count", "人数")],
    "persons": [("gender_label", "性别"), ("birth_date", "出生日期")],
    "facilities": [("type_code", "类型代码"), ("lon", "经度"), ("lat", "纬度")],
    "organisations": [("org_kind_label", "组织类型"), ("lon", "经度"), ("lat", "纬度")],
    "places": [("lon", "经度"), ("lat", "纬度")],
}


def export_columns(kind: str) -> list[tuple[str, str]]:
    cols = [(c.field, c.label) for c in imp.COLUMNS[kind] if c.stored]
    extra = [c for c in EXPORT_EXTRA.get(kind, []) if c[0] not in {f for f, _ in cols}]
    meta = [c for c in EXPORT_META if c[0] not in {f for f, _ in cols} | {f for f, _ in extra}]
    return cols + extra + meta


def export_table(session: Session, principal: Principal, kind: str,
                 **filters: Any) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of all matching records, personal data masked; audited."""
    kind = resolve_kind(kind)
    if not principal.can(READ_PERMISSION[kind]):
        raise Forbidden([Problem(f"导出需要权限 {READ_PERMISSION[kind]} exporting {kind} needs "
                                 f"{READ_PERMISSION[kind]}", ["permission"], "forbidden")])
    m = MODELS[kind]
    stmt = query(session, principal, kind, **filters).order_by(m.entity_id, m.id)
    cols = export_columns(kind)
    out: list[list[Any]] = []
    batch: list[Any] = []

    def flush() -> None:
        names = _area_names(session, (r.community_code for r in batch)) if kind in _SPECS else {}
        items = [masked_dict(kind, r, principal, names) for r in batch]
        if kind == "households":
            _add_member_counts(session, items, filters.get("as_of"))
        out.extend([d.get(f) for f, _l in cols] for d in items)
        batch.clear()

    for r in session.scalars(stmt.execution_options(yield_per=2000)):
        batch.append(r)
        if len(batch) >= 2000:
            flush()
    flush()
    audit.record(session, principal, "export", OBJECT_TYPE[kind], None,
                 detail={"rows": len(out), "masked": True,
                         "filters": {k: str(v) for k, v in filters.items() if v is not None}})
    return [label for _f, label in cols], out


def export_csv(session: Session, principal: Principal, kind: str, **filters: Any) -> str:
    """All matching records as CSV (UTF-8 with BOM, Chinese headers, CRLF), personal data masked;
    codes kept as text and formulas neutralised for spreadsheets (``cityops.exports``)."""
    headers, rows = export_table(session, principal, kind, **filters)
    buf = io.StringIO()
    buf.write("\ufeff")
    w = SafeWriter(buf)
    w.writerow(headers)
    for row in rows:
        w.writerow(["" if v is None else _csv_value(v) for v in row])
    return buf.getvalue()


def export_xlsx(session: Session, principal: Principal, kind: str, **filters: Any) -> bytes:
    """The same records as an XLSX workbook with typed columns (numbers, dates in Shanghai time,
    codes and other text as text cells)."""
    from cityops.exports import xlsx

    headers, rows = export_table(session, principal, kind, **filters)

    def typed(v: Any) -> Any:
        if isinstance(v, bool):
            return "是" if v else "否"
        if isinstance(v, dt.datetime):
            return v.astimezone(TZ).replace(tzinfo=None)
        if isinstance(v, dict | list):
            return _csv_value(v)
        return v

    return xlsx(headers, ([typed(v) for v in row] for row in rows), sheet=kind)


def _csv_value(v: Any) -> Any:
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, dt.datetime):
        return v.astimezone(TZ).isoformat(timespec="seconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


# ------------------------------------------------------------------ imports


@dataclass
class ImportReport:
    kind: str
    filename: str
    format: str
    rows: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    cascaded: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "filename": self.filename, "format": self.format, "rows": self.rows,
                "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "cascaded": self.cascaded, "dry_run": self.dry_run, "at": self.at}


_BOOKKEEPING = {"id", "entity_id", "valid_from", "valid_to", "source", "synthetic"}


_STORED: dict[str, tuple[str, ...]] = {}


def stored_columns(model: Any) -> tuple[str, ...]:
    cols = _STORED.get(model.__tablename__)
    if cols is None:
        cols = _STORED[model.__tablename__] = tuple(c.name for c in model.__table__.columns
                                                    if c.name not in _BOOKKEEPING)
    return cols


def column_defaults(model: Any) -> dict[str, Any]:
    """Scalar column defaults (applied to new records whose file leaves the field empty)."""
    return {c.name: c.default.arg for c in model.__table__.columns
            if c.default is not None and c.default.is_scalar and c.name not in _BOOKKEEPING}


def _current_by_key(session: Session, model: Any, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    key_col = getattr(model, model.KEY)
    out: dict[str, dict[str, Any]] = {}
    uniq = sorted(set(keys))
    for i in range(0, len(uniq), 2000):
        chunk = uniq[i:i + 2000]
        for r in session.execute(select(model.__table__).where(key_col.in_(chunk), model.valid_to.is_(None))).mappings():
            out[r[model.KEY]] = dict(r)
    return out


def _grid_parents(session: Session) -> dict[str, tuple[str, str | None]]:
    """grid code -> (community code, street code) for every current unit grid."""
    rows = session.execute(select(Area.code, Area.parent_code, Area.level).where(
        Area.valid_to.is_(None), Area.level.in_(("grid", "community")))).all()
    comm_parent = {r.code: r.parent_code for r in rows if r.level == "community"}
    return {r.code: (r.parent_code, comm_parent.get(r.parent_code)) for r in rows if r.level == "grid"}


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if a is None or b is None:
        return False
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 5e-8
    if isinstance(a, BaseGeometry) or isinstance(b, BaseGeometry):
        return bool(shapely.equals_exact(a, b, tolerance=5e-8))
    return bool(a == b)


def _household_address(building_address: str | None, room: str | None) -> str:
    base = building_address or ""
    if not room:
        return base
    return base + room + ("" if room.endswith("室") else "室")


def _locate_points(session: Session, pts: list[tuple[int, float, float]]) -> dict[int, str | None]:
    if not pts:
        return {}
    from cityops.geo.service import grid_indices_for

    lon = np.array([p[1] for p in pts], dtype=float)
    lat = np.array([p[2] for p in pts], dtype=float)
    codes = grid_indices_for(session, lon, lat)
    return {p[0]: (None if c is None else str(c)) for p, c in zip(pts, codes, strict=True)}


def import_file(session: Session, principal: Principal, kind: str, filename: str, data: bytes,
                now: dt.datetime | None = None, *, dry_run: bool = False) -> dict[str, Any]:
    """Import a CSV / XLSX / GeoJSON file of ``kind``: all or nothing.

    Every problem is listed (``InvalidInput``, HTTP 422) and nothing is written, or every row is
    applied: new keys create a record, changed records get a new version (the current one is
    closed at ``now``), unchanged ones are left alone. Derived places follow: households move
    with their building, persons with their household. ``now`` (UTC, default: the clock) is the
    time the new versions start."""
    kind = resolve_kind(kind)
    now = (now or utcnow()).astimezone(dt.UTC)
    model = MODELS[kind]
    table = imp.read_table(filename, data)
    records, present, errors = imp.parse_table(kind, table)
    unit = table.unit
    key_field = model.KEY
    if key_field not in present:
        col = next(c for c in imp.COLUMNS[kind] if c.field == key_field)
        errors.append(imp.ImportError_(1 if unit == "row" else None, key_field, col.label,
                                       f"缺少必需的列「{col.label}」({key_field}) the key column is missing",
                                       "row" if unit == "row" else "file"))
        imp.raise_if(errors)
    keys = [r.values.get(key_field) for r in records]
    norm_keys = [k.number if isinstance(k, IdInfo) else (k[0] if isinstance(k, tuple) else k) for k in keys]
    current = _current_by_key(session, model, [k for k in norm_keys if isinstance(k, str)])
    ctx = _Context(session, kind, present, unit, errors, principal)
    ref_field = {"households": "building_code", "persons": "household_code"}.get(kind)
    if ref_field:
        ref_model = Building if kind == "households" else Household
        ctx.prefetch(ref_model, [r.values.get(ref_field) for r in records] + [c[ref_field] for c in current.values()])
    resolved: list[tuple[imp.Parsed, dict[str, Any], dict[str, Any] | None]] = []
    first_pos: dict[str, int] = {}
    for p, key in zip(records, norm_keys, strict=True):
        if imp.is_invalid(key):
            continue
        if key is None:
            ctx.err(p, key_field, "必填 required")
            continue
        if key in first_pos:
            ctx.err(p, key_field, f"与第{first_pos[key]}{'行' if unit == 'row' else '个要素'}重复 duplicate of "
                                  f"{unit} {first_pos[key]}")
            continue
        first_pos[key] = p.pos
        cur = current.get(key)
        new = ctx.build(p, key, cur)
        if new is not None:
            resolved.append((p, new, cur))
    ctx.finish_locations(resolved)
    if principal.kind != "system" and principal.area_code is None and resolved:
        errors.append(imp.ImportError_(None, None, None, "您的账号没有辖区，不能导入基础数据 your account has no area "
                                       "scope: it cannot import base data", "file"))
    imp.raise_if(errors)

    report = ImportReport(kind, filename, table.fmt, len(records), dry_run=dry_run, at=now)
    cols = stored_columns(model)
    updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    creates: list[dict[str, Any]] = []
    for p, new, cur in resolved:
        if cur is None:
            creates.append(new)
            continue
        if all(_same(new.get(c), cur.get(c)) for c in cols):
            report.unchanged += 1
            continue
        if cur["valid_from"] >= now:
            errors.append(imp.ImportError_(p.pos, None, None,
                                           f"当前版本生效于 {cur['valid_from'].isoformat()}，晚于本次导入时间 "
                                           f"the current version starts at {cur['valid_from'].isoformat()}, not before "
                                           f"this import's time {now.isoformat()}", unit))
            continue
        updates.append((cur, new))
    imp.raise_if(errors)
    source = filename[-200:]
    try:
        _write_versions(session, model, updates, creates, now, source)
        report.created, report.updated = len(creates), len(updates)
        _cascade(session, kind, updates, now, source, report.cascaded)
        audit.record(session, principal, "import", OBJECT_TYPE[kind], filename[-80:],
                     detail={"format": table.fmt, "rows": report.rows, "created": report.created,
                             "updated": report.updated, "unchanged": report.unchanged, "cascaded": report.cascaded,
                             "dry_run": dry_run, "at": now.isoformat()})
        if dry_run:
            session.rollback()
    except IntegrityError as exc:
        session.rollback()
        if "unique" not in str(exc.orig).lower() and "duplicate" not in str(exc.orig).lower():
            raise
        log.warning("registry import conflict: %s", exc.orig)
        raise Conflict([Problem("导入期间这些记录被其他操作修改，请重试 these records were changed by another import "
                                "meanwhile: retry", ["file"], "conflict")]) from None
    return report.as_dict()


def _write_versions(session: Session, model: Any, updates: list[tuple[dict[str, Any], dict[str, Any]]],
                    creates: list[dict[str, Any]], now: dt.datetime, source: str) -> None:
    cols = stored_columns(model)
    if updates:
        t = model.__table__
        session.execute(update(t).where(t.c.id == bindparam("vid")).values(valid_to=bindparam("vto")),
                        [{"vid": cur["id"], "vto": now} for cur, _new in updates])
    rows = [{**{c: new.get(c) for c in cols}, "entity_id": cur["entity_id"], "valid_from": now, "valid_to": None,
             "source": source, "synthetic": False} for cur, new in updates]
    rows += [{**{c: new.get(c) for c in cols}, "entity_id": None, "valid_from": now, "valid_to": None,
              "source": source, "synthetic": False} for new in creates]
    for i in range(0, len(rows), 5000):
        session.execute(insert(model.__table__), rows[i:i + 5000])
    if creates:
        assign_entity_ids(session, model)


def assign_entity_ids(session: Session, model: Any) -> None:
    """New records: their entity id is the id of their first version."""
    session.execute(update(model.__table__).where(model.__table__.c.entity_id.is_(None))
                    .values(entity_id=model.__table__.c.id))


def _cascade(session: Session, kind: str, updates: list[tuple[dict[str, Any], dict[str, Any]]], now: dt.datetime,
             source: str, counts: dict[str, int]) -> None:
    """Households follow their building (codes, derived address); persons follow their household."""
    child: Any
    if kind == "buildings":
        child, ref, derive = Household, "building_code", True
    elif kind == "households":
        child, ref, derive = Person, "household_code", False
    else:
        return
    moved = {new["code"]: (cur, new) for cur, new in updates
             if any(new.get(c) != cur.get(c) for c in ("grid_code", "community_code", "street_code", "address"))}
    if not moved:
        return
    children = _current_by_ref(session, child, ref, list(moved))
    child_updates = []
    for ch in children:
        cur_parent, new_parent = moved[ch[ref]]
        new = dict(ch)
        for c in ("grid_code", "community_code", "street_code"):
            new[c] = new_parent[c]
        if derive:  # household address derived from the building's
            if ch["address"] == _household_address(cur_parent["address"], ch["room"]):
                new["address"] = _household_address(new_parent["address"], ch["room"])
        elif ch["address"] == cur_parent["address"]:
            new["address"] = new_parent["address"]
        if any(new[c] != ch[c] for c in ("grid_code", "community_code", "street_code", "address")):
            child_updates.append((ch, new))
    child_kind = "households" if child is Household else "persons"
    if child_updates:
        _write_versions(session, child, child_updates, [], now, source)
        counts[child_kind] = counts.get(child_kind, 0) + len(child_updates)
        _cascade(session, child_kind, child_updates, now, source, counts)


def _current_by_ref(session: Session, model: Any, ref: str, values: list[str]) -> list[dict[str, Any]]:
    col = getattr(model, ref)
    out: list[dict[str, Any]] = []
    for i in range(0, len(values), 2000):
        chunk = values[i:i + 2000]
        out.extend(dict(r) for r in session.execute(select(model.__table__).where(
            col.in_(chunk), model.valid_to.is_(None))).mappings())
    return out


class _Context:
    """Per-import state: lookups and the record builder of each kind."""

    def __init__(self, session: Session, kind: str, present: set[str], unit: str, errors: list[imp.ImportError_],
                 principal: Principal) -> None:
        self.session, self.kind, self.present, self.unit, self.errors = session, kind, present, unit, errors
        self.principal = principal
        self.cols = {c.field: c for c in imp.COLUMNS[kind]}
        self.defaults = column_defaults(MODELS[kind])
        self.grids = _grid_parents(session)
        self.pending_points: list[tuple[int, float, float]] = []
        self.pending: dict[int, tuple[imp.Parsed, dict[str, Any]]] = {}
        self.refs: dict[str, dict[str, Any]] = {}
        self.districts = set(session.scalars(select(Area.code).where(Area.level == "district",
                                                                     Area.valid_to.is_(None))))

    def err(self, p: imp.Parsed, fld: str | None, reason: str) -> None:
        col = p.columns.get(fld) if fld else None
        if fld and col is None and fld in self.cols:
            col = self.cols[fld].label
        self.errors.append(imp.ImportError_(p.pos, fld, col, reason, self.unit))

    # -------------------------------------------------------------- build one record

    def build(self, p: imp.Parsed, key: str, cur: dict[str, Any] | None) -> dict[str, Any] | None:
        v = p.values
        bad = any(imp.is_invalid(x) for x in v.values())
        new: dict[str, Any] = {c: cur[c] for c in stored_columns(MODELS[self.kind])} if cur else {}
        for f, c in self.cols.items():
            if c.stored and f in self.present and not imp.is_invalid(v.get(f)):
                new[f] = v.get(f)
        # key-derived fields
        if self.kind == "persons":
            info = v["id_number"]
            new.update(id_number=info.number, gender=info.gender, birth_date=info.birth_date)
            g, b = v.get("gender"), v.get("birth_date")
            if g and not imp.is_invalid(g) and g != info.gender:
                self.err(p, "gender", "性别与身份证号（第17位）不符 gender does not match the ID number's 17th digit")
                bad = True
            if b and not imp.is_invalid(b) and b != info.birth_date:
                self.err(p, "birth_date", "出生日期与身份证号不符 the date of birth does not match the ID number")
                bad = True
        elif self.kind == "organisations":
            code, org_kind = v["credit_code"]
            new.update(credit_code=code, org_kind=org_kind)
        elif self.kind == "facilities":
            bad = self._facility_code(p, new, cur) or bad
        # required fields of new records
        if cur is None:
            for f, default in self.defaults.items():
                if new.get(f) is None:
                    new[f] = default
            for f, c in self.cols.items():
                if c.required and new.get(f) is None and not imp.is_invalid(v.get(f)):
                    hint = "" if f in self.present else "（文件中没有此列 the file has no such column）"
                    self.err(p, f, f"新记录必填{hint} required for a new record")
                    bad = True
        # references and places
        if self.kind == "households":
            bad = self._household_place(p, new, cur) or bad
        elif self.kind == "persons":
            bad = self._person_place(p, new, cur) or bad
        else:
            bad = self._position(p, new, cur) or bad
        return None if bad else new

    def _facility_code(self, p: imp.Parsed, new: dict[str, Any], cur: dict[str, Any] | None) -> bool:
        ref_raw = p.values.get("standard_ref") if "standard_ref" in self.present else (cur or {}).get("standard_ref")
        if imp.is_invalid(ref_raw) or ref_raw is None:
            return False  # reported as invalid / required
        try:
            ref = standard_ref(ref_raw)
        except CodeError as exc:
            self.err(p, "standard_ref", str(exc))
            return True
        try:
            cc = check_component_code(new["code"], ref, self.districts)
        except CodeError as exc:
            self.err(p, "code", str(exc))
            return True
        new.update(standard_ref=ref, major_code=cc.major, minor_code=cc.minor, type_code=cc.type_code)
        return False

    def _ref(self, model: Any, code: str) -> dict[str, Any] | None:
        cache = self.refs.setdefault(model.__tablename__, {})
        if code not in cache:
            cache.update(_current_by_key(self.session, model, [code]))
            cache.setdefault(code, None)
        return cache.get(code)

    def prefetch(self, model: Any, codes: Iterable[str]) -> None:
        cache = self.refs.setdefault(model.__tablename__, {})
        want = sorted({c for c in codes if isinstance(c, str)} - set(cache))
        found = _current_by_key(self.session, model, want)
        for c in want:
            cache[c] = found.get(c)

    def _household_place(self, p: imp.Parsed, new: dict[str, Any], cur: dict[str, Any] | None) -> bool:
        bcode = new.get("building_code")
        if bcode is None:
            return True  # reported as required
        b = self._ref(Building, bcode)
        if b is None:
            self.err(p, "building_code", f"建筑 {bcode} 不存在（请先导入建筑） no current building {bcode} (import "
                                         "buildings first)")
            return True
        new.update(grid_code=b["grid_code"], community_code=b["community_code"], street_code=b["street_code"])
        given = p.values.get("address") if "address" in self.present else None
        if given and not imp.is_invalid(given):
            new["address"] = given
        elif cur is None or "address" in self.present or {"building_code", "room"} & self.present:
            new["address"] = _household_address(b["address"], new.get("room"))
        return self._check_given_codes(p, new) or self._scope(p, new, cur)

    def _person_place(self, p: imp.Parsed, new: dict[str, Any], cur: dict[str, Any] | None) -> bool:
        hcode = new.get("household_code")
        if hcode:
            h = self._ref(Household, hcode)
            if h is None:
                self.err(p, "household_code", f"户 {hcode} 不存在（请先导入户） no current household {hcode} (import "
                                              "households first)")
                return True
            new.update(grid_code=h["grid_code"], community_code=h["community_code"], street_code=h["street_code"])
            given = p.values.get("address") if "address" in self.present else None
            if given and not imp.is_invalid(given):
                new["address"] = given
            elif ("address" in self.present or cur is None or cur.get("household_code") != hcode
                  or not new.get("address")):
                new["address"] = h["address"]
            return self._check_given_codes(p, new) or self._scope(p, new, cur)
        g = p.values.get("grid_code") if "grid_code" in self.present else None
        if g and not imp.is_invalid(g):
            return self._set_grid(p, new, g, "grid_code") or self._check_given_codes(p, new) or self._scope(p, new, cur)
        if imp.is_invalid(g):
            return True
        if cur is not None and "household_code" not in self.present:
            return self._scope(p, new, cur)
        self.err(p, "household_code", "须填写户号或网格编码 a household code or a grid code is required")
        return True

    def _set_grid(self, p: imp.Parsed, new: dict[str, Any], grid: str, fld: str) -> bool:
        parents = self.grids.get(grid)
        if parents is None:
            self.err(p, fld, f"网格 {grid} 不存在 no current unit grid {grid}")
            return True
        new.update(grid_code=grid, community_code=parents[0], street_code=parents[1])
        return False

    def _check_given_codes(self, p: imp.Parsed, new: dict[str, Any]) -> bool:
        bad = False
        for fld in ("grid_code", "community_code", "street_code"):
            given = p.values.get(fld) if fld in self.present else None
            if given and not imp.is_invalid(given) and given != new.get(fld):
                self.err(p, fld, f"与位置推算的 {new.get(fld)} 不一致 does not match {new.get(fld)} derived from the "
                                 "position")
                bad = True
        return bad

    def _position(self, p: imp.Parsed, new: dict[str, Any], cur: dict[str, Any] | None) -> bool:
        n_err = len(self.errors)
        geom = imp.geometry_of(self.kind, p, self.errors, self.unit)
        if len(self.errors) > n_err or p.values.get("_geometry_invalid") or any(
                imp.is_invalid(p.values.get(f)) for f in ("lon", "lat", "wkt", "grid_code", "crs")):
            return True
        if geom is not None:
            rp = geom if geom.geom_type == "Point" else geom.representative_point()
            new.update(geom=geom, lon=round(rp.x, 7), lat=round(rp.y, 7))
            self.pending_points.append((p.pos, rp.x, rp.y))
            self.pending[p.pos] = (p, new)
            return False  # located in finish_locations
        g = p.values.get("grid_code") if "grid_code" in self.present else None
        position_cols = bool({"lon", "lat", "wkt"} & self.present) or p.geometry is not None
        if g and self.kind not in imp.POSITION_REQUIRED:
            if cur is None or position_cols:
                new.update(geom=None, lon=None, lat=None)
            return self._set_grid(p, new, g, "grid_code") or self._check_given_codes(p, new) or self._scope(p, new, cur)
        if cur is not None and not position_cols and not g:
            return self._scope(p, new, cur)
        need = "须填写经纬度（或几何）" if self.kind in imp.POSITION_REQUIRED else "须填写经纬度、几何或网格编码"
        need_en = ("a position (lon/lat or geometry) is required" if self.kind in imp.POSITION_REQUIRED
                   else "a position (lon/lat, geometry) or a grid code is required")
        self.err(p, "lon" if self.unit == "row" else "geometry", f"{need} {need_en}")
        return True

    def finish_locations(self, resolved: list[tuple[imp.Parsed, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Locate all pending points at once; drop the records that failed."""
        codes = _locate_points(self.session, self.pending_points)
        failed: set[int] = set()
        curs = {p.pos: cur for p, _new, cur in resolved}
        for pos, (p, new) in self.pending.items():
            g = codes.get(pos)
            if g is None:
                fld = "geometry" if p.geometry is not None else ("wkt" if p.values.get("wkt") else "lon")
                self.err(p, fld, "位置不在本区范围内 the position is outside the district")
                failed.add(pos)
                continue
            if self._set_grid(p, new, g, "lon") or self._check_given_codes(p, new) or self._scope(p, new, curs.get(pos)):
                failed.add(pos)
        if failed:
            resolved[:] = [r for r in resolved if r[0].pos not in failed]

    def _scope(self, p: imp.Parsed, new: dict[str, Any], cur: dict[str, Any] | None) -> bool:
        pr = self.principal
        if pr.kind == "system" or pr.area_code is None:
            return False  # no-area principals are refused once for the whole file
        if not str(new.get("grid_code", "")).startswith(pr.area_code):
            self.err(p, None, f"位置不在您的辖区（{pr.area_code}）内 the record lies outside your area {pr.area_code}")
            return True
        if cur is not None and not str(cur.get("grid_code", "")).startswith(pr.area_code):
            self.err(p, None, "该记录目前属于其他辖区，请由区级迁移 the record is held by another area: ask the district to "
                              "transfer it")
            return True
        return False


# ------------------------------------------------------------------ retire


def retire(session: Session, principal: Principal, kind: str, entity_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """Close the current version (the record no longer exists from ``now``; history stays)."""
    kind = resolve_kind(kind)
    now = (now or utcnow()).astimezone(dt.UTC)
    model = MODELS[kind]
    row = _get_row(session, principal, kind, entity_id, None)
    if row.valid_from >= now:
        raise Conflict([Problem("当前版本的生效时间晚于注销时间 the current version starts after this time",
                                ["path", "id"], "conflict")])
    session.execute(update(model.__table__).where(model.__table__.c.id == row.id).values(valid_to=now))
    audit.record(session, principal, "retire", OBJECT_TYPE[kind], entity_id, detail={"key": getattr(row, model.KEY)
                                                                        if kind != "persons" else None})
    return {"id": entity_id, "kind": kind, "valid_to": now}


def counts(session: Session, principal: Principal, *, area_code: str | None = None,
           as_of: dt.date | dt.datetime | str | None = None) -> dict[str, int]:
    """Record counts per kind visible to the principal (persons only with person.read)."""
    out: dict[str, int] = {}
    for kind in MODELS:
        if not principal.can(READ_PERMISSION[kind]):
            continue
        out[kind] = count_of(session, query(session, principal, kind, area_code=area_code, as_of=as_of))
    return out


_ROAD = re.compile(r"([\u4e00-\u9fff]{1,6}?(?:公路|大道|大街|路|街))(?:\d|近|与|和|$)")


def place_names(session: Session) -> list[tuple[str, str, str, str, str]]:
    """Names a complaint may use for a place of the base data, current versions only: residential
    compounds (小区), key places (重点场所), organisations, and the roads of building and place
    addresses — as (name, kind, grid_code, community_code, street_code). A road runs through
    several grids: it is listed once per (road, street) with the grid of one of its buildings.
    The gazetteer of smart dispatch (cityops.ai.place); no personal data (households, persons)."""
    out: list[tuple[str, str, str, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(name: str | None, kind: str, grid: str, community: str, street: str, key: str | None = None) -> None:
        if not name or len(name) < 2:
            return
        k = (name, key or grid)
        if k not in seen:
            seen.add(k)
            out.append((name, kind, grid, community, street))

    def road_of(address: str | None, street_name: str | None) -> str | None:
        if not address:
            return None
        a = address.replace("上海市", "").replace("松江区", "")
        if street_name and a.startswith(street_name):
            a = a[len(street_name):]
        m = _ROAD.match(a)
        return m.group(1) if m else None

    streets = dict(session.execute(select(Area.code, Area.name).where(Area.level == "street", Area.valid_to.is_(None))).all())
    for r in session.execute(select(Building.compound, Building.address, Building.grid_code, Building.community_code,
                                    Building.street_code).where(Building.valid_to.is_(None))):
        add(r.compound, "compound", r.grid_code, r.community_code, r.street_code)
        add(road_of(r.address, streets.get(r.street_code)), "road", r.grid_code, r.community_code, r.street_code, r.street_code)
    for p in session.execute(select(Place.name, Place.address, Place.grid_code, Place.community_code, Place.street_code)
                             .where(Place.valid_to.is_(None))):
        add(p.name, "place", p.grid_code, p.community_code, p.street_code)
        add(road_of(p.address, streets.get(p.street_code)), "road", p.grid_code, p.community_code, p.street_code, p.street_code)
    for o in session.execute(select(Organisation.name, Organisation.grid_code, Organisation.community_code,
                                    Organisation.street_code).where(Organisation.valid_to.is_(None))):
        add(o.name, "organisation", o.grid_code, o.community_code, o.street_code)
    return out
