"""``cityops layer ...``: import grid layers, topology report, crosswalk (runs as the system principal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

layer_app = typer.Typer(help="网格图层 grid layers (多格合一)", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(layer_app, name="layer")


@layer_app.command("import")
def import_cmd(key: str = typer.Argument(..., help="图层标识 layer key, e.g. policing"),
               file: Path = typer.Argument(..., help="GeoJSON FeatureCollection (WGS-84)"),
               name: str | None = typer.Option(None, help="图层名称 layer name"),
               name_en: str | None = typer.Option(None, help="English name"),
               description: str | None = typer.Option(None),
               tolerance_m2: float | None = typer.Option(None, help="重叠/出界面积容差 overlap tolerance (m²)")) -> None:
    """Import (or replace) a layer from a GeoJSON file; all or nothing (导入图层)."""
    from cityops.db import session_scope
    from cityops.errors import CityOpsError
    from cityops.geo import layers
    from cityops.security.principal import SYSTEM

    try:
        data = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {file}: {exc.strerror}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            doc = layers.parse_geojson_bytes(data, "file")
            res = layers.import_layer(session, SYSTEM, key, doc, name=name, name_en=name_en, description=description,
                                      source=file.name, tolerance_m2=tolerance_m2)
    except CityOpsError as exc:
        # plain lines (no wrapping): one per problem, easy to grep
        typer.echo(f"图层 {key} 未导入 layer {key} NOT imported: {len(exc.problems)} problem(s)", err=True)
        for p in exc.problems:
            loc = "/".join(str(x) for x in p.loc)
            typer.echo(f"  - [{loc}] {p.msg}", err=True)
        raise typer.Exit(1)
    out.print(f"[green]图层 {res['key']} 已导入 imported: version {res['version']}, {res['feature_count']} features, "
              f"{res['total_area_m2'] / 1e6:.2f} km²[/green]")


@layer_app.command("list")
def list_cmd() -> None:
    """List the grid layers (图层列表)."""
    from cityops.db import session_scope
    from cityops.geo import layers
    from cityops.security.principal import SYSTEM

    with session_scope() as session:
        rows = layers.list_layers(session, SYSTEM)
    t = Table("key", "name", "version", "features", "imported_at")
    for r in rows:
        t.add_row(r["key"], r["name"], str(r["version"]), str(r["feature_count"]), str(r["imported_at"] or ""))
    out.print(t)


@layer_app.command("topology")
def topology_cmd(key: str = typer.Argument(..., help="layer key (city_ops = the unit grids)"),
                 tolerance_m2: float | None = typer.Option(None), width_m: float | None = typer.Option(None),
                 as_json: bool = typer.Option(False, "--json", help="print the whole report as JSON")) -> None:
    """Topology report of a layer: gaps, overlaps, slivers, outside (拓扑检查). Exit 1 if not clean."""
    from cityops.db import session_scope
    from cityops.errors import CityOpsError
    from cityops.geo import topology
    from cityops.security.principal import SYSTEM

    try:
        with session_scope() as session:
            rep = topology.topology_report(session, SYSTEM, key, tolerance_m2=tolerance_m2, width_m=width_m)
    except CityOpsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2)
    if as_json:
        sys.stdout.write(json.dumps(rep, ensure_ascii=False, default=str) + "\n")
    else:
        out.print(f"{rep['layer']} {rep['layer_name']} v{rep['version']}: {rep['features']} features, "
                  f"counts {rep['counts']}, below tolerance {rep['below_tolerance']}")
        for kind in ("gaps", "overlaps", "slivers", "outside", "invalid"):
            for it in rep[kind][:20]:
                out.print(f"  {kind}: {it}", markup=False, highlight=False)
    raise typer.Exit(0 if rep["clean"] else 1)


@layer_app.command("crosswalk")
def crosswalk_cmd(key: str = typer.Argument(...), output: Path = typer.Option(..., "--csv", help="CSV file to write"),
                  code_prefix: str | None = typer.Option(None)) -> None:
    """Write the crosswalk of a layer with the unified grid as CSV (对照表)."""
    from cityops.db import session_scope
    from cityops.geo import crosswalk
    from cityops.security.principal import SYSTEM

    with session_scope() as session, output.open("w", encoding="utf-8", newline="") as fh:
        for chunk in crosswalk.crosswalk_csv(session, SYSTEM, key, code_prefix=code_prefix):
            fh.write(chunk)
    out.print(f"[green]wrote {output}[/green]")
