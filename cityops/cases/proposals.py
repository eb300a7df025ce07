"""The extension point of intake for reports that arrive without a category: a domain that can
propose one from the text (the smart-dispatch classifier, ``cityops.ai``) is listed in
``PROPOSER_MODULES`` and exposes

* ``classify_many(session, texts, channels) -> list[proposal]`` — each proposal a dict with ranked
  ``candidates`` (``category_code``, ``score`` ...), ``needs_review`` and ``model_version``;
* ``store_proposals(session, [(case_id, source, proposal)])`` — kept with the cases created.

Like the domain routers (``cityops.app.DOMAIN_APIS``), a module that is not built is absent: then
a category is required on every report."""

from __future__ import annotations

from types import ModuleType

from cityops.plugins import import_optional

PROPOSER_MODULES = ["cityops.ai.proposer"]


def proposer() -> ModuleType | None:
    for name in PROPOSER_MODULES:
        module = import_optional(name)
        if module is not None:
            return module
    return None
