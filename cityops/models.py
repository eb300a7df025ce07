"""Import every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from __future__ import annotations

import importlib

from cityops.db import Base

DOMAIN_MODELS = [
    "cityops.geo.models",
    "cityops.geo.basemap_models",
    "cityops.security.models",
    "cityops.registry.models",
    "cityops.cases.models",
    "cityops.cases.evaluation_models",
    "cityops.console.models",
    "cityops.jobs.models",
]


def load_all() -> type[Base]:
    for name in DOMAIN_MODELS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base
