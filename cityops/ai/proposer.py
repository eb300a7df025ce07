"""The classifier as the case intake's category proposer (``cityops.cases.proposals``)."""

from __future__ import annotations

from cityops.ai.service import classify_many, store_proposals

__all__ = ["classify_many", "store_proposals"]
