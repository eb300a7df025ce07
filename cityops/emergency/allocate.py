"""Multi-commodity allocation of relief supplies (pure: NumPy arrays in, arrays out; no database).

Model (``docs/emergency-resources.md``): warehouses w, demand points d, items k; unit cost
``c[w, d] * p[d]`` (travel distance or minutes times the demand's priority weight); ``x[w, d, k]``
shipped, ``u[d, k]`` left unmet::

    minimise   sum x[w,d,k] * c[w,d] * p[d]  +  M * sum u[d,k]
    subject to sum_d x[w,d,k] <= S[w,k]                 (stock of item k at w)
               sum_w x[w,d,k] + u[d,k] = N[d,k]         (every need met or counted unmet)
               sum_{d,k} x[w,d,k] <= H[w]               (handling capacity of w, when given)
               x, u >= 0   (x integer with ``integer=True``)

Substituting ``u = N - sum_w x`` gives the form solved here: costs ``c*p - M`` and rows
``sum_w x <= N`` plus the constant ``M * sum N``; a triple with ``c*p >= M`` can never pay off
(its reduced cost is >= 0 for every dual solution) and is left out.

* **Independent items** (no handling limit that could bind: ``sum_k S[w,k] <= H[w]`` or none):
  one min-cost flow per item with OR-Tools ``SimpleMinCostFlow`` (cost-scaling push-relabel,
  Goldberg 1997). Quantities must be integers: with decimals they are scaled by
  10^q (q <= 6) when that is exact, otherwise the item goes to the LP below. Unit costs are
  scaled to integers of at most min(2^44, 2^62 / (n+2)^2) (and a penalty larger than every augmenting path can
  cost is lowered to that bound, which keeps the optimal flows); the objective is then
  recomputed from the flows with the exact costs (error <= total flow x cost resolution).
* **Coupled** (a handling limit binds items together): one LP solved with HiGHS (``highspy``,
  dual simplex; Huangfu & Hall 2018) by column generation: start from the ``K0`` cheapest
  warehouses of every (demand, item), solve, price all other triples with the duals
  (reduced cost ``c*p - M - alpha[w,k] - beta[d,k] - gamma[w]``) and add the negative ones until
  none is left, which proves optimality over the full problem (Dantzig & Wolfe 1960;
  Gilmore & Gomory 1961). Matrices are built with NumPy (CSC arrays), no modelling layer.
* ``integer=True``: min-cost flow is integral for integer data (total unimodularity), so
  independent items use floor(S), floor(N) and count the fractions as unmet; the coupled
  problem is solved as LP first and, when that optimum is not integral, as a MILP over all
  triples (HiGHS branch and bound).

References: A. V. Goldberg, "An efficient implementation of a scaling minimum-cost flow
algorithm", J. Algorithms 22 (1997) 1-29; Q. Huangfu & J. A. J. Hall, "Parallelizing the dual
revised simplex method", Math. Prog. Comp. 10 (2018) 119-142; G. B. Dantzig & P. Wolfe,
"Decomposition principle for linear programs", Oper. Res. 8 (1960) 101-111; R. K. Ahuja,
T. L. Magnanti & J. B. Orlin, Network Flows (1993), ch. 9-10 (transportation problems).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

K0 = int(os.environ.get("CITYOPS_ALLOC_K0", "2"))  # initial columns per (demand, item) in column generation
ENTER = int(os.environ.get("CITYOPS_ALLOC_ENTER", "2"))  # columns entering per (demand, item) and round
RESOLVE = os.environ.get("CITYOPS_ALLOC_RESOLVE", "dual")
_INT_COST_MAX = 2 ** 44
_RC_TOL = 1e-9
_OK = ("kOptimal", "kModelEmpty")


@dataclass
class AllocationInput:
    cost: np.ndarray  # (W, D) travel cost per unit (inf: unreachable)
    priority: np.ndarray  # (D,)
    stock: np.ndarray  # (W, K)
    need: np.ndarray  # (D, K)
    handling: np.ndarray  # (W,), inf where none
    unmet_penalty: float = 1e6
    integer: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.stock.shape[0], self.need.shape[0], self.stock.shape[1]


@dataclass
class AllocationResult:
    status: str
    objective: float
    transport: float
    penalty: float
    w: np.ndarray  # shipments: warehouse, demand, item index and quantity
    d: np.ndarray
    k: np.ndarray
    qty: np.ndarray
    unmet: np.ndarray  # (D, K)
    model: str
    solver: str
    seconds: float
    stock_dual: np.ndarray | None = None  # (W, K) objective change per extra unit of stock (<= 0)
    handling_dual: np.ndarray | None = None  # (W,)
    info: dict[str, Any] = field(default_factory=dict)


def coupled(inp: AllocationInput) -> bool:
    """True when some warehouse's handling limit could bind (it holds more than it may ship)."""
    return bool(np.any(np.isfinite(inp.handling) & (inp.stock.sum(axis=1) > inp.handling + 1e-12)))


