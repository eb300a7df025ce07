"""Seed the demo district: geometry first, then every domain's demo data, in one transaction.

Each domain may provide ``<domain>.seed.seed_demo(session, district, small=..., rng_seed=...)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy.orm import Session

from cityops.geo import demo
from cityops.geo.seed import has_district, seed_geo

DOMAIN_SEEDS = [
    "cityops.geo.basemap_seed",
    "cityops.security.seed",
    "cityops.registry.seed",
    "cityops.cases.seed",
    "cityops.cases.evaluation",
    "cityops.console.seed",
    "cityops.ai.seed",
    "cityops.emergency.seed_command",
    "cityops.indicators.seed",
    "cityops.health.seed",
    "cityops.outbreak.seed",
    "cityops.resources.seed",
]


def seed_demo(session: Session, *, small: bool = False, rng_seed: int = 20210220, force: bool = False,
              progress: Callable[[str, int, int], None] | None = None) -> bool:
    """Returns False (and does nothing) when a district is already there and ``force`` is off."""
    if has_district(session) and not force:
        return False
    tick = progress or (lambda _stage, _done, _total: None)
    district = demo.generate(seed=rng_seed, small=small)
    total = len(district.areas) + sum(len(v[2]) for v in district.layers.values())
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        tick("网格底座 grid base", done, total)

    seed_geo(session, district, step)
    for name in DOMAIN_SEEDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.seed_demo(session, district, small=small, rng_seed=rng_seed, progress=tick)
    session.commit()
    return True
