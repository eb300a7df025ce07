"""The allocator against an independent LP (acceptance, issue 13).

The reference is written differently on purpose: one explicit Python list of every (w, d, k)
variable and every unmet variable, dense constraint matrices filled in loops, the original
equality form (sum_w x + u = N) and SciPy's ``linprog`` (HiGHS through SciPy, not highspy,
not OR-Tools). Random instances come from Hypothesis: integer and decimal quantities, some
warehouses with handling limits (coupled) and some without (independent, min-cost flow),
penalties both far above and comparable to travel costs, co-located points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from cityops.emergency.allocate import AllocationInput, allocate, coupled
from cityops.emergency.explain import unmet_reasons


def reference_lp(inp: AllocationInput, integer: bool = False) -> float:
    W, D, K = inp.shape
    xs = [(w, d, k) for w in range(W) for d in range(D) for k in range(K)]
    us = [(d, k) for d in range(D) for k in range(K)]
    n = len(xs) + len(us)
    c = [float(inp.cost[w, d] * inp.priority[d]) for w, d, k in xs] + [inp.unmet_penalty] * len(us)
    a_ub, b_ub, a_eq, b_eq = [], [], [], []
    for w in range(W):
        for k in range(K):
            a_ub.append([1.0 if (v[0] == w and v[2] == k) else 0.0 for v in xs] + [0.0] * len(us))
            b_ub.append(float(inp.stock[w, k]))
        if math.isfinite(inp.handling[w]):
            a_ub.append([1.0 if v[0] == w else 0.0 for v in xs] + [0.0] * len(us))
            b_ub.append(float(inp.handling[w]))
    for j, (d, k) in enumerate(us):
        row = [1.0 if (v[1] == d and v[2] == k) else 0.0 for v in xs] + [0.0] * len(us)
        row[len(xs) + j] = 1.0
        a_eq.append(row)
        b_eq.append(float(inp.need[d, k]))
    if not integer:
        r = linprog(np.array(c), A_ub=np.array(a_ub) if a_ub else None, b_ub=b_ub or None, A_eq=np.array(a_eq),
                    b_eq=b_eq, bounds=[(0, None)] * n, method="highs")
        assert r.status == 0, r.message
        return float(r.fun)
    cons = [LinearConstraint(np.array(a_eq), b_eq, b_eq)]
    if a_ub:
        cons.append(LinearConstraint(np.array(a_ub), -np.inf, b_ub))
    integrality = np.array([1] * len(xs) + [0] * len(us))
    r = milp(np.array(c), constraints=cons, integrality=integrality, bounds=Bounds(0, np.inf))
    assert r.status == 0, r.message
    return float(r.fun)


@st.composite
def instances(draw):
    W = draw(st.integers(1, 5))
    D = draw(st.integers(1, 7))
    K = draw(st.integers(1, 3))
    decimals = draw(st.sampled_from([0, 0, 2, 5]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    grid = draw(st.sampled_from([None, 3]))  # a coarse grid makes co-located points (zero distance)
    pw = rng.uniform(0, 100, (W, 2))
    pd = rng.uniform(0, 100, (D, 2))
    if grid:
        pw, pd = np.round(pw / 50) * 50, np.round(pd / 50) * 50
    cost = np.hypot(pw[:, None, 0] - pd[None, :, 0], pw[:, None, 1] - pd[None, :, 1])
    stock = np.round(rng.uniform(0, 40, (W, K)) * rng.integers(0, 2, (W, K)), decimals)
    need = np.round(rng.uniform(0, 40, (D, K)) * rng.integers(0, 2, (D, K)), decimals)
    hand = np.where(rng.random(W) < draw(st.sampled_from([0.0, 0.5, 1.0])), np.round(rng.uniform(0, 60, W), decimals),
                    np.inf)
    priority = np.round(rng.uniform(0.5, 5, D), 2)
    penalty = draw(st.sampled_from([1e6, 1e3, 150.0, 20.0]))
    return AllocationInput(cost, priority, stock, need, hand, penalty, draw(st.booleans()) and decimals == 0)


def _check_feasible(inp: AllocationInput, res) -> None:
    W, D, K = inp.shape
    assert np.all(res.qty > 0)
    sent = np.zeros((W, K))
    np.add.at(sent, (res.w, res.k), res.qty)
    assert np.all(sent <= inp.stock + 1e-6 * np.maximum(1, inp.stock)), "a warehouse ships more than its stock"
    tot = sent.sum(axis=1)
    fin = np.isfinite(inp.handling)
    assert np.all(tot[fin] <= inp.handling[fin] + 1e-6 * np.maximum(1, inp.handling[fin])), "handling exceeded"
    got = np.zeros((D, K))
    np.add.at(got, (res.d, res.k), res.qty)
    assert np.allclose(got + res.unmet, inp.need, atol=1e-6), "need = shipped + unmet"
    assert np.all(res.unmet >= 0)
    if inp.integer:
        assert np.allclose(res.qty, np.round(res.qty))
    # the reported objective is the formula applied to the plan
    obj = float(np.sum(res.qty * inp.cost[res.w, res.d] * inp.priority[res.d]) + inp.unmet_penalty * res.unmet.sum())
    assert res.objective == pytest.approx(obj, rel=1e-12, abs=1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(inp=instances())
def test_objective_equals_independent_lp(inp):
    res = allocate(inp)
    assert res.status == "optimal"
    _check_feasible(inp, res)
    want = reference_lp(inp, integer=inp.integer)
    assert res.objective == pytest.approx(want, rel=1e-6, abs=1e-6)
    # every unmet quantity carries a reason
    assert set(unmet_reasons(inp, res)) == {(int(d), int(k)) for d, k in zip(*np.nonzero(res.unmet > 1e-9), strict=True)}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(inp=instances())
def test_min_cost_flow_and_lp_agree(inp):
    """The two solver paths of the allocator agree with each other too (independent items)."""
    a = allocate(inp)
    b = allocate(inp, method="lp")
    assert a.objective == pytest.approx(b.objective, rel=1e-6, abs=1e-6)


def _instance(handling):
    cost = np.array([[1.0, 5.0], [4.0, 1.0]])
    return AllocationInput(cost, np.array([1.0, 3.0]), np.array([[10.0], [10.0]]), np.array([[8.0], [8.0]]),
                           np.asarray(handling, dtype=float), unmet_penalty=100.0)


def test_uses_min_cost_flow_when_independent_and_lp_when_coupled():
    assert allocate(_instance([np.inf, np.inf])).model == "min_cost_flow"
    assert allocate(_instance([20.0, 10.0])).model == "min_cost_flow"  # limits that cannot bind
    inp = _instance([np.inf, 5.0])
    assert coupled(inp)
    res = allocate(inp)
    assert res.model == "lp"
    # W2 may ship 5: D2 (priority 3, 1 away) takes them; W1 (stock 10) covers D1's 8 and 2 of D2's
    # remaining 3 (5 away x priority 3); 1 unit stays unmet (penalty 100)
    assert res.objective == pytest.approx(8 * 1 + 5 * 1 * 3 + 2 * 5 * 3 + 100)
    assert res.handling_dual is not None and res.handling_dual[1] < 0  # more handling would help


def test_unmet_reasons():
    cost = np.array([[1.0, 1.0, np.inf]])
    inp = AllocationInput(cost, np.ones(3), np.array([[5.0, 0.0]]), np.array([[4.0, 1.0], [4.0, 0.0], [1.0, 0.0]]),
                          np.array([np.inf]))
    res = allocate(inp)
    why = unmet_reasons(inp, res)
    assert why[(0, 1)] == "no_stock"
    assert why[(2, 0)] == "unreachable"
    assert res.unmet[:2, 0].sum() == pytest.approx(3.0)
    assert {why[k] for k in why if k[1] == 0 and k[0] < 2} == {"stock_exhausted"}
    capped = AllocationInput(np.array([[1.0]]), np.ones(1), np.array([[5.0, 5.0]]), np.array([[5.0, 5.0]]),
                             np.array([6.0]))
    r2 = allocate(capped)
    assert set(unmet_reasons(capped, r2).values()) == {"handling_capacity"}
    far = AllocationInput(np.array([[50.0]]), np.ones(1), np.array([[5.0]]), np.array([[5.0]]), np.array([np.inf]),
                          unmet_penalty=10.0)
    assert set(unmet_reasons(far, allocate(far)).values()) == {"penalty_cheaper"}


def test_integer_plan_ships_whole_units():
    inp = AllocationInput(np.array([[1.0], [2.0]]), np.ones(1), np.array([[2.5], [1.7]]), np.array([[4.2]]),
                          np.full(2, np.inf), integer=True)
    res = allocate(inp)
    assert np.allclose(res.qty, np.round(res.qty))
    assert res.qty.sum() == 3 and res.unmet[0, 0] == pytest.approx(1.2)
    assert res.objective == pytest.approx(reference_lp(inp, integer=True))


def test_column_generation_on_a_larger_instance():
    """More warehouses than the initial columns per (demand, item): the pricing rounds must find the
    rest (the coupled optimum is reached through several rounds)."""
    rng = np.random.default_rng(7)
    W, D, K = 14, 30, 3
    pw, pd = rng.uniform(0, 100, (W, 2)), rng.uniform(0, 100, (D, 2))
    cost = np.hypot(pw[:, None, 0] - pd[None, :, 0], pw[:, None, 1] - pd[None, :, 1])
    stock = rng.integers(0, 60, (W, K)).astype(float)
    need = rng.integers(0, 40, (D, K)).astype(float)
    inp = AllocationInput(cost, rng.uniform(1, 4, D), stock, need, 0.5 * stock.sum(axis=1), unmet_penalty=500.0)
    res = allocate(inp)
    assert res.model == "lp" and res.info["rounds"] > 1 and res.info["columns"] < res.info["candidates"]
    _check_feasible(inp, res)
    assert res.objective == pytest.approx(reference_lp(inp), rel=1e-6)
