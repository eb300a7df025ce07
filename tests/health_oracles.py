"""Loading the reference outputs in ../shared/oracles (R surveillance 1.20.3, SaTScan 9.4.4)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

ORACLES = Path(os.environ.get("CITYOPS_ORACLES", Path(__file__).resolve().parents[1] / "../shared/oracles"))
if not ORACLES.exists():
    ORACLES = Path("/work/shared/oracles")
SURV = ORACLES / "surveillance"
SAT = ORACLES / "satscan"


def num(v: str) -> float:
    return float("nan") if v in ("NA", "NaN", "") else float(v)


def load_series(dataset: str) -> tuple[np.ndarray, list[dt.date] | None, list[dict[str, str]]]:
    rows = list(csv.DictReader(open(SURV / "inputs" / f"{dataset}.csv")))
    y = np.array([float(r["observed"]) for r in rows])
    dates = None if rows[0]["date"] == "NA" else [dt.date.fromisoformat(r["date"]) for r in rows]
    return y, dates, rows


def output_files() -> list[Path]:
    return sorted((SURV / "outputs").glob("*__*.csv"))


def load_output(path: Path) -> dict[str, Any]:
    rows = list(csv.DictReader(open(path)))
    cols = {k: np.array([num(r[k]) for r in rows]) for k in rows[0] if k not in ("dataset", "series", "config", "date")}
    dataset, config = path.stem.split("__")
    return {"dataset": dataset, "config": config, **cols}


def satscan_case(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    d = SAT / name
    cases = [{"location_id": r["location_id"], "time": int(r["time"]), "count": int(r["count"])}
             for r in csv.DictReader(open(d / f"{name}_cases.csv"))]
    geo = [{"location_id": r["location_id"], "x": float(r["x"]), "y": float(r["y"])}
           for r in csv.DictReader(open(d / f"{name}_geo.csv"))]
    return cases, geo, json.loads((d / f"{name}_expected.json").read_text())
