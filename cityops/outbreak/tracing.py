"""The case registry and contact tracing of an outbreak: case reports (linked to registry persons by
ID number), classification changes (timeline rows), exposures (the edges of the contact graph), and
``recategorise`` — every person's category and end dates recomputed from the whole graph by the
pure rule (``cityops.outbreak.categorise``) whenever the graph changes; only changed rows are
written."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.lifecycle import service as lifecycle
from cityops.outbreak import categorise as cat
from cityops.outbreak import persons, rules
from cityops.outbreak.days import FOLLOWUP_TIMER, day_number, local_day
from cityops.outbreak.models import Exposure, Outbreak, OutbreakCase, TrackedPerson
from cityops.outbreak.schemas import CaseIn, ClassifyIn, ExposuresIn, PlaceIn
from cityops.outbreak.scopes import CASE_SCOPE, PERSON_SCOPE, get_case, get_outbreak, get_person
from cityops.security import audit, scope
from cityops.security.principal import Principal

CASE_OBJECT = "ob_case"
__all__ = ["FOLLOWUP_TIMER", "day_number"]


def _active(session: Session, ref: str | int) -> Outbreak:
    ob = get_outbreak(session, ref, for_update=True)
    if ob.state != "active":
        raise Conflict([Problem("该疫情已关闭战时模式 the outbreak is ended; switch it on again first",
                                ["path", "outbreak"], "conflict")])
    return ob


def _check_class(rs: rules.RuleSet, value: str, loc: list[str | int]) -> None:
    if value not in rs.classifications:
        raise InvalidInput([Problem(f"未知的病例分类 unknown classification {value!r}; known: "
                                    f"{', '.join(rs.classifications)}", loc, "value_error")])


def case_dict(c: OutbreakCase, p: TrackedPerson, principal: Principal, rs: rules.RuleSet, lang: str = "zh") -> dict[str, Any]:
    cl = rs.classifications.get(c.classification)
    return {"id": c.id, "code": c.code, "outbreak_id": c.outbreak_id, "classification": c.classification,
            "classification_label": (cl.en if lang == "en" else cl.zh) if cl else c.classification,
            "onset_on": c.onset_on, "sampled_on": c.sampled_on, "reported_at": c.reported_at, "found_in": c.found_in,
            "outcome": c.outcome, "street_code": c.street_code, "community_code": c.community_code,
            "grid_code": c.grid_code, "lon": c.lon, "lat": c.lat, "places": c.places,
            "person": persons.person_dict(p, principal, lang)}


def _places(session: Session, places: list[PlaceIn], loc: list[str | int]) -> list[dict[str, Any]]:
    from cityops.registry import occupancy

    pos = occupancy.building_positions(session, [p.code for p in places if p.kind == "building" and p.code])
    out: list[dict[str, Any]] = []
    probs: list[Problem] = []
    for i, p in enumerate(places):
        lon, lat = p.lon, p.lat
        if p.kind == "building" and p.code in pos and (lon is None or lat is None):
            lon, lat = pos[p.code][0], pos[p.code][1]
        if lon is None or lat is None:
            probs.append(Problem("场所需给出点位或有效的楼栋代码 a place needs lon/lat or a known building code",
                                 [*loc, i, "lon"], "missing"))
            continue
        out.append({"kind": p.kind, "code": p.code, "name": p.name, "lon": lon, "lat": lat,
                    "start_at": p.start_at.isoformat() if p.start_at else None,
                    "end_at": p.end_at.isoformat() if p.end_at else None})
    if probs:
        raise InvalidInput(probs)
    for item, (g, c, s) in zip(out, persons.locate(session, [o["lon"] for o in out], [o["lat"] for o in out]), strict=True):
        item.update(grid_code=g, community_code=c, street_code=s)
    return out


def report_case(session: Session, principal: Principal, ob_ref: str | int, body: CaseIn, lang: str = "zh") -> dict[str, Any]:
    """Register a case (a new person, or a tracked person — e.g. a 密接 who turned positive)."""
    ob = _active(session, ob_ref)
    rs = rules.get(ob.rule_set)
    _check_class(rs, body.classification, ["body", "classification"])
    if body.person_id is not None:
        p = get_person(session, principal, body.person_id)
        if p.outbreak_id != ob.id:
            raise NotFound([Problem(f"该疫情中没有人员 {body.person_id}", ["body", "person_id"], "not_found")])
    else:
        assert body.person is not None
        p = persons.resolve(session, ob, [body.person], [["body", "person"]])[0]
    if session.scalar(select(OutbreakCase.id).where(OutbreakCase.person_id == p.id)) is not None:
        raise Conflict([Problem("该人员已登记为病例，请修改分类 this person is already a case: change its classification",
                                ["body", "person"], "conflict")])
    places = _places(session, body.places, ["body", "places"])
    now = clock.now()
    reported = body.reported_at or now
    seq = int(session.scalar(select(func.count()).select_from(OutbreakCase).where(OutbreakCase.outbreak_id == ob.id))
              or 0) + 1
    c = OutbreakCase(code=f"{ob.code}-C{seq:05d}", outbreak_id=ob.id, person_id=p.id,
                     classification=body.classification, onset_on=body.onset_on, sampled_on=body.sampled_on,
                     reported_at=reported, found_in=body.found_in, lon=p.lon, lat=p.lat, grid_code=p.grid_code,
                     community_code=p.community_code, street_code=p.street_code, places=places,
                     reported_by=principal.username)
    session.add(c)
    session.flush()
    lifecycle.add_entry(session, principal, CASE_OBJECT, c.id, "report", at=now, to_state=c.classification,
                        note=f"{p.category or '—'} → 病例", data={"person_id": p.id, "previous_category": p.category})
    audit.record(session, principal, "ob_case.report", CASE_OBJECT, c.id,
                 detail={"outbreak": ob.code, "classification": c.classification, "street": c.street_code})
    _after_case(session, ob, rs, c, reported)
    return case_dict(c, p, principal, rs, lang)


def _after_case(session: Session, ob: Outbreak, rs: rules.RuleSet, c: OutbreakCase, at: dt.datetime) -> None:
    from cityops.jobs import service as jobs
    from cityops.outbreak import zones

    if c.classification in rs.source_classes():
        zones.note_case(session, ob, c, local_day(at))
    recategorise(session, ob)
    jobs.enqueue(session, "outbreak.case", {"outbreak_id": ob.id, "case_id": c.id, "code": c.code,
                                            "classification": c.classification, "street_code": c.street_code})


def classify(session: Session, principal: Principal, case_ref: str | int, body: ClassifyIn,
             lang: str = "zh") -> dict[str, Any]:
    """Change a case's classification (and onset / sampling / outcome): one timeline row."""
    c = get_case(session, principal, case_ref)
    ob = _active(session, c.outbreak_id)
    rs = rules.get(ob.rule_set)
    _check_class(rs, body.classification, ["body", "classification"])
    before = c.classification
    was_source = before in rs.source_classes()
    c.classification = body.classification
    for attr in ("onset_on", "sampled_on", "outcome"):
        v = getattr(body, attr)
        if v is not None:
            setattr(c, attr, v)
    now = clock.now()
    lifecycle.add_entry(session, principal, CASE_OBJECT, c.id, "classify", at=now, from_state=before,
                        to_state=c.classification, note=body.note)
    audit.record(session, principal, "ob_case.classify", CASE_OBJECT, c.id,
                 detail={"from": before, "to": c.classification})
    p = session.get(TrackedPerson, c.person_id)
    assert p is not None
    if not was_source and c.classification in rs.source_classes():
        _after_case(session, ob, rs, c, now)
    else:
        recategorise(session, ob)
    return case_dict(c, p, principal, rs, lang)


