"""``cityops basemap ...``: import an OSM-style GeoJSON base map, list the layers (system principal)."""

from __future__ import annotations

from pathlib import Path

import typer

basemap_app = typer.Typer(help="底图 base map: roads, water, places", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(basemap_app, name="basemap")


@basemap_app.command("import")
def import_cmd(file: Path = typer.Argument(..., help="OSM-style GeoJSON FeatureCollection (WGS-84)"),
               layers: str | None = typer.Option(None, help="只替换这些图层 only these layers, e.g. roads,water")) -> None:
    """Import roads, water and places; all or nothing (导入底图)."""
    from cityops.db import session_scope
    from cityops.errors import CityOpsError
    from cityops.geo import basemap
    from cityops.geo.layers import parse_geojson_bytes
    from cityops.security.principal import SYSTEM

    try:
        data = file.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2)
    only = [x.strip() for x in layers.split(",") if x.strip()] if layers else None
    try:
        with session_scope() as session:
            res = basemap.import_geojson(session, SYSTEM, parse_geojson_bytes(data, "file"), source=file.name, only=only)
    except CityOpsError as exc:
        typer.echo(f"底图未导入 base map NOT imported: {len(exc.problems)} problem(s)", err=True)
        for p in exc.problems:
            typer.echo(f"  - [{'/'.join(str(x) for x in p.loc)}] {p.msg}", err=True)
        raise typer.Exit(1)
    for key, v in res["layers"].items():
        typer.echo(f"{key}: version {v['version']}, {v['feature_count']} features")
    for reason, v in res["skipped"].items():
        typer.echo(f"skipped ({reason}): {v['count']}")
    if res["road_graph"]:
        typer.echo(f"road graph: {res['road_graph']}")


@basemap_app.command("list")
def list_cmd() -> None:
    """The base-map layers (底图图层)."""
    from cityops.db import session_scope
    from cityops.geo import basemap

    with session_scope() as session:
        for row in basemap.layers_info(session):
            typer.echo(f"{row['key']}: version {row['version']}, {row['feature_count']} features, source {row['source']}")
