"""Warnings from readings: a red rainfall warning opens exactly one case for 水务 in the device's
grid (none more while open) with the readings in its timeline; the lifecycle; scoping by street and
by department; composites; baselines; what an incident needs."""

from __future__ import annotations

import datetime as dt

from tests.helpers import auth_headers, make_user
from tests.indicators_helpers import drain, make_devices, minute0, ndjson, reading, sensor_headers, tag

ND = {"Content-Type": "application/x-ndjson"}
YY, SS = "310117001", "310117103"
RED_ST = "310117102"  # a street no other test rains on: its rainstorm warning starts here


def _post(client, session, rows):
    h = {**sensor_headers(session), **ND}
    r = client.post("/api/v1/readings", content=ndjson(rows), headers=h)
    assert r.status_code == 202, r.text
    drain()
    return r.json()


def _warnings(client, headers, **params):
    r = client.get("/api/v1/warnings", params={"state": "all", "page_size": 500, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _commander(client, session):
    u, p = make_user(session, f"vw_cmd_{tag()}", ["district_commander"], area_code="310117")
    return auth_headers(client, u, p)


def test_red_rainfall_opens_one_case_for_sw_in_the_grid(client, session):
    from cityops.cases import service as cases
    from cityops.security.principal import SYSTEM

    t = tag()
    code = f"T{t}-RG"
    grid = make_devices(session, [(code, "rainfall", RED_ST, 7)])[code][0]
    t0 = minute0(20)
    # 10 mm a minute: the 3 h sum is 10m -> orange at minute 5, red at minute 10
    _post(client, session, [reading(code, "rainfall", t0 + dt.timedelta(minutes=m), 10.0) for m in range(1, 13)])
    ah = _commander(client, session)
    mine = [w for w in _warnings(client, ah, rule="rainstorm", area=RED_ST) if code in w["subjects"]]
    assert len(mine) == 1
    w = mine[0]
    assert (w["level"], w["area_code"], w["state"], w["indicator"]) == ("red", RED_ST, "raised", "rainfall")
    assert w["case"] is not None
    d = client.get(f"/api/v1/warnings/{w['id']}", headers=ah).json()
    steps = [(e["action"], e["data"].get("to") or e["data"].get("level")) for e in d["timeline"]]
    assert steps[:2] == [("raise", "orange"), ("level_raised", "red")] and steps[2][0] == "case_opened"
    t_red = dt.datetime.fromisoformat(d["level_at"])
    assert t_red == t0 + dt.timedelta(minutes=10)
    case = cases.case_detail(session, SYSTEM, w["case"]["id"])
    session.rollback()
    assert case["category"]["name"] == "道路积水" and case["grid_code"] == grid
    assert case["lead_department_code"] == "sw"
    tl = cases.case_timeline(session, SYSTEM, w["case"]["id"])
    session.rollback()
    assert any("触发读数" in (e.get("note") or "") and f"W{w['id']}" in (e.get("note") or "") for e in tl)
    # more red rain while the warning stays open: no second case
    _post(client, session, [reading(code, "rainfall", t0 + dt.timedelta(minutes=m), 12.0) for m in range(13, 25)])
    again = [x for x in _warnings(client, ah, rule="rainstorm", area=RED_ST) if code in x["subjects"]]
    assert [x["id"] for x in again] == [w["id"]] and again[0]["case"]["id"] == w["case"]["id"]
    from cityops.indicators.service import warnings_for_case

    assert warnings_for_case(session, w["case"]["id"]) == [w["id"]]
    session.rollback()
    # what an emergency incident needs
    inc = client.get(f"/api/v1/warnings/{w['id']}/incident", headers=ah).json()
    assert (inc["category"], inc["level"], inc["area"]["code"]) == ("自然灾害", "red", RED_ST)
    assert inc["geometry"]["area"]["type"] in ("Polygon", "MultiPolygon") and inc["geometry"]["point"]["type"] == "Point"
    assert inc["readings"] and inc["case"]["id"] == w["case"]["id"]


def test_lifecycle_and_scoping(client, session):
    t = tag()
    make_devices(session, [(f"T{t}-RG", "rainfall", YY, 11), (f"T{t}-GP", "gas_pressure", SS, 2)])
    t0 = minute0(22)
    rows = [reading(f"T{t}-RG", "rainfall", t0 + dt.timedelta(minutes=m), 6.0) for m in range(1, 12)]
    # gas: mean over 5 min <= 1.2 kPa -> orange (owner rq)
    rows += [reading(f"T{t}-GP", "gas_pressure", t0 + dt.timedelta(minutes=m), 1.0) for m in range(1, 8)]
    _post(client, session, rows)
    ah = _commander(client, session)
    rain = next(w for w in _warnings(client, ah, rule="rainstorm", area=YY) if f"T{t}-RG" in w["subjects"])
    gas = next(w for w in _warnings(client, ah, rule="gas_pressure_low") if f"T{t}-GP" in w["subjects"])
    assert gas["level"] == "orange" and gas["owner_department_code"] == "rq" and gas["area_code"].startswith(SS)
    # a street account sees its street only; the other street's warning is 404
    u, p = make_user(session, f"vw_yy_{t}", ["street_operator"], area_code=YY)
    yh = auth_headers(client, u, p)
    ids = {w["id"] for w in _warnings(client, yh)}
    assert rain["id"] in ids and gas["id"] not in ids
    assert all(w["area_code"].startswith(YY) for w in _warnings(client, yh))
    assert client.get(f"/api/v1/warnings/{gas['id']}", headers=yh).status_code == 404
    assert client.get("/api/v1/warnings", params={"area": SS}, headers=yh).status_code == 404
    # a department account sees what its department handles
    u2, p2 = make_user(session, f"vw_rq_{t}", ["dept_handler"], area_code="310117", department_code="rq")
    rq = auth_headers(client, u2, p2)
    rq_ids = {w["id"] for w in _warnings(client, rq)}
    assert gas["id"] in rq_ids and rain["id"] not in rq_ids
    assert all(w["owner_department_code"] == "rq" for w in _warnings(client, rq))
    u3, p3 = make_user(session, f"vw_sw_{t}", ["dept_handler"], area_code="310117", department_code="sw")
    sw = auth_headers(client, u3, p3)
    assert rain["id"] in {w["id"] for w in _warnings(client, sw)}
    assert client.get(f"/api/v1/warnings/{gas['id']}", headers=sw).status_code == 404
    # the owner department was notified
    inbox = client.get("/api/v1/notifications", headers=rq).json()
    assert any(gas["title"] in n["title"] for n in inbox["items"])
    # lifecycle: acknowledge -> handle (needs a note) -> lift (needs a reason)
    base = f"/api/v1/warnings/{gas['id']}/actions"
    assert client.post(f"{base}/acknowledge", json={}, headers=rq).json()["state"] == "acknowledged"
    r = client.post(f"{base}/handle", json={}, headers=rq)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "note"]
    assert client.post(f"{base}/handle", json={"note": "已关阀检修"}, headers=rq).json()["state"] == "handled"
    assert client.post(f"{base}/acknowledge", json={}, headers=rq).status_code == 409
    done = client.post(f"{base}/lift", json={"reason": "压力恢复"}, headers=rq).json()
    assert done["state"] == "lifted" and done["lifted_at"]
    assert [e["action"] for e in done["timeline"]][-3:] == ["acknowledge", "handle", "lift"]
    drain()
    # lifted by a person: the rules start again there; the condition still holds -> a new warning
    _post(client, session, [reading(f"T{t}-GP", "gas_pressure", t0 + dt.timedelta(minutes=m), 1.0) for m in range(8, 10)])
    open_now = [w for w in _warnings(client, ah, rule="gas_pressure_low", state="open") if f"T{t}-GP" in w["subjects"]]
    assert len(open_now) == 1 and open_now[0]["id"] != gas["id"]


def test_composite_flood_risk(client, session):
    t = tag()
    street = "310117004"
    params = {"warning_line": 3.6, "warning_line_clear": 3.5, "guarantee_line": 4.4}
    make_devices(session, [(f"T{t}-WL", "water_level", street, 0)], params=params)
    make_devices(session, [(f"T{t}-RG", "rainfall", street, 1)])
    t0 = minute0(24).replace(minute=0)
    rows = [reading(f"T{t}-WL", "water_level", t0 + dt.timedelta(minutes=5 * k), 3.7) for k in range(0, 3)]
    rows += [reading(f"T{t}-RG", "rainfall", t0 + dt.timedelta(minutes=m), 6.0) for m in range(1, 11)]  # 60 mm: orange
    _post(client, session, rows)
    ah = _commander(client, session)
    risk = _warnings(client, ah, rule="flood_risk", area=street, state="open")
    assert len(risk) == 1 and risk[0]["level"] == "red" and risk[0]["area_code"] == street


def test_baseline_rule_on_the_hour(client, session):
    from cityops.indicators.jobs import run_baselines

    t = tag()
    street = "310117005"
    make_devices(session, [(f"T{t}-CD", "crowd_density", street, 0)])
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    rows = []
    for w, v in ((1, 1.0), (2, 1.2), (3, 1.4), (4, 1.6)):
        h = now - dt.timedelta(weeks=w)
        rows += [reading(f"T{t}-CD", "crowd_density", h + dt.timedelta(minutes=m), v) for m in range(0, 60, 10)]
    rows += [reading(f"T{t}-CD", "crowd_density", now + dt.timedelta(minutes=m), 2.5) for m in range(0, 60, 10)]
    _post(client, session, rows)
    # expected 1.3, sd sqrt(((.3)^2 + (.1)^2 + (.1)^2 + (.3)^2) / 3) = 0.2582; score (2.5 - 1.3) / 0.2582 = 4.65:
    # blue (>= 3), not yellow (>= 5)
    n = run_baselines(session, now + dt.timedelta(hours=1, minutes=2))
    session.commit()
    assert n >= 1
    ah = _commander(client, session)
    got = _warnings(client, ah, rule="crowd_anomaly", area=street, state="open")
    assert [w["level"] for w in got] == ["blue"]