def add_exposures(session: Session, principal: Principal, ob_ref: str | int, body: ExposuresIn) -> dict[str, Any]:
    """Record exposures (all or nothing) and recompute the categories."""
    ob = _active(session, ob_ref)
    src_ids = sorted({e.source_id for e in body.exposures})
    known = set(session.scalars(select(TrackedPerson.id).where(TrackedPerson.outbreak_id == ob.id,
                                                               TrackedPerson.id.in_(src_ids),
                                                               scope.clause(principal, PERSON_SCOPE))))
    probs = [Problem(f"该疫情中没有人员 {e.source_id} no tracked person {e.source_id} in this outbreak",
                     ["body", "exposures", i, "source_id"], "not_found")
             for i, e in enumerate(body.exposures) if e.source_id not in known]
    pid_given = sorted({e.person_id for e in body.exposures if e.person_id is not None})
    have = set(session.scalars(select(TrackedPerson.id).where(TrackedPerson.outbreak_id == ob.id,
                                                              TrackedPerson.id.in_(pid_given)))) if pid_given else set()
    probs += [Problem(f"该疫情中没有人员 {e.person_id}", ["body", "exposures", i, "person_id"], "not_found")
              for i, e in enumerate(body.exposures) if e.person_id is not None and e.person_id not in have]
    if probs:
        raise InvalidInput(probs)
    new = [(i, e.person) for i, e in enumerate(body.exposures) if e.person is not None]
    made = persons.resolve(session, ob, [p for _i, p in new if p is not None],
                           [["body", "exposures", i, "person"] for i, _p in new]) if new else []
    who = {i: tp.id for (i, _p), tp in zip(new, made, strict=True)}
    places = _places(session, [e.place for e in body.exposures if e.place is not None], ["body", "exposures"])
    it = iter(places)
    rows = []
    for i, e in enumerate(body.exposures):
        pid = who.get(i, e.person_id)
        if pid == e.source_id:
            raise InvalidInput([Problem("接触者与传染源不能是同一人 a person cannot be their own source",
                                        ["body", "exposures", i, "source_id"], "value_error")])
        pl = next(it) if e.place is not None else {}
        rows.append(Exposure(outbreak_id=ob.id, person_id=pid, source_id=e.source_id, kind=e.kind,
                             place_kind=pl.get("kind"), place_code=pl.get("code"), place_name=pl.get("name"),
                             lon=pl.get("lon"), lat=pl.get("lat"), grid_code=pl.get("grid_code"),
                             community_code=pl.get("community_code"), street_code=pl.get("street_code"),
                             start_at=e.start_at, end_at=e.end_at, start_day=day_number(e.start_at),
                             end_day=day_number(e.end_at), recorded_by=principal.username))
    session.add_all(rows)
    ob.exposure_token = new_token()
    session.flush()
    audit.record(session, principal, "ob_exposure.add", "ob_outbreak", ob.id, detail={"n": len(rows)})
    result = recategorise(session, ob)
    return {"added": len(rows), "exposure_ids": [r.id for r in rows], "person_ids": [r.person_id for r in rows],
            **result}


