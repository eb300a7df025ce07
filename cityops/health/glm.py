"""Batched Poisson / quasi-Poisson GLM (log link) fitted by IRLS exactly as R's ``glm.fit`` does.

Many small fits at once: ``y`` is ``(M, n)``, the design ``X`` is ``(M, n, p)``; rows with prior
weight 0 are padding (they do not enter the fit, the deviance, the dispersion nor ``n.ok``).

Reference: R ``stats::glm.fit`` (R 4.2) — starting values ``mustart = y + 0.1`` (``poisson()$initialize``),
``linkinv(eta) = pmax(exp(eta), .Machine$double.eps)``, working response ``z = eta + (y - mu)/mu.eta``,
working weights ``w = sqrt(prior * mu.eta^2 / mu)``, convergence when
``|dev - devold| / (|dev| + 0.1) < epsilon`` (``glm.control``: epsilon 1e-8, maxit 25); after the loop the
returned working weights are those of the last iteration (computed from the mu *before* its update) while
the working residuals use the final mu, and ``summary.glm`` estimates the quasi-Poisson dispersion as
``sum(wt * res^2) / df.residual`` from those two.  ``hatvalues`` = diagonal of the hat matrix of the last
weighted least-squares step (``lm.influence``; values above ``1 - 10 eps`` are set to 1).
McCullagh & Nelder (1989), *Generalized Linear Models*, 2nd ed., §2.5 (IRLS) and §4.5 (quasi-likelihood).

Each fit stops at its own convergence (the iterates of a fit that converged are frozen), so the result
of every fit is R's to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

DBL_EPS = float(np.finfo(float).eps)


@dataclass
class GLMFit:
    coef: np.ndarray  # (M, p)
    mu: np.ndarray  # (M, n) final fitted values
    wt: np.ndarray  # (M, n) working weights of the last iteration (0 on padding)
    xtwx_inv: np.ndarray  # (M, p, p) (X' W X)^-1 of the last iteration ("cov.unscaled")
    converged: np.ndarray  # (M,) bool
    df_residual: np.ndarray  # (M,) n.ok - p
    dispersion: np.ndarray  # (M,) summary.glm's estimate (quasi-Poisson), NaN if df 0
    iterations: np.ndarray  # (M,)


def _dev(y: np.ndarray, mu: np.ndarray, prior: np.ndarray, ylogy: np.ndarray) -> np.ndarray:
    """Poisson deviance ``sum(dev.resids)``: 2 * wt * (y log(y/mu) - (y - mu)) (= 2 * wt * mu where y == 0),
    written as y log y - y log mu with y log y precomputed."""
    return np.asarray(2.0 * (prior * (ylogy - y * np.log(mu) - y + mu)).sum(axis=1))


def _solve(X: np.ndarray, w2: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares for each fit: returns (coef (M,p), (X'WX)^-1 (M,p,p))."""
    p = X.shape[2]
    cols = [X[:, :, i] for i in range(p)]
    wz = w2 * z
    xtwx = np.empty((X.shape[0], p, p))
    for i in range(p):
        wi = w2 * cols[i]
        for j in range(i, p):
            xtwx[:, i, j] = xtwx[:, j, i] = (wi * cols[j]).sum(axis=1)
    xtwz = np.stack([(wz * cols[i]).sum(axis=1) for i in range(p)], axis=1)
    if p == 1:
        inv = np.asarray(1.0 / xtwx, dtype=float)
    elif p == 2:
        a, b, d = xtwx[:, 0, 0], xtwx[:, 0, 1], xtwx[:, 1, 1]
        det = a * d - b * b
        inv = np.empty_like(xtwx)
        inv[:, 0, 0] = d / det
        inv[:, 1, 1] = a / det
        inv[:, 0, 1] = inv[:, 1, 0] = -b / det
    else:
        inv = np.asarray(np.linalg.inv(xtwx), dtype=float)
    coef = (inv @ xtwz[:, :, None])[:, :, 0]
    return coef, inv


