"""Shared helpers for benchmarks: machine description, JSON result line, timers."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def timer() -> Iterator[list[float]]:
    out: list[float] = []
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - t0)


def emit(result: dict[str, Any]) -> None:
    """Print the one JSON line of figures (must be the last line printed)."""
    result.setdefault("machine", machine())
    print(json.dumps(result, ensure_ascii=False), flush=True)


def use_database(url: str) -> None:
    """Point this process's cityops engine at ``url``."""
    os.environ["CITYOPS_DATABASE_URL"] = url
    from cityops.db import reset_engine

    reset_engine()


def seed_district(url: str, seed: int) -> None:
    """Schema from the models, the full demo district's areas (``seed``), the security catalogue and
    the case engine's reference data; leaves the process using ``url``."""
    from cityops.cases import reference as ref
    from cityops.db import make_engine, session_scope
    from cityops.geo import demo
    from cityops.geo.seed import seed_geo
    from cityops.models import load_all
    from cityops.security import service as security
    from cityops.security.principal import SYSTEM

    eng = make_engine(url)
    load_all().metadata.create_all(eng)
    eng.dispose()
    use_database(url)
    with session_scope() as s:
        seed_geo(s, demo.generate(seed=seed, small=False), lambda _n: None)
        security.ensure_catalog(s)
        ref.seed_reference(s, SYSTEM)
