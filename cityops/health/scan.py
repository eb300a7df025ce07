"""Prospective space-time permutation scan statistic (pure, NumPy-vectorised).

Reference: Kulldorff M, Heffernan R, Hartman J, Assunção R, Mostashari F (2005). "A space-time permutation
scan statistic for disease outbreak detection". PLoS Med 2(3):e59; SaTScan User Guide v9.4 (the conventions
reproduced here, checked against SaTScan 9.4.4 outputs in ../shared/oracles/satscan).

* Cases c[z, d] per location z and time unit d; C = total. Expected count of a cylinder A (circle x window)
  without space-time interaction: mu_A = (cases of the circle over the whole study period) x (cases of
  the window over all locations) / C.
* LLR(A) = c ln(c / mu) + (C - c) ln((C - c) / (C - mu)), only for c > mu (high rates) and c >= ``min_cases``
  (SaTScan ignores clusters with fewer than 2 cases).
* Circles centred on each location, grown by adding the next-nearest location one at a time; equal
  distances are added in (x, y) order; a circle may hold at most ``max_spatial_share`` of all cases
  (for this model the population at risk is the cases).
* Prospective: every window ends at ``study_end``; lengths 1 .. floor(``max_temporal_share`` x study length).
* Monte Carlo: case times are permuted among the cases (both marginals kept, so every mu is unchanged);
  p = (1 + #{replications with max LLR >= LLR}) / (R + 1). Only the replications' maxima above the smallest
  reported LLR are needed, so each replication tests the cylinders against precomputed integer thresholds
  (the least count whose LLR reaches that level) and evaluates the LLR only where a threshold is reached.
* Secondary clusters: next most likely circles with no location in common with a reported one
  ("No Geographical Overlap"); a secondary cluster is reported only while its p-value is < 1 (as
  SaTScan's reports do; the most likely cluster is always reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Cluster:
    location_ids: list[str]
    centre: tuple[float, float]
    centre_id: str
    radius: float
    time_start: int
    time_end: int
    observed: int
    expected: float
    llr: float
    p_value: float | None


@dataclass
class ScanResult:
    clusters: list[Cluster]
    total_cases: int
    replications: int
    max_llr_replicates: list[float] = field(default_factory=list)


class ScanInputError(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def project(locations: list[dict[str, Any]]) -> np.ndarray:
    """x/y as given (Cartesian), or lat/lon projected to UTM zone 51N (EPSG:32651, metres)."""
    if all("x" in loc and "y" in loc and loc["x"] is not None for loc in locations):
        return np.array([[float(loc["x"]), float(loc["y"])] for loc in locations])
    if all("lat" in loc and "lon" in loc for loc in locations):
        from pyproj import Transformer

        tr = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
        lon = np.array([float(loc["lon"]) for loc in locations])
        lat = np.array([float(loc["lat"]) for loc in locations])
        x, y = tr.transform(lon, lat)
        return np.column_stack([x, y])
    raise ScanInputError("locations", "every location needs x and y, or lat and lon")


def _llr(c: np.ndarray, mu: np.ndarray, C: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.where(C - c > 0, (C - c) * np.log((C - c) / (C - mu)), 0.0)
        return np.asarray(c * np.log(c / mu) + rest)


@dataclass
class _Geometry:
    order: np.ndarray  # (Lz, K) location indices by distance (pad = Lz)
    dist: np.ndarray  # (Lz, K)
    kmax: np.ndarray  # (Lz,) number of admissible circle sizes per centre
    ncirc: np.ndarray  # (Lz, K) cases of the circle over the whole period


def _geometry(xy: np.ndarray, nz: np.ndarray, cap: float, max_radius: float | None) -> _Geometry:
    Lz = xy.shape[0]
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    order = np.empty((Lz, Lz), dtype=np.int64)
    for i in range(Lz):
        order[i] = np.lexsort((xy[:, 1], xy[:, 0], d[i]))
        # the centre first even if another location shares its coordinates
        pos = int(np.flatnonzero(order[i] == i)[0])
        if pos:
            order[i, 1: pos + 1] = order[i, :pos]
            order[i, 0] = i
    dd = np.take_along_axis(d, order, axis=1)
    cn = np.cumsum(nz[order], axis=1)
    ok = cn <= cap
    if max_radius is not None:
        ok &= dd <= max_radius
    kmax = np.where(ok[:, 0], np.minimum.accumulate(ok, axis=1).sum(axis=1), 0)
    K = max(1, int(kmax.max()))
    order = np.where(np.arange(K)[None, :] < kmax[:, None], order[:, :K], Lz)
    return _Geometry(order, dd[:, :K], kmax, cn[:, :K])


def scan(cases: list[dict[str, Any]], locations: list[dict[str, Any]], *, study_end: int | None = None,
         study_start: int | None = None, max_spatial_share: float = 0.5, max_temporal_share: float = 0.5,
         min_cases: int = 2, replications: int = 999, seed: int = 1, max_clusters: int = 10,
         max_radius: float | None = None) -> ScanResult:
    """Kulldorff's prospective space-time permutation scan (see module docstring). ``time`` values are
    integers (time units, e.g. days); windows are inclusive."""
    if not locations:
        raise ScanInputError("locations", "no locations")
    ids = [str(loc["location_id"]) for loc in locations]
    if len(set(ids)) != len(ids):
        raise ScanInputError("locations", "duplicate location_id")
    if not 0 < max_spatial_share <= 1:
        raise ScanInputError("max_spatial_share", "must be in (0, 1]")
    if not 0 < max_temporal_share <= 1:
        raise ScanInputError("max_temporal_share", "must be in (0, 1]")
    if replications < 0:
        raise ScanInputError("replications", "must be >= 0")
    xy = project(locations)
    index = {lid: i for i, lid in enumerate(ids)}
    try:
        loc = np.array([index[str(c["location_id"])] for c in cases], dtype=np.int64)
    except KeyError as e:
        raise ScanInputError("cases.location_id", f"unknown location {e.args[0]}") from e
    tim = np.array([int(c["time"]) for c in cases], dtype=np.int64)
    cnt = np.array([int(c.get("count", 1)) for c in cases], dtype=np.int64)
    if (cnt < 0).any():
        raise ScanInputError("cases.count", "negative count")
    end = int(tim.max()) if study_end is None else int(study_end)
    start = int(tim.min()) if study_start is None else int(study_start)
    if tim.size and ((tim > end).any() or (tim < start).any()):
        raise ScanInputError("cases.time", f"outside the study period {start}..{end}")
    Lz = len(ids)
    C = int(cnt.sum())
    if C == 0:
        return ScanResult([], 0, replications)
    n_t = end - start + 1
    if n_t > 200_000:
        raise ScanInputError("cases.time", f"study period of {n_t} time units is too long (at most 200,000)")
    maxL = max(1, int(np.floor(max_temporal_share * n_t + 1e-9)))
    nz = np.bincount(loc, weights=cnt, minlength=Lz).astype(np.int64)
    geo = _geometry(xy, nz, max_spatial_share * C, max_radius)
    K = geo.order.shape[1]
    # unit cases (for permutation) and their age = end - time
    unit_loc = np.repeat(loc, cnt)
    unit_age = np.repeat(end - tim, cnt)

    def window_counts(ages: np.ndarray) -> np.ndarray:
        inside = ages < maxL
        A = np.bincount(unit_loc[inside] * maxL + ages[inside], minlength=(Lz + 1) * maxL)
        return np.cumsum(A.reshape(Lz + 1, maxL), axis=1)  # S[z, L-1]; row Lz = padding (zeros)

    S = window_counts(unit_age)
    NL = S[:Lz].sum(axis=0).astype(float)  # (maxL,)
    valid = (np.arange(K)[None, :] < geo.kmax[:, None])[:, :, None]
    mu = geo.ncirc[:, :, None].astype(float) * NL[None, None, :] / C
    c_obs = np.cumsum(S[geo.order], axis=1)
    ok = valid & (c_obs >= min_cases) & (c_obs > mu)
    llr = np.where(ok, _llr(c_obs.astype(float), mu, C), -np.inf)
    # best window per circle, then greedy non-overlapping
    best_L = np.argmax(llr, axis=2)
    best = np.take_along_axis(llr, best_L[:, :, None], axis=2)[:, :, 0]
    flat = np.argsort(-best, axis=None, kind="stable")
    chosen: list[tuple[int, int, int, float]] = []
    used = np.zeros(Lz + 1, dtype=bool)
    for f in flat:
        i, k = divmod(int(f), K)
        v = float(best[i, k])
        if not np.isfinite(v) or len(chosen) >= max_clusters:
            break
        members = geo.order[i, : k + 1]
        if used[members].any():
            continue
        used[members] = True
        chosen.append((i, k, int(best_L[i, k]), v))
    pvals: list[float | None] = [None] * len(chosen)
    if replications and chosen:
        pvals = _monte_carlo(chosen, mu, geo, NL, C, min_cases, replications, seed, window_counts, unit_age)
    clusters: list[Cluster] = []
    for n_, ((i, k, L, v), p) in enumerate(zip(chosen, pvals, strict=True)):
        if n_ > 0 and p is not None and p >= 1:
            continue
        members = geo.order[i, : k + 1]
        clusters.append(Cluster(
            location_ids=[ids[j] for j in members], centre=(float(xy[i, 0]), float(xy[i, 1])), centre_id=ids[i],
            radius=float(geo.dist[i, k]), time_start=end - L, time_end=end, observed=int(c_obs[i, k, L]),
            expected=float(mu[i, k, L]), llr=v, p_value=p))
    return ScanResult(clusters, C, replications)


def _thresholds(mu: np.ndarray, geo: _Geometry, NL: np.ndarray, C: int, min_cases: int,
                levels: list[float]) -> list[np.ndarray]:
    """Per level, the least integer count per cylinder whose LLR reaches it (C + 1 where none can).

    The least count only depends on mu (LLR grows with c and falls with mu for c > mu), so it is found by
    integer bisection on the distinct mu values and mapped back."""
    valid = np.broadcast_to((np.arange(mu.shape[1])[None, :] < geo.kmax[:, None])[:, :, None], mu.shape)
    cap = np.minimum(geo.ncirc[:, :, None].astype(float), NL[None, None, :])
    mu_u, inv = np.unique(mu, return_inverse=True)
    inv = inv.reshape(mu.shape)
    out = []
    for level in levels:
        tgt = level * (1 - 1e-12)
        lo = np.maximum(float(min_cases), np.floor(mu_u) + 1.0)
        hi = np.full_like(mu_u, float(C))
        never_u = _llr(hi, mu_u, C) < tgt
        for _ in range(int(np.ceil(np.log2(C + 2))) + 1):
            mid = np.floor((lo + hi) / 2)
            reach = _llr(mid, mu_u, C) >= tgt
            hi = np.where(reach, mid, hi)
            lo = np.where(reach, lo, mid + 1)
        cs = np.where(never_u, C + 1.0, np.maximum(hi, lo))[inv]
        out.append(np.where(valid & (cs <= cap), cs, C + 1).astype(np.int64))
    return out


def _monte_carlo(chosen: list[tuple[int, int, int, float]], mu: np.ndarray, geo: _Geometry, NL: np.ndarray,
                 C: int, min_cases: int, replications: int, seed: int, window_counts: Any,
                 unit_age: np.ndarray) -> list[float | None]:
    """p-values of the chosen clusters: per replication the highest reported LLR that some cylinder reaches
    (integer thresholds; replications with a higher maximum count for every lower level too)."""
    levels = sorted({v for *_, v in chosen}, reverse=True)
    dt = np.int16 if C + 1 < np.iinfo(np.int16).max else np.int32
    # layout (k, centre, window): the running sum over k is a loop of contiguous row additions
    cstars = [np.ascontiguousarray(c.transpose(1, 0, 2)).astype(dt) for c in
              _thresholds(mu, geo, NL, C, min_cases, levels)]
    order_t = np.ascontiguousarray(geo.order.T)
    K = order_t.shape[0]
    buf = np.empty((K, *order_t.shape[1:], mu.shape[2]), dtype=dt)
    hit = np.empty(buf.shape, dtype=bool)
    reached = np.zeros(len(levels), dtype=np.int64)
    rg = np.random.default_rng(seed)
    for _ in range(replications):
        Sr = window_counts(rg.permutation(unit_age)).astype(dt)
        np.take(Sr, order_t, axis=0, out=buf)
        for k in range(1, K):
            np.add(buf[k], buf[k - 1], out=buf[k])
        for j, cs in enumerate(cstars):
            np.greater_equal(buf, cs, out=hit)
            if hit.any():
                reached[j:] += 1
                break
    p_of = {lv: float((1 + reached[j]) / (replications + 1)) for j, lv in enumerate(levels)}
    return [p_of[v] for *_, v in chosen]
