"""POST /api/v1/emergency/allocate, /evacuate, /coverage: the shapes of issue 13, the objective
formula, road-network travel on the demo map, and 422s naming the field."""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers import auth_headers, make_user

EXAMPLE = {
    "warehouses": [{"id": "W1", "x": 0, "y": 0, "stock": {"water": 100, "tent": 10}, "handling": None},
                   {"id": "W2", "x": 10, "y": 0, "stock": {"water": 50, "tent": 0}, "handling": 40}],
    "demands": [{"id": "D1", "x": 3, "y": 4, "need": {"water": 80, "tent": 5}, "priority": 2},
                {"id": "D2", "x": 9, "y": 1, "need": {"water": 60, "tent": 20}, "priority": 1}],
    "travel": "euclidean", "unmet_penalty": 1e6,
}


@pytest.fixture()
def planner(client, session):
    return auth_headers(client, *make_user(session, "em_commander", ["emergency_commander"], area_code="310117"))


def _post(client, path, body, h):
    return client.post(f"/api/v1/emergency/{path}", json=body, headers=h)


def test_allocate_shape_and_objective(client, planner):
    r = _post(client, "allocate", EXAMPLE, planner)
    assert r.status_code == 200, r.text
    out = r.json()
    assert {"objective", "status", "shipments", "unmet"} <= set(out) and out["status"] == "optimal"
    assert all(set(s) == {"from", "to", "item", "qty"} for s in out["shipments"])
    pos = {p["id"]: (p["x"], p["y"]) for p in EXAMPLE["warehouses"] + EXAMPLE["demands"]}
    prio = {d["id"]: d["priority"] for d in EXAMPLE["demands"]}
    unmet = sum(u["qty"] for u in out["unmet"])
    obj = sum(s["qty"] * math.dist(pos[s["from"]], pos[s["to"]]) * prio[s["to"]] for s in out["shipments"]) + 1e6 * unmet
    assert out["objective"] == pytest.approx(obj, rel=1e-12)
    # tents: 10 in stock, 25 needed -> 15 unmet, stock exhausted; W2's handling limit (40) binds
    assert unmet == pytest.approx(15) and {u["reason"] for u in out["unmet"]} == {"stock_exhausted"}
    w2 = sum(s["qty"] for s in out["shipments"] if s["from"] == "W2")
    assert w2 == pytest.approx(40)
    ex = out["explanation"]
    assert ex["model"] == "lp" and ex["travel"]["model"] == "euclidean" and ex["lines"]
    assert next(w for w in ex["warehouses"] if w["id"] == "W2")["handling_binding"] is True


def test_allocate_on_the_road_network(client, planner):
    body = {"travel": "network", "integer": True,
            "warehouses": [{"id": "松江仓", "x": 121.225, "y": 31.03, "stock": {"饮用水": 500, "帐篷": 40}},
                           {"id": "泗泾仓", "x": 121.265, "y": 31.12, "stock": {"饮用水": 300, "帐篷": 10}}],
            "demands": [{"id": "岳阳", "x": 121.215, "y": 30.995, "need": {"饮用水": 200, "帐篷": 20}, "priority": 3},
                        {"id": "九亭", "x": 121.32, "y": 31.127, "need": {"饮用水": 250}, "priority": 1},
                        {"id": "叶榭", "x": 121.267, "y": 30.94, "need": {"饮用水": 100, "帐篷": 50}, "priority": 2}]}
    r = _post(client, "allocate", body, planner)
    assert r.status_code == 200, r.text
    out = r.json()
    travel = out["explanation"]["travel"]
    assert travel["model"] == "road_network" and travel["unit"] == "minutes"
    assert all(float(s["qty"]).is_integer() for s in out["shipments"])
    routes = {(x["from"], x["to"]): x["cost"] for x in out["explanation"]["routes"]}
    assert all(0 < c < 120 for c in routes.values())  # minutes by road across the district
    # 泗泾仓 is the nearer one for 九亭
    assert any(s["from"] == "泗泾仓" and s["to"] == "九亭" for s in out["shipments"])
    assert sum(u["qty"] for u in out["unmet"]) == pytest.approx(20)  # 70 tents needed, 50 held


@pytest.mark.parametrize("mutate, loc", [
    (lambda b: b["warehouses"][0]["stock"].update(water=-1), ["body", "warehouses", 0, "stock", "water"]),
    (lambda b: b["demands"][1]["need"].update(blankets=3), ["body", "demands", 1, "need", "blankets"]),
    (lambda b: b["demands"][1].update(id="D1"), ["body", "demands", 1, "id"]),
    (lambda b: b["warehouses"][1].update(id="W1"), ["body", "warehouses", 1, "id"]),
    (lambda b: b.update(travel="network"), ["body", "warehouses", 1, "x"]),  # x set to 500 below: no longitude
    (lambda b: b["demands"][0].update(priority=0), ["body", "demands", 0, "priority"]),
    (lambda b: b.update(travel="teleport"), ["body", "travel"]),
])
def test_allocate_rejects_bad_input(client, planner, mutate, loc):
    body = json.loads(json.dumps(EXAMPLE))
    if loc == ["body", "warehouses", 1, "x"]:
        body["warehouses"][1]["x"] = 500.0
    mutate(body)
    r = _post(client, "allocate", body, planner)
    assert r.status_code == 422, r.text
    assert loc in [p["loc"] for p in r.json()["detail"]], r.json()


