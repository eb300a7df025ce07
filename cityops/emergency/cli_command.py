"""CLI of emergency command: ``cityops emergency plans import|export|schema|list`` and the scripted
storm ``cityops demo incident`` (opens a level-III flood incident and activates the flood plan)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)
emergency_app = typer.Typer(help="应急指挥 emergency command", no_args_is_help=True)
plans_app = typer.Typer(help="预案 plans", no_args_is_help=True)
emergency_app.add_typer(plans_app, name="plans")


@plans_app.command("import")
def import_cmd(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="plan document (.json / .yaml)")) -> None:
    """Import a plan document (a new version when it changed)."""
    from cityops.db import session_scope
    from cityops.emergency import plans
    from cityops.errors import CityOpsError
    from cityops.security.principal import SYSTEM

    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        with session_scope() as s:
            out = plans.import_plan(s, SYSTEM, plans.parse_text(path.read_text(encoding="utf-8"), fmt))
    except CityOpsError as exc:
        for p in exc.problems:
            console.print(f"[red]{'.'.join(map(str, p.loc))}: {p.msg}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]{out['code']} version {out['version']}{'' if out['changed'] else ' (unchanged)'}[/green]")


@plans_app.command("export")
def export_cmd(code: str, fmt: str = typer.Option("yaml", "--format", help="json / yaml"),
               version: int = typer.Option(None, help="a version number (default: current)")) -> None:
    """Print a plan version as JSON or YAML."""
    from cityops.db import session_scope
    from cityops.emergency import plans

    with session_scope() as s:
        text, _media = plans.export_plan(s, code, fmt, version)
    typer.echo(text)


@plans_app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of plan documents."""
    from cityops.emergency import plans

    typer.echo(json.dumps(plans.plan_schema(), ensure_ascii=False, indent=1))


@plans_app.command("list")
def list_cmd() -> None:
    from cityops.db import session_scope
    from cityops.emergency import plans

    with session_scope() as s:
        for p in plans.list_plans(s):
            console.print(f"{p['code']:<10} v{p['version']} {p['type_name']:<8} {p['name']}  levels {p['levels']}")


def incident_cmd(street: str = typer.Option("310117001", help="街镇代码 the street/town"),
                 level: str = typer.Option("III", help="响应级别 response level I–IV"),
                 ref: str = typer.Option(None, help="source reference (the same ref again returns the same incident)")) -> None:
    """Scripted storm: open a level-III flood incident and activate the flood plan (暴雨内涝演示)."""
    from cityops.db import session_scope
    from cityops.emergency.seed_command import demo_incident

    with session_scope() as s:
        out = demo_incident(s, street=street, level=level, source_ref=ref)
    inc = out["incident"]
    console.print(f"[green]incident {inc['code']} (id {inc['incident_id']}) {'opened' if inc['created'] else 'exists'}; "
                  f"flood plan at level {out['level']}[/green]")
    typer.echo(json.dumps(out, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(emergency_app, name="emergency")
    from cityops import cli

    demo_group = getattr(cli, "demo_app", None)
    if demo_group is not None:
        demo_group.command("incident")(incident_cmd)
