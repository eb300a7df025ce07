"""Tables of the grid base (网格底座): administrative areas down to unit grids, and grid layers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, Geometry, UTCDateTime, utcnow

# level -> code length (GB/T 2260 district, GB/T 10114 street/town, community, unit grid)
LEVEL_LENGTH = {"district": 6, "street": 9, "community": 12, "grid": 15}
LEVELS = list(LEVEL_LENGTH)


class Area(Base):
    """One node of district -> street/town -> community/village -> unit grid.

    The unit grids are the unified grid (城运网格, 多格合一 target layer)."""

    __tablename__ = "area"

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    level: Mapped[str] = mapped_column(String(12), index=True)
    # street level: subdistrict (街道) / town (镇) / township (乡) / special_zone; community: residents_committee / village
    kind: Mapped[str | None] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("area.code"), index=True)
    geom: Mapped[Any] = mapped_column(Geometry)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    population: Mapped[int] = mapped_column(Integer, default=0)
    # responsible persons: [{"name", "role", "phone"}] (phone is sensitive: masked on output)
    responsible: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class GridLayer(Base):
    """A grid layer over the same territory (城运, 警务, 综治, 党建, user-defined)."""

    __tablename__ = "grid_layer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    # the unified layer is the unit grids of ``area``; other layers keep their features in layer_grid
    is_unified: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(String(500))
    # current version; every import makes a new one, older versions stay readable (layer_grid.version)
    version: Mapped[int] = mapped_column(Integer, default=1)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(200))  # file name of the last import
    feature_count: Mapped[int] = mapped_column(Integer, default=0)


class LayerGrid(Base):
    """One grid (feature) of a layer in one version of it; the current features are those whose
    ``version`` equals ``GridLayer.version``."""

    __tablename__ = "layer_grid"
    __table_args__ = (UniqueConstraint("layer_id", "version", "code", name="uq_layer_grid_layer_version_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("grid_layer.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    geom: Mapped[Any] = mapped_column(Geometry)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


Index("ix_area_level_parent", Area.level, Area.parent_code)
