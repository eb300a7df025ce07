"""The rule engine's memory: per indicator a ring of slot values per series, per rule the alarm
state per series, and per (rule, area) the levels of the subjects inside (no database here; the
evaluator feeds it and writes what it decides).

``process`` takes the new effective readings of a batch (arrays) and returns the subject level
changes; in-order readings are evaluated vectorized over the series of the batch, one round per
reading of the same series; a late reading (an earlier slot than the series' latest) is put into
its slot and the series is replayed from that slot (its windows changed), from the state it had
then (a short history of state changes per series is kept for that).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityops.indicators import rules as R
from cityops.indicators.catalogue import AREA_LEVELS, Catalogue, IndicatorDef, RuleDef


@dataclass
class Change:
    """A subject's level changed: ``rule`` at ``t_ms`` from ``old`` to ``new`` (-1 none)."""

    rule: str
    device: str
    area: str
    t_ms: int
    old: int
    new: int
    stat: float | None = None
    readings: list[tuple[int, float]] = field(default_factory=list)
    lon: float | None = None
    lat: float | None = None


@dataclass
class SeriesInfo:
    series_id: int
    device: str
    indicator: str
    grid: str
    lon: float
    lat: float
    params: dict[str, Any]
    since_ms: int  # registration time (silence counts from here when never heard)
    active: bool = True


