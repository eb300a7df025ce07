"""Intake, one model for every channel: grid-worker / supervisor reports with photos, citizen
reports, 12345 work orders (import), sensor / video-AI signals.

Every intake does the whole job in the caller's transaction: validate, locate (point -> unit
grid, community, street and every layer's grid, from the in-memory index), dedupe (same
category within the radius and window of an open case -> linked, not a new case), persist the
case + report + timeline row + first SLA step with its timers, audit, and an outbox event. The
hot path writes with Core statements (no ORM unit of work) so that one intake is a handful of
single-row inserts.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import bindparam, insert, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cityops.cases import proposals, schemas, sla
from cityops.cases import reference as ref
from cityops.cases.models import (
    DEDUPE_STATES,
    Case,
    CaseEvent,
    CaseReport,
    IdempotencyRecord,
    Media,
    Signal,
    SignalFilter,
    case_no,
    table,
)
from cityops.cases.places import Located, locate
from cityops.cases.transitions import self_handle_allowed
from cityops.config import ROOT
from cityops.db import UTCDateTime, bulk_insert, insert_rows
from cityops.errors import CityOpsError, Conflict, InvalidInput, NotFound, Problem
from cityops.jobs import service as jobs
from cityops.security import audit, scope
from cityops.security.principal import Principal
from cityops.security.scope import Located as Place
from cityops.security.scope import ScopedKind

CASES_T = table(Case)
REPORTS_T = table(CaseReport)
EVENTS_T = table(CaseEvent)
SIGNALS_T = table(Signal)
M_PER_DEG_LAT = 110_950.0
# statements built once (executed with parameters: compiled once, no per-call construction)
INSERT_REPORT = insert(REPORTS_T).returning(REPORTS_T.c.id)
INSERT_EVENT = insert(EVENTS_T)
LINK_CASE = (update(CASES_T).where(CASES_T.c.id == bindparam("cid"))
             .values(reporter_count=CASES_T.c.reporter_count + 1, updated_at=bindparam("at"))
             .returning(CASES_T.c.reporter_count, CASES_T.c.state, CASES_T.c.reported_at, CASES_T.c.grid_code,
                        CASES_T.c.community_code, CASES_T.c.street_code, CASES_T.c.urgency, CASES_T.c.category_code))
_DEDUPE_LOCK = 0x63617365  # "case"


# ---------------------------------------------------------------- media


MEDIA_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif", "video/mp4": ".mp4"}


def media_root() -> Path:
    return Path(os.environ.get("CITYOPS_MEDIA_DIR") or (ROOT / "var" / "media"))


def sniff(data: bytes) -> str | None:
    """The media type from the first bytes (what the file is, not what the client says)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def save_media(session: Session, principal: Principal, files: list[tuple[str | None, bytes]]) -> list[dict[str, Any]]:
    """Store uploaded photos/videos under var/media/<sha[:2]>/<sha><ext> (content-addressed)."""
    limit = int(ref.policy(session).get("max_media_bytes", 10 * 1024 * 1024))
    probs = []
    if not files:
        probs.append(Problem("no file uploaded (multipart field 'files')", ["body", "files"]))
    typed = []
    for i, (_name, data) in enumerate(files):
        kind = sniff(data)
        if not data:
            probs.append(Problem("empty file", ["body", "files", i]))
        elif len(data) > limit:
            probs.append(Problem(f"file is larger than {limit} bytes", ["body", "files", i]))
        elif kind is None:
            probs.append(Problem("not a JPEG, PNG, WebP, GIF image or MP4 video", ["body", "files", i]))
        typed.append(kind)
    if probs:
        raise InvalidInput(probs)
    out: list[dict[str, Any]] = []
    root = media_root()
    for (name, data), kind in zip(files, typed, strict=True):
        assert kind is not None
        sha = hashlib.sha256(data).hexdigest()
        rel = Path(sha[:2]) / (sha + MEDIA_TYPES[kind])
        path = root / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        mid = uuid.uuid4().hex
        session.execute(insert(table(Media)).values(
            id=mid, sha256=sha, content_type=kind, size=len(data), filename=(name or "")[:200] or None,
            path=str(rel), uploaded_by=principal.username, uploaded_at=sla.now()))
        out.append({"id": mid, "sha256": sha, "content_type": kind, "size": len(data), "url": f"/api/v1/media/{mid}"})
    audit.record(session, principal, "media.upload", "media", ",".join(o["id"] for o in out)[:80],
                 detail={"files": len(out)})
    return out


def media_file(session: Session, principal: Principal, media_id: str) -> tuple[Path, str]:
    """The file of a photo/video if ``principal`` may read it, else 404 (issue 17): media inherit
    the scope of their case (``CASE_SCOPE``: the one rule of ``cityops.security.scope``); before
    it is attached to a case, an upload is readable only by the account that uploaded it — a
    public (anonymous) upload by nobody."""
    from cityops.cases.queries import CASE_SCOPE

    m = session.get(Media, media_id)
    readable = False
    if m is not None and m.case_id is not None:
        readable = session.scalar(select(Case.id).where(Case.id == m.case_id, scope.clause(principal, CASE_SCOPE))) \
            is not None
    elif m is not None:
        readable = principal.kind == "system" or (principal.kind in ("user", "api_key")
                                                  and m.uploaded_by == principal.username)
    if m is None or not readable:
        raise NotFound([Problem(f"照片不存在或无权查看 no media {media_id} (or not in your scope)", ["path", "media_id"],
                                "not_found")])
    return media_root() / m.path, m.content_type


def attach_media(session: Session, ids: list[str] | tuple[str, ...], case_id: int) -> None:
    """Media named by a report, a linked report, a signal or a consultation message of a case take
    that case's scope (the first case that names them keeps them)."""
    if ids:
        mt = table(Media)
        session.execute(update(mt).where(mt.c.id.in_(sorted(set(ids))), mt.c.case_id.is_(None)).values(case_id=case_id))


def check_media(session: Session, ids: list[str], loc: list[str | int]) -> list[Problem]:
    have = _known_media(session, ids)
    return [Problem(f"unknown media id {m} (upload it first with POST /api/v1/media)", [*loc, i])
            for i, m in enumerate(ids) if m not in have]


def _known_media(session: Session, ids: list[str]) -> set[str]:
    """The ids among ``ids`` that name stored media."""
    have: set[str] = set()
    uniq = sorted(set(ids))
    for lo in range(0, len(uniq), 500):
        have.update(session.scalars(select(Media.id).where(Media.id.in_(uniq[lo:lo + 500]))))
    return have


# ---------------------------------------------------------------- idempotency


def request_hash(body: Any) -> str:
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def idempotency_scope(principal: Principal) -> str:
    if principal.kind == "anonymous":
        return f"ip:{principal.source_ip or '-'}"[:120]
    return f"{principal.kind}:{principal.username}"[:120]


