"""Tables of the base map (底图): roads, water and named places, one layer each.

A layer is replaced as a whole by an import (``cityops.geo.basemap``); ``basemap_layer.version``
counts the imports, so caches (road graph, served GeoJSON) know when to rebuild.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, Geometry, UTCDateTime, utcnow

BASEMAP_LAYERS = ("roads", "water", "places")


class BasemapLayer(Base):
    """One layer of the base map: ``roads``, ``water`` or ``places``."""

    __tablename__ = "basemap_layer"

    key: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    feature_count: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str | None] = mapped_column(String(200))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(100))


class BasemapFeature(Base):
    """A road (LineString), a water body (Polygon/MultiPolygon, or a LineString for a waterway
    given as a line) or a place (Point)."""

    __tablename__ = "basemap_feature"
    __table_args__ = (UniqueConstraint("layer", "code", name="uq_basemap_feature_layer_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    layer: Mapped[str] = mapped_column(ForeignKey("basemap_layer.key", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    # roads: OSM highway class (motorway ... unclassified); water: river / canal / lake / ...; places: town ...
    kind: Mapped[str] = mapped_column(String(32))
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    oneway: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 both ways, 1 forward, -1 backward
    geom: Mapped[Any] = mapped_column(Geometry)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


Index("ix_basemap_feature_layer_name", BasemapFeature.layer, BasemapFeature.name)
