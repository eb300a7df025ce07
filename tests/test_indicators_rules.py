"""Each rule type on hand-made series gives exactly the levels and times its definition implies
(docs/indicators.md "Rules"; cityops.indicators.rules). Expected values are derived here by hand
from the definitions, not taken from the code's output. No database."""

from __future__ import annotations

import numpy as np
import pytest

from cityops.indicators import catalogue as catalog
from cityops.indicators import rules as R
from cityops.indicators.engine import Engine, SeriesInfo

MIN = 60_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC, a whole minute (and hour)
GRID = "310117001001001"
BLUE, YELLOW, ORANGE, RED = 0, 1, 2, 3


def _engine() -> Engine:
    return Engine(catalog.build(catalog.default_doc()))


def _series(eng: Engine, sid: int, indicator: str, params: dict | None = None, device: str | None = None) -> None:
    eng.add_series([SeriesInfo(sid, device or f"D{sid}", indicator, GRID, 121.2, 31.0, params or {}, 0)])


def _feed(eng: Engine, sid: int, minutes: list[int], values: list[float], step_ms: int = MIN):
    n = len(minutes)
    ch = eng.process(np.full(n, sid, dtype=np.int64), T0 + np.asarray(minutes, dtype=np.int64) * step_ms,
                     np.asarray(values, dtype=np.float64), np.full(n, np.nan))
    return [(c.rule, c.old, c.new, (c.t_ms - T0) // step_ms) for c in ch]


def test_rainstorm_table_raise_lower_and_lift():
    """2 mm/min for 60 min, then dry readings. 3 h sum at minute m (m <= 60) is 2m: orange when 2m >= 50
    (m = 25), red when 2m >= 100 (m = 50); the 12 h and 6 h sums are the same then, so blue and yellow
    hold too but the highest band is taken. After the rain the 3 h sum is 2(240 - m) for 181 <= m <= 240:
    below 100 from m = 191 (red's clear fails; clear level = yellow since the 6 h sum is still 120 and the
    3 h sum falls below 50 at 216) -> lowered after 30 min at 221 to the clear level then: yellow. The 6 h
    sum is 2(420 - m) for 361..420: below 50 from 396 -> blue at 426. The 12 h sum 2(780 - m): below 50
    from 756 -> lifted at 786."""
    eng = _engine()
    _series(eng, 1, "rainfall")
    minutes = list(range(1, 800))
    values = [2.0 if m <= 60 else 0.0 for m in minutes]
    got = [c for c in _feed(eng, 1, minutes, values) if c[0] == "rainstorm"]
    assert got == [("rainstorm", -1, ORANGE, 25), ("rainstorm", ORANGE, RED, 50), ("rainstorm", RED, YELLOW, 221),
                   ("rainstorm", YELLOW, BLUE, 426), ("rainstorm", BLUE, -1, 786)]


def test_rainstorm_blue_and_yellow_from_slow_rain():
    """0.2 mm/min: the 6 h sum is 0.2m (m <= 360) -> 50 at m = 250 (the 12 h sum is 50 too: yellow is
    the highest band); 0.1 mm/min: the 12 h sum reaches 50 at m = 500, the 6 h sum never (36) -> blue."""
    eng = _engine()
    _series(eng, 1, "rainfall")
    _series(eng, 2, "rainfall")
    assert _feed(eng, 1, list(range(1, 300)), [0.2] * 299) == [("rainstorm", -1, YELLOW, 250)]
    assert _feed(eng, 2, list(range(1, 560)), [0.1] * 559) == [("rainstorm", -1, BLUE, 500)]


def test_rainstorm_in_batches_gives_the_same_times():
    """The same series sent in batches of 7 readings gives the same changes as one batch."""
    eng = _engine()
    _series(eng, 1, "rainfall")
    minutes = list(range(1, 80))
    out = []
    for i in range(0, len(minutes), 7):
        out += _feed(eng, 1, minutes[i:i + 7], [2.0] * len(minutes[i:i + 7]))
    assert out == [("rainstorm", -1, ORANGE, 25), ("rainstorm", ORANGE, RED, 50)]


def test_min_duration_and_hysteresis_do_not_flap():
    """Ponding blue: >= 10 cm, clear 8 cm, on-delay 120 s, off-delay 600 s; readings every minute.
    9/11/9/11 ... never stays above 10 for 2 minutes: nothing. 11, 11, 11 from minute 20: pending
    since 20, raised at 22 (120 s). Then 9/11 oscillation: 9 >= clear 8, the level holds — no
    lift, no second raise. Then 5 from minute 40: clear fails from 40, lifted at 50 (600 s)."""
    eng = _engine()
    _series(eng, 5, "ponding_depth")
    osc = [9.0 if m % 2 else 11.0 for m in range(0, 20)]
    assert _feed(eng, 5, list(range(0, 20)), osc) == []
    steady = [11.0, 11.0, 11.0]
    assert _feed(eng, 5, [20, 21, 22], steady) == [("ponding", -1, BLUE, 22)]
    osc2 = [9.0 if m % 2 else 11.0 for m in range(23, 40)]
    assert _feed(eng, 5, list(range(23, 40)), osc2) == []
    assert _feed(eng, 5, list(range(40, 60)), [5.0] * 20) == [("ponding", BLUE, -1, 50)]


def test_rate_of_change():
    """River rise: (x_k - x_{k-12}) per hour over 12 slots of 5 min; blue >= 0.3 (clear 0.2), yellow
    >= 0.5; off-delay 1800 s (6 slots). Rising 0.03 per slot from slot 0: the rate is 0.36 from slot 12
    (the first with a value 12 slots earlier) -> blue at 12. Flat from slot 40: the rate at k is
    0.03·(52 - k) for 41..52: below 0.2 from k = 46 -> lifted at 52. (river_level, the warning line
    rule, stays quiet: the station has no warning line.)"""
    eng = _engine()
    _series(eng, 7, "water_level")
    slots = list(range(0, 70))
    vals = [2.0 + 0.03 * min(k, 40) for k in slots]
    got = _feed(eng, 7, slots, vals, step_ms=5 * MIN)
    assert got == [("river_rise", -1, BLUE, 12), ("river_rise", BLUE, -1, 52)]


def test_threshold_from_device_parameter():
    """river_level: yellow at the station's warning line (3.6, clear 3.5), red at its guarantee line
    (4.4); off-delay 1800 s = 6 slots. 3.5, 3.6 (yellow at slot 1), 4.5 (red at 2), then 3.55 from slot 3:
    red's clear (4.4) fails, the clear level is yellow (3.55 >= 3.5) -> yellow at 3 + 6 = 9."""
    eng = _engine()
    _series(eng, 8, "water_level", {"warning_line": 3.6, "warning_line_clear": 3.5, "guarantee_line": 4.4})
    got = [c for c in _feed(eng, 8, list(range(0, 12)), [3.5, 3.6, 4.5] + [3.55] * 9, step_ms=5 * MIN)
           if c[0] == "river_level"]
    assert got == [("river_level", -1, YELLOW, 1), ("river_level", YELLOW, RED, 2), ("river_level", RED, YELLOW, 9)]


def test_late_reading_re_evaluates_its_window():
    """2 mm at minutes 1..45 except minute 10, then dry: the 3 h sum at m (10 <= m <= 45) is 2(m - 1):
    orange at 26, never red (max 88). The minute-10 reading arrives late with 20 mm: the sums from minute
    10 on grow by 20: 2(m - 1) + 20 >= 100 at m = 41 -> red, decided at minute 41."""
    eng = _engine()
    _series(eng, 9, "rainfall")
    minutes = [m for m in range(1, 60) if m != 10]
    got = _feed(eng, 9, minutes, [2.0 if m <= 45 else 0.0 for m in minutes])
    assert got == [("rainstorm", -1, ORANGE, 26)]
    assert _feed(eng, 9, [10], [20.0]) == [("rainstorm", ORANGE, RED, 41)]


def test_correction_replaces_an_amount():
    """A correction of an amount replaces its old contribution: minute 30's 2 mm corrected to 52 mm puts
    the 3 h sum at 30 to 2·30 - 2 + 52 = 110 -> red, decided at 30 on replay."""
    eng = _engine()
    _series(eng, 10, "rainfall")
    assert _feed(eng, 10, list(range(1, 35)), [2.0] * 34) == [("rainstorm", -1, ORANGE, 25)]
    ch = eng.process(np.array([10]), np.array([T0 + 30 * MIN]), np.array([52.0]), np.array([2.0]))
    assert [(c.old, c.new, (c.t_ms - T0) // MIN) for c in ch] == [(ORANGE, RED, 30)]


def test_silence_bands():
    """Quiet for N intervals: blue at 5 x 60 s, yellow at 30 x 60 s after the last reading."""
    eng = _engine()
    _series(eng, 11, "rainfall", device="RG-S")
    _feed(eng, 11, [0], [0.0])
    assert [c.new for c in eng.silence(T0 + 4 * MIN)] == []
    assert [(c.rule, c.new) for c in eng.silence(T0 + 5 * MIN)] == [("flood_sensor_silence", BLUE)]
    assert [c.new for c in eng.silence(T0 + 29 * MIN)] == []
    assert [(c.rule, c.new) for c in eng.silence(T0 + 30 * MIN)] == [("flood_sensor_silence", YELLOW)]
    _feed(eng, 11, [31], [0.0])
    assert [(c.rule, c.new) for c in eng.silence(T0 + 32 * MIN)] == [("flood_sensor_silence", -1)]


def test_baseline_historical_limits():
    """Past same-hour values 10, 12, 14, 16: mean 13, sample sd sqrt(20/3) = 2.582; x = 21 scores
    8 / 2.582 = 3.098 (blue >= 3, not yellow >= 5); x = 13 scores 0; fewer than 2 values: undefined."""
    exp, sd = R.baseline(np.array([[10.0, 12, 14, 16], [10.0, 12, 14, 16], [np.nan, 3.0, np.nan, np.nan]]))
    assert exp[0] == pytest.approx(13.0) and sd[0] == pytest.approx((20 / 3) ** 0.5)
    assert np.isnan(exp[2]) and np.isnan(sd[2])
    z = R.anomaly_score(np.array([21.0, 13.0, 5.0]), exp, sd)
    assert z[0] == pytest.approx(8 / (20 / 3) ** 0.5) and z[1] == 0.0 and np.isnan(z[2])
    assert R.score_levels(z, [(0, 3.0), (1, 5.0)]).tolist() == [BLUE, -1, -1]
    # the sd floor: a flat history with min_sd 0.5
    exp2, sd2 = R.baseline(np.array([[2.0, 2.0, 2.0]]), min_sd=0.5)
    assert sd2[0] == 0.5 and R.anomaly_score(np.array([4.0]), exp2, sd2)[0] == pytest.approx(4.0)


def test_hour_of_week_and_samples():
    """Monday 2026-01-05 00:00 Shanghai = 2026-01-04 16:00 UTC is hour 0 of the week."""
    monday = 1_767_542_400_000  # 2026-01-04T16:00:00Z
    assert R.hour_of_week(monday) == 0
    assert R.hour_of_week(monday + 3_600_000 * 167) == 167
    assert R.same_hour_past_weeks(monday, 2) == [monday - 7 * 86_400_000, monday - 14 * 86_400_000]


def test_composite_all_of():
    """AND: each component's open level reaches its minimum; OR: any does."""
    rain = np.array([2, 3, 1, -1])
    river = np.array([1, -1, 1, 1])
    assert composite_all(rain, river) == [True, False, False, False]
    assert R.composite_holds([rain, river], [2, 1], "any").tolist() == [True, True, True, True]


def composite_all(a, b):
    return R.composite_holds([a, b], [2, 1], "all").tolist()


def test_step_on_delay_uses_the_level_reached():
    """On-delay of the level reached: red needs 0 s, so a jump straight to red is immediate even when
    blue needs 120 s."""
    d = np.array([120_000, 120_000, 0, 0], dtype=np.int64)
    lv, pd, lo = R.step(np.array([-1], dtype=np.int8), np.array([-1]), np.array([-1]), np.array([3], dtype=np.int8),
                        np.array([3], dtype=np.int8), np.array([1000]), d, 600_000)
    assert lv.tolist() == [3] and pd.tolist() == [-1]
    lv, pd, lo = R.step(np.array([-1], dtype=np.int8), np.array([-1]), np.array([-1]), np.array([0], dtype=np.int8),
                        np.array([0], dtype=np.int8), np.array([1000]), d, 600_000)
    assert lv.tolist() == [-1] and pd.tolist() == [1000]


def test_catalogue_validation_names_every_problem():
    doc = catalog.default_doc()
    doc["rules"][0]["bands"][0]["level"] = "purple"
    doc["rules"][0]["bands"][1]["window_s"] = 61
    doc["rules"][1]["indicator"] = "nope"
    doc["rules"][-1]["all_of"][0]["rule"] = "missing"
    with pytest.raises(catalog.InvalidInput) as ei:
        catalog.build(doc)
    locs = {tuple(p.loc) for p in ei.value.problems}
    assert ("body", "rules", 0, "bands", 0, "level") in locs
    assert ("body", "rules", 0, "bands", 1, "window_s") in locs
    assert ("body", "rules", 1, "indicator") in locs
    assert ("body", "rules", len(doc["rules"]) - 1, "all_of", 0, "rule") in locs
