"""Ingest through POST /api/v1/readings: formats, whole-batch validation, partial, idempotency and
corrections, late readings, rollups and series; devices PUT and import (all or nothing)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select, text

from tests.indicators_helpers import drain, make_devices, minute0, ndjson, reading, sensor_headers, tag

ND = {"Content-Type": "application/x-ndjson"}


def _count(session, series_codes):
    from cityops.indicators.models import Device, Reading, Series

    n = session.scalar(select(func.count()).select_from(Reading).join(Series, Series.id == Reading.series_id)
                       .join(Device, Device.id == Series.device_id).where(Device.code.in_(series_codes)))
    session.rollback()  # a SQLite session's transaction holds the write lock: end it
    return n


def test_same_batch_twice_stores_every_reading_once(client, session):
    t = tag()
    codes = [f"T{t}-GP{i}" for i in range(50)]
    make_devices(session, [(c, "gas_pressure", "310117001", i) for i, c in enumerate(codes)])
    h = {**sensor_headers(session), **ND}
    t0 = minute0()
    rows = [reading(c, "gas_pressure", t0 + dt.timedelta(minutes=m), 2.4) for c in codes for m in range(20)]
    r1 = client.post("/api/v1/readings", content=ndjson(rows), headers=h)
    assert r1.status_code == 202, r1.text
    assert (r1.json()["accepted"], r1.json()["duplicates"], r1.json()["rejected"]) == (1000, 0, [])
    r2 = client.post("/api/v1/readings", content=ndjson(rows), headers=h)
    assert (r2.json()["accepted"], r2.json()["duplicates"]) == (0, 1000)
    session.rollback()
    assert _count(session, codes) == 1000
    # a different value for a stored key is a correction: both kept
    fix = [reading(codes[0], "gas_pressure", t0, 2.9)]
    r3 = client.post("/api/v1/readings", json=fix, headers=sensor_headers(session))
    assert (r3.json()["accepted"], r3.json()["corrections"], r3.json()["duplicates"]) == (1, 1, 0)
    session.rollback()
    assert _count(session, codes) == 1001
    drain()


def test_one_bad_row_in_10000_rejects_the_batch_naming_it(client, session):
    t = tag()
    codes = [f"T{t}-CD{i}" for i in range(100)]
    make_devices(session, [(c, "crowd_density", "310117103", i) for i, c in enumerate(codes)])
    h = {**sensor_headers(session), **ND}
    t0 = minute0(30)
    rows = [reading(c, "crowd_density", t0 + dt.timedelta(minutes=m), 0.5) for m in range(100) for c in codes]
    assert len(rows) == 10_000
    bad_row = 4321  # 1-based
    rows[bad_row - 1] = {**rows[bad_row - 1], "value": "lots"}
    r = client.post("/api/v1/readings", content=ndjson(rows), headers=h)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert len(detail) == 1 and detail[0]["loc"] == ["body", bad_row, "value"] and "finite" in detail[0]["msg"]
    session.rollback()
    assert _count(session, codes) == 0
    r = client.post("/api/v1/readings?partial=true", content=ndjson(rows), headers=h)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 9_999 and body["rejected"] == [{"row": bad_row, "field": "value",
                                                                "reason": detail[0]["msg"]}]
    session.rollback()
    assert _count(session, codes) == 9_999
    drain()


def test_formats_and_reasons(client, session):
    t = tag()
    make_devices(session, [(f"T{t}-AQ", "aqi", "310117001", 3)])
    h = sensor_headers(session)
    t0 = minute0(40).replace(minute=0)
    csv = (f"device,indicator,ts,value\nT{t}-AQ,aqi,{t0.isoformat()},55\n"
           f"T{t}-AQ,aqi,{(t0 + dt.timedelta(hours=1)).isoformat()},60\n").encode()
    r = client.post("/api/v1/readings", content=csv, headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    bad = [
        {"device": f"T{t}-AQ", "indicator": "aqi", "ts": "2026-01-01T08:00:00", "value": 1},  # no offset
        {"device": "nope", "indicator": "aqi", "ts": t0.isoformat(), "value": 1},
        {"device": f"T{t}-AQ", "indicator": "rainfall", "ts": t0.isoformat(), "value": 1},
        {"device": f"T{t}-AQ", "indicator": "aqi", "ts": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
         "value": 1},
        {"device": f"T{t}-AQ", "indicator": "aqi", "ts": "2001-01-01T00:00:00+08:00", "value": 1},
        "not an object",
    ]
    r = client.post("/api/v1/readings", json=bad, headers=h)
    assert r.status_code == 422
    got = [(d["loc"][1], d["loc"][2]) for d in r.json()["detail"]]
    assert got == [(1, "ts"), (2, "device"), (3, "indicator"), (4, "ts"), (5, "ts"), (6, "row")]
    r = client.post("/api/v1/readings", content=b'{"device": "x"\n', headers={**h, **ND})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "row"]
    assert client.post("/api/v1/readings", json=[], headers=h).json()["accepted"] == 0
    drain()


def test_rollups_series_and_late_reading(client, session):
    t = tag()
    devs = make_devices(session, [(f"T{t}-GA", "gas_pressure", "310117106", 0), (f"T{t}-GB", "gas_pressure", "310117106", 0)])
    grid = devs[f"T{t}-GA"][0]
    h = {**sensor_headers(session), **ND}
    t0 = minute0(50).replace(minute=0)
    rows = [reading(f"T{t}-GA", "gas_pressure", t0 + dt.timedelta(minutes=m), 2.0 + m / 100) for m in range(0, 60)
            if m != 30]
    rows += [reading(f"T{t}-GB", "gas_pressure", t0 + dt.timedelta(minutes=m), 3.0) for m in range(0, 60)]
    assert client.post("/api/v1/readings", content=ndjson(rows), headers=h).json()["accepted"] == 119
    late = [reading(f"T{t}-GA", "gas_pressure", t0 + dt.timedelta(minutes=30), 9.0)]
    assert client.post("/api/v1/readings", content=ndjson(late), headers=h).json()["accepted"] == 1
    drain()
    from tests.helpers import auth_headers, make_user

    user, pw = make_user(session, f"vs_cmd_{t}", ["district_commander"], area_code="310117")
    ah = auth_headers(client, user, pw)
    q = {"indicator": "gas_pressure", "from": t0.isoformat(), "to": (t0 + dt.timedelta(hours=1)).isoformat()}
    dev = client.get("/api/v1/readings/series", params={**q, "device": f"T{t}-GA", "step": "1h"}, headers=ah).json()
    vals = [2.0 + m / 100 for m in range(60) if m != 30] + [9.0]
    (p,) = dev["points"]
    assert p["n"] == 60 and abs(p["sum"] - sum(vals)) < 1e-9 and p["max"] == 9.0 and p["min"] == 2.0
    assert p["last"] == 2.59
    minutes = client.get("/api/v1/readings/series", params={**q, "device": f"T{t}-GA", "step": "1m"}, headers=ah).json()
    assert len(minutes["points"]) == 60 and minutes["points"][30]["last"] == 9.0
    g = client.get("/api/v1/readings/series", params={**q, "area": grid, "step": "1m"}, headers=ah).json()
    by_t = {x["t"]: x for x in g["points"]}
    m30 = by_t[(t0 + dt.timedelta(minutes=30)).isoformat()]
    assert m30["n"] >= 2 and m30["max"] == 9.0  # the late reading landed in its minute
    hour = client.get("/api/v1/readings/series", params={**q, "area": grid[:9], "step": "1h"}, headers=ah).json()
    assert hour["points"] and hour["points"][0]["n"] >= 120
    # a correction moves the device's hour (recomputed from the raw readings)
    fix = [reading(f"T{t}-GA", "gas_pressure", t0 + dt.timedelta(minutes=30), 2.3)]
    assert client.post("/api/v1/readings", content=ndjson(fix), headers=h).json()["corrections"] == 1
    drain()
    dev2 = client.get("/api/v1/readings/series", params={**q, "device": f"T{t}-GA", "step": "1h"}, headers=ah).json()
    assert dev2["points"][0]["max"] == 2.59 and dev2["points"][0]["n"] == 60


def test_devices_put_list_and_import_all_or_nothing(client, session):
    from tests.helpers import auth_headers, make_user
    from tests.indicators_helpers import grid_point

    t = tag()
    user, pw = make_user(session, f"vs_admin_{t}", ["district_commander"], area_code="310117")
    ah = auth_headers(client, user, pw)
    grid, lon, lat = grid_point(session, "310117001", 5)
    r = client.put(f"/api/v1/devices/T{t}-WL", json={"indicators": ["water_level"], "lon": lon, "lat": lat,
                                                      "params": {"warning_line": 3.6}}, headers=ah)
    assert r.status_code == 200, r.text
    assert (r.json()["grid_code"], r.json()["street_code"]) == (grid, "310117001")
    r = client.get("/api/v1/devices", params={"indicator": "water_level", "area": "310117001"}, headers=ah)
    assert f"T{t}-WL" in [d["code"] for d in r.json()["items"]]
    csv = (f"code,indicators,lon,lat,status\nT{t}-I1,rainfall,{lon},{lat},active\nT{t}-I2,nope,{lon},{lat},active\n"
           f"T{t}-I3,rainfall,200,{lat},active\nT{t}-I4,rainfall,{lon},{lat},broken\n").encode()
    r = client.post("/api/v1/devices/import", files={"file": ("d.csv", csv, "text/csv")}, headers=ah)
    assert r.status_code == 422
    locs = sorted(tuple(d["loc"]) for d in r.json()["detail"])
    assert locs == [("row", 2, "indicators"), ("row", 3, "lon"), ("row", 4, "status")]
    assert client.get(f"/api/v1/devices/T{t}-I1", headers=ah).status_code == 404  # nothing stored
    gj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
         "properties": {"code": f"T{t}-G1", "indicators": ["rainfall", "ponding_depth"]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [100.0, 20.0]},
         "properties": {"code": f"T{t}-G2", "indicators": ["rainfall"]}}]}
    r = client.post("/api/v1/devices/import", files={"file": ("d.geojson", json.dumps(gj), "application/geo+json")},
                    headers=ah)
    assert r.status_code == 422 and [tuple(d["loc"]) for d in r.json()["detail"]] == [("features", 1, "lon")]
    gj["features"].pop()
    r = client.post("/api/v1/devices/import", files={"file": ("d.geojson", json.dumps(gj), "application/geo+json")},
                    headers=ah)
    assert r.status_code == 200 and r.json()["created"] == 1
    d = client.get(f"/api/v1/devices/T{t}-G1", headers=ah).json()
    assert d["indicators"] == ["ponding_depth", "rainfall"] and d["grid_code"] == grid
    # a street account sees the devices of its street only
    u2, p2 = make_user(session, f"vs_ss_{t}", ["street_operator"], area_code="310117103")
    h2 = auth_headers(client, u2, p2)
    assert client.get(f"/api/v1/devices/T{t}-G1", headers=h2).status_code == 404
    assert client.get("/api/v1/devices", params={"area": "310117001"}, headers=h2).status_code == 404


def test_partitions_on_postgresql(session):
    from cityops.db import is_postgres

    if not is_postgres(session):
        rows = session.execute(text("SELECT sql FROM sqlite_master WHERE name = 'indicator_reading'")).scalar()
        assert "WITHOUT ROWID" in rows
        return
    from cityops.indicators.partitions import existing

    parts = existing(session.connection())
    today = dt.datetime.now(dt.UTC).date()
    assert today in parts and today + dt.timedelta(days=7) in parts and today - dt.timedelta(days=30) in parts
    kind = session.execute(text("SELECT relkind FROM pg_class WHERE relname = 'indicator_reading'")).scalar()
    assert kind == "p"  # a partitioned table


def test_cli_readings_import(db_url, session, tmp_path):
    """`cityops readings import FILE`: NDJSON in chunks, a bad row refuses its chunk with the row named."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    t = tag()
    codes = [f"T{t}-CLI{i}" for i in range(3)]
    make_devices(session, [(c, "gas_pressure", "310117104", i) for i, c in enumerate(codes)])
    t0 = minute0(26)
    rows = [reading(c, "gas_pressure", t0 + dt.timedelta(minutes=m), 2.4) for c in codes for m in range(40)]
    f = tmp_path / "r.ndjson"
    f.write_bytes(ndjson(rows))
    exe = Path(sys.executable).parent / "cityops"
    env = {**os.environ, "CITYOPS_DATABASE_URL": db_url}
    out = subprocess.run([str(exe), "readings", "import", str(f), "--chunk", "50"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'accepted': 120" in out.stderr
    assert _count(session, codes) == 120
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(ndjson([reading(codes[0], "gas_pressure", t0, 2.4), {"device": codes[0]}]))
    out = subprocess.run([str(exe), "readings", "import", str(bad)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "2" in out.stderr and "indicator" in out.stderr