def idempotent_replay(session: Session, scope: str, key: str, rhash: str) -> tuple[int, dict[str, Any]] | None:
    rec = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key))
    if rec is None:
        return None
    if rec.request_hash != rhash:
        raise _idem_mismatch()
    return rec.status_code, dict(rec.response)


def run_idempotent(session: Session, principal: Principal, key: str | None, body: Any,
                   fn: Any, status_code: int = 201) -> tuple[int, dict[str, Any], bool]:
    """Run ``fn()`` (returns the JSON answer) once per (principal, key); a retry, even a concurrent
    one, gets the first answer (in the caller's unit of work). Returns (status, answer, replayed)."""
    if key is not None and (not key or len(key) > 200):
        raise InvalidInput([Problem("Idempotency-Key must be 1-200 characters", ["header", "Idempotency-Key"])])
    if key is None:
        return status_code, fn(), False
    scope = idempotency_scope(principal)
    rhash = request_hash(body)
    _idem_locks(session, [(scope, key)])  # as submit_reports: a concurrent retry waits for the first
    hit = idempotent_replay(session, scope, key, rhash)
    if hit is not None:
        session.rollback()
        return hit[0], hit[1], True
    try:
        out = fn()
        session.execute(insert(table(IdempotencyRecord)).values(
            scope=scope, key=key, request_hash=rhash, status_code=status_code, response=json.loads(json.dumps(out, default=str)),
            case_id=out.get("case_id"), created_at=sla.now()))
        return status_code, out, False
    except IntegrityError:
        session.rollback()
        hit = idempotent_replay(session, scope, key, rhash)
        if hit is None:
            raise
        return hit[0], hit[1], True


# The scope of sensor / video-AI signals: where they were observed (area only).
SIGNAL_SCOPE = ScopedKind("signal", Place(grid=Signal.grid_code))

# ---------------------------------------------------------------- the one intake path


@dataclass
class IntakeItem:
    source: str
    channel: str
    cat: ref.CategoryInfo
    lon: float
    lat: float
    where: Located
    at: dt.datetime
    title: str
    description: str | None = None
    address: str | None = None
    urgency: str = "normal"
    appeal_type: str | None = None
    external_id: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_account_id: int | None = None
    media: tuple[str, ...] = ()
    self_handled: bool = False
    public: bool = False
    dedupe: bool = True
    # batch imports write one audit row and one outbox event for the whole import instead
    per_case_side_effects: bool = True
    proposal: dict[str, Any] | None = None  # smart dispatch: the classifier's proposal (no category given)

    def __post_init__(self) -> None:
        # every channel (CSV hotline imports, batches, forms): no character that XML 1.0 forbids is
        # stored, so the Open311 and CAP documents built from these texts stay well-formed
        from cityops.edge import xml_clean

        for name in ("title", "description", "address", "reporter_name", "reporter_phone", "external_id"):
            v = getattr(self, name)
            if isinstance(v, str):
                object.__setattr__(self, name, xml_clean(v))


def _lock_categories(session: Session, category_ids: list[int]) -> None:
    """PostgreSQL: serialise dedupe per category across processes (sorted: no deadlocks). SQLite
    needs nothing: every write transaction holds the database's write lock."""
    if session.get_bind().dialect.name == "postgresql":  # one round trip, in ascending order
        session.execute(text("SELECT count(pg_advisory_xact_lock(:a, c)) FROM "
                             "(SELECT c FROM unnest(CAST(:cats AS integer[])) AS u(c) ORDER BY c) AS s"),
                        {"a": _DEDUPE_LOCK, "cats": sorted(set(category_ids))})