class RuleTrack:
    """One slot rule over one indicator's series."""

    def __init__(self, rule: RuleDef, track: Track) -> None:
        assert rule.slot is not None
        self.rule = rule
        self.spec = rule.slot
        self.track = track
        self.state = R.State.empty(0)
        self.values: list[np.ndarray] = [np.zeros(0) for _ in self.spec.bands]
        self.clears: list[np.ndarray] = [np.zeros(0) for _ in self.spec.bands]
        self.min_dur = self.spec.min_duration()
        self.hist: dict[int, list[tuple[int, int, int, int]]] = {}
        # running sums of long sum-windows (steady streams: one slot in, one out per reading)
        self.running = [j for j, b in enumerate(self.spec.bands) if b.stat == "sum" and b.window_slots >= 30]
        self.wsum: dict[int, np.ndarray] = {j: np.zeros(0) for j in self.running}
        self.wcnt: dict[int, np.ndarray] = {j: np.zeros(0, dtype=np.int64) for j in self.running}
        self.valid = np.zeros(0, dtype=bool)

    def grow(self, n: int, infos: list[SeriesInfo]) -> None:
        have = len(self.state.level)
        self.state.grow(n)
        for j, b in enumerate(self.spec.bands):
            add_v = np.array([_param(b.value, i.params) for i in infos[have:n]], dtype=np.float64)
            clr = b.clear if b.clear is not None else b.value
            add_c = np.array([_param(clr, i.params) for i in infos[have:n]], dtype=np.float64)
            self.values[j] = np.concatenate([self.values[j], add_v])
            self.clears[j] = np.concatenate([self.clears[j], add_c])
        extra = n - len(self.valid)
        if extra > 0:
            self.valid = np.concatenate([self.valid, np.zeros(extra, dtype=bool)])
            for j in self.running:
                self.wsum[j] = np.concatenate([self.wsum[j], np.zeros(extra)])
                self.wcnt[j] = np.concatenate([self.wcnt[j], np.zeros(extra, dtype=np.int64)])

    def _running_stats(self, rows: np.ndarray, k: np.ndarray, prev: np.ndarray) -> dict[int, np.ndarray]:
        """Window sums of the long sum-bands at ``k`` for in-order readings: slot k enters and slot
        k - n leaves when k = previous head + 1 and the running sum is valid; else a full gather
        (and the running sum restarts from it). Same result as ``window_stat``."""
        ring = self.track.ring
        step1 = self.valid[rows] & (prev >= 0) & (k == prev + 1)
        full = ~step1
        out: dict[int, np.ndarray] = {}
        enter = ring.at(rows, k)
        e_ok = ~np.isnan(enter)
        for j in self.running:
            n = self.spec.bands[j].window_slots
            s, c = self.wsum[j], self.wcnt[j]
            if step1.any():
                r1, k1 = rows[step1], k[step1]
                leave = ring.at(r1, k1 - n)
                l_ok = ~np.isnan(leave)
                s[r1] = s[r1] + np.where(e_ok[step1], enter[step1], 0.0) - np.where(l_ok, leave, 0.0)
                c[r1] = c[r1] + e_ok[step1] - l_ok
            if full.any():
                rf, kf = rows[full], k[full]
                vals, present = ring.window(rf, kf, n)
                s[rf] = np.where(present, vals, 0.0).sum(axis=1)
                c[rf] = present.sum(axis=1)
            out[j] = np.where(c[rows] > 0, np.round(s[rows], 6), np.nan)
        self.valid[rows] = True
        return out

    def evaluate(self, rows: np.ndarray, k: np.ndarray, t: np.ndarray,
                 state: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, prev: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Grade and step at slots ``k`` (times ``t``) of ``rows``: (level, pending, low, stat of the
        highest band reached or the first band, evaluable). ``prev``: the rows' latest slots before
        these readings (in-order evaluation: running sums); None: a replay (full gathers)."""
        ring = self.track.ring
        iv = self.track.ind.interval_ms
        run = self._running_stats(rows, k, prev) if prev is not None and self.running else {}
        n = max((b.window_slots for j, b in enumerate(self.spec.bands) if b.stat != "rate" and j not in run),
                default=0)
        gathered = ring.window(rows, k, n) if n > 1 else None
        stats = [run[j] if j in run else R.window_stat(ring, rows, k, b, iv, gathered)
                 for j, b in enumerate(self.spec.bands)]
        vals = [v[rows] for v in self.values]
        clrs = [c[rows] for c in self.clears]
        L, C, ok = R.grade(stats, self.spec.bands, vals, clrs)
        lv, pd, lo = state if state is not None else (self.state.level[rows], self.state.pending[rows],
                                                     self.state.low[rows])
        new, pend, low = R.step(lv, pd, lo, L, C, t, self.min_dur, self.spec.lift_after_ms, ok)
        idx = np.clip(new, 0, len(self.spec.bands) - 1)
        ranks = np.array([b.rank for b in self.spec.bands])
        pos = np.searchsorted(ranks, idx)
        pos = np.clip(pos, 0, len(stats) - 1)
        stat = np.choose(pos, stats) if len(stats) > 1 else stats[0]
        return new, pend, low, stat, ok

    def record(self, row: int, t: int, level: int, pending: int, low: int, keep_from: int) -> None:
        h = self.hist.setdefault(row, [])
        if h and h[-1][1:] == (level, pending, low):
            return
        h.append((t, level, pending, low))
        if len(h) > 8 and h[1][0] < keep_from:
            while len(h) > 1 and h[1][0] < keep_from:
                h.pop(0)

    def state_before(self, row: int, t: int) -> tuple[int, int, int]:
        h = self.hist.get(row) or []
        i = bisect.bisect_left([x[0] for x in h], t) - 1
        if i < 0:
            return R.NONE, -1, -1
        return h[i][1], h[i][2], h[i][3]

    def truncate(self, row: int, t: int) -> None:
        h = self.hist.get(row)
        if h:
            self.hist[row] = [x for x in h if x[0] < t]


def _param(v: float | str, params: dict[str, Any]) -> float:
    if isinstance(v, str):
        x = params.get(v.split(":", 1)[1])
        try:
            return float(x) if x is not None else float("nan")
        except (TypeError, ValueError):
            return float("nan")
    return float(v)


class Track:
    """The series of one indicator: ring of slot values, latest slot and reading time per series."""

    MARGIN = 60  # slots kept beyond the longest window, so that late readings still land

    def __init__(self, ind: IndicatorDef, rules: list[RuleDef]) -> None:
        self.ind = ind
        span = max([r.slot.span_slots for r in rules if r.slot is not None] or [1])
        self.ring = R.Ring.empty(0, span + self.MARGIN)
        self.rows: dict[int, int] = {}
        self.infos: list[SeriesInfo] = []
        self.head = np.zeros(0, dtype=np.int64)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(0, dtype=bool)
        self.since = np.zeros(0, dtype=np.int64)
        self.rules = [RuleTrack(r, self) for r in rules if r.slot is not None]

    def sync_meta(self) -> None:
        """Active flags and registration times as arrays (silence)."""
        self.active = np.array([i.active for i in self.infos], dtype=bool)
        self.since = np.array([i.since_ms for i in self.infos], dtype=np.int64)

    def add(self, infos: list[SeriesInfo]) -> None:
        new = [i for i in infos if i.series_id not in self.rows]
        for i in new:
            self.rows[i.series_id] = len(self.infos)
            self.infos.append(i)
        n = len(self.infos)
        self.ring.grow(n)
        grow = n - len(self.head)
        if grow > 0:
            self.head = np.concatenate([self.head, np.full(grow, -1, dtype=np.int64)])
            self.last_ts = np.concatenate([self.last_ts, np.full(grow, -1, dtype=np.int64)])
        for rt in self.rules:
            rt.grow(n, self.infos)
        self.sync_meta()

    def area(self, row: int, level: str) -> str:
        return self.infos[row].grid[:AREA_LEVELS[level]]


class Engine:
    """All tracks of a catalogue, and per (rule, area) the levels of the subjects inside."""

    def __init__(self, cat: Catalogue) -> None:
        self.cat = cat
        self.tracks: dict[str, Track] = {code: Track(ind, cat.rules_for(code)) for code, ind in cat.indicators.items()}
        self.where: dict[int, tuple[str, int]] = {}
        # rule -> area -> device -> level (subjects at or above blue)
        self.subjects: dict[str, dict[str, dict[str, int]]] = {r: {} for r in cat.rules}
        self.silence_state: dict[str, R.State] = {}
        self.area_state: dict[str, dict[str, tuple[int, int, int]]] = {}

    # ------------------------------------------------------------------ series

    def add_series(self, infos: list[SeriesInfo]) -> None:
        by: dict[str, list[SeriesInfo]] = {}
        for i in infos:
            if i.indicator in self.tracks and i.series_id not in self.where:
                by.setdefault(i.indicator, []).append(i)
        for code, lst in by.items():
            t = self.tracks[code]
            t.add(lst)
            for i in lst:
                self.where[i.series_id] = (code, t.rows[i.series_id])

    def update_series(self, info: SeriesInfo) -> None:
        """A device moved or changed parameters: its place and thresholds follow."""
        hit = self.where.get(info.series_id)
        if hit is None:
            self.add_series([info])
            return
        t = self.tracks[hit[0]]
        t.infos[hit[1]] = info
        t.sync_meta()
        for rt in t.rules:
            for j, b in enumerate(rt.spec.bands):
                rt.values[j][hit[1]] = _param(b.value, info.params)
                clr = b.clear if b.clear is not None else b.value
                rt.clears[j][hit[1]] = _param(clr, info.params)

    def known(self, series_id: int) -> bool:
        return series_id in self.where

    # ------------------------------------------------------------------ readings

    def load(self, sid: np.ndarray, ts: np.ndarray, val: np.ndarray) -> None:
        """Put effective readings into the rings without evaluating (rebuild after a restart)."""
        self._feed(sid, ts, val, np.full(len(sid), np.nan), evaluate=False)

    def process(self, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, old: np.ndarray) -> list[Change]:
        """Evaluate new effective readings (``old``: the value a correction replaces, else NaN)."""
        return self._feed(sid, ts, val, old, evaluate=True)

    def _feed(self, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, old: np.ndarray, evaluate: bool) -> list[Change]:
        changes: list[Change] = []
        groups: dict[str, list[int]] = {}
        rows = np.empty(len(sid), dtype=np.int64)
        for n, s in enumerate(sid.tolist()):
            w = self.where.get(s)
            if w is None:
                rows[n] = -1
                continue
            groups.setdefault(w[0], []).append(n)
            rows[n] = w[1]
        for code, idx_list in groups.items():
            idx = np.asarray(idx_list, dtype=np.int64)
            changes += self._track(self.tracks[code], rows[idx], ts[idx], val[idx], old[idx], evaluate)
        return changes

    def _track(self, t: Track, rows: np.ndarray, ts: np.ndarray, val: np.ndarray, old: np.ndarray,
               evaluate: bool) -> list[Change]:
        iv = t.ind.interval_ms
        amount = t.ind.kind == "amount"
        order = np.lexsort((ts, rows))
        rows, ts, val, old = rows[order], ts[order], val[order], old[order]
        k = R.slot_of(ts, iv)
        # rank of each reading among the readings of its series in this batch
        start = np.r_[True, rows[1:] != rows[:-1]]
        first = np.maximum.accumulate(np.where(start, np.arange(len(rows)), 0))
        rank = np.arange(len(rows)) - first
        changes: list[Change] = []
        replay: dict[int, int] = {}
        for r in range(int(rank.max()) + 1 if len(rank) else 0):
            sel = np.nonzero(rank == r)[0]
            rr, kk, vv, oo, tt = rows[sel], k[sel], val[sel], old[sel], ts[sel]
            late = kk < t.head[rr]
            fits = (t.head[rr] < 0) | (kk > t.head[rr] - t.ring.size)  # older than the ring: stored only
            corr = ~np.isnan(oo)
            # a correction of an amount replaces its old contribution; a gauge slot takes the value
            put = np.where(corr & amount, vv - oo, vv)
            t.ring.put(rr[fits], kk[fits], put[fits], amount)
            t.last_ts[rr] = np.maximum(t.last_ts[rr], tt)
            late &= fits
            ahead = ~late
            prev = t.head[rr].copy()
            if late.any():
                for rt in t.rules:
                    rt.valid[rr[late]] = False
            t.head[rr[ahead]] = np.maximum(t.head[rr[ahead]], kk[ahead])
            if not evaluate:
                continue
            for row, kl in zip(rr[late].tolist(), kk[late].tolist(), strict=True):
                replay[row] = min(replay.get(row, kl), kl)
            if ahead.any():
                changes += self._evaluate(t, rr[ahead], kk[ahead], prev[ahead])
        for row, kl in replay.items():
            changes += self._replay(t, row, kl)
        return changes

    def _evaluate(self, t: Track, rows: np.ndarray, k: np.ndarray, prev: np.ndarray) -> list[Change]:
        iv = t.ind.interval_ms
        tms = k * iv
        out: list[Change] = []
        keep_from = int(tms.min()) - t.ring.size * iv
        for rt in t.rules:
            st = rt.state
            before = st.level[rows].copy()
            bp, bl = st.pending[rows].copy(), st.low[rows].copy()
            new, pend, low, stat, _ok = rt.evaluate(rows, k, tms, prev=prev)
            st.level[rows], st.pending[rows], st.low[rows] = new, pend, low
            moved = np.nonzero((new != before) | (pend != bp) | (low != bl))[0]
            for j in moved.tolist():
                rt.record(int(rows[j]), int(tms[j]), int(new[j]), int(pend[j]), int(low[j]), keep_from)
            for j in np.nonzero(new != before)[0].tolist():
                out.append(self._change(rt, int(rows[j]), int(tms[j]), int(before[j]), int(new[j]), float(stat[j])))
        return out

    def _replay(self, t: Track, row: int, from_k: int) -> list[Change]:
        """Re-run the state machines of ``row`` from slot ``from_k`` to its latest slot."""
        iv = t.ind.interval_ms
        cells = t.ring.slots[row]
        ks = np.unique(cells[(cells >= from_k) & (cells <= t.head[row])]).astype(np.int64)
        if not len(ks):
            return []
        out: list[Change] = []
        rows = np.full(len(ks), row, dtype=np.int64)
        tms = ks * iv
        for rt in t.rules:
            cur = int(rt.state.level[row])
            lv, pd, lo = rt.state_before(row, int(tms[0]))
            rt.truncate(row, int(tms[0]))
            changed_at = None
            stat_at = None
            for j in range(len(ks)):
                s = (np.array([lv], dtype=np.int8), np.array([pd], dtype=np.int64), np.array([lo], dtype=np.int64))
                new, pend, low, stat, _ok = rt.evaluate(rows[j:j + 1], ks[j:j + 1], tms[j:j + 1], s)
                nlv, npd, nlo = int(new[0]), int(pend[0]), int(low[0])
                if nlv != lv:
                    changed_at, stat_at = int(tms[j]), float(stat[0])
                if (nlv, npd, nlo) != (lv, pd, lo):
                    rt.record(row, int(tms[j]), nlv, npd, nlo, int(tms[0]) - t.ring.size * iv)
                lv, pd, lo = nlv, npd, nlo
            rt.state.level[row], rt.state.pending[row], rt.state.low[row] = lv, pd, lo
            rt.valid[row] = False
            if lv != cur:
                when = changed_at if changed_at is not None else int(tms[-1])
                out.append(self._change(rt, row, when, cur, lv, stat_at))
        return out

    def _change(self, rt: RuleTrack, row: int, t_ms: int, old: int, new: int, stat: float | None) -> Change:
        t = rt.track
        info = t.infos[row]
        readings: list[tuple[int, float]] = []
        if new > old and new >= 0:  # the readings in the window of the band reached
            band = next((b for b in rt.spec.bands if b.rank == new), rt.spec.bands[0])
            n = band.window_slots + (1 if band.stat == "rate" else 0)
            kk = np.array([t_ms // t.ind.interval_ms], dtype=np.int64)
            vals, present = t.ring.window(np.array([row]), kk, min(n, 60))
            for j in np.nonzero(present[0])[0][::-1].tolist():
                readings.append(((int(kk[0]) - j) * t.ind.interval_ms, float(vals[0, j])))
        area = t.area(row, rt.rule.area_level)
        return Change(rt.rule.code, info.device, area, t_ms, old, new,
                      None if stat is None or np.isnan(stat) else float(stat), readings, info.lon, info.lat)

    # ------------------------------------------------------------------ silence

    def silence(self, now_ms: int) -> list[Change]:
        """Evaluate every silence rule at ``now_ms`` (scheduled), vectorized per indicator track."""
        out: list[Change] = []
        for rule in self.cat.rules.values():
            if rule.kind != "silence":
                continue
            for code in rule.indicators:
                t = self.tracks.get(code)
                if t is None or not t.infos:
                    continue
                n = len(t.infos)
                st = self.silence_state.setdefault(f"{rule.code}:{code}", R.State.empty(0))
                st.grow(n)
                if len(t.active) < n or len(t.since) < n:
                    t.sync_meta()
                last = np.maximum(t.last_ts[:n], t.since[:n])
                L = R.silence_levels(now_ms, last, np.full(n, t.ind.interval_ms, dtype=np.int64), rule.silence_bands)
                L = np.where(t.active[:n], L, R.NONE).astype(np.int8)
                before = st.level[:n].copy()
                new, pend, low = R.step(before, st.pending[:n], st.low[:n], L, L, np.full(n, now_ms),
                                        np.zeros(4, dtype=np.int64), 0)
                st.level[:n], st.pending[:n], st.low[:n] = new, pend, low
                for r in np.nonzero(new != before)[0].tolist():
                    info = t.infos[r]
                    out.append(Change(rule.code, info.device, t.area(r, rule.area_level), now_ms, int(before[r]),
                                      int(new[r]), (now_ms - int(last[r])) / 1000.0,
                                      [(int(t.last_ts[r]), float("nan"))] if t.last_ts[r] >= 0 else [],
                                      info.lon, info.lat))
        return out

    def silent_devices(self) -> list[tuple[str, str, int]]:
        """(device, indicator, last reading ms or -1) of the subjects of open silence levels."""
        out = []
        for rule in self.cat.rules.values():
            if rule.kind != "silence":
                continue
            for area_devs in self.subjects.get(rule.code, {}).values():
                for dev in area_devs:
                    out.append((dev, rule.code, -1))
        return out

    # ------------------------------------------------------------------ areas

    def apply(self, changes: list[Change]) -> list[tuple[tuple[str, str], tuple[int, Change]]]:
        """Fold subject changes (in time order) into (rule, area) levels; returns every change of an
        area's level, in order: ((rule, area), (new area level, the change that made it))."""
        out: list[tuple[tuple[str, str], tuple[int, Change]]] = []
        for c in sorted(changes, key=lambda x: x.t_ms):
            areas = self.subjects.setdefault(c.rule, {})
            devs = areas.setdefault(c.area, {})
            before = max(devs.values(), default=R.NONE)
            if c.new >= 0:
                devs[c.device] = c.new
            else:
                devs.pop(c.device, None)
            level = max(devs.values(), default=R.NONE)
            # every change of a subject is reported (the warning keeps who is at which level); the
            # warnings module writes a level change only when the area's level moved
            if level != before or level >= 0:
                out.append(((c.rule, c.area), (level, c)))
            if not devs:
                areas.pop(c.area, None)
        return out

    def area_level(self, rule: str, area: str) -> int:
        return max(self.subjects.get(rule, {}).get(area, {}).values(), default=R.NONE)

    def reset_area(self, rule: str, area: str) -> None:
        """A person lifted the warning: the subjects start again from no level."""
        devs = self.subjects.get(rule, {}).pop(area, {})
        r = self.cat.rules.get(rule)
        if r is None:
            return
        for code in r.indicators:
            t = self.tracks.get(code)
            if t is None:
                continue
            for rt in t.rules:
                if rt.rule.code != rule:
                    continue
                for row, info in enumerate(t.infos):
                    if info.device in devs:
                        rt.state.level[row], rt.state.pending[row], rt.state.low[row] = R.NONE, -1, -1
                        rt.hist.pop(row, None)
        if r.kind == "silence":
            for code in r.indicators:
                t = self.tracks.get(code)
                st = self.silence_state.get(f"{rule}:{code}")
                if t is None or st is None:
                    continue
                for row, info in enumerate(t.infos):
                    if info.device in devs and row < len(st.level):
                        st.level[row] = R.NONE

    def restore(self, rule: str, area: str, subjects: dict[str, int]) -> None:
        """An open warning found at start: its subjects keep their levels."""
        self.subjects.setdefault(rule, {})[area] = dict(subjects)
        r = self.cat.rules.get(rule)
        if r is None:
            return
        for code in r.indicators:
            t = self.tracks.get(code)
            if t is None:
                continue
            by_dev = {info.device: row for row, info in enumerate(t.infos)}
            for dev, lvl in subjects.items():
                row = by_dev.get(dev)
                if row is None:
                    continue
                for rt in t.rules:
                    if rt.rule.code == rule:
                        rt.state.level[row] = lvl
                if r.kind == "silence":
                    st = self.silence_state.setdefault(f"{rule}:{code}", R.State.empty(0))
                    st.grow(len(t.infos))
                    st.level[row] = lvl
