"""Emergency planning services: supply allocation, evacuation and coverage (plain functions
taking a session and the principal). The numbers are computed by the pure modules
``allocate``, ``evacuate`` and ``explain``; travel times come from the geo domain
(``cityops.geo.roads``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from cityops.emergency import schemas
from cityops.emergency.allocate import AllocationInput
from cityops.emergency.allocate import allocate as solve_allocation
from cityops.emergency.evacuate import coverage as coverage_of
from cityops.emergency.evacuate import evacuate as solve_evacuation
from cityops.emergency.evacuate import unassigned_reason
from cityops.emergency.explain import REASONS, explain
from cityops.errors import InvalidInput, Problem
from cityops.geo import roads
from cityops.security.principal import Principal

MAX_TRIPLES = 5_000_000
EVAC_REASONS = {"no_shelter_in_reach": "时限内或路网上没有可达的避难场所 no shelter in reach",
                "shelters_full": "可达的避难场所已满 every reachable shelter is full",
                "penalty_cheaper": "可达且有余位的场所过远 reachable shelters with room are too far for the penalty",
                "trade_off": "名额优先给了没有其他选择的网格 places went to grids with no other option"}


def _duplicates(ids: list[str], where: str) -> list[Problem]:
    seen: dict[str, int] = {}
    out = []
    for i, v in enumerate(ids):
        if v in seen:
            out.append(Problem(f"编号重复 duplicate id {v!r} (also {where}[{seen[v]}])", ["body", where, i, "id"], "duplicate"))
        else:
            seen[v] = i
    return out


def _lonlat_problems(points: list[Any], where: str) -> list[Problem]:
    out = []
    for i, p in enumerate(points):
        if not -180 <= p.x <= 180:
            out.append(Problem("路网出行时 x 为经度，须在 -180..180 with travel=network x is a longitude (-180..180)",
                               ["body", where, i, "x"], "out_of_range"))
        if not -90 <= p.y <= 90:
            out.append(Problem("路网出行时 y 为纬度，须在 -90..90 with travel=network y is a latitude (-90..90)",
                               ["body", where, i, "y"], "out_of_range"))
    return out


def _reach_problems(session: Session, points: list[Any], where: str) -> list[Problem]:
    if not points:
        return []
    far = roads.out_of_reach(session, np.array([[p.x, p.y] for p in points], dtype=float))
    return [Problem(f"点位距本区过远（超过 {roads.REACH_DEG}°），无法计算行程 too far from the district for travel times",
                    ["body", where, int(i), "x"], "out_of_reach") for i in np.flatnonzero(far)[:20]]


def _travel_label(info: dict[str, Any]) -> dict[str, Any]:
    return {**info, "unit": "minutes", "label_zh": "行程", "unit_zh": " 分钟"}


def allocate(session: Session, principal: Principal, body: schemas.AllocateIn) -> dict[str, Any]:
    """Optimal dispatch plan for ``body`` (request and answer as in issue 13; see
    ``docs/emergency-resources.md``)."""
    problems = _duplicates([w.id for w in body.warehouses], "warehouses") + _duplicates([d.id for d in body.demands], "demands")
    items: dict[str, int] = {}
    for w in body.warehouses:
        for item in w.stock:
            items.setdefault(item, len(items))
    for i, d in enumerate(body.demands):
        for item in d.need:
            if item not in items:
                problems.append(Problem(f"未知物资 unknown item {item!r}: 没有仓库列出它 no warehouse lists it (list it with "
                                        "stock 0 if it is out everywhere)", ["body", "demands", i, "need", item],
                                        "unknown_item"))
    if body.travel == "network":
        problems += _lonlat_problems(body.warehouses, "warehouses") + _lonlat_problems(body.demands, "demands")
        if not problems:
            problems += _reach_problems(session, body.warehouses, "warehouses") + _reach_problems(
                session, body.demands, "demands")
    W, D, K = len(body.warehouses), len(body.demands), len(items)
    if W * D * max(K, 1) > MAX_TRIPLES:
        problems.append(Problem(f"问题过大 too large: warehouses x demands x items = {W * D * K:,} > {MAX_TRIPLES:,}",
                                ["body"], "too_large"))
    if problems:
        raise InvalidInput(problems)
    names = list(items)
    stock = np.zeros((W, K))
    need = np.zeros((D, K))
    for i, w in enumerate(body.warehouses):
        for item, q in w.stock.items():
            stock[i, items[item]] = q
    for i, d in enumerate(body.demands):
        for item, q in d.need.items():
            need[i, items[item]] = q
    wxy = np.array([[w.x, w.y] for w in body.warehouses], dtype=float)
    dxy = np.array([[d.x, d.y] for d in body.demands], dtype=float)
    if body.travel == "euclidean":
        cost = np.hypot(wxy[:, None, 0] - dxy[None, :, 0], wxy[:, None, 1] - dxy[None, :, 1])
        travel: dict[str, Any] = {"model": "euclidean", "unit": "distance (units of x, y)", "label_zh": "距离",
                                  "unit_zh": ""}
    else:
        cost, info = roads.travel_minutes(session, wxy, dxy)
        travel = _travel_label(info)
    session.rollback()  # nothing to write: end the read transaction before solving
    inp = AllocationInput(cost=cost, priority=np.array([d.priority for d in body.demands], dtype=float),
                          stock=stock, need=need,
                          handling=np.array([np.inf if w.handling is None else w.handling for w in body.warehouses]),
                          unmet_penalty=body.unmet_penalty, integer=body.integer)
    res = solve_allocation(inp)
    wids, dids = [w.id for w in body.warehouses], [d.id for d in body.demands]
    why = explain(inp, res, wids, dids, names, travel=travel)
    from cityops.emergency.explain import unmet_reasons

    reasons = unmet_reasons(inp, res)
    return {
        "objective": res.objective, "status": res.status,
        "shipments": [{"from": wids[w], "to": dids[d], "item": names[k], "qty": float(q)}
                      for w, d, k, q in zip(res.w, res.d, res.k, res.qty, strict=True)],
        "unmet": [{"demand": dids[d], "item": names[k], "qty": float(res.unmet[d, k]), "reason": reasons[(d, k)]}
                  for d, k in sorted(reasons)],
        "explanation": why,
    }


def _sources(session: Session, body: schemas.EvacuateIn) -> list[dict[str, Any]]:
    given = [n for n, v in (("area_code", body.area_code), ("grids", body.grids), ("sources", body.sources)) if v]
    if len(given) != 1:
        raise InvalidInput([Problem("须且只能给出 area_code、grids、sources 之一 give exactly one of area_code, grids, sources",
                                    ["body"], "one_of")])
    if body.sources:
        dup = _duplicates([s.id for s in body.sources], "sources")
        if dup:
            raise InvalidInput(dup)
        return [{"code": s.id, "name": s.id, "population": s.population, "lon": s.x, "lat": s.y} for s in body.sources]
    if body.grids:
        dup = _duplicates(body.grids, "grids")
        pts = roads.grid_points(session, codes=body.grids)
        known = {p["code"] for p in pts}
        missing = [Problem(f"没有单元网格 {c} no such unit grid", ["body", "grids", i], "not_found")
                   for i, c in enumerate(body.grids) if c not in known]
        if dup or missing:
            raise InvalidInput(dup + missing)
        return pts
    pts = roads.grid_points(session, code_prefix=body.area_code)
    if not pts:
        raise InvalidInput([Problem(f"区域 {body.area_code} 下没有单元网格 no unit grid under this area code",
                                    ["body", "area_code"], "not_found")])
    return pts


def evacuate(session: Session, principal: Principal, body: schemas.EvacuateIn) -> dict[str, Any]:
    """Assign the population of the affected grids (or given points) to shelters, optimally."""
    dup = _duplicates([s.id for s in body.shelters], "shelters") + _reach_problems(session, body.shelters, "shelters")
    if body.sources:
        dup += _reach_problems(session, body.sources, "sources")
    if dup:
        raise InvalidInput(dup)
    src = [s for s in _sources(session, body) if s["population"] > 0]
    if not src:
        raise InvalidInput([Problem("受影响区域没有人口 the affected area has no population", ["body"], "empty")])
    sxy = np.array([[s["lon"], s["lat"]] for s in src])
    hxy = np.array([[h.x, h.y] for h in body.shelters], dtype=float)
    minutes, info = roads.travel_minutes(session, sxy, hxy, model="network" if body.travel == "network" else "straight")
    session.rollback()
    pop = np.array([s["population"] for s in src], dtype=float)
    cap = np.array([h.capacity for h in body.shelters], dtype=float)
    res = solve_evacuation(pop, cap, minutes, max_minutes=body.max_minutes, penalty=body.unassigned_penalty)
    assigned = int(round(float(res.people.sum())))
    unassigned = []
    for g in np.flatnonzero(res.unassigned > 0):
        why = unassigned_reason(int(g), res, cap, minutes, body.max_minutes, body.unassigned_penalty)
        unassigned.append({"source": src[g]["code"], "name": src[g]["name"], "people": int(round(res.unassigned[g])),
                           "reason": why})
    shelters = [{"id": h.id, "capacity": h.capacity, "assigned": int(round(res.assigned_to[i])),
                 "utilisation": round(float(res.assigned_to[i] / h.capacity), 6) if h.capacity else None}
                for i, h in enumerate(body.shelters)]
    return {
        "status": res.status, "objective": res.objective, "person_minutes": res.person_minutes,
        "total_people": int(pop.sum()), "assigned": assigned,
        "mean_minutes": res.person_minutes / assigned if assigned else None,
        "max_minutes": float(res.minutes.max()) if len(res.minutes) else None,
        "assignments": [{"source": src[g]["code"], "shelter": body.shelters[s].id, "people": int(round(q)),
                         "minutes": round(float(t), 3)}
                        for g, s, q, t in zip(res.g, res.s, res.people, res.minutes, strict=True)],
        "unassigned": unassigned, "shelters": shelters,
        "explanation": {"model": res.model, "solver": res.solver, "solve_seconds": round(res.seconds, 4),
                        "travel": _travel_label(info), "reasons": EVAC_REASONS, "sources": len(src)},
    }


def coverage(session: Session, principal: Principal, body: schemas.CoverageIn) -> dict[str, Any]:
    """Grids farther than ``minutes`` from every facility of a kind, per kind."""
    dup = _duplicates([f.id for f in body.facilities], "facilities") + _reach_problems(session, body.facilities,
                                                                                        "facilities")
    if dup:
        raise InvalidInput(dup)
    grids = roads.grid_points(session, code_prefix=body.area_code)
    if not grids:
        raise InvalidInput([Problem("没有可分析的单元网格 no unit grid to analyse", ["body", "area_code"], "not_found")])
    fxy = np.array([[f.x, f.y] for f in body.facilities], dtype=float)
    gxy = np.array([[g["lon"], g["lat"]] for g in grids])
    minutes, info = roads.travel_minutes(session, fxy, gxy, model="network" if body.travel == "network" else "straight")
    session.rollback()
    cov = coverage_of(minutes, np.array([f.kind for f in body.facilities]), body.minutes)
    pop = np.array([g["population"] for g in grids], dtype=float)
    kinds = []
    for kind, c in cov.items():
        out = np.flatnonzero(~c["covered"])
        out = out[np.argsort(-np.where(np.isfinite(c["minutes"][out]), c["minutes"][out], 1e18), kind="stable")]
        kinds.append({
            "kind": kind, "facilities": int(sum(1 for f in body.facilities if f.kind == kind)),
            "covered": int(c["covered"].sum()), "uncovered_count": int(len(out)),
            "covered_share": round(float(c["covered"].mean()), 6),
            "uncovered_population": int(pop[out].sum()),
            "uncovered": [{"grid": grids[g]["code"], "name": grids[g]["name"], "population": grids[g]["population"],
                           "minutes": round(float(c["minutes"][g]), 3) if np.isfinite(c["minutes"][g]) else None,
                           "nearest": body.facilities[int(c["nearest"][g])].id if c["nearest"][g] >= 0 else None}
                          for g in out[:body.max_listed]],
        })
    return {"minutes": body.minutes, "travel": _travel_label(info), "grids": len(grids), "kinds": kinds}


__all__ = ["REASONS", "allocate", "coverage", "evacuate"]
