"""Optimal dispatch on the database (both backends): the allocator behind POST
/api/v1/emergency/allocate and the plan of POST /api/v1/resources/plan (stock on record) against
independent formulations.

* a property test through the HTTP endpoint: random instances with handling limits; the objective
  equals an independent dense LP (SciPy ``linprog``, HiGHS through SciPy, explicit variables) to
  1e-6 relative, and every shipment respects stock and handling;
* the plan from the ledger: the warehouses and available stock as the API lists them, an
  independent MILP (SciPy ``milp``) over them, the same optimum; committing the plan reserves exactly
  the planned quantities. (The pure-module property tests are tests/test_emergency_allocate.py and
  tests/test_emergency_evacuate.py; they need no database and run in both halves of ``make test``.)
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from tests.helpers import auth_headers, make_user
from tests.resources_helpers import YUEYANG, make_request, point_in, tag


def independent(ws, ds, cost, M, integer=False):
    """min Σ x c p + M Σ u over explicit variables; ws: [(stock dict, handling)], ds: [(need dict, priority)]."""
    items = sorted({k for s, _h in ws for k in s} | {k for n, _p in ds for k in n})
    xs = [(w, d, k) for w in range(len(ws)) for d in range(len(ds)) for k in items]
    us = [(d, k) for d in range(len(ds)) for k in items]
    n = len(xs) + len(us)
    c = [cost[w][d] * ds[d][1] for w, d, _k in xs] + [M] * len(us)
    a_ub, b_ub, a_eq, b_eq = [], [], [], []
    for w, (stock, hand) in enumerate(ws):
        for k in items:
            a_ub.append([1.0 if (v[0] == w and v[2] == k) else 0.0 for v in xs] + [0.0] * len(us))
            b_ub.append(float(stock.get(k, 0)))
        if hand is not None:
            a_ub.append([1.0 if v[0] == w else 0.0 for v in xs] + [0.0] * len(us))
            b_ub.append(float(hand))
    for j, (d, k) in enumerate(us):
        row = [1.0 if (v[1] == d and v[2] == k) else 0.0 for v in xs] + [0.0] * len(us)
        row[len(xs) + j] = 1.0
        a_eq.append(row)
        b_eq.append(float(ds[d][0].get(k, 0)))
    if not integer:
        r = linprog(np.array(c), A_ub=np.array(a_ub), b_ub=b_ub, A_eq=np.array(a_eq), b_eq=b_eq,
                    bounds=[(0, None)] * n, method="highs")
        assert r.status == 0, r.message
        return float(r.fun)
    cons = [LinearConstraint(np.array(a_eq), b_eq, b_eq), LinearConstraint(np.array(a_ub), -np.inf, b_ub)]
    r = milp(np.array(c), constraints=cons, integrality=np.array([1] * len(xs) + [0] * len(us)),
             bounds=Bounds(0, np.inf))
    assert r.status == 0, r.message
    return float(r.fun)


@pytest.fixture(scope="module")
def planner(db_url):
    from fastapi.testclient import TestClient

    from cityops.app import create_app
    from cityops.db import get_sessionmaker
    from tests.conftest import use_database

    use_database(db_url)
    with TestClient(create_app()) as c, get_sessionmaker()() as s:
        h = auth_headers(c, *make_user(s, "rs_lp_yy", ["emergency_commander"], area_code=YUEYANG))
        yield c, h


@st.composite
def bodies(draw):
    W, D, K = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    items = [f"i{k}" for k in range(K)]
    coord = st.integers(0, 20)
    qty = st.integers(0, 30)
    ws = [{"id": f"W{w}", "x": draw(coord), "y": draw(coord), "stock": {i: draw(qty) for i in items},
           "handling": draw(st.one_of(st.none(), st.integers(0, 60)))} for w in range(W)]
    ds = [{"id": f"D{d}", "x": draw(coord), "y": draw(coord), "need": {i: draw(qty) for i in items},
           "priority": draw(st.sampled_from([1, 2, 3, 5]))} for d in range(D)]
    return {"warehouses": ws, "demands": ds, "travel": "euclidean", "unmet_penalty": draw(st.sampled_from([1e3, 1e6]))}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=bodies())
def test_allocate_endpoint_equals_an_independent_lp(planner, body):
    client, h = planner
    r = client.post("/api/v1/emergency/allocate", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    ws = [(w["stock"], w["handling"]) for w in body["warehouses"]]
    ds = [(d["need"], d["priority"]) for d in body["demands"]]
    cost = [[math.dist((w["x"], w["y"]), (d["x"], d["y"])) for d in body["demands"]] for w in body["warehouses"]]
    ref = independent(ws, ds, cost, body["unmet_penalty"])
    assert out["objective"] == pytest.approx(ref, rel=1e-6, abs=1e-6)
    sent: dict[tuple[str, str], float] = {}
    total: dict[str, float] = {}
    for s in out["shipments"]:
        assert s["qty"] >= -1e-9
        sent[(s["from"], s["item"])] = sent.get((s["from"], s["item"]), 0) + s["qty"]
        total[s["from"]] = total.get(s["from"], 0) + s["qty"]
    for w in body["warehouses"]:
        for i, q in w["stock"].items():
            assert sent.get((w["id"], i), 0) <= q + 1e-6
        if w["handling"] is not None:
            assert total.get(w["id"], 0) <= w["handling"] + 1e-6


ITEMS = ("2990101", "2990201")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plan_from_the_ledger_equals_an_independent_milp(planner, session, seed):
    from cityops.resources import schemas, service
    from cityops.security.principal import SYSTEM

    client, h = planner
    rng = random.Random(seed)
    for k in range(3):
        lon, lat = point_in(session, YUEYANG, 5 + k + 3 * seed)
        w = service.upsert(session, SYSTEM, "warehouses", schemas.WarehouseIn(
            code=f"LP-{tag()}", name="LP仓", kind="enterprise", lon=lon, lat=lat,
            handling=rng.choice([None, rng.randint(10, 40)])))
        for item in ITEMS:
            service.receive(session, SYSTEM, str(w["id"]), schemas.StockIn(
                item_code=item, item_name=item, unit="件", quantity=rng.randint(1, 30)))
        session.commit()
    rids = [make_request(session, {i: rng.randint(1, 25) for i in ITEMS}, k=10 + d + 4 * seed,
                         priority=rng.choice([1, 2, 3])) for d in range(3)]
    # the independent model, from what the API shows
    whs = client.get("/api/v1/resources/warehouses", params={"page_size": 1000}, headers=h).json()["items"]
    whs = [w for w in whs if w["status"] == "active"]
    ws = [({s["item_code"]: 0 for s in w["stock"]}, w["handling"]) for w in whs]
    for (stock, _h), w in zip(ws, whs, strict=True):
        for s in w["stock"]:
            if s["item_code"] in ITEMS:
                stock[s["item_code"]] = stock.get(s["item_code"], 0) + s["available"]
        for k in list(stock):
            if k not in ITEMS:
                del stock[k]
    reqs = [client.get(f"/api/v1/resources/requests/{r}", headers=h).json() for r in rids]
    ds = [({ln["item_code"]: ln["open"] for ln in r["lines"]}, r["priority"]) for r in reqs]
    cost = [[math.dist((w["lon"], w["lat"]), (r["lon"], r["lat"])) for r in reqs] for w in whs]
    ref = independent(ws, ds, cost, 1e6, integer=True)
    r = client.post("/api/v1/resources/plan", json={"requests": rids, "travel": "euclidean", "commit": True}, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["objective"] == pytest.approx(ref, rel=1e-6)
    planned = sum(int(round(s["qty"])) for s in out["shipments"])
    assert sum(c["quantity"] for c in out["committed"]) == planned
    for rid in rids:
        req = client.get(f"/api/v1/resources/requests/{rid}", headers=h).json()
        got = {ln["item_code"]: ln["committed"] for ln in req["lines"]}
        want: dict[str, int] = {}
        for s in out["shipments"]:
            if s["request"] == req["code"]:
                want[s["item"]] = want.get(s["item"], 0) + int(round(s["qty"]))
        assert got == {k: want.get(k, 0) for k in got}
