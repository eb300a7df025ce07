"""Pure figures of the flat-reporting measure: how long the first report of a case or incident took
to reach the responsible department and the command level that must know (no database).

Input rows carry ``group`` (a tuple: object type, channel, measure, level), ``seconds`` (None when
the recipient has not been reached yet) and ``target_s``. Percentiles are NumPy's default
(linear interpolation between order statistics, Hyndman & Fan 1996 definition 7, "Sample
quantiles in statistical packages", The American Statistician 50(4)); an unreached row counts in
``n`` and ``unreached`` and never in the time figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def seconds_between(start: Sequence[Any], end: Sequence[Any]) -> np.ndarray:
    """Elapsed seconds ``end - start`` per row (aware datetimes; None ends give NaN)."""
    out = np.full(len(start), np.nan)
    for i, (a, b) in enumerate(zip(start, end, strict=True)):
        if a is not None and b is not None:
            out[i] = (b - a).total_seconds()
    return out


def summarise(seconds: np.ndarray, target_s: float) -> dict[str, Any]:
    """n, reached, unreached, median / p90 / max / mean seconds of the reached rows, share of all rows
    reached within ``target_s`` (an unreached row is not within target)."""
    s = np.asarray(seconds, dtype=float)
    n = int(s.size)
    ok = ~np.isnan(s)
    reached = s[ok]
    out: dict[str, Any] = {"n": n, "reached": int(ok.sum()), "unreached": int(n - ok.sum()), "target_s": target_s}
    if reached.size:
        out.update(median_s=float(np.median(reached)), p90_s=float(np.percentile(reached, 90)),
                   max_s=float(reached.max()), mean_s=float(reached.mean()),
                   within_target=float(np.count_nonzero(reached <= target_s) / n))
    else:
        out.update(median_s=None, p90_s=None, max_s=None, mean_s=None, within_target=0.0 if n else None)
    return out


def aggregate(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per ``group``, in the groups' sorted order."""
    groups: dict[tuple[str, ...], tuple[list[float], float]] = {}
    for r in rows:
        key = tuple(r["group"])
        vals, _t = groups.setdefault(key, ([], float(r["target_s"])))
        vals.append(np.nan if r["seconds"] is None else float(r["seconds"]))
    out = []
    for key in sorted(groups):
        vals, target = groups[key]
        out.append({"group": list(key), **summarise(np.array(vals, dtype=float), target)})
    return out
