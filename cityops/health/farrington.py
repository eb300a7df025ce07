"""``farringtonFlexible`` (Noufaily et al. 2013; Farrington et al. 1996) with R ``surveillance``'s exact
semantics (``surveillance::farringtonFlexible``, version 1.20.3), vectorised over series and time points.

References:
* Farrington, Andrews, Beale & Catchpole (1996), JRSS A 159:547-563 — quasi-Poisson model on the
  reference weeks, Anscombe-residual reweighting, 2/3-power threshold ("delta").
* Noufaily, Enki, Farrington, Garthwaite, Andrews & Charlett (2013), Stat Med 32:1206-1222 — seasonal
  factor (``noPeriods``), ``pastWeeksNotIncluded``, negative-binomial thresholds ("nbPlugin", "muan").
* Salmon, Schumacher & Höhle (2016), J Stat Softw 70(10) — the R implementation reproduced here
  (reference weeks by index or by date, fit / trend / threshold rules, output columns).

Details kept from R on purpose: the reference point ``j`` years back in date mode is ``date - j years``
moved to the nearest same weekday; window indices below 1 are dropped; the standard error of the
prediction uses the estimated (not floored) dispersion; a fit that does not converge with the trend is
refitted without it, and without convergence there is no result (alarm/upperbound NA, ``expected`` 0);
the refit with weights is not checked for convergence; with fewer than ``limit54[0]`` cases in the last
``limit54[1]`` weeks the bound is NA and there is no alarm (but phi, score and p-value are kept).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from cityops.health import glm

FF_DEFAULTS: dict[str, Any] = {
    "range": None, "b": 5, "w": 3, "reweight": True, "weightsThreshold": 2.58, "verbose": False,
    "glmWarnings": True, "alpha": 0.05, "trend": True, "pThresholdTrend": 0.05, "limit54": (5, 4),
    "powertrans": "2/3", "fitFun": "algo.farrington.fitGLM.flexible", "populationOffset": False,
    "noPeriods": 1, "pastWeeksNotIncluded": None, "thresholdMethod": "delta",
}


@dataclass
class FFResult:
    t: np.ndarray  # (T,) 1-based monitored time points
    upperbound: np.ndarray  # (N, T) NaN = NA
    alarm: np.ndarray  # (N, T) 1.0 / 0.0 / NaN
    expected: np.ndarray
    phi: np.ndarray
    score: np.ndarray
    pvalue: np.ndarray
    trend: np.ndarray  # 1.0 / 0.0 / NaN
    trend_coef: np.ndarray


def _minus_years(d: dt.date, j: int) -> dt.date:
    """R ``seq(d, by = "-1 year")``: same month/day j years back, 29 Feb -> 1 Mar (POSIXlt normalisation)."""
    try:
        return d.replace(year=d.year - j)
    except ValueError:
        return dt.date(d.year - j, 3, 1)


def _reference_points(k: int, b: int, freq: int, dates: list[dt.date] | None) -> list[Any]:
    """``algo.farrington.referencetimepoints``: the current point and b points one year apart."""
    if dates is None:
        return [k - freq * j for j in range(b + 1)]
    day = dates[k - 1]
    refs = [_minus_years(day, j) for j in range(b + 1)]
    if freq == 52:
        want = (day.isoweekday() % 7)
        out = []
        for r in refs:
            a = r - dt.timedelta(days=(r.isoweekday() % 7) - want)
            bb = a + dt.timedelta(days=-7 if a > r else 7)
            out.append(a if abs((a - r).days) <= abs((bb - r).days) else bb)
        refs = out
    return refs


def _assign(vec: list[float | None], lo: int, hi: int, val: float | None) -> None:
    """R ``vec[lo:hi] <- val`` (1-based, inclusive): index 0 is dropped; negatives are an error."""
    idx = range(lo, hi + 1) if lo <= hi else range(lo, hi - 1, -1)
    if min(idx) < 0 and max(idx) > 0:
        raise ValueError("reference window reaches before the start of the series; decrease 'b' or postpone 'range'")
    for i in idx:
        if i >= 1:
            if i > len(vec):
                vec.extend([None] * (i - len(vec)))
            vec[i - 1] = val


def design_rows(k: int, n: int, ctl: dict[str, Any], freq: int, dates: list[dt.date] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Rows (0-based) of the fit for time point k (1-based), their seasonal level, wtime of the rows and of k.

    R: ``algo.farrington.data.glm`` + ``blocks``."""
    b, w, p, pwni = int(ctl["b"]), int(ctl["w"]), int(ctl["noPeriods"]), int(ctl["pastWeeksNotIncluded"])
    refs = _reference_points(k, b, freq, dates)
    if dates is None:
        pos = {i + 1: i + 1 for i in range(n)}
        present = [r for r in refs if r in pos]
        if len(present) != len(refs):
            raise ValueError("some reference time points did not exist; decrease 'b' or postpone 'range'")
        ref_idx = sorted(set(refs), reverse=True)
    else:
        where: dict[dt.date, int] = {}
        for i, d in enumerate(dates):
            where.setdefault(d, i + 1)
        if not all(r in where for r in refs):
            raise ValueError("some reference time points did not exist; decrease 'b' or postpone 'range'")
        rs = set(refs)
        ref_idx = sorted((i + 1 for i, d in enumerate(dates) if d in rs), reverse=True)
    fac: list[float | None] = [None] * n
    _assign(fac, k - w, k, float(p))
    for i in range(1, b + 1):
        ref = ref_idx[i]
        _assign(fac, ref - w, ref + w, float(p))
        if p != 1:
            period = ref_idx[i - 1] - 2 * w - 1 - ref
            if period < (p - (2 * w + 1)):
                raise ValueError("noPeriods: number of factors too big")
            lengths = [period // (p - 1)] * (p - 1)
            for r in range(period % (p - 1)):
                lengths[r] += 1
            cum = np.concatenate([[0], np.cumsum(lengths)])
            for j in range(1, p):
                _assign(fac, ref + w + 1 + int(cum[j - 1]), ref + w + 1 + int(cum[j]) - 1, float(j))
    fac = fac[:n]
    _assign(fac, k - pwni, k, None)
    rows = np.array([i for i, v in enumerate(fac[:n]) if v is not None], dtype=np.int64)
    levels = np.array([fac[i] for i in rows], dtype=float)
    if dates is None:
        wt_rows = (rows + 1).astype(float)
        wt_now = float(k)
    else:
        step = (dates[1] - dates[0]).days
        first = dates[int(rows[0])]
        wt_rows = np.array([(dates[int(i)] - first).days / step for i in rows], dtype=float)
        wt_now = (dates[k - 1] - first).days / step
    return rows, levels, wt_rows, wt_now


def _design(levels: np.ndarray, wtime: np.ndarray, wnow: float, trend: bool, factors: bool, p: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Model matrix ``response ~ 1 (+ wtime) (+ seasgroups)`` (treatment contrasts) and the row to predict."""
    cols = [np.ones_like(wtime)]
    x0 = [1.0]
    if trend:
        c = float(np.mean(wtime))  # centring: same fit, better conditioned; slope and p-value unchanged
        cols.append(wtime - c)
        x0.append(wnow - c)
    if factors:
        lv = np.unique(levels)
        for v in lv[1:]:
            cols.append((levels == v).astype(float))
            x0.append(1.0 if v == p else 0.0)
    return np.stack(cols, axis=-1), np.array(x0)


def _anscombe_weights(Y: np.ndarray, X: np.ndarray, fit: glm.GLMFit, phi: np.ndarray, real: np.ndarray,
                      thr: float) -> np.ndarray:
    """``anscombe.residuals`` + ``algo.farrington.assign.weights`` (R surveillance, algo_farrington.R)."""
    h = glm.hat_values(X, fit)
    mu = fit.mu
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.5 * (Y ** (2.0 / 3.0) * mu ** (-1.0 / 6.0) - np.sqrt(mu))
        s = a / np.sqrt(phi[:, None] * (1.0 - h))
        big = (s > thr) & real
        inv2 = np.where(big, s ** -2.0, 1.0)
    n = real.sum(axis=1)
    gamma = n / np.where(real, inv2, 0.0).sum(axis=1)
    return np.where(real, gamma[:, None] * inv2, 0.0)


def _fitglm(Y: np.ndarray, Xt: np.ndarray, X1: np.ndarray, prior: np.ndarray, off: np.ndarray | None,
            want_trend: np.ndarray, ctl: dict[str, Any]) -> tuple[glm.GLMFit, np.ndarray, np.ndarray, np.ndarray]:
    """``algo.farrington.fitGLM.flexible`` for every fit at once.

    Returns the final fit as a trend-shaped fit (no-trend fits padded with a zero column), whether it has
    the trend, whether there is a model at all, and phi."""
    M = Y.shape[0]
    real = prior > 0
    has_t = want_trend.copy()
    ok = np.ones(M, dtype=bool)
    fits: dict[bool, tuple[np.ndarray, glm.GLMFit]] = {}

    def run(sel: np.ndarray, trend: bool, weights: np.ndarray) -> glm.GLMFit:
        X = Xt[sel] if trend else X1[sel]
        return glm.fit_poisson(Y[sel], X, weights, None if off is None else off[sel])

    phi = np.full(M, np.nan)
    first: dict[bool, tuple[np.ndarray, glm.GLMFit]] = {}
    sel_t = np.flatnonzero(has_t)
    if sel_t.size:
        f = run(sel_t, True, prior[sel_t])
        bad = ~f.converged
        first[True] = (sel_t[~bad], _take(f, ~bad))
        has_t[sel_t[bad]] = False
        retry = sel_t[bad]
    else:
        retry = np.zeros(0, dtype=np.int64)
    sel_n = np.concatenate([np.flatnonzero(~want_trend), retry])
    if sel_n.size:
        f = run(sel_n, False, prior[sel_n])
        ok[sel_n[~f.converged]] = False
        keep = f.converged
        first[False] = (sel_n[keep], _take(f, keep))
    for trend, (sel, f) in first.items():
        ph = np.maximum(f.dispersion, 1.0)
        if ctl["reweight"]:
            X = Xt[sel] if trend else X1[sel]
            om = _anscombe_weights(Y[sel], X, f, ph, real[sel], float(ctl["weightsThreshold"]))
            f = run(sel, trend, om)
            ph = np.maximum(f.dispersion, 1.0)
            # R then sets ``model$weights <- omega``: summary.glm (the trend p-value) and predict.glm
            # (se.fit) see the prior weights instead of the working weights in the dispersion
            with np.errstate(divide="ignore", invalid="ignore"):
                res = (Y[sel] - f.mu) / f.mu
                pear = np.where(om > 0, om * res * res, 0.0).sum(axis=1)
                df = f.df_residual
                f.dispersion = np.where(df > 0, pear / np.where(df > 0, df, 1), np.nan)
        phi[sel] = ph
        fits[trend] = (sel, f)
    return _merge(M, fits, Xt.shape[2]), has_t, ok, phi


def _take(f: glm.GLMFit, m: np.ndarray) -> glm.GLMFit:
    return glm.GLMFit(f.coef[m], f.mu[m], f.wt[m], f.xtwx_inv[m], f.converged[m], f.df_residual[m],
                      f.dispersion[m], f.iterations[m])


def _merge(M: int, fits: dict[bool, tuple[np.ndarray, glm.GLMFit]], pt: int) -> glm.GLMFit:
    """Put trend fits (p = pt) and no-trend fits (p = pt - 1, the trend column removed) in one trend-shaped fit."""
    n = next(iter(fits.values()))[1].mu.shape[1] if fits else 0
    out = glm.GLMFit(np.zeros((M, pt)), np.full((M, n), np.nan), np.zeros((M, n)), np.zeros((M, pt, pt)),
                     np.zeros(M, bool), np.zeros(M, np.int64), np.full(M, np.nan), np.zeros(M, np.int64))
    for trend, (sel, f) in fits.items():
        if trend:
            cols = np.arange(pt)
        else:
            cols = np.array([0] + list(range(2, pt)), dtype=np.int64)
        out.coef[np.ix_(sel, cols)] = f.coef
        out.xtwx_inv[np.ix_(sel, cols, cols)] = f.xtwx_inv
        out.mu[sel] = f.mu
        out.wt[sel] = f.wt
        out.converged[sel] = f.converged
        out.df_residual[sel] = f.df_residual
        out.dispersion[sel] = f.dispersion
        out.iterations[sel] = f.iterations
    return out


def _threshold(mu0: np.ndarray, se: np.ndarray, phi: np.ndarray, y: np.ndarray, ctl: dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper bound, p-value and score: ``algo.farrington.threshold.farrington`` ("delta") and
    ``algo.farrington.threshold.noufaily`` ("nbPlugin", "muan"); mu0/se on the response scale for
    "delta", on the link scale otherwise."""
    alpha = float(ctl["alpha"])
    method = ctl["thresholdMethod"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "delta":
            tau = phi + se * se / mu0
            pt = ctl["powertrans"]
            if pt == "none":
                s, e = np.sqrt(mu0 * tau), 1.0
            elif pt == "1/2":
                s, e = np.sqrt(0.25 * tau), 0.5
            elif pt == "2/3":
                s, e = np.sqrt(4.0 / 9.0 * mu0 ** (1.0 / 3.0) * tau), 2.0 / 3.0
            else:
                raise ValueError("powertrans must be one of none, 1/2, 2/3")
            z = special.ndtri(1.0 - alpha)
            lo = (mu0 ** e - z * s) ** (1.0 / e)
            hi = (mu0 ** e + z * s) ** (1.0 / e)
            upper = np.where(np.isnan(lo), hi, np.where(np.isnan(hi), lo, np.maximum(lo, hi)))
            prob = stats.norm.sf(y ** e, loc=mu0 ** e, scale=s)
            fitv = mu0
        else:
            eta0, se0 = mu0, se
            if method == "nbPlugin":
                mq = np.exp(eta0)
            else:
                mq = np.exp(eta0 + se0 * special.ndtri(1.0 - alpha))
            inf = np.isinf(mq)
            size = mq / (phi - 1.0)
            nb = phi > 1
            q_nb = stats.nbinom.ppf(1.0 - alpha, np.where(nb, size, 1.0), 1.0 / phi)
            q_po = stats.poisson.ppf(1.0 - alpha, mq)
            upper = np.where(inf, np.nan, np.where(nb, q_nb, q_po))
            p_nb = stats.nbinom.sf(y - 1, np.where(phi != 1, size, 1.0), 1.0 / phi)
            p_po = stats.poisson.sf(y - 1, mq)
            prob = np.where(inf, np.nan, np.where(phi != 1, p_nb, p_po))
            fitv = eta0
        score = np.where(np.isnan(upper), np.nan, (y - fitv) / (upper - fitv))
    return upper, prob, score


def farrington_flexible(observed: np.ndarray, *, freq: int = 52, dates: list[dt.date] | None = None,
                        population: np.ndarray | None = None, chunk: int = 40000, **control: Any) -> FFResult:
    """R ``farringtonFlexible(sts, control)`` for every row of ``observed`` (N, n) at once.

    ``dates`` (length n, equally spaced) switch to date-based reference weeks (R ``epochAsDate = TRUE``);
    ``control`` uses R's names (``range`` is a list of 1-based time points)."""
    unknown = set(control) - set(FF_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown control parameter(s): {sorted(unknown)}")
    ctl = {**FF_DEFAULTS, **control}
    obs = np.asarray(observed, dtype=float)
    if obs.ndim == 1:
        obs = obs[None, :]
    N, n = obs.shape
    b, w = int(ctl["b"]), int(ctl["w"])
    if ctl["pastWeeksNotIncluded"] is None:
        ctl["pastWeeksNotIncluded"] = w
    if ctl["thresholdMethod"] not in ("delta", "nbPlugin", "muan"):
        raise ValueError("thresholdMethod must be delta, nbPlugin or muan")
    l54 = ctl["limit54"]
    if not (l54[0] >= 0 and l54[1] > 0):
        raise ValueError("limit54 out of bounds: cases >= 0 and period > 0")
    rng = np.arange(freq * b + w + 1, n + 1) if ctl["range"] is None else np.asarray(ctl["range"], dtype=np.int64)
    if rng.size == 0 or rng.min() < 1 or rng.max() > n:
        raise ValueError("range outside the series")
    p = int(ctl["noPeriods"])
    factors = p != 1
    pop_off = bool(ctl["populationOffset"])
    # Per time point: rows, design with and without trend (shared by all series)
    specs = [design_rows(int(k), n, ctl, freq, dates) for k in rng]
    nmax = max(s[0].size for s in specs)
    T = rng.size
    pt = 2 + (0 if not factors else max(np.unique(s[1]).size - 1 for s in specs))
    rows = np.zeros((T, nmax), dtype=np.int64)
    prior1 = np.zeros((T, nmax))
    Xt = np.zeros((T, nmax, pt))
    x0t = np.zeros((T, pt))
    for i, (r, lv, wr, wn) in enumerate(specs):
        m = r.size
        rows[i, :m] = r
        prior1[i, :m] = 1.0
        Xd, x0 = _design(lv, wr, wn, True, factors, p)
        Xt[i, :m, : Xd.shape[1]] = Xd
        x0t[i, : x0.size] = x0
    X1 = Xt[:, :, [0] + list(range(2, pt))]
    out = {key: np.full((N, T), np.nan) for key in
           ("upperbound", "alarm", "expected", "phi", "score", "pvalue", "trend", "trend_coef")}
    per = max(1, chunk // T)
    for s0 in range(0, N, per):
        s1 = min(N, s0 + per)
        _ff_chunk(obs[s0:s1], rows, prior1, Xt, X1, x0t, rng, ctl, population, s0, pop_off, out)
    return FFResult(rng, **out)


def _ff_chunk(obs: np.ndarray, rows: np.ndarray, prior1: np.ndarray, Xt: np.ndarray, X1: np.ndarray,
              x0t: np.ndarray, rng: np.ndarray, ctl: dict[str, Any], population: np.ndarray | None,
              s0: int, pop_off: bool, out: dict[str, np.ndarray]) -> None:
    Nc = obs.shape[0]
    T, nmax = rows.shape
    M = Nc * T
    Y = np.where(prior1[None] > 0, obs[:, rows], 0.0).reshape(M, nmax)
    prior = np.broadcast_to(prior1, (Nc, T, nmax)).reshape(M, nmax)
    XtM = np.broadcast_to(Xt, (Nc, *Xt.shape)).reshape(M, nmax, Xt.shape[2])
    X1M = np.broadcast_to(X1, (Nc, *X1.shape)).reshape(M, nmax, X1.shape[2])
    x0 = np.broadcast_to(x0t, (Nc, *x0t.shape)).reshape(M, x0t.shape[1])
    off = off0 = None
    if pop_off:
        if population is None:
            raise ValueError("populationOffset needs population")
        popc = np.asarray(population, dtype=float)[s0:s0 + Nc]
        off = np.where(prior1[None] > 0, np.log(popc[:, rows]), 0.0).reshape(M, nmax)
        off0 = np.log(popc[:, rng - 1]).reshape(M)
    ycur = obs[:, rng - 1].reshape(M)
    want = np.full(M, bool(ctl["trend"]))
    fit, has_t, ok, phi = _fitglm(Y, XtM, X1M, prior, off, want, ctl)
    do_trend = np.zeros(M, dtype=bool)
    if has_t.any():
        sel = np.flatnonzero(has_t & ok)
        sub = _take(fit, sel)
        eta, _ = glm.predict(sub, x0[sel], None if off0 is None else off0[sel])
        pred = np.maximum(np.exp(eta), glm.DBL_EPS)
        sig = glm.coef_pvalue(sub, 1) < float(ctl["pThresholdTrend"])
        ymax = np.where(prior[sel] > 0, Y[sel], -np.inf).max(axis=1)
        do_trend[sel] = (int(ctl["b"]) >= 3) & sig & (pred <= ymax)
        redo = sel[~do_trend[sel]]
        if redo.size:
            f2, _, ok2, phi2 = _fitglm(Y[redo], XtM[redo], X1M[redo], prior[redo],
                                       None if off is None else off[redo], np.zeros(redo.size, bool), ctl)
            cols = np.arange(fit.coef.shape[1])
            fit.coef[redo] = f2.coef[:, cols]
            fit.xtwx_inv[redo] = f2.xtwx_inv
            fit.mu[redo], fit.wt[redo] = f2.mu, f2.wt
            fit.dispersion[redo], fit.df_residual[redo] = f2.dispersion, f2.df_residual
            phi[redo] = phi2
            ok[redo] = ok2
    x0u = x0.copy()
    x0u[~do_trend, 1] = 0.0
    eta0, se_link = glm.predict(fit, x0u, off0)
    if ctl["thresholdMethod"] == "delta":
        mu0 = np.maximum(np.exp(eta0), glm.DBL_EPS)
        fitv, sev = mu0, se_link * mu0
    else:
        fitv, sev = eta0, se_link
    upper, prob, score = _threshold(fitv, sev, phi, ycur, ctl)
    l1, l2 = ctl["limit54"]
    cs = np.concatenate([np.zeros((obs.shape[0], 1)), np.cumsum(obs, axis=1)], axis=1)
    k = rng
    lo = np.maximum(k - int(l2), 0)
    enough = ((cs[:, k] - cs[:, lo]) >= float(l1)).reshape(M)
    with np.errstate(invalid="ignore"):
        X = np.where(enough, score, np.nan)
        alarm = (~np.isnan(X) & (X > 1) & (ycur != 0)).astype(float)
    ub = np.where(enough, upper, np.nan)
    expv = fitv if ctl["thresholdMethod"] == "delta" else np.exp(fitv)
    expected = np.where(~np.isnan(upper) & enough, expv, np.nan)
    trend = do_trend.astype(float)
    tcoef = np.where(do_trend, fit.coef[:, 1], np.nan)
    # no model at all: everything NA, expected stays 0 (R never sets it on that branch)
    bad = ~ok
    alarm[bad] = np.nan
    ub[bad] = np.nan
    expected[bad] = 0.0
    for arr in (phi, score, prob, trend, tcoef):
        arr[bad] = np.nan
    sl = slice(s0, s0 + obs.shape[0])
    for key, arr in (("upperbound", ub), ("alarm", alarm), ("expected", expected), ("phi", phi),
                     ("score", score), ("pvalue", prob), ("trend", trend), ("trend_coef", tcoef)):
        out[key][sl] = arr.reshape(obs.shape[0], T)
