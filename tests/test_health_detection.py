"""Injected outbreaks are detected by every method within its documented delay; dispatcher and input
checks (the field is named)."""

from __future__ import annotations

import numpy as np
import pytest

from cityops.health import detection as D

N, YEARS, FREQ = 40, 8, 52
ONSET = 7 * 52 + 20  # 1-based week of onset (in the last year)
LENGTH = 4

# method -> (params, documented maximum delay in weeks after onset: 0 = the onset week itself)
DELAYS: dict[str, tuple[dict[str, object], int]] = {
    "earsC1": ({}, 0),
    "earsC2": ({}, 0),
    "earsC3": ({}, 2),  # R's C3 looks at the two previous weeks only
    "earsC3_textbook": ({}, 1),
    "cusum": ({"range": [7 * 52 + 1, YEARS * 52], "m": "glm"}, 1),  # seasonal m for seasonal data
    "farringtonFlexible": ({}, 0),
    "cidars_mpm": ({"percentile": 0.8, "years": 3, "half_window": 2}, 0),
}


def _series(seed: int, inject: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(1, YEARS * FREQ + 1)
    mean = 8.0 * (1 + 0.4 * np.sin(2 * np.pi * t / FREQ))
    y = rng.poisson(np.broadcast_to(mean, (N, t.size))).astype(float)
    if inject:
        y[:, ONSET - 1: ONSET - 1 + LENGTH] += rng.poisson(4 * mean[ONSET - 1], (N, LENGTH))
    return y


@pytest.mark.parametrize("method", list(DELAYS))
def test_injected_outbreak_detected_within_delay(method: str) -> None:
    params, delay = DELAYS[method]
    y = _series(11, True)
    r = D.run(method, y, **params)
    i0 = int(np.flatnonzero(r.t == ONSET)[0])
    detected = (r.alarm[:, i0: i0 + delay + 1] == 1).any(axis=1)
    assert detected.mean() >= 0.95, f"{method}: {detected.mean():.2f}"
    # before the outbreak the same series raise far fewer alarms in a window of the same length
    base = D.run(method, _series(11, False), **params)
    before = (base.alarm[:, i0: i0 + delay + 1] == 1).any(axis=1)
    assert before.mean() <= 0.3


def test_fixed_threshold_single_case() -> None:
    r = D.run("fixed", np.array([[0, 0, 1, 0, 3]]))
    assert r.alarm.tolist() == [[0, 0, 1, 0, 1]]


@pytest.mark.parametrize(("method", "params", "field"), [
    ("earsC1", {"range": [2, 10]}, "control.range"),
    ("earsC1", {"bogus": 1}, "control.bogus"),
    ("earsC1", {"baseline": 2}, "control.baseline"),
    ("cusum", {}, "control.range"),
    ("farringtonFlexible", {"range": [10, 20]}, "control.range"),
    ("farringtonFlexible", {"thresholdMethod": "x"}, "control.thresholdMethod"),
    ("nope", {}, "method"),
])
def test_bad_parameters_name_the_field(method: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(D.ParameterError) as e:
        D.run(method, np.ones((1, 300)), **params)
    assert e.value.field == field


def test_negative_counts_rejected() -> None:
    with pytest.raises(D.ParameterError) as e:
        D.run("earsC1", np.array([[1, 2, -1, 3, 4, 5, 6, 7, 8, 9]]))
    assert e.value.field == "series.observed"


def test_ff_nbplugin_and_noufaily_settings_run() -> None:
    """Other R settings families run and give sane bounds (no oracle in the public set)."""
    y = _series(5, True)[:3]
    for ctl in ({"thresholdMethod": "nbPlugin"}, {"thresholdMethod": "muan"},
                {"noPeriods": 10, "b": 4, "w": 3, "pastWeeksNotIncluded": 26, "pThresholdTrend": 1, "alpha": 0.1}):
        r = D.run("farringtonFlexible", y, **ctl)
        ok = ~np.isnan(r.upperbound)
        assert ok.mean() > 0.9 and (r.upperbound[ok] > 0).all()
        i0 = int(np.flatnonzero(r.t == ONSET)[0])
        assert (r.alarm[:, i0] == 1).all()
