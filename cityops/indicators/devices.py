"""Devices (物联感知设备): register / update one (PUT), import many from CSV or GeoJSON (all or
nothing, every bad row named), list them (scoped by area). A device's WGS-84 point is placed in
its grid, community and street by the geo service; one series per (device, indicator)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput, NotFound, Problem
from cityops.indicators import catalogue as catalog
from cityops.indicators import ingest
from cityops.indicators.models import DEVICE_SCOPE, Device, Series
from cityops.security import audit, scope
from cityops.security.principal import Principal

STATUSES = ("active", "maintenance", "retired")
DEVICES = Device.__table__
SERIES = Series.__table__


def _check(cat: catalog.Catalogue, row: dict[str, Any], at: list[Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    probs: list[Problem] = []
    code = row.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > 60 or not code.isprintable():
        probs.append(Problem("设备编码须为1-60个可打印字符 code must be 1-60 printable characters", [*at, "code"]))
    inds = row.get("indicators")
    if isinstance(inds, str):
        inds = [x.strip() for x in inds.replace(",", ";").split(";") if x.strip()]
    if not isinstance(inds, list) or not inds or not all(isinstance(x, str) for x in inds):
        probs.append(Problem("indicators 须为指标代码列表 indicators must list indicator codes", [*at, "indicators"]))
        inds = []
    for x in inds:
        if x not in cat.indicators:
            probs.append(Problem(f"未知指标 unknown indicator {x!r}; known: {', '.join(cat.indicators)}",
                                 [*at, "indicators"], "unknown_indicator"))
    lon, lat = row.get("lon"), row.get("lat")
    try:
        lon_f, lat_f = float(lon), float(lat)  # type: ignore[arg-type]
        if not (math.isfinite(lon_f) and math.isfinite(lat_f) and -180 <= lon_f <= 180 and -90 <= lat_f <= 90):
            raise ValueError
    except (TypeError, ValueError):
        probs.append(Problem("经纬度须为有效的 WGS-84 数值 lon/lat must be valid WGS-84 numbers", [*at, "lon"]))
        lon_f = lat_f = float("nan")
    status = row.get("status") or "active"
    if status not in STATUSES:
        probs.append(Problem(f"status 须为 {'/'.join(STATUSES)}", [*at, "status"]))
    params = row.get("params") or {}
    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except json.JSONDecodeError:
            params = None
    if not isinstance(params, dict) or not all(isinstance(k, str) and (isinstance(v, int | float | str | bool)
                                                                       or v is None) for k, v in params.items()):
        probs.append(Problem("params 须为扁平对象 params must be a flat object", [*at, "params"]))
        params = {}
    owner = row.get("owner_department_code") or row.get("owner") or None
    if owner is not None and (not isinstance(owner, str) or len(owner) > 40):
        probs.append(Problem("owner 须为部门代码 owner must be a department code", [*at, "owner_department_code"]))
    name = row.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        probs.append(Problem("name 最多200字 name is at most 200 characters", [*at, "name"]))
    if probs:
        return None, probs
    return {"code": str(code).strip(), "name": name, "indicators": sorted(set(inds)), "lon": lon_f, "lat": lat_f,
            "status": status, "params": params, "owner_department_code": owner}, []


def _place(session: Session, rows: list[dict[str, Any]], locs: list[list[Any]]) -> list[Problem]:
    from cityops.geo import service as geo

    if not rows:
        return []
    hits = geo.locate_many(session, np.array([r["lon"] for r in rows]), np.array([r["lat"] for r in rows]),
                           with_layers=False)
    probs = []
    for r, h, at in zip(rows, hits, locs, strict=True):
        if not h.get("inside"):
            probs.append(Problem("点位不在本区范围内 the point is outside the district", [*at, "lon"], "outside"))
            continue
        r.update(grid_code=h["grid_code"], community_code=h["community_code"], street_code=h["street_code"])
    return probs


def upsert_many(session: Session, principal: Principal, rows: list[dict[str, Any]], locs: list[list[Any]]) -> dict[str, Any]:
    """Validate all, then create or update every device and its series; all or nothing."""
    cat = catalog.active(session)
    good, probs = [], []
    seen: dict[str, list[Any]] = {}
    for r, at in zip(rows, locs, strict=True):
        ok, p = _check(cat, r, at)
        probs += p
        if ok is not None:
            if ok["code"] in seen:
                probs.append(Problem(f"设备编码重复 duplicate device code {ok['code']} (also at {seen[ok['code']]})",
                                     [*at, "code"], "duplicate"))
                continue
            seen[ok["code"]] = at
            good.append((ok, at))
    probs += _place(session, [g for g, _ in good], [a for _, a in good])
    if probs:
        raise InvalidInput(probs)
    now = dt.datetime.now(dt.UTC)
    existing = {d.code: d for d in session.scalars(select(Device).where(Device.code.in_([g["code"] for g, _ in good])))} \
        if len(good) <= 5000 else {d.code: d for d in session.scalars(select(Device))}
    created = updated = 0
    new_rows = []
    for g, _at in good:
        d = existing.get(g["code"])
        if d is None:
            new_rows.append({**g, "updated_at": now})
            created += 1
        else:
            for k, v in g.items():
                setattr(d, k, v)
            d.updated_at = now
            updated += 1
    if new_rows:
        from cityops.db import insert_rows

        insert_rows(session, DEVICES, new_rows)
    session.flush()
    ids = dict(session.execute(select(Device.code, Device.id).where(Device.code.in_([g["code"] for g, _ in good]))).all()) \
        if len(good) <= 5000 else dict(session.execute(select(Device.code, Device.id)).all())
    have = {(s.device_id, s.indicator_code): s for s in session.scalars(select(Series).where(
        Series.device_id.in_(list(ids.values()))))} if len(good) <= 5000 else \
        {(s.device_id, s.indicator_code): s for s in session.scalars(select(Series))}
    add = []
    for g, _at in good:
        did = ids[g["code"]]
        for ind in g["indicators"]:
            s = have.get((did, ind))
            if s is None:
                add.append({"device_id": did, "indicator_code": ind, "grid_code": g["grid_code"],
                            "community_code": g["community_code"], "street_code": g["street_code"]})
            else:
                s.grid_code, s.community_code, s.street_code = g["grid_code"], g["community_code"], g["street_code"]
    if add:
        from cityops.db import insert_rows

        insert_rows(session, SERIES, add)
    audit.record(session, principal, "device.upsert", "indicator_device", None,
                 detail={"created": created, "updated": updated})
    session.flush()
    ingest.invalidate()
    from cityops.indicators.evaluator import pipeline

    pipe = pipeline()
    if pipe.engine is not None and updated:
        for g, _at in good:
            if g["code"] in existing:
                pipe.refresh_device(session, ids[g["code"]])
    return {"created": created, "updated": updated, "devices": len(good)}


def put_device(session: Session, principal: Principal, code: str, body: dict[str, Any]) -> dict[str, Any]:
    upsert_many(session, principal, [{**body, "code": code}], [["body"]])
    d = session.scalar(select(Device).where(Device.code == code))
    assert d is not None
    return device_out(d)


def parse_import(content: bytes, filename: str | None, content_type: str | None) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Rows of a device file: GeoJSON (FeatureCollection of Points) or CSV (code, name, indicators
    ``;``-separated, lon, lat, owner_department_code, status, params JSON)."""
    name = (filename or "").lower()
    ctype = (content_type or "").lower()
    is_geo = name.endswith((".geojson", ".json")) or "geo+json" in ctype or "json" in ctype
    try:
        text_ = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(f"文件须为 UTF-8 the file must be UTF-8: {exc}", ["file"], "encoding")])
    if is_geo or text_.lstrip().startswith("{"):
        try:
            doc = json.loads(text_)
        except json.JSONDecodeError as exc:
            raise InvalidInput([Problem(f"GeoJSON 无法解析 not JSON: {exc}", ["file"], "json_invalid")])
        feats: Any = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(feats, list):
            raise InvalidInput([Problem("须为 FeatureCollection a FeatureCollection is expected", ["file", "features"])])
        rows, locs = [], []
        for i, f in enumerate(feats):
            at: list[Any] = ["features", i]
            geom = f.get("geometry") if isinstance(f, dict) else None
            props = f.get("properties") if isinstance(f, dict) and isinstance(f.get("properties"), dict) else {}
            coords = geom.get("coordinates") if isinstance(geom, dict) and geom.get("type") == "Point" else None
            row: dict[str, Any] = dict(props or {})
            if isinstance(coords, list) and len(coords) >= 2:
                row["lon"], row["lat"] = coords[0], coords[1]
            else:
                row["lon"] = row["lat"] = None
            rows.append(row)
            locs.append(at)
        return rows, locs
    reader = csv.DictReader(io.StringIO(text_))
    need = {"code", "indicators", "lon", "lat"}
    if not reader.fieldnames or not need <= {h.strip() for h in reader.fieldnames}:
        raise InvalidInput([Problem("CSV 表头须含 code, indicators, lon, lat the header needs code, indicators, lon, lat",
                                    ["file", "header"], "missing")])
    rows, locs = [], []
    try:
        for i, r in enumerate(reader, start=1):
            rows.append({k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k})
            locs.append(["row", i])
    except csv.Error as exc:
        raise InvalidInput([Problem(f"CSV 无法读取 unreadable CSV: {exc}", ["file"], "csv")])
    return rows, locs


