"""Explanation of an allocation plan (pure): who ships what where, how far, and why any demand
stays unmet.

Reasons for an unmet quantity of item k at demand d, checked in this order against what is
left after the plan (residual stock, unused handling):

``no_stock``            no warehouse holds item k at all;
``unreachable``         no warehouse holding k can reach d, or those still holding some cannot;
``stock_exhausted``     every unit of k that could reach d is allocated;
``handling_capacity``   the warehouses still holding k have used all their handling capacity;
``penalty_cheaper``     the warehouses still able to ship k are so far that cost x priority
                        exceeds the unmet penalty;
``whole_units``         integer plan: the need's fractional part is never shipped;
``trade_off``           otherwise (the optimum prefers other demands for the same resources).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cityops.emergency.allocate import AllocationInput, AllocationResult

REASONS = {
    "no_stock": "没有任何仓库储备该物资 no warehouse holds this item",
    "unreachable": "尚有该物资的仓库无法到达该需求点 the warehouses still holding it cannot reach this point",
    "stock_exhausted": "该物资库存已全部分配 all stock of this item is allocated",
    "handling_capacity": "尚有库存的仓库处理能力已用尽 warehouses with stock left have no handling capacity left",
    "penalty_cheaper": "运距×优先级超过未满足惩罚 shipping would cost more than the unmet penalty",
    "whole_units": "整数方案只调运整件 an integer plan ships whole units only",
    "trade_off": "资源优先用于代价更高的需求 the optimum uses these resources for other demands",
}
MAX_LINES = 50


def unmet_reasons(inp: AllocationInput, res: AllocationResult) -> dict[tuple[int, int], str]:
    W, D, K = inp.shape
    stock = np.floor(inp.stock + 1e-9) if inp.integer else np.asarray(inp.stock, dtype=float)
    hand = np.asarray(inp.handling, dtype=float)
    if inp.integer:
        hand = np.where(np.isfinite(hand), np.floor(hand + 1e-9), hand)
    shipped_wk = np.zeros((W, K))
    np.add.at(shipped_wk, (res.w, res.k), res.qty)
    shipped_w = shipped_wk.sum(axis=1)
    residual = stock - shipped_wk
    free = hand - shipped_w
    unit = inp.cost * inp.priority[None, :]
    tol = 1e-7
    out: dict[tuple[int, int], str] = {}
    for d, k in zip(*np.nonzero(res.unmet > 1e-9), strict=True):
        left = residual[:, k] > tol
        reach = np.isfinite(inp.cost[:, d])
        if stock[:, k].sum() <= tol:
            why = "no_stock"
        elif not (reach & (stock[:, k] > tol)).any() or (left.any() and not (left & reach).any()):
            why = "unreachable"
        elif not (left & reach).any():
            why = "stock_exhausted"
        elif not (left & reach & (free > tol)).any():
            why = "handling_capacity"
        elif not (left & reach & (free > tol) & (unit[:, d] < inp.unmet_penalty)).any():
            why = "penalty_cheaper"
        elif inp.integer and res.unmet[d, k] < 1 - 1e-9:
            why = "whole_units"
        else:
            why = "trade_off"
        out[(int(d), int(k))] = why
    return out


def explain(inp: AllocationInput, res: AllocationResult, wids: list[str], dids: list[str], items: list[str], *,
            travel: dict[str, Any]) -> dict[str, Any]:
    """The explanation object of the API answer (see the module docstring)."""
    W, D, K = inp.shape
    reasons = unmet_reasons(inp, res)
    shipped_w = np.zeros(W)
    np.add.at(shipped_w, res.w, res.qty)
    shipped_k = np.zeros(K)
    np.add.at(shipped_k, res.k, res.qty)
    unit_name = travel.get("unit", "")
    warehouses = []
    for w in range(W):
        h = float(inp.handling[w])
        entry: dict[str, Any] = {"id": wids[w], "shipped": _num(shipped_w[w]), "handling": None if not np.isfinite(h) else h}
        if np.isfinite(h):
            entry["handling_used"] = round(float(shipped_w[w] / h), 6) if h > 0 else 1.0
            entry["handling_binding"] = bool(shipped_w[w] >= h - 1e-7)
            if res.handling_dual is not None and res.handling_dual[w] < -1e-9:
                entry["handling_value"] = _num(-res.handling_dual[w])
        warehouses.append(entry)
    item_rows = []
    for k in range(K):
        unmet_k = float(res.unmet[:, k].sum())
        item_rows.append({"item": items[k], "stock": _num(inp.stock[:, k].sum()), "need": _num(inp.need[:, k].sum()),
                          "shipped": _num(shipped_k[k]), "unmet": _num(unmet_k)})
    lines = []
    order = np.argsort(-(res.qty * inp.priority[res.d]), kind="stable")[:MAX_LINES]
    for i in order:
        w, d, k, q = int(res.w[i]), int(res.d[i]), int(res.k[i]), float(res.qty[i])
        c = float(inp.cost[w, d])
        lines.append(f"{wids[w]} → {dids[d]}：{items[k]} {_fmt(q)}（{travel.get('label_zh', '距离')} {_fmt(c)}"
                     f"{travel.get('unit_zh', '')}，优先级 {_fmt(float(inp.priority[d]))}）"
                     f" ship {_fmt(q)} {items[k]} from {wids[w]} to {dids[d]} ({_fmt(c)} {unit_name})")
    for (d, k), why in sorted(reasons.items())[:MAX_LINES]:
        lines.append(f"{dids[d]} 缺 {items[k]} {_fmt(float(res.unmet[d, k]))}：{REASONS[why]}")
    counts: dict[str, int] = {}
    for why in reasons.values():
        counts[why] = counts.get(why, 0) + 1
    pairs = sorted({(int(w), int(d)) for w, d in zip(res.w, res.d, strict=True)})
    return {
        "model": res.model, "solver": res.solver, "solve_seconds": round(res.seconds, 4), "travel": travel,
        "objective_parts": {"transport": res.transport, "unmet_penalty": res.penalty},
        "shipped_total": _num(res.qty.sum()), "unmet_total": _num(res.unmet.sum()),
        "unmet_reasons": counts, "reasons": REASONS, "warehouses": warehouses, "items": item_rows,
        "routes": [{"from": wids[w], "to": dids[d], "cost": _num(inp.cost[w, d]), "priority": _num(inp.priority[d])}
                   for w, d in pairs[:2000]],
        "lines": lines, "solver_info": res.info,
    }


def _num(v: Any) -> float:
    return float(round(float(v), 9))


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 else f"{v:,.3f}".rstrip("0").rstrip(".")
