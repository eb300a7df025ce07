"""Optional domain modules: registries list modules by name (routers, models, job handlers, live
feed sources) and a domain that is not built yet is simply absent."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(name: str) -> ModuleType | None:
    """``import name``, or None when that module (or a package above it) does not exist; an import
    error inside an existing module is raised as usual."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if name == missing or name.startswith(missing + "."):
            return None
        raise