def allocate(inp: AllocationInput, *, method: str = "auto", time_limit: float = 120.0) -> AllocationResult:
    """Optimal allocation (see the module docstring). ``method``: ``auto`` (min-cost flow when the
    items are independent, else the LP), ``lp`` (always the LP, for cross-checks)."""
    t0 = time.perf_counter()
    W, D, K = inp.shape
    stock, need, hand = _effective(inp)
    unit = np.asarray(inp.cost, dtype=float) * np.asarray(inp.priority, dtype=float)[None, :]
    if method == "lp" or coupled(AllocationInput(inp.cost, inp.priority, stock, need, hand)):
        res = _lp(unit, stock, need, hand, inp, time_limit)
    else:
        res = _independent(unit, stock, need, inp, time_limit)
    res.seconds = time.perf_counter() - t0
    return res


def _effective(inp: AllocationInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stock = np.asarray(inp.stock, dtype=float)
    need = np.asarray(inp.need, dtype=float)
    hand = np.asarray(inp.handling, dtype=float)
    if inp.integer:
        stock, need = np.floor(stock + 1e-9), np.floor(need + 1e-9)
        hand = np.where(np.isfinite(hand), np.floor(hand + 1e-9), hand)
    return stock, need, hand


def _finish(inp: AllocationInput, w: np.ndarray, d: np.ndarray, k: np.ndarray, q: np.ndarray, model: str,
            solver: str, status: str = "optimal", **extra: Any) -> AllocationResult:
    keep = q > 1e-9
    w, d, k, q = w[keep], d[keep], k[keep], q[keep]
    if inp.integer:
        q = np.round(q)
    order = np.lexsort((k, d, w))
    w, d, k, q = w[order], d[order], k[order], q[order]
    W, D, K = inp.shape
    shipped = np.zeros((D, K))
    np.add.at(shipped, (d, k), q)
    unmet = np.maximum(np.asarray(inp.need, dtype=float) - shipped, 0.0)
    unmet[unmet < 1e-9] = 0.0
    transport = float(np.sum(q * inp.cost[w, d] * inp.priority[d])) if len(q) else 0.0
    penalty = float(inp.unmet_penalty * unmet.sum())
    return AllocationResult(status, transport + penalty, transport, penalty, w, d, k, q, unmet, model, solver, 0.0,
                            **extra)


# --------------------------------------------------------------------------- independent items

def _cat(xs: list[np.ndarray], dt: Any) -> np.ndarray:
    return np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt)


def _decimals(values: np.ndarray) -> int | None:
    """Smallest q <= 6 with every value x 10^q an integer (None when there is none)."""
    v = values[values > 0]
    for q in range(7):
        s = v * 10 ** q
        if np.all(np.abs(s - np.round(s)) <= 1e-9 * np.maximum(1.0, s)):
            return q
    return None


