"""Evacuation assignment and coverage analysis (pure: NumPy arrays, no database).

**Evacuation** is a transportation problem (Hitchcock 1941): the population ``P[g]`` of every
affected grid goes to shelters of capacity ``Q[s]`` minimising total person-minutes::

    minimise   sum x[g,s] * T[g,s]  +  penalty * sum u[g]
    subject to sum_s x[g,s] + u[g] = P[g]      (everybody assigned or counted unassigned)
               sum_g x[g,s] <= Q[s]            (no shelter over capacity)
               x, u >= 0,  x[g,s] = 0 where T[g,s] > max_minutes or no route

It is the single-item case of ``cityops.emergency.allocate`` (shelters as warehouses holding
their capacity, grids as demand points needing their population, priority 1), solved exactly
by OR-Tools min-cost flow; with integer populations and capacities the optimum is integral
(total unimodularity), so nobody is split into fractions. This is an optimisation, not a
nearest-shelter greedy rule: a grid may go to its second-nearest shelter when that lets a
grid with no other option keep the nearest.

**Coverage** (Toregas et al. 1971, location set covering): a grid is covered by a kind of
resource when some facility of that kind reaches it within ``minutes``; ``coverage`` returns, per
kind, the time to the nearest facility of every grid and which facility that is.

References: F. L. Hitchcock, "The distribution of a product from several sources to numerous
localities", J. Math. Phys. 20 (1941) 224-230; C. Toregas, R. Swain, C. ReVelle & L. Bergman,
"The location of emergency service facilities", Oper. Res. 19 (1971) 1363-1373.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cityops.emergency.allocate import AllocationInput, allocate


@dataclass
class EvacuationResult:
    status: str
    objective: float  # person-minutes + penalty x unassigned
    person_minutes: float
    g: np.ndarray  # assignments: grid index, shelter index, people, minutes
    s: np.ndarray
    people: np.ndarray
    minutes: np.ndarray
    unassigned: np.ndarray  # (G,)
    assigned_to: np.ndarray  # (S,) people per shelter
    model: str
    solver: str
    seconds: float
    info: dict[str, Any]


def evacuate(population: np.ndarray, capacity: np.ndarray, minutes: np.ndarray, *, max_minutes: float | None = None,
             penalty: float = 1e6) -> EvacuationResult:
    """Optimal assignment of ``population`` (G,) to shelters of ``capacity`` (S,) given travel
    ``minutes`` (G, S) (inf: no route)."""
    pop = np.asarray(population, dtype=float)
    cap = np.asarray(capacity, dtype=float)
    t = np.asarray(minutes, dtype=float)
    if max_minutes is not None:
        t = np.where(t <= max_minutes, t, np.inf)
    G, S = t.shape
    inp = AllocationInput(cost=t.T.copy(), priority=np.ones(G), stock=cap[:, None], need=pop[:, None],
                          handling=np.full(S, np.inf), unmet_penalty=float(penalty))
    res = allocate(inp)
    assigned = np.zeros(S)
    np.add.at(assigned, res.w, res.qty)
    return EvacuationResult(
        status=res.status, objective=res.objective, person_minutes=res.transport, g=res.d, s=res.w, people=res.qty,
        minutes=t[res.d, res.w], unassigned=res.unmet[:, 0], assigned_to=assigned, model=res.model,
        solver=res.solver, seconds=res.seconds, info=res.info)


def unassigned_reason(g: int, res: EvacuationResult, capacity: np.ndarray, minutes: np.ndarray,
                      max_minutes: float | None, penalty: float) -> str:
    """Why people of grid ``g`` stay unassigned: ``no_shelter_in_reach`` (none within the time
    limit or by road), ``shelters_full`` (every reachable shelter is full), ``penalty_cheaper``
    (the reachable shelters with room are farther than the penalty is worth)."""
    t = minutes[g]
    reach = np.isfinite(t) & ((t <= max_minutes) if max_minutes is not None else True)
    if not reach.any():
        return "no_shelter_in_reach"
    room = capacity - res.assigned_to > 1e-9
    if not (reach & room).any():
        return "shelters_full"
    if not (reach & room & (t < penalty)).any():
        return "penalty_cheaper"
    return "trade_off"


def coverage(minutes: np.ndarray, kinds: np.ndarray, limit: float) -> dict[str, dict[str, np.ndarray]]:
    """Per facility kind: ``minutes`` (T,) to the nearest facility of that kind, ``nearest``
    (facility index, -1 when none reaches) and ``covered`` (within ``limit``), from travel
    ``minutes`` (F, T) between facilities and targets."""
    out = {}
    kinds = np.asarray(kinds)
    for kind in sorted(set(kinds.tolist())):
        idx = np.flatnonzero(kinds == kind)
        sub = minutes[idx]
        best = sub.min(axis=0)
        arg = idx[sub.argmin(axis=0)]
        nearest = np.where(np.isfinite(best), arg, -1)
        out[str(kind)] = {"minutes": best, "nearest": nearest, "covered": best <= limit}
    return out