def _bbox(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    dlat = radius_m / M_PER_DEG_LAT
    dlon = radius_m / (M_PER_DEG_LAT * max(0.01, math.cos(math.radians(lat))))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


_PROBES = (1, 4, 16, 64, 128)  # SQLite plans a 200-row VALUES join ~100x slower per row (bench intake)
_near_sql: dict[tuple[str, int], Any] = {}


def _near_statement(dialect: str, size: int) -> Any:
    """WITH probe(...) AS (VALUES ...) joined to case_file, for ``size`` probes: a few fixed texts
    (compiled once and cached; a shorter chunk is padded with probes of category -1)."""
    stmt = _near_sql.get((dialect, size))
    if stmt is not None:
        return stmt
    pg = dialect == "postgresql"
    rows = []
    for j in range(size):
        if j == 0 and pg:
            rows.append(f"(CAST(:i{j} AS INTEGER), CAST(:c{j} AS INTEGER), CAST(:s{j} AS TIMESTAMPTZ), "
                        f"CAST(:a{j} AS FLOAT), CAST(:b{j} AS FLOAT), CAST(:x{j} AS FLOAT), CAST(:y{j} AS FLOAT))")
        else:
            rows.append(f"(:i{j}, :c{j}, :s{j}, :a{j}, :b{j}, :x{j}, :y{j})")
    states = ", ".join(f"'{st}'" for st in DEDUPE_STATES)  # word for word the partial index's condition
    sql = ("WITH probe(i, cat, since, lat0, lat1, lon0, lon1) AS (VALUES " + ", ".join(rows) + ") "
           "SELECT probe.i, c.id, c.lon, c.lat FROM probe JOIN case_file AS c "
           # SQLite's planner, with the statistics of a large table, may take a wider index; the
           # partial one is always right here (PostgreSQL plans it by itself)
           + ("" if pg else "INDEXED BY ix_case_file_open_category_lat_lon ")
           + "ON c.category_id = probe.cat "
           "AND c.lat >= probe.lat0 AND c.lat <= probe.lat1 AND c.lon >= probe.lon0 AND c.lon <= probe.lon1 "
           f"AND c.reported_at >= probe.since AND c.state IN ({states})")
    stmt = text(sql).bindparams(*[bindparam(f"s{j}", type_=UTCDateTime()) for j in range(size)])
    _near_sql[(dialect, size)] = stmt
    return stmt


def near_open_cases(session: Session, probes: list[tuple[int, float, float, dt.datetime]], radius_m: float,
                    window_h: float) -> dict[int, list[tuple[int, float, float]]]:
    """For many probes (category id, lon, lat, time): the open cases of the category reported in the
    window before the time whose position lies in the radius's bounding box, as {probe index:
    [(case id, lon, lat)]}. One statement per 128 probes: a VALUES list joined to the
    partial index ``(category_id, lat, lon) WHERE state IN (open states)``, so each probe reads the
    open cases of its category in a band of latitude a radius high."""
    out: dict[int, list[tuple[int, float, float]]] = {}
    if radius_m <= 0 or window_h <= 0 or not probes:
        return out
    dialect = session.get_bind().dialect.name
    window = dt.timedelta(hours=window_h)
    for lo in range(0, len(probes), _PROBES[-1]):
        params: dict[str, Any] = {}
        chunk = probes[lo:lo + _PROBES[-1]]
        size = next(n for n in _PROBES if n >= len(chunk))
        stmt = _near_statement(dialect, size)
        for j in range(size):
            if j < len(chunk):
                cat, lon, lat, at = chunk[j]
                lat0, lat1, lon0, lon1 = _bbox(lon, lat, radius_m)
                since = at - window
            else:
                cat, since, lat0, lat1, lon0, lon1 = -1, chunk[0][3], 0.0, 0.0, 0.0, 0.0
            params.update({f"i{j}": lo + j, f"c{j}": cat, f"s{j}": since, f"a{j}": lat0, f"b{j}": lat1,
                           f"x{j}": lon0, f"y{j}": lon1})
        for i, cid, clon, clat in session.execute(stmt, params):
            out.setdefault(int(i), []).append((int(cid), float(clon), float(clat)))
    return out


def find_duplicate(session: Session, category_id: int, lon: float, lat: float, at: dt.datetime,
                   radius_m: float, window_h: float) -> tuple[int, float] | None:
    """The nearest open case of the category within ``radius_m`` reported in the window."""
    near = near_open_cases(session, [(category_id, lon, lat, at)], radius_m, window_h).get(0, [])
    return _nearest(near, lon, lat, radius_m)


def _nearest(cands: list[tuple[int, float, float]], lon: float, lat: float,
             radius_m: float) -> tuple[int, float] | None:
    best: tuple[int, float] | None = None
    for cid, clon, clat in cands:
        d = distance_m(lon, lat, clon, clat)
        if d <= radius_m and (best is None or d < best[1] or (d == best[1] and cid < best[0])):
            best = (cid, d)
    return best


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Equirectangular distance in metres (exact enough below a few km)."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2)) * 6_371_008.8
    y = math.radians(lat2 - lat1) * 6_371_008.8
    return math.hypot(x, y)


def intake(session: Session, principal: Principal, item: IntakeItem) -> dict[str, Any]:
    """Create a case, or link the report to an open duplicate. Returns the IntakeResult dict."""
    return intake_many(session, [(principal, item)])[0]


def intake_many(session: Session, batch: list[tuple[Principal, IntakeItem]]) -> list[dict[str, Any]]:
    """The one intake path, set-based: each item creates a case or is linked to an open duplicate
    (an earlier case, or one created earlier in the same batch). In the caller's transaction;
    answers in the order of ``batch``. A handful of statements per batch, whatever its size: one
    dedupe join, multi-row INSERTs of cases, reports, timeline rows, SLA steps, timers, outbox
    events and hash-chained audit rows (batch imports set ``per_case_side_effects=False`` and
    write one audit row and one event for the whole import)."""
    if not batch:
        return []
    pol = ref.policy(session)
    radius = float(pol.get("dedupe_radius_m", 50))
    window = dt.timedelta(hours=float(pol.get("dedupe_window_hours", 72)))
    dedupe_sources = set(pol.get("dedupe_sources", []))
    eligible = [k for k, (_p, it) in enumerate(batch) if it.dedupe and it.source in dedupe_sources
                and not it.self_handled]
    near: dict[int, list[tuple[int, float, float]]] = {}
    if eligible:
        _lock_categories(session, [batch[k][1].cat.id for k in eligible])
        got = near_open_cases(session, [(batch[k][1].cat.id, batch[k][1].lon, batch[k][1].lat, batch[k][1].at)
                                        for k in eligible], radius, window.total_seconds() / 3600)
        near = {eligible[j]: v for j, v in got.items()}
    # decide in order: link to the nearest open case (in the database or new in this batch); the
    # new ones are kept in cells at least ``radius`` wide, so a report looks at 9 cells, not the batch
    eligible_set = set(eligible)
    cell_lat = max(radius, 1.0) / M_PER_DEG_LAT
    top = max((abs(batch[k][1].lat) for k in eligible), default=0.0)
    cell_lon = max(radius, 1.0) / (M_PER_DEG_LAT * max(0.01, math.cos(math.radians(min(89.0, top)))))
    new_open: dict[tuple[int, int, int], list[int]] = {}  # (category, cell y, cell x) -> batch positions
    link_to: dict[int, tuple[str, int, float]] = {}  # position -> ("db", case id | "new", position, distance)
    for k, (_p, it) in enumerate(batch):
        if k not in eligible_set:
            continue
        best_db = _nearest(near.get(k, []), it.lon, it.lat, radius)
        best_new: tuple[int, float] | None = None
        cy, cx = math.floor(it.lat / cell_lat), math.floor(it.lon / cell_lon)
        for j in (j for dy in (-1, 0, 1) for dx in (-1, 0, 1) for j in new_open.get((it.cat.id, cy + dy, cx + dx), ())):
            o = batch[j][1]
            if o.at < it.at - window or o.at > it.at:
                continue
            d = distance_m(it.lon, it.lat, o.lon, o.lat)
            if d <= radius and (best_new is None or d < best_new[1] or (d == best_new[1] and j < best_new[0])):
                best_new = (j, d)
        if best_db is not None and (best_new is None or best_db[1] <= best_new[1]):
            link_to[k] = ("db", best_db[0], best_db[1])
        elif best_new is not None:
            link_to[k] = ("new", best_new[0], best_new[1])
        else:
            new_open.setdefault((it.cat.id, math.floor(it.lat / cell_lat), math.floor(it.lon / cell_lon)), []).append(k)
    creates = [k for k in range(len(batch)) if k not in link_to]
    results: list[dict[str, Any] | None] = [None] * len(batch)
    if creates:
        _create_cases(session, batch, creates, results)
    links = sorted(link_to)
    for k in links:
        where, target, dist = link_to[k]
        cid = target if where == "db" else int(results[target]["case_id"])  # type: ignore[index]
        results[k] = _link(session, batch[k][0], batch[k][1], cid, dist)
    audited = [k for k in range(len(batch)) if batch[k][1].per_case_side_effects]
    if audited:
        entries = []
        for k in audited:
            r = results[k]
            assert r is not None
            if r["linked"]:
                entries.append(audit.Entry(batch[k][0], "case.link_report", "case", r["case_id"],
                                           detail={"report_id": r["report_id"], "distance_m": round(r["distance_m"], 1)}))
            else:
                entries.append(audit.Entry(batch[k][0], "case.report", "case", r["case_id"],
                                           detail={"source": batch[k][1].source, "category": batch[k][1].cat.code,
                                                   "grid": batch[k][1].where.grid_code}))
        audit.record_many(session, entries)
    store_proposals_hook(session, batch, results)
    return [r for r in results if r is not None]


def _create_cases(session: Session, batch: list[tuple[Principal, IntakeItem]], creates: list[int],
                  results: list[dict[str, Any] | None]) -> None:
    cal_id = ref.active_calendar(session)[0]
    case_rows, dues = [], []
    for k in creates:
        principal, item = batch[k]
        due = yellow = None
        if not item.self_handled:
            due, yellow, *_ = sla.deadline(session, item.cat, "accept", item.urgency, item.at)
        dues.append((due, yellow))
        at = item.at
        case_rows.append(dict(
            source=item.source, channel=item.channel, external_id=item.external_id, category_id=item.cat.id,
            category_code=item.cat.code, kind=item.cat.kind, title=item.title[:200], description=item.description,
            address=item.address, lon=item.lon, lat=item.lat, grid_code=item.where.grid_code,
            community_code=item.where.community_code, street_code=item.where.street_code,
            layer_codes=item.where.layers, urgency=item.urgency, appeal_type=item.appeal_type,
            state="closed" if item.self_handled else "reported", reporter_name=item.reporter_name,
            reporter_phone=item.reporter_phone, reporter_account_id=item.reporter_account_id, reporter_count=1,
            tracking_token=secrets.token_urlsafe(16) if item.public else None, reported_at=at,
            created_by=principal.username, updated_at=at, version=1, self_handled=item.self_handled,
            closed_at=at if item.self_handled else None,
            closure_reason="self_handled" if item.self_handled else None,
            sla_step=None if item.self_handled else "accept", due_at=due, yellow_at=yellow,
            # routing: the department the catalogue rule and the place propose (立案 records the decision)
            proposed_department_code=ref.propose_route(session, item.cat, item.where.grid_code,
                                                       item.where.street_code).department_code))
    cids = insert_rows(session, CASES_T, case_rows)
    rids = insert_rows(session, REPORTS_T, [dict(
        case_id=cid, is_primary=True, source=batch[k][1].source, channel=batch[k][1].channel,
        external_id=batch[k][1].external_id, reporter_name=batch[k][1].reporter_name,
        reporter_phone=batch[k][1].reporter_phone, reporter_account_id=batch[k][1].reporter_account_id,
        description=batch[k][1].description, lon=batch[k][1].lon, lat=batch[k][1].lat, distance_m=0.0,
        media=list(batch[k][1].media), reported_at=batch[k][1].at) for k, cid in zip(creates, cids, strict=True)])
    events: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    step_of: list[tuple[int, dt.datetime, dt.datetime]] = []
    for k, cid in zip(creates, cids, strict=True):
        principal, item = batch[k]
        ev = dict(case_id=cid, at=item.at, actor=principal.username, actor_account_id=principal.account_id,
                  actor_roles=principal.role_label()[:200], department_code=principal.department_code,
                  action="report", from_state=None, to_state="reported", note=item.description, reason=None,
                  data={"source": item.source, "channel": item.channel, "category": item.cat.code,
                        "external_id": item.external_id}, attachments=list(item.media))
        events.append(ev)
        if item.self_handled:
            events.append(dict(ev, action="self_handle", from_state="reported", to_state="closed",
                               note="自行处置 fixed on the spot", data={}))
    bulk_insert(session, EVENTS_T, events)
    for n, (k, cid) in enumerate(zip(creates, cids, strict=True)):
        item = batch[k][1]
        if item.self_handled:
            continue
        value, unit = item.cat.limit("accept", item.urgency)
        due, yellow = dues[n]
        assert due is not None and yellow is not None
        steps.append(dict(case_id=cid, step="accept", round=1, department_code=None, status="open", started_at=item.at,
                          due_at=due, yellow_at=yellow, limit_value=value, limit_unit=unit, calendar_id=cal_id,
                          extended=0))
        step_of.append((cid, due, yellow))
    sids = insert_rows(session, sla.STEPS_T, steps)
    sla.arm_timers_many(session, [(sid, cid, "accept", due, yellow) for sid, (cid, due, yellow)
                                  in zip(sids, step_of, strict=True)])
    events_out: list[dict[str, Any]] = []
    urgent: list[tuple[dict[str, Any], dt.datetime]] = []
    for n, (k, cid) in enumerate(zip(creates, cids, strict=True)):
        principal, item = batch[k]
        state = "closed" if item.self_handled else "reported"
        no = case_no(cid, item.at)
        attach_media(session, item.media, cid)
        if item.per_case_side_effects:
            events_out.append({
                "case_id": cid, "case_no": no, "category_code": item.cat.code, "category_name": item.cat.name_zh,
                "source": item.source, "urgency": item.urgency, "state": state, "lon": item.lon, "lat": item.lat,
                "grid_code": item.where.grid_code, "street_code": item.where.street_code, "at": item.at})
        if item.urgency in ("urgent", "critical") and not item.self_handled:
            urgent.append(({"id": cid, "case_no": no, "title": item.title, "urgency": item.urgency, "state": state,
                            "lead_department_code": None, "street_code": item.where.street_code,
                            "community_code": item.where.community_code, "grid_code": item.where.grid_code}, item.at))
        results[k] = {
            "case_id": cid, "case_no": no, "state": state, "linked": False, "report_id": rids[n], "reporter_count": 1,
            "distance_m": None, "category_code": item.cat.code, "category_name": item.cat.name_zh,
            "grid_code": item.where.grid_code, "community_code": item.where.community_code,
            "street_code": item.where.street_code, "urgency": item.urgency,
            "tracking_token": case_rows[n]["tracking_token"]}
    if events_out:
        jobs.enqueue_many(session, "case.reported", events_out)
    if urgent:
        sla.escalate_new_cases(session, urgent, "urgent_reported")


def _link(session: Session, principal: Principal, item: IntakeItem, cid: int, dist: float) -> dict[str, Any]:
    at = item.at
    rid = int(session.execute(INSERT_REPORT, dict(
        case_id=cid, is_primary=False, source=item.source, channel=item.channel, external_id=item.external_id,
        reporter_name=item.reporter_name, reporter_phone=item.reporter_phone,
        reporter_account_id=item.reporter_account_id, description=item.description, lon=item.lon, lat=item.lat,
        distance_m=round(dist, 2), media=list(item.media), reported_at=at)).scalar_one())
    row = session.execute(LINK_CASE, {"cid": cid, "at": at}).one()
    attach_media(session, item.media, cid)
    session.execute(INSERT_EVENT, dict(
        case_id=cid, at=at, actor=principal.username, actor_account_id=principal.account_id,
        actor_roles=principal.role_label()[:200], department_code=principal.department_code, action="link_report",
        from_state=row.state, to_state=row.state, note=item.description, reason=None,
        data={"report_id": rid, "source": item.source, "distance_m": round(dist, 1), "external_id": item.external_id},
        attachments=list(item.media)))
    return {"case_id": cid, "case_no": case_no(cid, row.reported_at), "state": row.state, "linked": True,
            "report_id": rid, "reporter_count": int(row.reporter_count), "distance_m": round(dist, 2),
            "category_code": row.category_code, "category_name": item.cat.name_zh, "grid_code": row.grid_code,
            "community_code": row.community_code, "street_code": row.street_code, "urgency": row.urgency,
            "tracking_token": None}


def _title(cat: ref.CategoryInfo, title: str | None, address: str | None) -> str:
    if title and title.strip():
        return title.strip()
    return f"{cat.name_zh}{'：' + address if address else ''}"[:200]


def _locate_one(session: Session, lon: float, lat: float, loc: list[str | int]) -> Located:
    where = locate(session, np.array([lon]), np.array([lat]))[0]
    if where is None:
        raise InvalidInput([Problem("点位不在本区范围内 the point is outside the district", [*loc, "lat"], "outside")])
    return where


def _prepare(session: Session, principal: Principal, body: schemas.ReportBase, source: str, channel: str,
             where: Located | None, at: dt.datetime | None, known_media: set[str]) -> IntakeItem:
    """Check a report (category, media, position, times) and make its IntakeItem; raises
    InvalidInput naming every bad field."""
    probs = [Problem(f"unknown media id {m} (upload it first with POST /api/v1/media)", ["body", "media", i])
             for i, m in enumerate(body.media) if m not in known_media]  # known_media: _known_media of the batch
    cat, proposal = None, None
    try:
        if body.category_code is None:  # smart dispatch: the category from the text
            cat, proposal = propose_category_hook(session, [_report_text(body.title, body.description)], channel,
                                                  [["body", "category_code"]])[0]
        else:
            cat = ref.resolve_category(session, body.category_code, ["body", "category_code"])
    except InvalidInput as exc:
        probs += exc.problems
    if where is None:
        probs.append(Problem("点位不在本区范围内 the point is outside the district", ["body", "lat"], "outside"))
    if probs:
        raise InvalidInput(probs)
    assert where is not None and cat is not None
    extra = body if isinstance(body, schemas.ReportCreate) else None
    when = at or sla.now()
    if extra is not None and extra.reported_at is not None:
        if extra.reported_at > when + dt.timedelta(minutes=5):
            raise InvalidInput([Problem("reported_at is in the future", ["body", "reported_at"])])
        when = extra.reported_at
    if extra is not None and extra.self_handled:
        # 自行处置 is a row of the transition table (reported -> closed), decided like every other action
        why = self_handle_allowed(session, principal) if source == "supervisor" else \
            "只有监督员/网格员本人的上报可自行处置 only a supervisor's own report can be self-handled"
        if why:
            raise InvalidInput([Problem(why, ["body", "self_handled"], "self_handle")])
    return IntakeItem(
        source=source, channel=channel, cat=cat, lon=body.lon, lat=body.lat, where=where, at=when,
        title=_title(cat, body.title, body.address), description=body.description, address=body.address,
        urgency=body.urgency or cat.urgency_default, appeal_type=extra.appeal_type if extra else None,
        external_id=extra.external_id if extra else None,
        reporter_name=body.reporter_name if source in ("public", "hotline") else (body.reporter_name or principal.username),
        reporter_phone=body.reporter_phone, reporter_account_id=principal.account_id,
        media=tuple(body.media), self_handled=bool(extra and extra.self_handled), public=source == "public",
        proposal=proposal)


def report(session: Session, principal: Principal, body: schemas.ReportBase, *, source: str, channel: str,
           at: dt.datetime | None = None) -> dict[str, Any]:
    """A report by a signed-in principal or a citizen (``source='public'``). Does not commit."""
    where = locate(session, np.array([body.lon]), np.array([body.lat]))[0]
    item = _prepare(session, principal, body, source, channel, where, at, _known_media(session, body.media))
    return intake(session, principal, item)


@dataclass
class ReportRequest:
    """One report to submit (``submit_reports``): who, what, through which channel, and the
    client's Idempotency-Key if it sent one."""

    principal: Principal
    body: schemas.ReportBase
    source: str
    channel: str
    idempotency_key: str | None = None


Outcome = tuple[int, dict[str, Any], bool]


def _idem_locks(session: Session, keys: list[tuple[str, str]]) -> None:
    if session.get_bind().dialect.name == "postgresql":  # one round trip, in ascending order
        session.execute(text("SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM "
                             "(SELECT k FROM unnest(CAST(:keys AS text[])) AS u(k) ORDER BY k) AS s"),
                        {"keys": sorted({f"idem|{scope}|{key}" for scope, key in keys})})


def submit_reports(session: Session, requests: list[ReportRequest]) -> list[Outcome | CityOpsError]:
    """Many reports in the caller's transaction (does not commit): the group commit of concurrent
    HTTP requests, and the single report. Per request: (HTTP status, IntakeResult, replayed), or
    the error that request alone gets (bad input, a reused Idempotency-Key). A request sent again
    with the same Idempotency-Key (earlier, or in the same batch) gets the first answer."""
    out: list[Outcome | CityOpsError | None] = [None] * len(requests)
    rhash: dict[int, str] = {}
    first_of: dict[tuple[str, str], int] = {}
    follow: dict[int, int] = {}
    for k, rq in enumerate(requests):
        key = rq.idempotency_key
        if key is None:
            continue
        if not key or len(key) > 200:
            out[k] = InvalidInput([Problem("Idempotency-Key must be 1-200 characters", ["header", "Idempotency-Key"])])
            continue
        rhash[k] = request_hash(rq.body.model_dump(mode="json"))
        sk = (idempotency_scope(rq.principal), key)
        if sk in first_of:
            follow[k] = first_of[sk]
        else:
            first_of[sk] = k
    if first_of:
        _idem_locks(session, list(first_of))
        recs = {}
        for lo in range(0, len(first_of), 300):
            part = list(first_of)[lo:lo + 300]
            recs.update({(r.scope, r.key): r for r in session.scalars(select(IdempotencyRecord).where(
                tuple_(IdempotencyRecord.scope, IdempotencyRecord.key).in_(part)))})
        for sk, k in first_of.items():
            rec = recs.get(sk)
            if rec is None:
                continue
            if rec.request_hash != rhash[k]:
                out[k] = _idem_mismatch()
            else:
                out[k] = (rec.status_code, dict(rec.response), True)
    todo = [k for k in range(len(requests)) if out[k] is None and k not in follow]
    if todo:
        where = locate(session, np.array([requests[k].body.lon for k in todo]),
                       np.array([requests[k].body.lat for k in todo]))
        media = _known_media(session, [m for k in todo for m in requests[k].body.media])
        items: list[tuple[int, IntakeItem]] = []
        for k, w in zip(todo, where, strict=True):
            rq = requests[k]
            try:
                items.append((k, _prepare(session, rq.principal, rq.body, rq.source, rq.channel, w, None, media)))
            except CityOpsError as exc:
                out[k] = exc
        results = intake_many(session, [(requests[k].principal, it) for k, it in items])
        records = []
        for (k, _it), res in zip(items, results, strict=True):
            out[k] = (201, res, False)
            if k in rhash:
                rq = requests[k]
                records.append(dict(scope=idempotency_scope(rq.principal), key=rq.idempotency_key, request_hash=rhash[k],
                                    status_code=201, response=json.loads(json.dumps(res, default=str)),
                                    case_id=res.get("case_id"), created_at=sla.now()))
        if records:
            bulk_insert(session, table(IdempotencyRecord), records)
    for k, first in follow.items():
        got = out[first]
        if isinstance(got, CityOpsError) or got is None:
            out[k] = got
        elif rhash[k] != rhash[first]:
            out[k] = _idem_mismatch()
        else:
            out[k] = (got[0], json.loads(json.dumps(got[1], default=str)), True)
    return [o for o in out if o is not None]


def _idem_mismatch() -> InvalidInput:
    return InvalidInput([Problem("Idempotency-Key was already used with a different request body",
                                 ["header", "Idempotency-Key"], "idempotency_mismatch")])


# ---------------------------------------------------------------- 12345 work orders

HOTLINE_COLUMNS = list(schemas.HotlineOrder.model_fields)
_CN_APPEAL = {"咨询": "inquiry", "求助": "help", "投诉": "complaint", "举报": "tip_off", "建议": "suggestion"}
_CN_URGENCY = {"一般": "normal", "紧急": "urgent", "特急": "critical"}


def hotline_rows_from_csv(text_: str) -> list[dict[str, Any]]:
    # newline="": the csv module sees the line ends itself (quoted fields may hold CR / LF)
    reader = csv.DictReader(io.StringIO(text_.lstrip("\ufeff"), newline=""))
    try:
        missing = [c for c in ("order_id", "received_at") if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput([Problem(f"CSV is missing the columns {', '.join(missing)}", ["body", "header"])])
        unknown = [c for c in (reader.fieldnames or []) if c not in HOTLINE_COLUMNS]
        if unknown:
            raise InvalidInput([Problem(f"unknown CSV columns {', '.join(unknown)}; columns: {', '.join(HOTLINE_COLUMNS)}",
                                        ["body", "header"])])
        return [{k: v for k, v in r.items() if v not in (None, "")} for r in reader]
    except csv.Error as exc:
        line = reader.line_num + 1  # the reader counts the lines it finished; the bad one is the next
        raise InvalidInput([Problem(f"CSV line {line}: {exc}", ["body", "line", line], "csv")]) from exc


def import_hotline(session: Session, principal: Principal, rows: list[Any], *, skip_existing: bool = False) -> dict[str, Any]:
    """Import 12345 work orders, all or nothing: every bad row is listed (row number, field, reason).
    The hotline's own id is kept (``external_id``, unique per source); an order already imported is
    an error, or skipped with ``skip_existing``. Duplicates of open cases are linked. Does not commit."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInput([Problem("no work orders", ["body"])])
    if len(rows) > 50_000:
        raise InvalidInput([Problem("at most 50,000 orders per import", ["body"])])
    probs: list[Problem] = []
    orders: list[schemas.HotlineOrder | None] = []
    for i, r in enumerate(rows):
        if isinstance(r, dict):
            r = dict(r)
            if r.get("appeal_type") in _CN_APPEAL:
                r["appeal_type"] = _CN_APPEAL[r["appeal_type"]]
            if r.get("urgency") in _CN_URGENCY:
                r["urgency"] = _CN_URGENCY[r["urgency"]]
        try:
            orders.append(schemas.HotlineOrder.model_validate(r))
        except ValidationError as exc:
            orders.append(None)
            for e in exc.errors():
                probs.append(Problem(e["msg"], ["rows", i, *[str(x) for x in e["loc"]]]))
    seen: dict[str, int] = {}
    for i, o in enumerate(orders):
        if o is None:
            continue
        if o.order_id in seen:
            probs.append(Problem(f"order {o.order_id} repeats row {seen[o.order_id]}", ["rows", i, "order_id"]))
        seen.setdefault(o.order_id, i)
        if (o.lat is None or o.lon is None) and not o.grid_code:
            probs.append(Problem("give lat and lon, or grid_code", ["rows", i, "lat"]))
    ids = [o.order_id for o in orders if o is not None]
    existing: dict[str, int] = {}
    for chunk in range(0, len(ids), 900):
        existing.update(dict(session.execute(select(Case.external_id, Case.id).where(
            Case.source == "hotline", Case.external_id.in_(ids[chunk:chunk + 900]))).all()))  # type: ignore[arg-type]
        existing.update(dict(session.execute(select(CaseReport.external_id, CaseReport.case_id).where(
            CaseReport.source == "hotline", CaseReport.external_id.in_(ids[chunk:chunk + 900]))).all()))  # type: ignore[arg-type]
    cats: list[ref.CategoryInfo | None] = []
    no_cat = [i for i, o in enumerate(orders) if o is not None and o.category_code is None]
    proposals: dict[int, tuple[ref.CategoryInfo | None, dict[str, Any] | None]] = {}
    if no_cat:  # smart dispatch: the categories from the orders' texts, in one batch
        try:
            got = propose_category_hook(session, [_report_text(orders[i].title, orders[i].content) for i in no_cat],  # type: ignore[union-attr]
                                        "hotline", [["rows", i, "category_code"] for i in no_cat])
            proposals = dict(zip(no_cat, got, strict=True))
        except InvalidInput as exc:
            probs += exc.problems
    for i, o in enumerate(orders):
        cat = None
        if o is not None:
            try:
                if o.category_code is None:
                    cat = proposals.get(i, (None, None))[0]
                else:
                    cat = ref.resolve_category(session, o.category_code, ["rows", i, "category_code"])
            except InvalidInput as exc:
                probs += exc.problems
            if o.order_id in existing and not skip_existing:
                probs.append(Problem(f"order {o.order_id} was imported already (case {existing[o.order_id]}); "
                                     "use skip_existing=true to skip it", ["rows", i, "order_id"], "duplicate"))
        cats.append(cat)
    # positions: points as given; a grid code alone -> the grid's representative point
    lon = np.array([o.lon if o is not None and o.lon is not None else np.nan for o in orders], dtype=float)
    lat = np.array([o.lat if o is not None and o.lat is not None else np.nan for o in orders], dtype=float)
    grid_only = [i for i, o in enumerate(orders) if o is not None and (o.lat is None or o.lon is None) and o.grid_code]
    if grid_only:
        from cityops.geo.models import Area

        codes = sorted({str(orders[i].grid_code) for i in grid_only})  # type: ignore[union-attr]
        geoms: dict[str, Any] = dict(session.execute(select(Area.code, Area.geom).where(Area.code.in_(codes), Area.level == "grid",
                                                                        Area.valid_to.is_(None))).all())
        for i in grid_only:
            g = geoms.get(str(orders[i].grid_code))  # type: ignore[union-attr]
            if g is None:
                probs.append(Problem(f"unknown unit grid {orders[i].grid_code}", ["rows", i, "grid_code"]))  # type: ignore[union-attr]
            else:
                p = g.representative_point()
                lon[i], lat[i] = p.x, p.y
    ok = ~np.isnan(lon) & ~np.isnan(lat)
    where: list[Located | None] = [None] * len(orders)
    if ok.any():
        idx = np.nonzero(ok)[0]
        for j, w in zip(idx, locate(session, lon[idx], lat[idx]), strict=True):
            where[int(j)] = w
            if w is None:
                probs.append(Problem("点位不在本区范围内 the point is outside the district", ["rows", int(j), "lat"], "outside"))
    now_ = sla.now()
    for i, o in enumerate(orders):
        if o is not None and o.received_at > now_ + dt.timedelta(minutes=5):
            probs.append(Problem("received_at is in the future", ["rows", i, "received_at"]))
    if probs:
        raise InvalidInput(probs)
    created = linked = skipped = 0
    items: list[dict[str, Any]] = []
    todo: list[int] = []
    for i in sorted(range(len(orders)), key=lambda k: orders[k].received_at):  # type: ignore[union-attr]
        o = orders[i]
        assert o is not None
        if o.order_id in existing:
            skipped += 1
            items.append({"row": i, "order_id": o.order_id, "skipped": True, "case_id": existing[o.order_id]})
        else:
            todo.append(i)
    batch = []
    for i in todo:
        o, cat, w = orders[i], cats[i], where[i]
        assert o is not None and cat is not None and w is not None
        batch.append((principal, IntakeItem(
            source="hotline", channel="import", cat=cat, lon=float(lon[i]), lat=float(lat[i]), where=w, at=o.received_at,
            title=_title(cat, o.title, o.address), description=o.content, address=o.address,
            urgency=o.urgency or cat.urgency_default, appeal_type=o.appeal_type, external_id=o.order_id,
            reporter_name=o.caller_name, reporter_phone=o.caller_phone, per_case_side_effects=False,
            proposal=proposals.get(i, (None, None))[1])))
    for i, res in zip(todo, intake_many(session, batch), strict=True):
        created += 0 if res["linked"] else 1
        linked += 1 if res["linked"] else 0
        items.append({"row": i, "order_id": orders[i].order_id, "case_id": res["case_id"],  # type: ignore[union-attr]
                      "case_no": res["case_no"], "linked": res["linked"]})
    items.sort(key=lambda d: d["row"])
    case_ids = sorted({int(d["case_id"]) for d in items})
    audit.record(session, principal, "hotline.import", "case", None,
                 detail={"rows": len(orders), "created": created, "linked": linked, "skipped": skipped,
                         "case_ids": case_ids if len(case_ids) <= 200 else {"count": len(case_ids), "min": case_ids[0],
                                                                            "max": case_ids[-1]},
                         "orders": [o.order_id for o in orders if o is not None][:200]})
    if created or linked:
        jobs.enqueue(session, "case.imported", {"source": "hotline", "created": created, "linked": linked,
                                                "case_ids": case_ids[:1000], "at": sla.now()})
    return {"created": created, "linked": linked, "skipped": skipped, "items": items}


# ---------------------------------------------------------------- machine signals


def _filters(session: Session, at: dt.datetime) -> list[SignalFilter]:
    return [f for f in session.scalars(select(SignalFilter).where(SignalFilter.mode.in_(("active", "monitor"))))
            if f.expires_at is None or f.expires_at > at]


def _matches(f: SignalFilter, body: schemas.SignalIn, grid_code: str | None) -> bool:
    if f.signal_type and f.signal_type != body.signal_type:
        return False
    if f.device_prefix and not body.device_id.startswith(f.device_prefix):
        return False
    if f.area_prefix and not (grid_code or "").startswith(f.area_prefix):
        return False
    return True


def ingest_signal(session: Session, principal: Principal, body: schemas.SignalIn) -> dict[str, Any]:
    """Store the raw signal, then: snoozed (an active snooze filter matches), deduplicated (the
    same signal key opened a still-open case within the window), ignored (no category / low
    confidence), else a new case. Does not commit."""
    at = sla.now()
    observed = body.observed_at or at
    probs = check_media(session, body.media, ["body", "media"])
    cat = ref.resolve_category(session, body.category_code, ["body", "category_code"]) if body.category_code else None
    proposal = None
    if cat is None:  # smart dispatch: a confident proposal from the alert's type and text opens the case
        text = " ".join(str(x) for x in (body.signal_type, body.payload.get("text"), body.payload.get("description")) if x)
        cat, proposal = propose_category_hook(session, [text], body.source, [["body", "category_code"]], strict=False)[0]
        if proposal is not None and proposal["needs_review"]:
            cat = None
    where = _locate_one(session, body.lon, body.lat, ["body"])
    if probs:
        raise InvalidInput(probs)
    key = (body.signal_key or f"{body.device_id}|{body.signal_type}|{where.grid_code}")[:200]
    pol = ref.policy(session)
    outcome, case_id, filt = "case_created", None, None
    filters = _filters(session, at)
    snooze = next((f for f in filters if f.action == "snooze" and _matches(f, body, where.grid_code)), None)
    dedupe_f = next((f for f in filters if f.action == "deduplicate" and _matches(f, body, where.grid_code)), None)
    window = dt.timedelta(minutes=float(dedupe_f.window_minutes if dedupe_f else pol.get("signal_window_minutes", 60)))
    if snooze is not None and snooze.mode == "active":
        outcome, filt = "snoozed", snooze
    elif cat is None or (body.confidence is not None and body.confidence < float(pol.get("signal_min_confidence", 0.5))):
        outcome = "ignored"
    else:
        prev = session.execute(select(Signal.case_id).join(Case, Case.id == Signal.case_id).where(
            Signal.signal_key == key, Signal.observed_at >= observed - window, Signal.observed_at <= observed + window,
            Case.state.in_(ref.OPEN_STATES)).order_by(Signal.observed_at.desc()).limit(1)).scalar()
        if prev is not None and (dedupe_f is None or dedupe_f.mode == "active"):
            outcome, case_id, filt = "deduplicated", int(prev), dedupe_f
            attach_media(session, body.media, int(prev))
        elif snooze is not None:  # monitor-mode snooze: would have snoozed; record it and go on
            filt = snooze
    result_case = None
    if outcome == "case_created":
        assert cat is not None
        result_case = intake(session, principal, IntakeItem(
            source=body.source, channel="sensor", cat=cat, lon=body.lon, lat=body.lat, where=where, at=observed,
            title=f"{cat.name_zh}（{'视频AI' if body.source == 'video_ai' else '物联感知'} {body.device_id}）"[:200],
            description=f"{body.signal_type}" + (f" 置信度 {body.confidence:.2f}" if body.confidence is not None else ""),
            urgency=cat.urgency_default, external_id=None, reporter_name=None, media=tuple(body.media), dedupe=False,
            proposal=proposal))
        case_id = result_case["case_id"]
    sid = int(session.execute(insert(SIGNALS_T).values(
        source=body.source, device_id=body.device_id, signal_type=body.signal_type, signal_key=key,
        category_id=cat.id if cat else None, lon=body.lon, lat=body.lat, grid_code=where.grid_code,
        confidence=body.confidence, observed_at=observed, received_at=at, payload=body.payload, outcome=outcome,
        case_id=case_id, filter_id=filt.id if filt else None).returning(SIGNALS_T.c.id)).scalar_one())
    if outcome == "deduplicated":
        session.execute(insert(EVENTS_T).values(
            case_id=case_id, at=at, actor=principal.username, actor_roles=principal.role_label()[:200],
            action="signal", from_state=None, to_state=None, note=f"重复信号 {body.signal_type} ({body.device_id})",
            data={"signal_id": sid, "signal_key": key}, attachments=list(body.media)))
    no = result_case["case_no"] if result_case else None
    if outcome == "deduplicated" and case_id is not None:
        no = case_no(case_id, session.scalar(select(Case.reported_at).where(Case.id == case_id)))
    return {"signal_id": sid, "outcome": outcome, "case_id": case_id, "case_no": no, "filter": filt.name if filt else None}


def create_signal_filter(session: Session, principal: Principal, body: schemas.SignalFilterIn) -> dict[str, Any]:
    f = SignalFilter(created_by=principal.username, **body.model_dump())
    session.add(f)
    session.flush()
    audit.record(session, principal, "signal_filter.create", "signal_filter", f.id, detail=body.model_dump(mode="json"))
    return signal_filter_out(f)


def update_signal_filter(session: Session, principal: Principal, filter_id: int, body: schemas.SignalFilterIn) -> dict[str, Any]:
    f = session.get(SignalFilter, filter_id)
    if f is None:
        raise NotFound([Problem(f"no signal filter {filter_id}", ["path", "filter_id"], "not_found")])
    for k, v in body.model_dump().items():
        setattr(f, k, v)
    session.flush()
    audit.record(session, principal, "signal_filter.update", "signal_filter", f.id, detail=body.model_dump(mode="json"))
    return signal_filter_out(f)


def signal_filter_out(f: SignalFilter) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "mode": f.mode, "action": f.action, "signal_type": f.signal_type,
            "device_prefix": f.device_prefix, "area_prefix": f.area_prefix, "window_minutes": f.window_minutes,
            "expires_at": f.expires_at, "note": f.note, "created_by": f.created_by, "created_at": f.created_at}


def list_signal_filters(session: Session) -> list[dict[str, Any]]:
    return [signal_filter_out(f) for f in session.scalars(select(SignalFilter).order_by(SignalFilter.id))]


def list_signals(session: Session, principal: Principal, *, outcome: str | None = None, page: int = 1,
                 page_size: int = 50) -> dict[str, Any]:
    from sqlalchemy import func

    stmt = select(Signal).where(scope.clause(principal, SIGNAL_SCOPE))
    if outcome:
        stmt = stmt.where(Signal.outcome == outcome)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Signal.id.desc()).offset((page - 1) * page_size).limit(page_size))
    return {"total": total, "page": page, "page_size": page_size, "items": [
        {"id": s.id, "source": s.source, "device_id": s.device_id, "signal_type": s.signal_type, "signal_key": s.signal_key,
         "lon": s.lon, "lat": s.lat, "grid_code": s.grid_code, "confidence": s.confidence, "observed_at": s.observed_at,
         "outcome": s.outcome, "case_id": s.case_id, "filter_id": s.filter_id} for s in rows]}


def conflict(msg: str) -> Conflict:
    return Conflict([Problem(msg, [], "conflict")])


# ---------------------------------------------------------------- smart dispatch hook (issue 14)
# The only place intake talks to cityops.ai: a report, a 12345 order or a signal without a category
# gets the classifier's proposal (category from the text, place), stored with the case it creates.


def _report_text(title: str | None, description: str | None) -> str:
    return " ".join(x for x in (title, description) if x and x.strip())


def propose_category_hook(session: Session, texts: list[str], channel: str, locs: list[list[str | int]], *,
                          strict: bool = True) -> list[tuple[ref.CategoryInfo | None, dict[str, Any] | None]]:
    """(category, proposal) per text, the category being the top candidate. ``strict``: an empty
    text or no trained model is an error naming ``locs``; otherwise (signals) (None, None)."""
    smart = proposals.proposer()
    if smart is None:
        if not strict:
            return [(None, None)] * len(texts)
        raise InvalidInput([Problem("须填写类别 category_code is required (no classifier is installed)", loc)
                            for loc in locs])
    probs = [Problem("category_code is required when there is no text to classify (无类别时须提供问题描述)", loc)
             for t, loc in zip(texts, locs, strict=True) if not t.strip()]
    if probs:
        if strict:
            raise InvalidInput(probs)
        return [(None, None)] * len(texts)
    try:
        got = smart.classify_many(session, texts, [channel] * len(texts))
    except InvalidInput as exc:
        if not strict:
            return [(None, None)] * len(texts)
        raise InvalidInput([Problem(f"category_code is required: {exc.problems[0].msg}", loc) for loc in locs])
    out: list[tuple[ref.CategoryInfo | None, dict[str, Any] | None]] = []
    for p in got:
        top = p["candidates"][0]["category_code"] if p["candidates"] else None
        out.append((ref.resolve_category(session, top) if top else None, p))
    return out


def store_proposals_hook(session: Session, batch: list[tuple[Principal, IntakeItem]],
                         results: list[dict[str, Any] | None]) -> None:
    """Store the proposals of the items that created a case (a linked report keeps its case's)."""
    items = [(int(r["case_id"]), it.source, it.proposal) for (_p, it), r in zip(batch, results, strict=True)
             if it.proposal is not None and r is not None and not r["linked"]]
    smart = proposals.proposer()
    if items and smart is not None:
        smart.store_proposals(session, items)