# ---------------------------------------------------------------- recategorise


def _raw(session: Session, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver (the graph of a large outbreak is read column-wise,
    without building a result row object per edge), in the session's transaction. ``?`` placeholders."""
    conn = session.connection()
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _ordinal(v: Any) -> int:
    if v is None:
        return -1
    if isinstance(v, str):
        v = dt.date.fromisoformat(v[:10])
    return int(v.toordinal())


def load_graph(session: Session, ob: Outbreak, rs: rules.RuleSet) -> tuple[np.ndarray, cat.Graph]:
    """(tracked person ids, the graph in arrays) of an outbreak, read column-wise."""
    ids, _keys, g = _load(session, ob, rs)
    return ids, g


_graph_cache: dict[tuple[str, int, str, str], tuple[np.ndarray, np.ndarray]] = {}
_CACHE_SIZE = 8


def new_token() -> str:
    return uuid.uuid4().hex


def _remember(key: tuple[str, int, str, str], value: tuple[np.ndarray, np.ndarray]) -> None:
    if len(_graph_cache) >= _CACHE_SIZE:
        _graph_cache.pop(next(iter(_graph_cache)))
    _graph_cache[key] = value


def _persons(session: Session, ob: Outbreak) -> tuple[np.ndarray, np.ndarray]:
    """(ids, packed keys) of the tracked persons, from the copy of the current ``person_token``."""
    from cityops.db import database_key

    if ob.person_token is None:
        ob.person_token = new_token()
        session.flush()
    key = (database_key(session), ob.id, "p", ob.person_token)
    hit = _graph_cache.get(key)
    if hit is not None:
        return hit
    prow = _raw(session, "SELECT id, COALESCE(cat_key, 0) FROM ob_person WHERE outbreak_id = ? ORDER BY id", (ob.id,))
    flat = np.fromiter(itertools.chain.from_iterable(prow), dtype=np.int64, count=2 * len(prow)).reshape(-1, 2)
    got = (flat[:, 0].copy(), flat[:, 1].copy())
    _remember(key, got)
    return got


def _edges(session: Session, ob: Outbreak) -> np.ndarray:
    """The exposures as an int64 array (person, source, start day, end day), from the copy of the
    current ``exposure_token``."""
    from cityops.db import database_key

    if ob.exposure_token is None:
        ob.exposure_token = new_token()
        session.flush()
    key = (database_key(session), ob.id, "e", ob.exposure_token)
    hit = _graph_cache.get(key)
    if hit is not None:
        return hit[0]
    e = _raw(session, "SELECT person_id, source_id, start_day, end_day FROM ob_exposure WHERE outbreak_id = ?", (ob.id,))
    arr = np.fromiter(itertools.chain.from_iterable(e), dtype=np.int64, count=4 * len(e)).reshape(-1, 4)
    _remember(key, (arr, arr))
    return arr


def _load(session: Session, ob: Outbreak, rs: rules.RuleSet) -> tuple[np.ndarray, np.ndarray, cat.Graph]:
    session.flush()
    ids, keys = _persons(session, ob)
    n = len(ids)
    crow = _raw(session, "SELECT person_id, classification, onset_on, sampled_on FROM ob_case WHERE outbreak_id = ?",
                (ob.id,))
    src_classes = rs.source_classes()
    source_start = np.full(n, cat.NONE, dtype=np.int64)
    is_case = np.zeros(n, dtype=bool)
    if crow:
        ci = np.searchsorted(ids, np.array([r[0] for r in crow], dtype=np.int64))
        onset = np.array([_ordinal(r[2]) for r in crow], dtype=np.int64)
        sampled = np.array([_ordinal(r[3]) for r in crow], dtype=np.int64)
        src = np.array([r[1] in src_classes for r in crow], dtype=bool)
        start = cat.infectious_start(onset, sampled, rs)
        source_start[ci[src]] = start[src]
        is_case[ci] = np.array([r[1] != "discarded" for r in crow], dtype=bool)
    arr = _edges(session, ob)
    g = cat.Graph(n, source_start, is_case, np.searchsorted(ids, arr[:, 0]), np.searchsorted(ids, arr[:, 1]),
                  arr[:, 2], arr[:, 3])
    return ids, keys, g


def _date(v: int) -> dt.date | None:
    return dt.date.fromordinal(int(v)) if v > 0 else None


def recategorise(session: Session, ob: Outbreak) -> dict[str, Any]:
    """Recompute every tracked person's category and end dates; write the rows that changed."""
    rs = rules.get(ob.rule_set)
    ids, old_key, g = _load(session, ob, rs)
    res = cat.categorise(g, rs)
    key = cat.pack(res)
    now = clock.now()
    codes = np.array([cat.CATEGORY_CODES[int(k)] for k in range(4)], dtype=object)
    new_cat = codes[res.category]
    idx = np.flatnonzero(key != old_key)
    if len(idx):
        old_cat = (old_key[idx] >> 60).astype(np.int8)
        rows = [{"b_id": int(ids[k]), "b_cat": new_cat[k], "b_last": _date(res.last_exposure[k]),
                 "b_q": _date(res.quarantine_end[k]), "b_m": _date(res.monitoring_end[k]), "b_key": int(key[k]),
                 "b_since": now if int(old_cat[j]) != int(res.category[k]) else None} for j, k in enumerate(idx)]
        t: Any = TrackedPerson.__table__
        base = update(t).where(t.c.id == bindparam("b_id"))
        values: dict[str, Any] = dict(category=bindparam("b_cat"), last_exposure_on=bindparam("b_last"),
                      quarantine_end=bindparam("b_q"), monitoring_end=bindparam("b_m"), cat_key=bindparam("b_key"))
        with_since = [r for r in rows if r["b_since"] is not None]
        without = [r for r in rows if r["b_since"] is None]
        if with_since:
            session.execute(base.values(**values, category_since=bindparam("b_since")), with_since,
                            execution_options={"synchronize_session": False})
        if without:
            session.execute(base.values(**values), without, execution_options={"synchronize_session": False})
        for obj in list(session.identity_map.values()):
            if isinstance(obj, TrackedPerson):
                session.expire(obj)
        from cityops.db import database_key

        ob.person_token = new_token()
        _remember((database_key(session), ob.id, "p", ob.person_token), (ids, key))
    ob.recomputed_at = now
    counts = {str(k): int((new_cat == k).sum()) for k in ("case", "close", "secondary")}
    return {"changed": int(len(idx)), "categories": counts}


def recategorise_all(session: Session) -> int:
    """Every active outbreak (after a rule change, or from the CLI)."""
    n = 0
    for ob in session.scalars(select(Outbreak).where(Outbreak.state == "active")):
        n += recategorise(session, ob)["changed"]
    return n


# ---------------------------------------------------------------- reads


def list_cases(session: Session, principal: Principal, ob_ref: str | int, *, street: str | None = None,
               classification: str | None = None, page: int = 1, page_size: int = 100,
               lang: str = "zh") -> dict[str, Any]:
    ob = get_outbreak(session, ob_ref)
    rs = rules.get(ob.rule_set)
    stmt = select(OutbreakCase, TrackedPerson).join(TrackedPerson, TrackedPerson.id == OutbreakCase.person_id).where(
        OutbreakCase.outbreak_id == ob.id, scope.clause(principal, CASE_SCOPE))
    if street:
        stmt = stmt.where(OutbreakCase.street_code == street)
    if classification:
        stmt = stmt.where(OutbreakCase.classification == classification)
    total = int(session.scalar(stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)) or 0)
    rows = session.execute(stmt.order_by(OutbreakCase.id).offset((page - 1) * page_size).limit(page_size)).all()
    audit.record(session, principal, "list", CASE_OBJECT, None, detail={"outbreak": ob.code, "returned": len(rows)})
    return {"total": total, "page": page, "page_size": page_size,
            "items": [case_dict(c, p, principal, rs, lang) for c, p in rows]}


