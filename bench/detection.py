"""``python -m bench detection [--series N] [--r-ears N] [--r-ff N] [--no-peers] [--seed S]``: outbreak
detection (cityops.health) against R ``surveillance`` in the same run, and the space-time scan.

* 10,000 weekly series of 8 years (416 weeks): seasonal Poisson counts with series means from a gamma
  distribution (many sparse series), a few injected outbreaks; EARS C1/C2/C3 (R defaults), CUSUM
  (``range`` = the last two years, m = mean before), farringtonFlexible (all defaults, index-based,
  153 monitored weeks per series).
* Peer: R ``surveillance`` (Debian ``r-base-core`` + ``r-cran-surveillance``, installed with apt-get when
  missing and we are root) on the first ``--r-ears`` series for EARS/CUSUM and the first ``--r-ff``
  series for farringtonFlexible (R needs ~1.5 s per series for it); R's time per series is compared
  with ours per series over all series. Alarms are compared on every series R ran (NA = NA).
* Scan: 300 locations x 60 days, ~3,600 cases + one injected cluster, 999 Monte Carlo replications.

Last line: JSON with ``ears_speedup_vs_r``, ``cusum_speedup_vs_r``, ``ff_speedup_vs_r``,
``alarms_identical``, ``scan_s`` and the details.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, peak_rss_mb
from cityops.health import detection as D
from cityops.health import scan as S

N_WEEKS = 416
CUSUM_RANGE = (313, 416)

R_SCRIPT = r"""
suppressPackageStartupMessages(library(surveillance))
args <- commandArgs(TRUE)
dir <- args[1]; nE <- as.integer(args[2]); nF <- as.integer(args[3])
Y <- as.matrix(read.csv(file.path(dir, "y.csv"), header = FALSE))
fmt <- function(x) { x[is.nan(x)] <- NA; x }
out <- function(name, m) write.table(m, file.path(dir, paste0(name, ".csv")), sep = ",",
                                     row.names = FALSE, col.names = FALSE, na = "NA")
times <- c()
sE <- sts(observed = Y[, 1:nE, drop = FALSE], freq = 52, start = c(2015, 2))
for (meth in c("C1", "C2", "C3")) {
  tt <- system.time(r <- earsC(sE, control = list(method = meth)))[["elapsed"]]
  times[paste0("ears", meth)] <- tt
  out(paste0("ub_ears", meth), fmt(upperbound(r))); out(paste0("al_ears", meth), 1 * alarms(r))
}
ub <- matrix(NA, 104, nE); al <- matrix(NA, 104, nE)
tt <- system.time(for (j in 1:nE) {
  r <- algo.cusum(sts2disProg(sE[, j]), control = list(range = 313:416))
  ub[, j] <- r$upperbound; al[, j] <- as.integer(r$alarm)
})[["elapsed"]]
times["cusum"] <- tt
out("ub_cusum", fmt(ub)); out("al_cusum", al)
sF <- sts(observed = Y[, 1:nF, drop = FALSE], freq = 52, start = c(2015, 2))
tt <- system.time(r <- suppressWarnings(farringtonFlexible(sF, control = list())))[["elapsed"]]
times["ff"] <- tt
out("ub_ff", fmt(upperbound(r))); out("al_ff", 1 * alarms(r))
write.table(data.frame(name = names(times), s = times), file.path(dir, "times.csv"), sep = ",",
            row.names = FALSE, quote = FALSE)
