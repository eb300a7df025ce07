"""Tables of smart dispatch (智能派单): model versions (the serialized model as a blob, so every
API process and worker loads the same version and it survives restarts), the proposal stored
with each case, and the labelled examples dispatchers' corrections make."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class AiModel(Base):
    """One trained classifier version. ``status``: candidate (trained, not promoted), active
    (the one in use; at most one), retired (was active), rejected (worse than the active one)."""

    __tablename__ = "ai_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(12), default="candidate", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    trained_by: Mapped[str | None] = mapped_column(String(80))
    corpus_version: Mapped[str] = mapped_column(String(40))
    catalogue_version: Mapped[str | None] = mapped_column(String(60))
    n_train: Mapped[int] = mapped_column(Integer, default=0)
    n_corrections: Mapped[int] = mapped_column(Integer, default=0)
    max_example_id: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    train_s: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str | None] = mapped_column(Text)


class AiProposal(Base):
    """The classifier's proposal stored with a case at intake (category candidates, place)."""

    __tablename__ = "ai_proposal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    model_version: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(16))
    category_code: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    place: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision: Mapped[str | None] = mapped_column(String(12))  # accepted / corrected
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(80))


class AiExample(Base):
    """A labelled example from a dispatcher: a correction of the proposal (category, department or
    place) or a department override at dispatch (from the routing decisions)."""

    __tablename__ = "ai_example"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(20))  # correction / confirmation / routing_override
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id", ondelete="SET NULL"), index=True)
    routing_decision_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(16))
    category_code: Mapped[str | None] = mapped_column(String(16))
    catalogue_version: Mapped[str | None] = mapped_column(String(60))
    department_code: Mapped[str | None] = mapped_column(String(40))
    street_code: Mapped[str | None] = mapped_column(String(9))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)  # what was corrected
    actor: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(Text)
