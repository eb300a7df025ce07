"""Import every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from __future__ import annotations

from cityops.db import Base
from cityops.plugins import import_optional

DOMAIN_MODELS = [
    "cityops.geo.models",
    "cityops.geo.basemap_models",
    "cityops.security.models",
    "cityops.registry.models",
    "cityops.cases.models",
    "cityops.cases.evaluation_models",
    "cityops.console.models",
    "cityops.jobs.models",
    "cityops.lifecycle.models",
    "cityops.ai.models",
    "cityops.emergency.models_command",
    "cityops.indicators.models",
    "cityops.health.models",
    "cityops.outbreak.models",
    "cityops.resources.models",
]


def load_all() -> type[Base]:
    for name in DOMAIN_MODELS:
        import_optional(name)
    return Base