def test_allocate_rejects_nan(client, planner):
    text = json.dumps(EXAMPLE).replace('"x": 3', '"x": NaN')
    r = client.post("/api/v1/emergency/allocate", content=text, headers={**planner, "content-type": "application/json"})
    assert r.status_code == 422
    assert ["body", "demands", 0, "x"] in [p["loc"] for p in r.json()["detail"]]


def test_permissions(client, session):
    h = auth_headers(client, *make_user(session, "em_worker", ["supervisor"], area_code="310117"))
    assert _post(client, "allocate", EXAMPLE, h).status_code == 403
    assert client.post("/api/v1/emergency/allocate", json=EXAMPLE).status_code == 401
    h2 = auth_headers(client, *make_user(session, "em_district", ["district_commander"], area_code="310117"))
    assert _post(client, "allocate", EXAMPLE, h2).status_code == 200


def test_evacuate_area_to_shelters(client, planner, session):
    from cityops.geo import roads

    grids = roads.grid_points(session, code_prefix="310117001")
    session.rollback()
    people = sum(g["population"] for g in grids)
    body = {"area_code": "310117001", "travel": "network",
            "shelters": [{"id": "体育中心", "x": 121.22, "y": 31.0, "capacity": people // 2},
                         {"id": "中学", "x": 121.21, "y": 30.99, "capacity": people // 3},
                         {"id": "远处", "x": 121.10, "y": 31.05, "capacity": people}]}
    r = _post(client, "evacuate", body, planner)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "optimal" and out["total_people"] == people
    for s in out["shelters"]:
        assert s["assigned"] <= s["capacity"]
    assert out["assigned"] + sum(u["people"] for u in out["unassigned"]) == people
    pm = sum(a["people"] * a["minutes"] for a in out["assignments"])
    assert out["person_minutes"] == pytest.approx(pm, rel=1e-4)
    near = {s["id"]: s["assigned"] for s in out["shelters"]}
    assert near["体育中心"] == people // 2 and near["中学"] == people // 3  # the near ones fill up first
    capped = dict(body, max_minutes=1.0)
    out2 = _post(client, "evacuate", capped, planner).json()
    assert out2["unassigned"] and {u["reason"] for u in out2["unassigned"]} <= {"no_shelter_in_reach", "shelters_full"}
    bad = _post(client, "evacuate", dict(body, grids=["310117001001001"]), planner)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body"]
    unknown = _post(client, "evacuate", {"grids": ["310117999999999"], "shelters": body["shelters"]}, planner)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "grids", 0]


def test_coverage(client, planner):
    body = {"minutes": 10, "travel": "network", "area_code": "310117",
            "facilities": [{"id": "消防1", "kind": "fire_team", "x": 121.225, "y": 31.03},
                           {"id": "消防2", "kind": "fire_team", "x": 121.30, "y": 31.12},
                           {"id": "仓1", "kind": "warehouse", "x": 121.2, "y": 30.95}]}
    r = _post(client, "coverage", body, planner)
    assert r.status_code == 200, r.text
    out = r.json()
    kinds = {k["kind"]: k for k in out["kinds"]}
    assert set(kinds) == {"fire_team", "warehouse"}
    fire = kinds["fire_team"]
    assert 0 < fire["covered"] < out["grids"] and fire["covered"] + fire["uncovered_count"] == out["grids"]
    assert all(u["minutes"] is None or u["minutes"] > 10 for u in fire["uncovered"])
    mins = [u["minutes"] for u in fire["uncovered"] if u["minutes"] is not None]
    assert mins == sorted(mins, reverse=True)
    wider = _post(client, "coverage", dict(body, minutes=60), planner).json()
    assert {k["kind"]: k["covered"] for k in wider["kinds"]}["fire_team"] >= fire["covered"]


def test_points_far_from_the_district_are_rejected(client, planner):
    body = {"minutes": 10, "facilities": [{"id": "F", "kind": "k", "x": 24.0, "y": 0.0}]}
    r = _post(client, "coverage", body, planner)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "facilities", 0, "x"]
    alloc = json.loads(json.dumps(EXAMPLE))
    alloc["travel"] = "network"
    r = _post(client, "allocate", alloc, planner)  # x 0..10, y 0..4: valid lon/lat, but not near 松江
    assert r.status_code == 422 and ["body", "warehouses", 0, "x"] in [p["loc"] for p in r.json()["detail"]]