def import_devices(session: Session, principal: Principal, content: bytes, filename: str | None,
                   content_type: str | None) -> dict[str, Any]:
    rows, locs = parse_import(content, filename, content_type)
    if not rows:
        raise InvalidInput([Problem("文件中没有设备 the file holds no devices", ["file"])])
    return upsert_many(session, principal, rows, locs)


def device_out(d: Device) -> dict[str, Any]:
    return {"code": d.code, "name": d.name, "indicators": list(d.indicators or []), "lon": d.lon, "lat": d.lat,
            "grid_code": d.grid_code, "community_code": d.community_code, "street_code": d.street_code,
            "owner_department_code": d.owner_department_code, "status": d.status, "params": dict(d.params or {}),
            "updated_at": d.updated_at}


def list_devices(session: Session, principal: Principal, *, indicator: str | None = None, area: str | None = None,
                 status: str | None = None, page: int = 1, page_size: int = 100) -> dict[str, Any]:
    stmt = select(Device).where(scope.clause(principal, DEVICE_SCOPE))
    if area:
        stmt = stmt.where(DEVICE_SCOPE.located.within(area))  # type: ignore[union-attr]
    if indicator:
        stmt = stmt.where(Device.id.in_(select(Series.device_id).where(Series.indicator_code == indicator)))
    if status:
        stmt = stmt.where(Device.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Device.code).offset((page - 1) * page_size).limit(page_size))
    return {"total": total, "page": page, "page_size": page_size, "items": [device_out(d) for d in rows]}


def get_device(session: Session, principal: Principal, code: str) -> Device:
    d = session.scalar(select(Device).where(Device.code == code, scope.clause(principal, DEVICE_SCOPE)))
    if d is None:
        raise NotFound([Problem(f"没有设备 no device {code}", ["path", "code"], "not_found")])
    return d