def fit_poisson(
    y: np.ndarray,
    X: np.ndarray,
    prior: np.ndarray,
    offset: np.ndarray | None = None,
    *,
    epsilon: float = 1e-8,
    maxit: int = 25,
) -> GLMFit:
    """IRLS for ``M`` Poisson log-link GLMs at once (R ``glm.fit`` semantics, see module docstring).

    The working set shrinks as fits converge (a converged fit is written out and never touched again)."""
    M, n = y.shape
    p = X.shape[2]
    off_all = np.zeros_like(y) if offset is None else offset
    real = prior > 0
    eta_all = np.log(y + 0.1)
    mu_all = np.maximum(np.exp(eta_all), DBL_EPS)
    coef_all = np.zeros((M, p))
    inv_all = np.zeros((M, p, p))
    wt_all = np.zeros_like(y)
    conv = np.zeros(M, dtype=bool)
    iters = np.zeros(M, dtype=np.int64)
    # working set
    idx = np.arange(M)
    ya, pa, oa, Xa = y, prior, off_all, X
    ea, ma = eta_all.copy(), mu_all.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy_all = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
    la = ylogy_all
    devold = _dev(ya, ma, pa, la)
    for it in range(1, maxit + 1):
        if idx.size == 0:
            break
        mu_eta = ma  # mu.eta(eta) = pmax(exp(eta), eps) = linkinv(eta) for the log link
        z = (ea - oa) + (ya - ma) / mu_eta
        w2 = np.where(pa > 0, pa * mu_eta * mu_eta / ma, 0.0)
        c, iv = _solve(Xa, w2, z)
        ea = (Xa @ c[:, :, None])[:, :, 0] + oa
        ma = np.maximum(np.exp(ea), DBL_EPS)
        dev = _dev(ya, ma, pa, la)
        with np.errstate(invalid="ignore"):
            done = np.abs(dev - devold) / (np.abs(dev) + 0.1) < epsilon
        stop = done | ~np.isfinite(dev) | (it == maxit)
        if stop.any():
            g = idx[stop]
            coef_all[g], inv_all[g], wt_all[g] = c[stop], iv[stop], w2[stop]
            eta_all[g], mu_all[g] = ea[stop], ma[stop]
            iters[g] = it
            conv[idx[done]] = True
            keep = ~stop
            idx = idx[keep]
            ya, pa, oa, Xa, la = ya[keep], pa[keep], oa[keep], Xa[keep], la[keep]
            ea, ma, devold = ea[keep], ma[keep], dev[keep]
        else:
            devold = dev
    eta, mu = eta_all, mu_all
    n_ok = real.sum(axis=1)
    df = n_ok - p
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (y - mu) / np.maximum(np.exp(eta), DBL_EPS)
        pear = np.where(wt_all > 0, wt_all * res * res, 0.0).sum(axis=1)
        disp = np.where(df > 0, pear / np.where(df > 0, df, 1), np.nan)
    return GLMFit(coef_all, mu, wt_all, inv_all, conv, df, disp, iters)


def hat_values(X: np.ndarray, fit: GLMFit) -> np.ndarray:
    """Diagonal of the hat matrix of the last weighted LS step (R ``hatvalues`` for a glm)."""
    h = fit.wt * np.einsum("mni,mij,mnj->mn", X, fit.xtwx_inv, X)
    return np.where(h > 1 - 10 * DBL_EPS, 1.0, h)


def predict(fit: GLMFit, x0: np.ndarray, offset0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Linear predictor and its standard error at new rows ``x0`` (M, p) — R ``predict.glm(se.fit = TRUE,
    type = "link")`` with the dispersion of ``summary.glm`` (not floored at 1)."""
    eta0 = np.einsum("mi,mi->m", x0, fit.coef)
    if offset0 is not None:
        eta0 = eta0 + offset0
    var = np.einsum("mi,mij,mj->m", x0, fit.xtwx_inv, x0) * fit.dispersion
    return eta0, np.sqrt(var)


def coef_pvalue(fit: GLMFit, j: int) -> np.ndarray:
    """Two-sided t-test p-value of coefficient ``j`` as ``summary.glm`` gives it for a quasi family:
    ``2 * pt(-|b / se|, df.residual)`` with se from the estimated dispersion."""
    se = np.sqrt(fit.xtwx_inv[:, j, j] * fit.dispersion)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = fit.coef[:, j] / se
    return np.asarray(2.0 * special.stdtr(fit.df_residual.astype(float), -np.abs(t)))