def case_detail(session: Session, principal: Principal, case_ref: str | int, lang: str = "zh") -> dict[str, Any]:
    c = get_case(session, principal, case_ref)
    ob = get_outbreak(session, c.outbreak_id)
    p = session.get(TrackedPerson, c.person_id)
    assert p is not None
    out = case_dict(c, p, principal, rules.get(ob.rule_set), lang)
    out["timeline"] = lifecycle.timeline(session, CASE_OBJECT, c.id)
    audit.record(session, principal, "read", CASE_OBJECT, c.id)
    return out


def list_contacts(session: Session, principal: Principal, ob_ref: str | int, *, category: str | None = None,
                  community: str | None = None, page: int = 1, page_size: int = 100, lang: str = "zh") -> dict[str, Any]:
    ob = get_outbreak(session, ob_ref)
    cats = [category] if category else ["close", "secondary"]
    stmt = select(TrackedPerson).where(TrackedPerson.outbreak_id == ob.id, TrackedPerson.category.in_(cats),
                                       scope.clause(principal, PERSON_SCOPE))
    if community:
        stmt = stmt.where(TrackedPerson.community_code == community)
    total = int(session.scalar(stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)) or 0)
    rows = session.scalars(stmt.order_by(TrackedPerson.id).offset((page - 1) * page_size).limit(page_size)).all()
    audit.record(session, principal, "list", "ob_person", None, detail={"outbreak": ob.code, "returned": len(rows)})
    return {"total": total, "page": page, "page_size": page_size,
            "items": [persons.person_dict(p, principal, lang) for p in rows]}


def person_detail(session: Session, principal: Principal, person_id: int, lang: str = "zh") -> dict[str, Any]:
    p = get_person(session, principal, person_id)
    audit.record(session, principal, "read", "ob_person", p.id)
    return persons.person_dict(p, principal, lang)