def _independent(unit: np.ndarray, stock: np.ndarray, need: np.ndarray, inp: AllocationInput,
                 time_limit: float) -> AllocationResult:
    from ortools.graph.python import min_cost_flow

    W, D, K = inp.shape
    M = float(inp.unmet_penalty)
    out_w, out_d, out_k, out_q = [], [], [], []
    lp_items = []
    for k in range(K):
        ws = np.flatnonzero(stock[:, k] > 0)
        ds = np.flatnonzero(need[:, k] > 0)
        if not len(ws) or not len(ds):
            continue
        q = _decimals(np.concatenate([stock[ws, k], need[ds, k]]))
        scale = 10 ** q if q is not None else 0
        if q is None or (stock[ws, k].sum() + need[ds, k].sum()) * scale > 2 ** 50:
            lp_items.append(k)
            continue
        c = unit[np.ix_(ws, ds)]
        ok = np.isfinite(c) & (c < M)
        ai, aj = np.nonzero(ok)
        cvals = c[ai, aj]
        s_int = np.round(stock[ws, k] * scale).astype(np.int64)
        n_int = np.round(need[ds, k] * scale).astype(np.int64)
        nw, nd = len(ws), len(ds)
        n_nodes = nw + nd + 2
        short, excess = nw + nd, nw + nd + 1
        cmax = float(cvals.max()) if len(cvals) else 1.0
        m_eff = min(M, (n_nodes + 1) * max(cmax, 1e-12) * 2.0)
        # OR-Tools scales costs by (n + 1) and potentials reach n times that: stay below 2^62
        int_max = min(_INT_COST_MAX, (2 ** 62) // ((n_nodes + 2) ** 2))
        cs = int_max / max(m_eff, cmax, 1e-300)
        smcf = min_cost_flow.SimpleMinCostFlow()
        tails = np.concatenate([ai, np.full(nd, short), np.arange(nw), [short]]).astype(np.int64)
        heads = np.concatenate([nw + aj, nw + np.arange(nd), np.full(nw, excess), [excess]]).astype(np.int64)
        caps = np.concatenate([n_int[aj], n_int, s_int, [int(n_int.sum())]]).astype(np.int64)
        costs = np.concatenate([np.round(cvals * cs), np.full(nd, round(m_eff * cs)), np.zeros(nw), [0]]).astype(np.int64)
        smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
        supplies = np.concatenate([s_int, -n_int, [int(n_int.sum())], [-int(s_int.sum())]]).astype(np.int64)
        smcf.set_nodes_supplies(np.arange(n_nodes, dtype=np.int64), supplies)
        status = smcf.solve()
        if status != smcf.OPTIMAL:
            lp_items.append(k)
            continue
        flows = np.asarray(smcf.flows(np.arange(len(ai), dtype=np.int64)))
        used = flows > 0
        out_w.append(ws[ai[used]])
        out_d.append(ds[aj[used]])
        out_k.append(np.full(int(used.sum()), k))
        out_q.append(flows[used] / scale)
    model, solver = "min_cost_flow", "OR-Tools SimpleMinCostFlow"
    if lp_items:
        mask = np.zeros(K, dtype=bool)
        mask[lp_items] = True
        sub = _lp(unit, np.where(mask[None, :], stock, 0.0), np.where(mask[None, :], need, 0.0),
                  np.full(W, np.inf), inp, time_limit)
        out_w.append(sub.w)
        out_d.append(sub.d)
        out_k.append(sub.k)
        out_q.append(sub.qty)
        model, solver = "min_cost_flow+lp", solver + " + HiGHS"
    return _finish(inp, _cat(out_w, np.int64), _cat(out_d, np.int64), _cat(out_k, np.int64), _cat(out_q, float),
                   model, solver, info={"lp_items": lp_items})


# --------------------------------------------------------------------------- coupled LP

class _LP:
    """The restricted master LP held in HiGHS; columns are (w, d, k) triples."""

    def __init__(self, unit: np.ndarray, stock: np.ndarray, need: np.ndarray, hand: np.ndarray, M: float,
                 time_limit: float, integer: bool) -> None:
        import highspy

        self.h = highspy.Highs()  # type: ignore[no-untyped-call]
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("time_limit", float(time_limit))
        self.h.setOptionValue("presolve", "off")  # presolve would throw the warm start away every round
        self.hs = highspy
        W, K = stock.shape
        D = need.shape[0]
        self.W, self.D, self.K = W, D, K
        self.unit, self.M = unit, M
        self.s_rows = np.full((W, K), -1, dtype=np.int64)
        self.n_rows = np.full((D, K), -1, dtype=np.int64)
        self.h_rows = np.full(W, -1, dtype=np.int64)
        sw, sk = np.nonzero(stock > 0)
        nd, nk = np.nonzero(need > 0)
        hw = np.flatnonzero(np.isfinite(hand))
        self.s_rows[sw, sk] = np.arange(len(sw))
        self.n_rows[nd, nk] = len(sw) + np.arange(len(nd))
        self.h_rows[hw] = len(sw) + len(nd) + np.arange(len(hw))
        upper = np.concatenate([stock[sw, sk], need[nd, nk], hand[hw]])
        self.n_row = len(upper)
        self.h.addRows(self.n_row, np.full(self.n_row, -np.inf), upper, 0, np.zeros(0, dtype=np.int32),
                       np.zeros(0, dtype=np.int32), np.zeros(0))
        self.h.changeObjectiveOffset(float(M * need.sum()))
        self.cols: list[np.ndarray] = []
        self.integer = integer
        self.solved = False

    def add(self, w: np.ndarray, d: np.ndarray, k: np.ndarray) -> None:
        n = len(w)
        if not n:
            return
        rows = np.column_stack([self.s_rows[w, k], self.n_rows[d, k], self.h_rows[w]])
        has = rows >= 0
        counts = has.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        index = rows[has].astype(np.int32)
        cost = self.unit[w, d] - self.M
        self.h.addCols(n, cost, np.zeros(n), np.full(n, np.inf), len(index), starts, index, np.ones(len(index)))
        self.cols.append(np.column_stack([w, d, k]))

    def solve(self) -> str:
        if self.solved and RESOLVE == "primal":
            self.h.setOptionValue("simplex_strategy", 4)
        self.h.run()
        self.solved = True
        return str(self.h.getModelStatus()).rsplit(".", 1)[-1]

    def columns(self) -> np.ndarray:
        return np.concatenate(self.cols) if self.cols else np.zeros((0, 3), dtype=np.int64)

    def duals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.asarray(self.h.getSolution().row_dual, dtype=float)
        yz = np.concatenate([y, [0.0]])
        return yz[self.s_rows], yz[self.n_rows], yz[self.h_rows]  # -1 -> the appended 0


def _lp(unit: np.ndarray, stock: np.ndarray, need: np.ndarray, hand: np.ndarray, inp: AllocationInput,
        time_limit: float) -> AllocationResult:
    M = float(inp.unmet_penalty)
    W, D, K = inp.shape
    # candidate triples: stock > 0, need > 0, reachable and cheaper than leaving the need unmet
    good_wd = np.isfinite(unit) & (unit < M)
    lp = _LP(unit, stock, need, hand, M, time_limit, inp.integer)
    # initial columns: the K0 cheapest stocked warehouses of each (d, k)
    masked = np.where(good_wd[:, :, None] & (stock[:, None, :] > 0) & (need[None, :, :] > 0),
                      unit[:, :, None], np.inf)  # (W, D, K)
    k0 = min(K0, W)
    part = np.argpartition(masked, k0 - 1, axis=0)[:k0] if W > k0 else np.broadcast_to(
        np.arange(W)[:, None, None], (W, D, K))
    dd, kk = np.meshgrid(np.arange(D), np.arange(K), indexing="ij")
    w0 = part.reshape(part.shape[0], -1)
    d0 = np.broadcast_to(dd.ravel(), w0.shape)
    kk0 = np.broadcast_to(kk.ravel(), w0.shape)
    fin = np.isfinite(masked[w0, d0, kk0])
    in_set = np.zeros((W, D, K), dtype=bool)
    in_set[w0[fin], d0[fin], kk0[fin]] = True
    lp.add(w0[fin], d0[fin], kk0[fin])
    rounds, status = 0, "Optimal"
    candidate = np.isfinite(masked)
    while True:
        rounds += 1
        status = lp.solve()
        if status not in _OK:
            break
        alpha, beta, gamma = lp.duals()
        rc = masked - M - alpha[:, None, :] - beta[None, :, :] - gamma[:, None, None]
        rc = np.where(candidate & ~in_set, rc, np.inf)
        if not (rc < -_RC_TOL * max(1.0, M)).any():
            break
        # partial pricing: the ENTER most negative warehouses of each (demand, item)
        top = np.argpartition(rc, ENTER - 1, axis=0)[:ENTER] if W > ENTER else np.broadcast_to(
            np.arange(W)[:, None, None], (W, D, K))
        tw = top.reshape(top.shape[0], -1)
        td = np.broadcast_to(dd.ravel(), tw.shape)
        tk = np.broadcast_to(kk.ravel(), tw.shape)
        neg = rc[tw, td, tk] < -_RC_TOL * max(1.0, M)
        ew, ed, ek = tw[neg], td[neg], tk[neg]
        in_set[ew, ed, ek] = True
        lp.add(ew, ed, ek)
    cols = lp.columns()
    x = np.asarray(lp.h.getSolution().col_value, dtype=float) if len(cols) else np.zeros(0)
    model, solver = "lp", "HiGHS (highspy) dual simplex, column generation"
    if inp.integer and len(x) and np.abs(x - np.round(x)).max() > 1e-6:
        x, cols, status = _milp(unit, stock, need, hand, M, candidate, time_limit)
        model, solver = "milp", "HiGHS (highspy) branch and bound"
    alpha, beta, gamma = lp.duals()
    ok = status in _OK
    res = _finish(inp, cols[:, 0], cols[:, 1], cols[:, 2], x, model, solver, "optimal" if ok else status.lstrip("k").lower(),
                  stock_dual=np.where(stock > 0, alpha, 0.0), handling_dual=np.where(np.isfinite(hand), gamma, 0.0),
                  info={"rounds": rounds, "columns": int(len(cols)), "candidates": int(candidate.sum()),
                        "rows": lp.n_row})
    return res


def _milp(unit: np.ndarray, stock: np.ndarray, need: np.ndarray, hand: np.ndarray, M: float, candidate: np.ndarray,
          time_limit: float) -> tuple[np.ndarray, np.ndarray, str]:
    lp = _LP(unit, stock, need, hand, M, time_limit, True)
    w, d, k = np.nonzero(candidate)
    lp.add(w, d, k)
    n = len(w)
    lp.h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, lp.hs.HighsVarType.kInteger))
    status = lp.solve()
    return np.asarray(lp.h.getSolution().col_value, dtype=float), lp.columns(), status