"""


def make_series(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(1, N_WEEKS + 1)
    level = rng.gamma(1.5, 3.0, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    y = rng.poisson(level * (1 + 0.5 * np.sin(2 * np.pi * t / 52 + phase))).astype(float)
    hit = rng.random(n) < 0.1
    onset = rng.integers(300, N_WEEKS - 4, n)
    for i in np.flatnonzero(hit):
        y[i, onset[i]: onset[i] + 3] += rng.poisson(3 * level[i, 0] + 3, 3)
    return y


def ensure_r() -> tuple[str | None, str]:
    rs = shutil.which("Rscript")
    ok = rs is not None and subprocess.run([rs, "-e", "library(surveillance)"], capture_output=True).returncode == 0
    if ok:
        return rs, "present"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "R surveillance missing and cannot install (not root / no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    p = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "r-base-core", "r-cran-surveillance"],
                       capture_output=True, text=True, env=env)
    rs = shutil.which("Rscript")
    if p.returncode != 0 or rs is None:
        return None, "apt-get install r-base-core r-cran-surveillance failed: " + p.stderr[-300:]
    return rs, "installed by the benchmark"


def _read(path: Path) -> np.ndarray:
    return np.atleast_2d(np.genfromtxt(path, delimiter=",", missing_values="NA", filling_values=np.nan))


def run_r(rs: str, y: np.ndarray, n_e: int, n_f: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory(prefix="bench_health_") as d:
        dd = Path(d)
        np.savetxt(dd / "y.csv", y[: max(n_e, n_f)].T, fmt="%d", delimiter=",")
        (dd / "run.R").write_text(R_SCRIPT)
        subprocess.run([rs, str(dd / "run.R"), d, str(n_e), str(n_f)], check=True, capture_output=True)
        times = {line.split(",")[0]: float(line.split(",")[1])
                 for line in (dd / "times.csv").read_text().splitlines()[1:]}
        outs = {f.stem: _read(f).reshape(-1, n_f if f.stem.endswith("_ff") else n_e).T
                for f in dd.glob("*_*.csv") if f.stem.startswith(("ub_", "al_"))}
    return times, outs


def compare(ours: D.Detection, ub: np.ndarray, al: np.ndarray, rel: float) -> dict[str, Any]:
    n = ub.shape[0]
    mine_ub, mine_al = ours.upperbound[:n], ours.alarm[:n]
    same_na = bool(np.array_equal(np.isnan(mine_ub), np.isnan(ub)))
    ok = ~np.isnan(ub)
    err = float(np.max(np.abs(mine_ub[ok] - ub[ok]) / np.maximum(np.abs(ub[ok]), 1e-300))) if ok.any() else 0.0
    mism = int((np.nan_to_num(mine_al, nan=-1) != np.nan_to_num(al, nan=-1)).sum())
    return {"series": n, "alarm_mismatches": mism, "alarms": int(np.nansum(al)), "ub_na_same": same_na,
            "ub_max_rel_err": err, "ub_within_tol": same_na and err <= rel}


def scan_case(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10_000, (300, 2))
    locs = [{"location_id": f"L{i}", "x": float(xy[i, 0]), "y": float(xy[i, 1])} for i in range(300)]
    counts = rng.poisson(0.2, (300, 60))
    centre = xy[0]
    near = np.argsort(np.hypot(*(xy - centre).T))[:6]
    counts[near, 55:] += rng.poisson(1.0, (6, 5))
    cases = [{"location_id": f"L{z}", "time": int(d), "count": int(counts[z, d])}
             for z, d in zip(*np.nonzero(counts), strict=True)]
    return cases, locs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench detection")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--r-ears", type=int, default=1000, help="series R runs for EARS and CUSUM")
    ap.add_argument("--r-ff", type=int, default=40, help="series R runs for farringtonFlexible")
    ap.add_argument("--replications", type=int, default=999)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args(argv)
    y = make_series(a.series, a.seed)
    res: dict[str, Any] = {"series": a.series, "weeks": N_WEEKS}
    ours: dict[str, D.Detection] = {}
    tm: dict[str, float] = {}
    for name, kw in (("earsC1", {}), ("earsC2", {}), ("earsC3", {}), ("cusum", {"range": list(CUSUM_RANGE)}),
                     ("farringtonFlexible", {})):
        t0 = time.perf_counter()
        ours[name] = D.run(name, y, **kw)
        tm[name] = time.perf_counter() - t0
        print(f"ours {name}: {tm[name]:.3f} s for {a.series} series", flush=True)
    ears_s = tm["earsC1"] + tm["earsC2"] + tm["earsC3"]
    res.update(ears_s=round(ears_s, 3), cusum_s=round(tm["cusum"], 3), ff_s=round(tm["farringtonFlexible"], 2))
    res["ff_fits"] = int(a.series * ours["farringtonFlexible"].t.size)
    alarms_ok: bool | None = None
    if not a.no_peers:
        rs, how = ensure_r()
        res["r_status"] = how
        if rs is None:
            print("R surveillance cannot run here: " + how, flush=True)
        else:
            ne, nf = min(a.r_ears, a.series), min(a.r_ff, a.series)
            t0 = time.perf_counter()
            rt, ro = run_r(rs, y, ne, nf)
            print(f"R run: {time.perf_counter() - t0:.1f} s wall", flush=True)
            per_ours = {k: v / a.series for k, v in tm.items()}
            r_ears = (rt["earsC1"] + rt["earsC2"] + rt["earsC3"]) / ne
            res["r"] = {"series_ears_cusum": ne, "series_ff": nf, "times_s": rt}
            res["ears_speedup_vs_r"] = round(r_ears / (ears_s / a.series), 1)
            res["cusum_speedup_vs_r"] = round((rt["cusum"] / ne) / per_ours["cusum"], 1)
            res["ff_speedup_vs_r"] = round((rt["ff"] / nf) / per_ours["farringtonFlexible"], 1)
            cmp = {}
            for name, key, tol in (("earsC1", "earsC1", 1e-9), ("earsC2", "earsC2", 1e-9), ("earsC3", "earsC3", 1e-9),
                                   ("cusum", "cusum", 1e-9), ("farringtonFlexible", "ff", 1e-6)):
                cmp[name] = compare(ours[name], ro[f"ub_{key}"], ro[f"al_{key}"], tol)
                print(f"{name}: {cmp[name]}", flush=True)
            res["compare"] = cmp
            alarms_ok = all(c["alarm_mismatches"] == 0 for c in cmp.values())
            res["bounds_within_tol"] = all(c["ub_within_tol"] for c in cmp.values())
    res["alarms_identical"] = alarms_ok
    cases, locs = scan_case(a.seed)
    t0 = time.perf_counter()
    sr = S.scan(cases, locs, study_start=0, study_end=59, replications=a.replications, seed=1)
    res["scan_s"] = round(time.perf_counter() - t0, 2)
    top = sr.clusters[0]
    res["scan"] = {"locations": 300, "days": 60, "cases": sr.total_cases, "replications": a.replications,
                   "mlc": {"n_locations": len(top.location_ids), "window": [top.time_start, top.time_end],
                           "observed": top.observed, "expected": round(top.expected, 2),
                           "llr": round(top.llr, 4), "p_value": top.p_value}}
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(res)
    return 0
