"""Demo base map: roads, water and places generated with the demo district (``cityops.geo.roadgen``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cityops.geo import basemap, demo, roadgen


def demo_layers(district: demo.DemoDistrict, seed: int) -> dict[str, list[dict[str, Any]]]:
    layers: dict[str, list[dict[str, Any]]] = {"roads": [], "water": [], "places": []}
    for f in roadgen.generate_basemap(district, seed):
        layers[f.layer].append({"code": f.code, "name": f.name, "name_en": f.name_en, "kind": f.kind, "geom": f.geom,
                                "speed_kmh": f.speed_kmh, "oneway": f.oneway, "properties": f.properties})
    return layers


def seed_demo(session: Session, district: demo.DemoDistrict, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    layers = demo_layers(district, rng_seed)
    total = sum(len(v) for v in layers.values())
    basemap.replace_layers(session, None, layers, source="cityops.geo.roadgen", synthetic=True, audit=False)
    if progress:
        progress("底图 base map", total, total)
