"""Oracle tests: every method/configuration in ../shared/oracles reproduces R surveillance 1.20.3
(alarms identical incl. NA, upper bounds 1e-9 relative for EARS/CUSUM, 1e-6 for farringtonFlexible)
and SaTScan 9.4.4 (most likely cluster: locations, window, observed; LLR to the printed 6 decimals)."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pytest

from cityops.health import detection as D
from cityops.health import scan as S
from tests.health_oracles import SAT, SURV, load_output, load_series, output_files, satscan_case

pytestmark = pytest.mark.skipif(not SURV.exists(), reason="oracles not present")

FILES = output_files()


def _run_config(config: str, y: np.ndarray, dates: Any, t: np.ndarray) -> D.Detection:
    if config.startswith("ears"):
        params: dict[str, Any] = {"minSigma": 0.5} if "minSigma" in config else {}
        return D.run(config[:6], y, **params)
    if config == "cusum":
        return D.run("cusum", y, range=[int(t[0]), int(t[-1])])
    assert config.startswith("ff_default")
    ctl = dict(b=5, w=3, reweight=True, weightsThreshold=2.58, alpha=0.05, trend=True, pThresholdTrend=0.05,
               limit54=(5, 4), powertrans="2/3", populationOffset=False, noPeriods=1,
               pastWeeksNotIncluded=None, thresholdMethod="delta", range=None)
    return D.run("farringtonFlexible", y, dates=dates if config.endswith("_dates") else None, **ctl)


def _same_na(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(np.isnan(a), np.isnan(b))


def _close(mine: np.ndarray, ref: np.ndarray, rel: float, abs_: float = 0.0) -> None:
    _same_na(mine, ref)
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(mine[ok], ref[ok], rtol=rel, atol=abs_)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_surveillance_oracle(path: Any) -> None:
    o = load_output(path)
    y, dates, _ = load_series(o["dataset"])
    r = _run_config(o["config"], y, dates, o["t"].astype(int))
    assert np.array_equal(r.t, o["t"].astype(int))
    np.testing.assert_array_equal(np.nan_to_num(r.alarm[0], nan=-1), np.nan_to_num(o["alarm"], nan=-1))
    ff = o["config"].startswith("ff")
    _close(r.upperbound[0], o["upperbound"], 1e-6 if ff else 1e-9)
    # alarm rules as stated in the oracle README
    ub, yy = o["upperbound"], o["observed"]
    ok = ~np.isnan(ub)
    if o["config"] == "cusum":
        _close(r.extras["cusum"][0], o["cusum"], 1e-9)
        np.testing.assert_allclose(r.extras["m"][0], o["m"], rtol=1e-15)
        assert np.array_equal(o["alarm"][ok] == 1, yy[ok] >= ub[ok])
    else:
        assert np.array_equal(o["alarm"][ok] == 1, yy[ok] > ub[ok])
    if ff:
        for col in ("expected", "phi", "pvalue", "trend_coef"):
            _close(r.extras[col][0], o[col], 1e-6)
        _close(r.extras["score"][0], o["score"], 1e-6, 1e-9)
        _close(r.extras["trend"][0], o["trend"], 0)


def _recorded(name: str) -> np.ndarray:
    rows = list(csv.DictReader(open(SURV / "epysurv_recorded" / f"{name}_pred.csv")))
    return np.array([int(r["alarm"]) for r in rows])


@pytest.mark.parametrize("algo", ["EarsC1", "EarsC2", "EarsC3", "Cusum", "FarringtonFlexible"])
def test_epysurv_recorded_alarms(algo: str) -> None:
    """Second, independent oracle: the alarms epysurv recorded on its test part (t 366..470)."""
    y, dates, _ = load_series("salmonella_epysurv")
    rng = [366, 470]
    if algo.startswith("Ears"):
        r = D.run("ears" + algo[-2:], y, range=rng, alpha=0.001)
    elif algo == "Cusum":
        r = D.run("cusum", y, range=rng)
    else:
        r = D.run("farringtonFlexible", y, dates=dates, range=rng, b=3, w=3, alpha=0.01,
                  weightsThreshold=2.58, pastWeeksNotIncluded=26)
    np.testing.assert_array_equal(r.alarm[0], _recorded(algo))


def test_c3_r_variant_semantics_and_textbook() -> None:
    """R's C3 alarms iff the two lagged terms exceed z and y(t) > 0; the textbook C3 is a different rule
    and (on the epysurv series) flags outbreak runs earlier."""
    y, _, _ = load_series("salmonella_epysurv")
    r = D.run("earsC3", y)
    tb = D.run("earsC3_textbook", y)
    z = 1.959963984540054
    yt = y[r.t - 1]
    lag = r.extras["c3"][0]  # full textbook sum; reconstruct lag part independently below
    assert r.alarm.shape == tb.alarm.shape
    # independent recomputation of R's rule with plain Python
    B = 7
    sd = lambda v: float(np.std(v, ddof=1))  # noqa: E731
    for i, t in enumerate(r.t):
        def c2(j: int) -> float:
            ref = y[j - 1 - B - 2: j - 1 - 2]
            return (y[j - 1] - ref.mean()) / sd(ref)
        L = max(0.0, c2(t - 2) - 1) + max(0.0, c2(t - 1) - 1)
        assert (r.alarm[0, i] == 1) == (L > z and yt[i] > 0)
        assert (tb.alarm[0, i] == 1) == (L + max(0.0, c2(t) - 1) >= z)
    assert np.isfinite(lag).all()
    assert (tb.alarm == 1).sum() != (r.alarm == 1).sum()


def test_ears_cusum_independent_loops() -> None:
    """EARS C1/C2 and CUSUM by a plain loop (statistics module) agree with the vectorised code."""
    import statistics

    y, _, _ = load_series("salmonella_agona")
    for method, lo in (("C1", 1), ("C2", 3)):
        r = D.ears(y, method)
        for i, t in enumerate(r.t):
            ref = [float(v) for v in y[t - 1 - lo - 6: t - lo]]
            u = statistics.fmean(ref) + 3.090232306167813 * statistics.stdev(ref)
            assert abs(r.upperbound[0, i] - u) <= 1e-12 * u
    c = D.cusum(y, range=[209, 312])
    m = statistics.fmean(float(v) for v in y[:208])
    s = 0.0
    for i, t in enumerate(range(209, 313)):
        ub = max(0.0, float(np.ceil(np.sqrt(m) * (2.26 + 1.04 - s) + m)))
        s = max(0.0, s + ((y[t - 1] - m) / np.sqrt(m) - 1.04))
        assert c.upperbound[0, i] == ub and (c.alarm[0, i] == 1) == (s >= 2.26)


def test_sparse_na_semantics() -> None:
    """Flat zero baselines: C1/C2 bound = mean (a count above it alarms); R's C3 gives NA (0/0);
    CUSUM with m = 0 gives NA cusum/alarm and bound 0 as R does."""
    y = np.zeros((1, 40))
    y[0, 20] = 2
    c1 = D.run("earsC1", y)
    i = int(np.flatnonzero(c1.t == 21)[0])
    assert c1.upperbound[0, i] == 0 and c1.alarm[0, i] == 1
    c3 = D.run("earsC3", y)
    assert np.isnan(c3.upperbound[0, 0]) and np.isnan(c3.alarm[0, 0])
    cs = D.run("cusum", y, range=[10, 40])
    assert np.isnan(cs.alarm[0, 0]) and (cs.upperbound[0] == 0).all()


def test_farrington_glm_against_scipy_optimiser() -> None:
    """The IRLS fit (with prior weights) is the maximiser of the weighted Poisson likelihood: an
    independent optimiser finds the same coefficients."""
    from scipy.optimize import minimize

    from cityops.health import glm

    rng = np.random.default_rng(3)
    x = np.arange(35.0) - 17
    yv = rng.poisson(np.exp(1.0 + 0.02 * x)).astype(float)
    wv = rng.uniform(0.5, 1.5, 35)
    X = np.stack([np.ones(35), x], -1)
    f = glm.fit_poisson(yv[None], X[None], wv[None])

    def nll(b: np.ndarray) -> float:
        eta = X @ b
        return float(-(wv * (yv * eta - np.exp(eta))).sum())

    opt = minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(f.coef[0], opt.x, rtol=1e-6)
    assert f.converged[0]


# ----------------------------------------------------------------------------- SaTScan

@pytest.mark.parametrize("name", ["satscan_test1", "satscan_test3"])
def test_satscan_most_likely_cluster(name: str) -> None:
    if not (SAT / name).exists():
        pytest.skip("no satscan oracle")
    cases, geo, exp = satscan_case(name)
    res = S.scan(cases, geo, study_start=0, study_end=1000, replications=99, seed=1)
    top, want = res.clusters[0], exp["clusters"][0]
    assert top.location_ids == want["location_ids"]
    assert (top.time_start, top.time_end, top.observed) == (want["time_start"], want["time_end"], want["observed"])
    assert round(top.llr, 6) == want["llr"]
    assert round(top.expected, 2) == want["expected"]
    assert abs(top.radius - want["radius"]) < 0.005
    assert (top.centre[0], top.centre[1]) == (want["centre"]["x"], want["centre"]["y"])
    assert 0 < top.p_value <= 1
    if name == "satscan_test1":
        sec, w2 = res.clusters[1], exp["clusters"][1]
        assert sec.location_ids == w2["location_ids"]
        assert (sec.time_start, sec.observed, round(sec.llr, 6)) == (w2["time_start"], w2["observed"], w2["llr"])


def test_scan_llr_independent_bruteforce() -> None:
    """Brute force over every (centre, k nearest by (distance, x, y), window) on satscan_test1 with plain
    Python gives the same maximum."""
    import math

    cases, geo, _ = satscan_case("satscan_test1")
    C = sum(c["count"] for c in cases)
    best = -1.0
    for g in geo:
        order = sorted(geo, key=lambda h: (math.hypot(h["x"] - g["x"], h["y"] - g["y"]), h["x"], h["y"]))
        for k in range(1, len(order) + 1):
            ids = {h["location_id"] for h in order[:k]}
            nz = sum(c["count"] for c in cases if c["location_id"] in ids)
            if nz > C / 2:
                break
            for L in range(1, 501):
                lo = 1000 - L + 1
                nd = sum(c["count"] for c in cases if c["time"] >= lo)
                cc = sum(c["count"] for c in cases if c["time"] >= lo and c["location_id"] in ids)
                mu = nz * nd / C
                if cc >= 2 and cc > mu:
                    llr = cc * math.log(cc / mu) + ((C - cc) * math.log((C - cc) / (C - mu)) if C > cc else 0)
                    best = max(best, llr)
    res = S.scan(cases, geo, study_start=0, study_end=1000, replications=0)
    assert abs(res.clusters[0].llr - best) < 1e-9


# ------------------------------------------------- extra R runs (made here with the same R 4.2.2 +
# surveillance 1.20.3, script tests/data/health_r_extra/run.R): sparse and seasonal series, other
# settings families (nbPlugin, muan, Noufaily noPeriods = 10, "original", powertrans 1/2 without
# reweighting or trend, pastWeeksNotIncluded = 0 with factors), index and date mode, CUSUM m = "glm".

EXTRA = __import__("pathlib").Path(__file__).parent / "data" / "health_r_extra"
FF_EXTRA: dict[str, dict[str, Any]] = {
    "def": {}, "nb": {"thresholdMethod": "nbPlugin"}, "muan": {"thresholdMethod": "muan"},
    "nouf": {"noPeriods": 10, "b": 4, "w": 3, "weightsThreshold": 2.58, "pastWeeksNotIncluded": 26,
             "pThresholdTrend": 1, "alpha": 0.1},
    "orig": {"noPeriods": 1, "weightsThreshold": 1, "pastWeeksNotIncluded": 3, "pThresholdTrend": 0.05,
             "b": 3, "w": 2, "alpha": 0.01},
    "half": {"powertrans": "1/2", "reweight": False, "trend": False},
    "pw0": {"pastWeeksNotIncluded": 0, "noPeriods": 3, "b": 3},
}


def _extra() -> tuple[np.ndarray, list[Any]]:
    import datetime as dt

    Y = np.loadtxt(EXTRA / "y.csv", delimiter=",").T
    return Y, [dt.date(2015, 1, 5) + dt.timedelta(weeks=i) for i in range(Y.shape[1])]


def _rd(name: str) -> np.ndarray:
    return np.genfromtxt(EXTRA / f"{name}.csv", delimiter=",", missing_values="NA", filling_values=np.nan)


def _alarms_equal(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1))


@pytest.mark.parametrize("method", ["C1", "C2", "C3"])
@pytest.mark.parametrize("ms", ["0", "0.5"])
def test_extra_ears(method: str, ms: str) -> None:
    Y, _ = _extra()
    R = _rd(f"ears_{method}_{ms}")
    r = D.run("ears" + method, Y, minSigma=float(ms))
    k = Y.shape[0]
    _close(r.upperbound.T, R[:, :k], 1e-9)
    _alarms_equal(r.alarm.T, R[:, k:])


@pytest.mark.parametrize("m", ["null", "glm"])
def test_extra_cusum(m: str) -> None:
    Y, _ = _extra()
    for j in range(Y.shape[0]):
        R = _rd(f"cusum_{m}_{j + 1}")
        r = D.run("cusum", Y[j], range=[313, 416], m=None if m == "null" else "glm", start=[2015, 2])
        _close(r.upperbound[0], R[:, 0], 1e-9)
        _alarms_equal(r.alarm[0], R[:, 1])
        _close(r.extras["cusum"][0], R[:, 2], 1e-9, 1e-12)


@pytest.mark.parametrize("mode", ["idx", "date"])
@pytest.mark.parametrize("cfg", list(FF_EXTRA))
def test_extra_farrington(cfg: str, mode: str) -> None:
    Y, dates = _extra()
    R = _rd(f"ff_{cfg}_{mode}")
    k = Y.shape[0]
    r = D.run("farringtonFlexible", Y, dates=dates if mode == "date" else None, range=[300, 416], **FF_EXTRA[cfg])
    _close(r.upperbound.T, R[:, :k], 1e-6)
    _alarms_equal(r.alarm.T, R[:, k:2 * k])
    _close(r.extras["expected"].T, R[:, 2 * k:3 * k], 1e-6)
    _close(r.extras["phi"].T, R[:, 3 * k:], 1e-6)
