"""Demo data of public-health surveillance: sentinel sites in every street (a fever clinic, a pharmacy, two
schools, a kindergarten), daily syndrome counts with seasonality (three years; 120 days with ``small``),
FAKE case reports, one injected ILI outbreak at one fever clinic over the last three days, which the demo's
daily run then detects (a signal in the queue), and the daily-run timer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from cityops import clock
from cityops.health import runs, signals
from cityops.health.models import CaseReport, DailyCount, SentinelSite

KINDS = (("fever_clinic", "发热门诊", 1), ("pharmacy", "药店", 1), ("school", "小学", 2), ("kindergarten", "幼儿园", 1))
# syndrome -> (mean per day at a site, seasonal amplitude, phase in days: peak around)
BASE = {"ili": (6.0, 0.6, 15), "diarrhoea": (2.0, 0.5, 210), "fever": (4.0, 0.4, 20), "antipyretic": (10.0, 0.5, 15)}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


def _fake_id(rng: np.random.Generator, born: dt.date) -> str:
    """A syntactically valid (GB 11643 check digit) but FAKE 18-digit ID number."""
    body = f"310117{born:%Y%m%d}{int(rng.integers(100, 999))}"
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(c) * k for c, k in zip(body, w, strict=True)) % 11]


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    if district is None:
        return
    tick = progress or (lambda _s, _d, _t: None)
    rng = np.random.default_rng(rng_seed + 11)
    grids: dict[str, list[Any]] = {}
    for a in district.areas:
        if a.level == "grid":
            grids.setdefault(a.code[:9], []).append(a)
    sites: list[SentinelSite] = []
    for street, gs in sorted(grids.items()):
        k = 0
        for kind, name, n in KINDS:
            for j in range(n):
                g = gs[int(rng.integers(0, len(gs)))]
                p = g.geom.representative_point()
                k += 1
                sites.append(SentinelSite(code=f"HS-{street}-{k:02d}", name=f"{street[-3:]}{name}{j + 1}", kind=kind,
                                          lon=round(float(p.x), 6), lat=round(float(p.y), 6), grid_code=g.code,
                                          community_code=g.code[:12], street_code=street))
    session.add_all(sites)
    session.flush()
    today = clock.now().astimezone(signals.SHANGHAI).date()
    last = today - dt.timedelta(days=1)
    days = 120 if small else 3 * 365
    first = last - dt.timedelta(days=days - 1)
    doy = np.array([(first + dt.timedelta(days=i)).timetuple().tm_yday for i in range(days)])
    weekday = np.array([(first + dt.timedelta(days=i)).weekday() for i in range(days)])
    rows: list[dict[str, Any]] = []
    outbreak_site = next(s for s in sites if s.kind == "fever_clinic")
    for s in sites:
        size = float(rng.gamma(4.0, 0.25))
        for syn, (mean, amp, peak) in BASE.items():
            if s.kind in ("school", "kindergarten") and syn not in ("ili", "fever"):
                continue
            if s.kind == "pharmacy" and syn != "antipyretic":
                continue
            lam = size * mean * (1 + amp * np.cos(2 * np.pi * (doy - peak) / 365.25))
            if s.kind in ("school", "kindergarten"):
                lam = lam * 0.08 * (weekday < 5)
            y = rng.poisson(lam)
            if s is outbreak_site and syn == "ili":
                y[-3:] += np.array([12, 20, 30])
            rows.extend({"site_id": s.id, "day": first + dt.timedelta(days=i), "syndrome": syn, "count": int(v),
                         "visits": None, "street_code": s.street_code, "updated_at": clock.now()}
                        for i, v in enumerate(y))
    tick("公共卫生 public health", 0, len(rows))
    for i in range(0, len(rows), 20_000):
        session.execute(insert(DailyCount), rows[i: i + 20_000])
    tick("公共卫生 public health", len(rows), len(rows))
    for i in range(30 if small else 200):
        s = sites[int(rng.integers(0, len(sites)))]
        born = dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 25_000)))
        session.add(CaseReport(
            disease=["流行性感冒", "手足口病", "其他感染性腹泻病", "水痘"][i % 4], disease_class="C" if i % 4 < 3 else "B",
            name=SURNAMES[int(rng.integers(0, 20))] + GIVEN[int(rng.integers(0, 20))] + "（虚构）",
            id_number=_fake_id(rng, born), phone=f"139{int(rng.integers(10**7, 10**8))}",
            address=f"上海市松江区虚构路{int(rng.integers(1, 999))}号", gender="MF"[i % 2],
            age=(last - born).days // 365, onset_date=last - dt.timedelta(days=int(rng.integers(0, 30))),
            grid_code=s.grid_code, community_code=s.community_code, street_code=s.street_code, site_id=s.id))
    session.flush()
    runs.daily_run(session, last)
    from cityops.health.jobs import arm

    arm(session)
