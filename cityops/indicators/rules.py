"""Pure rule evaluation for city vital signs (no database): window statistics over interval
slots, graded levels, the alarm state machine (minimum duration, hysteresis, lift delay),
silence, seasonal baselines and composites. Vectorized with NumPy over the series of a batch.

Definitions (docs/indicators.md, "Rules"):

* **Slots.** An indicator has an interval ``I``. A reading at time ``ts`` belongs to slot
  ``k = ceil(ts / I)``, the interval ``(k·I − I, k·I]`` that ends at or after it (a rainfall
  reading is the amount fallen in the interval ending at its time). A slot holds the sum of the
  readings in it for an *amount* indicator (rainfall), the last one for a *gauge* (water level).
* **Window statistic.** A band with window ``W = n·I`` at evaluation slot ``k`` aggregates the
  slots ``k−n+1 .. k`` that hold data (sum, mean, max, min, last, count); ``W = 0`` means the
  reading's own slot. A *rate* band uses ``(x_k − x_{k−n}) / W`` per hour; both slots must hold
  data. A statistic without data is not evaluated (the state does not change).
* **Grade.** The raise level ``L`` is the highest band whose condition (statistic ``op`` value)
  holds; the clear level ``C`` the highest band whose clear condition (statistic ``op`` clear
  value, default the value) holds; ``C ≥ L``.
* **State machine** (ANSI/ISA-18.2-2016 *Management of Alarm Systems for the Process
  Industries*, §§ on alarm deadband, on-delay and off-delay): a level above the current one is
  taken when ``L`` has stayed above the current level continuously for the band's minimum
  duration (on-delay); the current level is left, down to ``C``, when ``C`` has stayed below it
  for the rule's lift delay (off-delay). The clear value is the deadband. Evaluated at the
  readings' slot ends only.
* **Silence**: a device is quiet for ``q = now − last reading``; band ``b`` holds when
  ``q ≥ N_b · I``.
* **Baseline** (historical limits, Stroup D.F. et al. 1989, "Detection of aberrations in the
  occurrence of notifiable diseases surveillance data", *Statistics in Medicine* 8:323–329;
  DHIS2 predictors with ``annualSampleCount`` → here weekly samples): the expected value of an
  hour is the mean of the same hour of the week in the past ``K`` weeks, the band
  ``expected ± z·sd`` (sample sd, floored at ``min_sd``); the anomaly score is
  ``(x − expected) / sd``.
* **Composite** (DHIS2 validation rules: left side, operator, right side): a level holds in an
  area when every component rule has an open level ≥ its minimum inside the area.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

NONE = -1
LEVELS = ("blue", "yellow", "orange", "red")
RANK = {name: i for i, name in enumerate(LEVELS)}
AGGREGATES = ("sum", "mean", "max", "min", "last", "count")
OPS = (">=", ">", "<=", "<")
UNSET = np.int64(-1)


@dataclass(frozen=True)
class Band:
    """One grade of a threshold or rate rule. ``value`` / ``clear`` are numbers or
    ``"param:<name>"`` (a device parameter, e.g. a river's warning line)."""

    rank: int
    stat: str  # an aggregate, or "rate"
    window_slots: int  # n (>= 1 for aggregates: 1 = the reading's slot; >= 1 for rates)
    op: str
    value: float | str
    clear: float | str | None = None
    min_duration_ms: int = 0


@dataclass(frozen=True)
class SlotRule:
    """A rule evaluated at reading times over slots (kinds ``threshold`` and ``rate``)."""

    code: str
    interval_ms: int
    bands: tuple[Band, ...]
    lift_after_ms: int = 0

    @property
    def span_slots(self) -> int:
        """Slots a series must keep for this rule (the longest window, +1 for rates)."""
        return max(b.window_slots + (1 if b.stat == "rate" else 0) for b in self.bands)

    def min_duration(self) -> np.ndarray:
        d = np.zeros(len(LEVELS), dtype=np.int64)
        for b in self.bands:
            d[b.rank] = max(d[b.rank], b.min_duration_ms)
        return d


def slot_of(ts_ms: np.ndarray, interval_ms: int) -> np.ndarray:
    """``ceil(ts / I)``: the slot whose interval ends at or after each reading."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    return -((-ts) // np.int64(interval_ms))


# ------------------------------------------------------------------------------------ ring buffers

@dataclass
class Ring:
    """Slot values of many series: row r keeps the last ``size`` slots (cell ``k % size`` holds
    slot ``slots[r, k % size]``; -1 empty). Slot numbers are int32 (a 60-s slot number since 1970 is
    ~29 million; 1-s slots would still fit until 2038)."""

    size: int
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    slots: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    @classmethod
    def empty(cls, rows: int, size: int) -> Ring:
        return cls(size, np.zeros((rows, size), dtype=np.float64), np.full((rows, size), -1, dtype=np.int32))

    def grow(self, rows: int) -> None:
        have = self.values.shape[0]
        if rows <= have:
            return
        extra = rows - have
        self.values = np.vstack([self.values, np.zeros((extra, self.size))])
        self.slots = np.vstack([self.slots, np.full((extra, self.size), -1, dtype=np.int32)])

    def put(self, rows: np.ndarray, k: np.ndarray, v: np.ndarray, amount: bool) -> None:
        """Write values into their slots (rows unique per call): an amount adds to what the slot
        holds (a new slot starts at 0), a gauge replaces it."""
        cell = k % self.size
        same = self.slots[rows, cell] == k
        if amount:
            self.values[rows, cell] = np.where(same, self.values[rows, cell], 0.0) + v
        else:
            self.values[rows, cell] = v
        self.slots[rows, cell] = k

    def window(self, rows: np.ndarray, k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Values and presence of slots ``k-n+1 .. k`` for each row: two (len(rows), n) arrays."""
        want = k[:, None] - np.arange(n, dtype=np.int64)[None, :]
        cell = want % self.size
        present = self.slots[rows[:, None], cell] == want
        vals = np.where(present, self.values[rows[:, None], cell], np.nan)
        return vals, present

    def at(self, rows: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The value of slot ``k`` of each row (NaN when the slot holds no data)."""
        cell = k % self.size
        ok = self.slots[rows, cell] == k
        return np.where(ok, self.values[rows, cell], np.nan)


def window_stat(ring: Ring, rows: np.ndarray, k: np.ndarray, band: Band, interval_ms: int,
                gathered: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The band's statistic at slot ``k`` of each row (NaN: not evaluable). See the module text;
    a rate is per hour: ``(x_k − x_{k−n}) / (n·I in hours)``. ``gathered``: ``ring.window`` of a
    window at least as long (its first n columns are this window's slots)."""
    if band.stat == "rate":
        now = ring.at(rows, k)
        before = ring.at(rows, k - band.window_slots)
        rate: np.ndarray = np.round((now - before) / (band.window_slots * interval_ms / 3_600_000.0), 6)
        return rate
    if gathered is not None and gathered[0].shape[1] >= band.window_slots:
        vals, present = gathered[0][:, :band.window_slots], gathered[1][:, :band.window_slots]
    else:
        vals, present = ring.window(rows, k, band.window_slots)
    have = present.any(axis=1)
    with np.errstate(invalid="ignore", all="ignore"):
        if band.stat == "sum":
            out = np.where(present, vals, 0.0).sum(axis=1)
        elif band.stat == "mean":
            out = np.where(present, vals, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        elif band.stat == "max":
            out = np.where(present, vals, -np.inf).max(axis=1)
        elif band.stat == "min":
            out = np.where(present, vals, np.inf).min(axis=1)
        elif band.stat == "count":
            out = present.sum(axis=1).astype(np.float64)
        elif band.stat == "last":
            first = np.argmax(present, axis=1)  # column 0 is slot k, so the first present is the latest
            out = vals[np.arange(len(rows)), first]
        else:  # pragma: no cover - the catalogue validates stats
            raise ValueError(band.stat)
    # sums of decimal readings in binary floating point drift (0.2 x 250 = 49.99999...): statistics
    # are compared at 1e-6, far below any sensor's resolution
    return np.where(have, np.round(out, 6), np.nan)


def compare(x: np.ndarray, op: str, v: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if op == ">=":
            return x >= v
        if op == ">":
            return x > v
        if op == "<=":
            return x <= v
        if op == "<":
            return x < v
    raise ValueError(op)  # pragma: no cover


def grade(stats: Sequence[np.ndarray], bands: Sequence[Band], values: Sequence[np.ndarray],
          clears: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raise level L, clear level C (both -1 = none) and "evaluable" for each row, from each
    band's statistic and its (per-row) value and clear thresholds."""
    n = len(stats[0]) if stats else 0
    raise_ = np.full(n, NONE, dtype=np.int8)
    clear = np.full(n, NONE, dtype=np.int8)
    evaluable = np.zeros(n, dtype=bool)
    for stat, band, val, clr in zip(stats, bands, values, clears, strict=True):
        ok = ~np.isnan(stat) & ~np.isnan(val)
        evaluable |= ok
        hit = ok & compare(stat, band.op, val)
        held = ok & compare(stat, band.op, clr)
        raise_ = np.where(hit, np.maximum(raise_, band.rank), raise_).astype(np.int8)
        clear = np.where(held | hit, np.maximum(clear, band.rank), clear).astype(np.int8)
    return raise_, np.maximum(clear, raise_).astype(np.int8), evaluable


@dataclass
class State:
    """Alarm state of many subjects: current level, since when a higher level has been pending,
    since when the clear condition has failed (ms; -1 unset)."""

    level: np.ndarray
    pending: np.ndarray
    low: np.ndarray

    @classmethod
    def empty(cls, n: int) -> State:
        return cls(np.full(n, NONE, dtype=np.int8), np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))

    def grow(self, n: int) -> None:
        have = len(self.level)
        if n > have:
            extra = n - have
            self.level = np.concatenate([self.level, np.full(extra, NONE, dtype=np.int8)])
            self.pending = np.concatenate([self.pending, np.full(extra, -1, dtype=np.int64)])
            self.low = np.concatenate([self.low, np.full(extra, -1, dtype=np.int64)])


def step(level: np.ndarray, pending: np.ndarray, low: np.ndarray, raise_: np.ndarray, clear: np.ndarray,
         t: np.ndarray, min_duration: np.ndarray, lift_after_ms: int,
         evaluable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One evaluation of the alarm state machine (see the module text) for each subject at time
    ``t`` (ms). ``min_duration[rank]``: on-delay of each level; ``lift_after_ms``: off-delay.
    Subjects that are not ``evaluable`` keep their state. Returns (level, pending, low)."""
    t = np.asarray(t, dtype=np.int64)
    clear = np.maximum(clear, raise_)
    up = raise_ > level
    pend = np.where(up, np.where(pending < 0, t, pending), -1)
    need = min_duration[np.clip(raise_, 0, len(min_duration) - 1)]
    rise = up & (t - pend >= need)
    new = np.where(rise, raise_, level).astype(np.int8)
    pend = np.where(rise, -1, pend)
    down = (clear < new) & ~rise
    lo = np.where(down, np.where(low < 0, t, low), -1)
    fall = down & (t - lo >= lift_after_ms)
    new = np.where(fall, clear, new).astype(np.int8)
    lo = np.where(fall, -1, lo)
    if evaluable is not None:
        new = np.where(evaluable, new, level).astype(np.int8)
        pend = np.where(evaluable, pend, pending)
        lo = np.where(evaluable, lo, low)
    return new, pend, lo


# ------------------------------------------------------------------------------------ other kinds

def silence_levels(now_ms: int, last_ts: np.ndarray, interval_ms: np.ndarray,
                   bands: Sequence[tuple[int, int]]) -> np.ndarray:
    """Level of each device quiet since ``last_ts`` (ms; -1 never heard: quiet forever);
    ``bands``: (rank, intervals N) — band holds when quiet ≥ N·I."""
    quiet = np.where(last_ts < 0, np.iinfo(np.int64).max // 2, now_ms - last_ts)
    out = np.full(len(last_ts), NONE, dtype=np.int8)
    for rank, n in bands:
        out = np.where(quiet >= np.int64(n) * interval_ms, np.maximum(out, rank), out).astype(np.int8)
    return out


def baseline(history: np.ndarray, min_sd: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and sd per subject from ``history`` (subjects × K past same-hour-of-week
    values, NaN missing): the mean and the sample sd (ddof 1) of the values present, sd floored at
    ``min_sd``; NaN when fewer than two values are present (Stroup et al. 1989)."""
    h = np.asarray(history, dtype=np.float64)
    n = (~np.isnan(h)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(h, axis=1) / n
        dev = np.where(np.isnan(h), 0.0, h - mean[:, None])
        sd = np.sqrt((dev ** 2).sum(axis=1) / (n - 1))
    sd = np.maximum(sd, min_sd)
    ok = n >= 2
    return np.where(ok, mean, np.nan), np.where(ok, sd, np.nan)


def anomaly_score(x: np.ndarray, expected: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``(x − expected) / sd`` (NaN where undefined; +inf/-inf where sd is 0 and x differs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.asarray(x, dtype=np.float64) - expected) / sd
    return np.where(np.isnan(expected) | np.isnan(np.asarray(x, dtype=np.float64)), np.nan, z)


def score_levels(score: np.ndarray, bands: Sequence[tuple[int, float]]) -> np.ndarray:
    """Level from an anomaly score: highest band (rank, minimum score) whose minimum is reached."""
    out = np.full(len(score), NONE, dtype=np.int8)
    for rank, z in bands:
        with np.errstate(invalid="ignore"):
            out = np.where(score >= z, np.maximum(out, rank), out).astype(np.int8)
    return out


def composite_holds(component_levels: Sequence[np.ndarray], minimums: Sequence[int], mode: str = "all") -> np.ndarray:
    """Per area: does each component (its highest open level in the area, -1 none) reach its
    minimum? ``mode`` "all" (AND) or "any" (OR)."""
    hits = [np.asarray(c) >= m for c, m in zip(component_levels, minimums, strict=True)]
    if not hits:
        return np.zeros(0, dtype=bool)
    acc = hits[0].copy()
    for h in hits[1:]:
        acc = (acc & h) if mode == "all" else (acc | h)
    return acc


def hour_of_week(ms: int, tz_offset_ms: int = 8 * 3_600_000) -> int:
    """0..167: Monday 00:00 local (Asia/Shanghai, UTC+8, no DST) is 0."""
    local = (ms + tz_offset_ms) // 3_600_000
    # 1970-01-01 was a Thursday: hour 0 of epoch is Thursday 00:00 (Monday-based hour 72)
    return int((local + 72) % 168)


def same_hour_past_weeks(hour_start_ms: int, weeks: int) -> list[int]:
    """Bucket starts of the same hour of the week in the ``weeks`` preceding weeks."""
    return [hour_start_ms - w * 7 * 86_400_000 for w in range(1, weeks + 1)]


def isfinite(v: float) -> bool:
    return not (math.isnan(v) or math.isinf(v))


__all__ = ["Band", "SlotRule", "Ring", "State", "slot_of", "window_stat", "grade", "step",
           "silence_levels", "baseline", "anomaly_score", "score_levels", "composite_holds", "hour_of_week",
           "same_hour_past_weeks", "LEVELS", "RANK", "NONE"]
