"""Aberration detection on count series, vectorised over many series at once (pure: no database).

Every function takes ``counts`` as an ``(N, n)`` array (N series of the same length n, non-negative) and
returns a :class:`Detection`: the monitored time points ``t`` (1-based, as in R), ``upperbound`` and
``alarm`` as ``(N, len(t))`` float arrays in which ``NaN`` stands for R's ``NA`` (alarm is 1.0 / 0.0 / NaN),
plus method extras. Parameters carry the names of R ``surveillance``'s control lists.

Methods and references:
* ``fixed`` — CIDARS fixed threshold (单病例预警): a count >= ``threshold`` (default 1) alarms.
  Yang W. et al. (2011), "A national automated infectious disease alert and response system (CIDARS)",
  Chin J Epidemiol / BMC Public Health 11(Suppl 1):S1... (domain notes §1.1).
* ``cidars_mpm`` — CIDARS moving percentile method: the ``percentile`` of the counts of the same period
  and ``half_window`` periods either side in each of the previous ``years`` years (domain notes §1.2).
* ``earsC1/C2/C3`` — R ``surveillance::earsC`` (1.20.3); Hutwagner et al. (2003), J Urban Health 80:i89-i96;
  Fricker, Hegler & Dunfee (2008), Stat Med 27:3407-3429. ``earsC3`` is R's variant (the default);
  ``earsC3_textbook`` is the published one.
* ``cusum`` — R ``surveillance::algo.cusum``; Rossi, Lampugnani & Marchi (1999), Stat Med 18:2111-2122.
* ``farringtonFlexible`` — see :mod:`cityops.health.farrington`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

from cityops.health import farrington, glm


@dataclass
class Detection:
    t: np.ndarray  # (T,) 1-based
    upperbound: np.ndarray  # (N, T), NaN = NA
    alarm: np.ndarray  # (N, T), 1.0 / 0.0 / NaN
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class ParameterError(ValueError):
    """Bad control parameter: ``field`` names it (e.g. ``control.range``)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def _as2d(counts: Any) -> np.ndarray:
    y = np.asarray(counts, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise ParameterError("series", "counts must be a 1-D or 2-D array")
    if np.isnan(y).any() or (y < 0).any():
        raise ParameterError("series.observed", "counts must be non-negative numbers")
    return y


def r_mean(a: np.ndarray) -> np.ndarray:
    """R's ``mean`` of each row: long-double sum / n plus one correction pass (summary.c ``rsum``/``do_summary``),
    rounded to double once at the end."""
    ld = np.longdouble
    x = a.astype(ld)
    n = ld(a.shape[1])
    s = x.sum(axis=1) / n
    s = s + (x - s[:, None]).sum(axis=1) / n
    return np.asarray(s.astype(float))


def _range(rng: Any, default_first: int, n: int, min_first: int) -> np.ndarray:
    """``[first_t, last_t]`` (1-based, inclusive) or None -> R's default ``default_first .. n``."""
    if rng is None:
        first, last = default_first, n
    else:
        if len(rng) != 2:
            raise ParameterError("control.range", "must be [first_t, last_t] or null")
        first, last = int(rng[0]), int(rng[1])
    if first > last or last > n or first < min_first:
        raise ParameterError("control.range",
                             f"[{first}, {last}] is outside the usable part {min_first}..{n} of the series")
    return np.arange(first, last + 1)


def _check(control: dict[str, Any], allowed: set[str]) -> None:
    bad = sorted(set(control) - allowed)
    if bad:
        raise ParameterError(f"control.{bad[0]}", "unknown parameter")


def _rowstats(y: np.ndarray, t: np.ndarray, lag_hi: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample SD (denominator B-1) of y[t-lag_hi .. t-lag_hi+B-1] (1-based t) per series.

    Integer counts: from running sums in int64, the variance's numerator B*sum(y^2) - sum(y)^2 exact, so
    the SD is one rounding from exact (R's two-pass ``sd`` agrees to ~1e-16) and exactly 0 for a flat window."""
    first = t - 1 - lag_hi  # 0-based start of each window
    if np.all(y == np.floor(y)) and (y.size == 0 or y.max() < 2 ** 20):
        yi = y.astype(np.int64)
        c1 = np.concatenate([np.zeros((y.shape[0], 1), np.int64), np.cumsum(yi, axis=1)], axis=1)
        c2 = np.concatenate([np.zeros((y.shape[0], 1), np.int64), np.cumsum(yi * yi, axis=1)], axis=1)
        a, b = int(first[0]), int(first[-1]) + 1  # t is a contiguous range
        s1 = c1[:, a + B: b + B] - c1[:, a:b]
        s2 = c2[:, a + B: b + B] - c2[:, a:b]
        num = B * s2 - s1 * s1
        return s1 / B, np.sqrt(num / float(B * (B - 1)))
    win = sliding_window_view(y, B, axis=1)  # win[:, i] = y[:, i : i + B]
    ref = win[:, first]
    return ref.mean(axis=2), ref.std(axis=2, ddof=1)


def ears(counts: Any, method: str = "C1", *, range: Any = None, baseline: int = 7, minSigma: float = 0.0,
         alpha: float | None = None) -> Detection:
    """R ``earsC(sts, control = list(method, range, baseline, minSigma, alpha))``.

    C1: reference window t-B .. t-1; C2: t-B-2 .. t-3; upperbound = mean + z * max(sd, minSigma),
    z = qnorm(1 - alpha) (one-sided; default alpha 0.001 for C1/C2, 0.025 for C3), alarm = y > upperbound.
    C3 (R's code): L(t) = max(0, C2(t-2) - 1) + max(0, C2(t-1) - 1) with C2(i) = (y(i) - mean2(i)) /
    max(sd2(i), minSigma); upperbound = max(0, y(t) + max(sd2(t), minSigma) * (z - L(t))) — anchored on
    the observed count, NaN (NA) where 0/0 arises. A one-point C3 range gives NA as in R (its
    ``apply(as.matrix(refVals[3, ]), 1, sd)`` takes the SD of single values)."""
    y = _as2d(counts)
    n = y.shape[1]
    B = int(baseline)
    if B < 3:
        raise ParameterError("control.baseline", "minimum baseline is 3")
    if minSigma < 0:
        raise ParameterError("control.minSigma", "must be >= 0")
    if method not in ("C1", "C2", "C3", "C3_textbook"):
        raise ParameterError("method", "must be C1, C2 or C3")
    c3 = method.startswith("C3")
    if alpha is None:
        alpha = 0.025 if c3 else 0.001
    if not 0 < alpha < 1:
        raise ParameterError("control.alpha", "must be in (0, 1)")
    z = float(special.ndtri(1.0 - alpha))
    max_lag = {"C1": B, "C2": B + 2}.get(method, B + 4)
    t = _range(range, max_lag + 1, n, max_lag + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "C1":
            m, s = _rowstats(y, t, B, B)
            ub = m + z * np.maximum(s, minSigma)
            extras: dict[str, np.ndarray] = {}
        elif method == "C2":
            m, s = _rowstats(y, t, B + 2, B)
            ub = m + z * np.maximum(s, minSigma)
            extras = {}
        else:
            t2 = np.arange(t[0] - 2, t[-1] + 1)
            m2, s2 = _rowstats(y, t2, B + 2, B)
            sd = np.maximum(s2, minSigma)
            c2 = (y[:, t2 - 1] - m2) / sd
            part = np.maximum(0.0, c2 - 1.0)
            lag = part[:, :-2] + part[:, 1:-1]
            yt = y[:, t - 1]
            if method == "C3":
                ub = np.maximum(0.0, yt + sd[:, 2:] * (z - lag))
                if t.size == 1:
                    ub = np.full_like(ub, np.nan)
            else:  # textbook: C3(t) = sum_{i=t-2..t} max(0, C2(i) - 1) >= z; bound solves it for y(t)
                ub = np.where(lag >= z, 0.0, m2[:, 2:] + sd[:, 2:] * (1.0 + z - lag))
            extras = {"c3": part[:, :-2] + part[:, 1:-1] + part[:, 2:]}
        yt = y[:, t - 1]
        if method == "C3_textbook":
            alarm = np.where(np.isnan(extras["c3"]), np.nan, (extras["c3"] >= z).astype(float))
        else:
            alarm = np.where(np.isnan(ub), np.nan, (yt > ub).astype(float))
    return Detection(t, ub, alarm, extras)


def cusum(counts: Any, *, range: Any = None, k: float = 1.04, h: float = 2.26, m: Any = None,
          trans: str = "standard", alpha: float | None = None, freq: int = 52, start: Any = None) -> Detection:
    """R ``algo.cusum(disProg, control = list(range, k, h, m, trans, alpha))``.

    m = NULL: the mean of the counts before the range; a number; or ``"glm"``: a Poisson GLM
    y ~ 1 + cos(2 pi t / freq) + sin(2 pi t / freq) on the weeks before the range, t = start week + index.
    S_t = max(0, S_{t-1} + (z_t - k)), S_0 = 0, alarm = S_t >= h (no reset); upperbound = smallest count
    that alarms (standard: ceiling(sqrt(m) (h + k - S_{t-1}) + m)); NaN/negative bounds become 0.
    R has no default range here (``range`` is required)."""
    y = _as2d(counts)
    N, n = y.shape
    if range is None:
        raise ParameterError("control.range", "algo.cusum needs a range [first_t, last_t]")
    t = _range(range, 2, n, 2)
    a = 0.1 if alpha is None else float(alpha)
    x = y[:, t - 1]
    if m is None:
        mm = np.broadcast_to(r_mean(y[:, : t[0] - 1])[:, None], x.shape)
    elif isinstance(m, (int, float)) and not isinstance(m, bool):
        mm = np.full(x.shape, float(m))
    elif m == "glm":
        wk = 1 if start is None else int(start[1])
        tr = wk + np.arange(1, t[0]) - 1.0
        Xtr = np.stack([np.ones_like(tr), np.cos(2 * np.pi / freq * tr), np.sin(2 * np.pi / freq * tr)], -1)
        f = glm.fit_poisson(y[:, : t[0] - 1], np.broadcast_to(Xtr, (N, *Xtr.shape)).copy(),
                            np.ones((N, tr.size)))
        tn = wk + t - 1.0
        Xn = np.stack([np.ones_like(tn), np.cos(2 * np.pi / freq * tn), np.sin(2 * np.pi / freq * tn)], -1)
        mm = np.maximum(np.exp(f.coef @ Xn.T), glm.DBL_EPS)
    else:
        raise ParameterError("control.m", "must be null, a number or \"glm\"")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sq = np.sqrt(mm)
        if trans == "standard":
            zz = (x - mm) / sq
        elif trans == "rossi":
            zz = (x - 3 * mm + 2 * np.sqrt(x * mm)) / (2 * sq)
        elif trans == "anscombe":
            zz = 1.5 * (x ** (2 / 3) - mm ** (2 / 3)) / mm ** (1 / 6)
        elif trans == "anscombe2nd":
            zz = (x ** (2 / 3) - (mm ** (2 / 3) - mm ** (-1 / 3) / 9)) / (2 / 3 * mm ** (1 / 6))
        elif trans == "pearsonNegBin":
            zz = (x - mm) / np.sqrt(mm + a * mm * mm)
        elif trans == "none":
            zz = x
        else:
            raise ParameterError("control.trans", "must be standard, rossi, anscombe, anscombe2nd, "
                                 "pearsonNegBin or none")
        T = t.size
        S = np.zeros((N, T + 1))
        for i in np.arange(T):
            S[:, i + 1] = np.maximum(0.0, S[:, i] + (zz[:, i] - k))
        cs = S[:, 1:]
        alarm = np.where(np.isnan(cs), np.nan, (cs >= h).astype(float))
        c1 = S[:, :-1]
        if trans == "standard":
            ub = np.ceil(sq * (h + k - c1) + mm)
        elif trans == "rossi":
            ub = (2 * h * sq + 2 * k * sq - 2 * c1 * sq + 5 * mm
                  - 2 * (4 * mm ** 2 + 2 * mm ** 1.5 * h + 2 * mm ** 1.5 * k - 2 * mm ** 1.5 * c1) ** 0.5)
        elif trans == "anscombe":
            v = (2 / 3) * mm ** (1 / 6) * (h + k - c1) + mm ** (2 / 3)
            ub = np.where(v < 0, 0.0, v ** 1.5)
        elif trans == "anscombe2nd":
            v = (2 / 3) * mm ** (1 / 6) * (h + k - c1) + (mm ** (2 / 3) - mm ** (1 / 3) / 9)
            ub = np.where(v < 0, 0.0, v ** 1.5)
        elif trans == "pearsonNegBin":
            ub = np.sqrt(mm + a * mm * mm) * (h + k - c1) + mm
        else:
            ub = h - cs
        ub = np.where(np.isnan(ub) | (ub < 0), 0.0, ub)
    return Detection(t, ub, alarm, {"cusum": cs, "m": np.array(mm)})


def fixed(counts: Any, *, range: Any = None, threshold: float = 1) -> Detection:
    """CIDARS fixed threshold: alarm iff count >= threshold (upperbound = threshold)."""
    y = _as2d(counts)
    t = _range(range, 1, y.shape[1], 1)
    x = y[:, t - 1]
    return Detection(t, np.full(x.shape, float(threshold)), (x >= threshold).astype(float))


def cidars_mpm(counts: Any, *, range: Any = None, percentile: float = 0.5, years: int = 3,
               half_window: int = 2, freq: int = 52, strict: bool = True,
               interpolation: str = "linear") -> Detection:
    """CIDARS moving percentile method: upperbound = Px of the counts at t - j*freq + d, j = 1..years,
    d = -half_window..half_window (e.g. 3 years x 5 periods = 15 values); alarm y > Px (``strict``) or
    y >= Px. Percentile interpolation as ``numpy.quantile`` (default ``linear`` = R type 7)."""
    y = _as2d(counts)
    n = y.shape[1]
    if not 0 < percentile < 1:
        raise ParameterError("control.percentile", "must be in (0, 1)")
    first = years * freq + half_window + 1
    t = _range(range, first, n, first)
    offs = np.array([-j * freq + d for j in np.arange(1, years + 1) for d in np.arange(-half_window, half_window + 1)])
    idx = (t[:, None] + offs[None, :]) - 1
    if idx.max() >= n:
        raise ParameterError("control.range", "the window reaches past the end of the series")
    ref = y[:, idx]
    ub = np.quantile(ref, percentile, axis=2, method=interpolation)  # type: ignore[call-overload]
    x = y[:, t - 1]
    alarm = (x > ub) if strict else (x >= ub)
    return Detection(t, ub, alarm.astype(float))


def farrington_flexible(counts: Any, *, dates: Any = None, freq: int = 52, **control: Any) -> Detection:
    """R ``farringtonFlexible`` (see :mod:`cityops.health.farrington`); ``range`` as [first_t, last_t]."""
    y = _as2d(counts)
    rng = control.pop("range", None)
    if rng is not None:
        control["range"] = _range(rng, 1, y.shape[1], 1)
    try:
        r = farrington.farrington_flexible(y, freq=freq, dates=dates, **control)
    except ValueError as e:
        if isinstance(e, ParameterError):
            raise
        name = str(e).split(" ", 1)[0].rstrip(":")
        field_name = "control." + (name if name in farrington.FF_DEFAULTS else "range")
        raise ParameterError(field_name, str(e)) from e
    return Detection(r.t, r.upperbound, r.alarm,
                     {"expected": r.expected, "phi": r.phi, "score": r.score, "pvalue": r.pvalue,
                      "trend": r.trend, "trend_coef": r.trend_coef})


EARS_CONTROL = {"range", "baseline", "minSigma", "alpha"}
CUSUM_CONTROL = {"range", "k", "h", "m", "trans", "alpha"}
METHODS = ("earsC1", "earsC2", "earsC3", "earsC3_textbook", "cusum", "farringtonFlexible", "cidars_mpm", "fixed")


def run(method: str, counts: Any, **params: Any) -> Detection:
    """Dispatch ``method`` (API names) with R-named ``params``; ``freq``, ``dates``, ``start`` describe the
    series. Unknown parameters raise :class:`ParameterError` naming ``control.<name>``."""
    freq = int(params.pop("freq", 52))
    dates = params.pop("dates", None)
    start = params.pop("start", None)
    if method.startswith("earsC"):
        _check(params, EARS_CONTROL)
        return ears(counts, method[4:], **params)
    if method == "cusum":
        _check(params, CUSUM_CONTROL)
        return cusum(counts, freq=freq, start=start, **params)
    if method == "farringtonFlexible":
        _check(params, set(farrington.FF_DEFAULTS))
        return farrington_flexible(counts, dates=dates, freq=freq, **params)
    if method == "cidars_mpm":
        _check(params, {"range", "percentile", "years", "half_window", "strict", "interpolation"})
        return cidars_mpm(counts, freq=freq, **params)
    if method == "fixed":
        _check(params, {"range", "threshold"})
        return fixed(counts, **params)
    raise ParameterError("method", f"unknown method {method!r}; one of {', '.join(METHODS)}")
