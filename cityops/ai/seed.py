"""Demo: train and promote the first classifier version on the shipped corpus (the full demo
only; the small one used by the tests leaves it to the tests, which train their own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session


def seed_demo(session: Session, district: Any, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    if small:
        return {"trained": False}
    from cityops.ai import models_service as ms
    from cityops.security.principal import SYSTEM

    tick = progress or (lambda _s, _d, _t: None)
    if ms.active_row(session) is not None:
        return {"trained": False}
    tick("智能派单模型 classifier", 0, 1)
    row = ms.train(session, SYSTEM, note="demo seed")
    ms.promote(session, SYSTEM, row.version)
    tick("智能派单模型 classifier", 1, 1)
    return {"trained": True, "version": row.version}
