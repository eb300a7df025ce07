"""Demo stream of readings and the rainstorm (``cityops demo storm``).

``Stream`` runs in a daemon thread of the demo process (like ``cityops.cases.feed``): every
``tick`` seconds it sends, through the real ingest path (``service.ingest_arrays``, its own unit
of work, committed), one reading for every device whose interval has come round, with values
around each indicator's normal level (diurnal road speed and crowds, dry weather). Once in a
while (``CITYOPS_STORM_EVERY_S``, default 40 min, first after 3 min) — or when asked with
``cityops demo storm`` — a rainstorm crosses the district from west to east: a band of rain
whose intensity peaks along its axis (compressed: a real storm takes hours, this one ~12 min),
rain gauges under it read tens of mm a minute, ponding monitors fill and drain, so rainstorm
warnings (graded by the national table) and ponding warnings rise street by street and 道路积水
cases open for 水务 (sw) in the grids of the monitors.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cityops.indicators import catalogue as catalog
from cityops.indicators.models import Device, Series
from cityops.security.principal import SYSTEM, Principal

log = logging.getLogger("cityops.indicators.feed")
NORMAL = {"rainfall": (0.0, 0.0), "ponding_depth": (0.0, 0.3), "water_level": (2.6, 0.05), "gas_pressure": (2.4, 0.05),
          "aqi": (55.0, 12.0), "crowd_density": (0.6, 0.15), "road_speed": (38.0, 4.0)}


@dataclass
class Storm:
    """A band of rain moving east: axis longitude ``x0 + v·t``, width ``w`` (degrees), peak
    ``peak`` mm/min on the axis, tilted a little with latitude."""

    started: float
    x0: float
    speed: float  # degrees per second
    width: float
    peak: float
    lat_mid: float
    until: float

    def rain(self, lon: np.ndarray, lat: np.ndarray, now: float) -> np.ndarray:
        axis = self.x0 + self.speed * (now - self.started) + 0.08 * (lat - self.lat_mid)
        d = (lon - axis) / self.width
        core = np.exp(-0.5 * d * d)
        north = 0.75 + 0.5 * np.clip((lat - self.lat_mid) / 0.12, -1, 1)  # heavier in the north
        return np.where(now < self.until, self.peak * core * north, 0.0)


@dataclass
class Stream:
    tick: float = 10.0
    maker: sessionmaker[Session] | None = None
    storm_every_s: float = 2400.0
    first_storm_s: float = 180.0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    stats: dict[str, Any] = field(default_factory=lambda: {"ticks": 0, "readings": 0, "errors": 0, "storms": 0})
    storm: Storm | None = None

    def __post_init__(self) -> None:
        from cityops.db import get_sessionmaker

        self.maker = self.maker or get_sessionmaker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = False
        self._next_storm = time.time() + self.first_storm_s
        self.principal: Principal = SYSTEM
        self.ponding = np.zeros(0)

    def _load(self, s: Session) -> None:
        cat = catalog.active(s)
        rows = s.execute(select(Series.id, Series.indicator_code, Device.lon, Device.lat).join(
            Device, Device.id == Series.device_id).where(Device.status == "active").order_by(Series.id)).all()
        self.sid = np.array([r[0] for r in rows], dtype=np.int64)
        self.ind = np.array([r[1] for r in rows], dtype=object)
        self.lon = np.array([r[2] for r in rows], dtype=np.float64)
        self.lat = np.array([r[3] for r in rows], dtype=np.float64)
        self.interval = np.array([cat.indicators[i].interval_s if i in cat.indicators else 60 for i in self.ind],
                                 dtype=np.int64)
        self.ponding = np.zeros(len(rows))
        self.rain_recent = np.zeros(len(rows))
        self.bounds = (float(self.lon.min()), float(self.lon.max()), float(self.lat.min()), float(self.lat.max())) \
            if len(rows) else (121.0, 121.4, 30.9, 31.2)
        try:
            from cityops.security import service as security
            from cityops.security.seed import demo_key

            self.principal = security.principal_for_api_key(demo_key("demo-sensor"), "127.0.0.1")
        except Exception:  # noqa: BLE001 - no demo key: the system sends
            self.principal = SYSTEM
        self._loaded = len(rows) > 0
        self._last_slot: dict[int, int] = {}

    def start_storm(self, now: float | None = None, duration_s: float = 720.0) -> Storm:
        now = now or time.time()
        x_min, x_max, y_min, y_max = self.bounds
        width = (x_max - x_min) * 0.3
        speed = (x_max - x_min + 4 * width) / duration_s
        self.storm = Storm(now, x_min - 2 * width, speed, width, peak=18.0, lat_mid=(y_min + y_max) / 2,
                           until=now + duration_s)
        self.stats["storms"] += 1
        log.info("demo: a rainstorm crosses the district (%.0f s)", duration_s)
        return self.storm

    def readings(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The readings due at ``now`` (one per device whose interval slot has come round)."""
        slot = (int(now) // self.interval) * self.interval
        due = np.array([self._last_slot.get(int(s), -1) != int(k) for s, k in zip(self.sid.tolist(), slot.tolist(),
                                                                                   strict=True)])
        if not due.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        v = np.zeros(len(self.sid))
        hour = (now / 3600.0 + 8) % 24
        for ind, (mu, sd) in NORMAL.items():
            m = self.ind == ind
            if not m.any():
                continue
            base = mu
            if ind == "road_speed":
                base = mu - 12 * (math.exp(-((hour - 8.3) ** 2) / 1.5) + math.exp(-((hour - 17.8) ** 2) / 2))
            if ind == "crowd_density":
                base = mu + 0.8 * math.exp(-((hour - 19.5) ** 2) / 3)
            v[m] = base + self.rng.normal(0, sd, int(m.sum()))
        rain = np.zeros(len(self.sid))
        if self.storm is not None:
            rain = self.storm.rain(self.lon, self.lat, now)
            if now > self.storm.until + 1800:
                self.storm = None
        rg = self.ind == "rainfall"
        v[rg] = np.round(np.maximum(0.0, rain[rg] * self.rng.uniform(0.8, 1.2, int(rg.sum()))), 1)
        pd_ = self.ind == "ponding_depth"
        # ponding fills with the rain of the last minutes and drains ~2 cm a minute
        self.ponding[pd_] = np.maximum(0.0, self.ponding[pd_] * 0.9 + rain[pd_] * 2.2 - 2.0)
        v[pd_] = np.round(self.ponding[pd_] + np.abs(self.rng.normal(0, 0.3, int(pd_.sum()))), 1)
        v = np.where(self.ind == "aqi", np.maximum(5, v), v)
        v = np.where(self.ind == "road_speed", np.maximum(3, v), v)
        v = np.where(self.ind == "crowd_density", np.maximum(0, v), v)
        for s, k in zip(self.sid[due].tolist(), slot[due].tolist(), strict=True):
            self._last_slot[int(s)] = int(k)
        return self.sid[due], slot[due] * 1000, np.round(v[due], 3)

    def step(self, now: float | None = None) -> int:
        from cityops.indicators import service

        now = now or time.time()
        assert self.maker is not None
        with self.maker() as s:
            if not self._loaded:
                self._load(s)
                s.rollback()
                if not self._loaded:
                    return 0
            if self.storm is None and now >= self._next_storm:
                self.start_storm(now)
                self._next_storm = now + self.storm_every_s
            sid, ts, val = self.readings(now)
            if len(sid):
                service.ingest_arrays(s, self.principal, sid, ts, val, source="demo")
                s.commit()  # the stream is a job: its own unit of work per tick
        self.stats["ticks"] += 1
        self.stats["readings"] += len(sid)
        return len(sid)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - keep the demo going
                self.stats["errors"] += 1
                log.warning("demo readings tick failed: %s", exc)
            self._stop.wait(self.tick)

    def start(self) -> Stream:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="cityops-demo-readings", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


_stream: Stream | None = None


def start_background_stream(**kw: Any) -> Stream:
    """Start the demo readings in a daemon thread of this process (``cityops demo``)."""
    global _stream
    every = float(os.environ.get("CITYOPS_STORM_EVERY_S", "2400"))
    first = float(os.environ.get("CITYOPS_STORM_FIRST_S", "180"))
    tick = float(os.environ.get("CITYOPS_READINGS_TICK_S", "10"))
    _stream = Stream(tick=tick, storm_every_s=every, first_storm_s=first, **kw).start()
    atexit.register(_stream.stop, 5.0)
    return _stream


def run_storm(duration_s: float = 720.0, tick: float = 10.0, progress: Any = None) -> dict[str, Any]:
    """``cityops demo storm``: stream a storm from this process (the demo server's evaluator, or
    this process's when none runs, turns it into warnings and cases)."""
    st = Stream(tick=tick, first_storm_s=1e12)
    end = time.time() + duration_s + 240
    total = 0
    st.step()
    st.start_storm(duration_s=duration_s)
    while time.time() < end:
        total += st.step()
        if progress is not None:
            progress(min(1.0, (time.time() - st.storm.started) / (duration_s + 240)) if st.storm else 1.0, total)
        time.sleep(tick)
    return {"readings": total}
