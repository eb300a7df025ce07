"""GeoJSON output exactly as RFC 7946 says (pure; no database).

* §3.1.6: a polygon's exterior ring is counter-clockwise and its holes clockwise — shapely keeps
  whatever orientation was stored (most sources write clockwise), so every geometry is oriented on
  the way out (``shapely.orient_polygons``, vectorised);
* §11.2: coordinates are rounded to ``PRECISION`` = 7 decimals (about 1 cm on the ground), rounded
  before orienting so that rounding cannot flip a tiny ring;
* §12: the media type is ``application/geo+json`` (:class:`GeoJSONResponse`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from fastapi.responses import JSONResponse

PRECISION = 7
MEDIA_TYPE = "application/geo+json"


def prepare(geoms: Any) -> Any:
    """Geometries (one or an array) rounded to ``PRECISION`` decimals and oriented per RFC 7946."""
    rounded = shapely.transform(geoms, lambda c: np.round(c, PRECISION))
    return shapely.orient_polygons(rounded, exterior_cw=False)


def geometry(geom: Any) -> dict[str, Any] | None:
    """A GeoJSON geometry object (RFC 7946) of a shapely geometry, or None."""
    if geom is None:
        return None
    return dict(shapely.geometry.mapping(prepare(geom)))


def geometry_texts(geoms: Any) -> list[str]:
    """GeoJSON geometry texts of an array of shapely geometries (vectorised)."""
    if not len(geoms):
        return []
    return list(shapely.to_geojson(prepare(np.asarray(geoms, dtype=object))))


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(float(lon), PRECISION), round(float(lat), PRECISION)]}


class GeoJSONResponse(JSONResponse):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def doc_response(description: str = "GeoJSON (RFC 7946)") -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry of a GeoJSON route."""
    return {200: {"description": description, "content": {MEDIA_TYPE: {"schema": {"type": "object"}}}}}


__all__ = ["GeoJSONResponse", "MEDIA_TYPE", "PRECISION", "doc_response", "geometry", "geometry_texts", "point",
           "prepare"]
