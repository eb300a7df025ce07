"""``cityops outbreak ...``: the zone sweep and a full recategorisation (each its own transaction)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    ob = typer.Typer(help="战时疫情 outbreak command", no_args_is_help=True)
    app.add_typer(ob, name="outbreak")

    @ob.command("check-zones")
    def check_zones() -> None:
        """Downgrade every zone due today (the timers do the same zone by zone)."""
        from cityops.db import session_scope
        from cityops.outbreak import zones

        with session_scope() as s:
            ids = zones.check_zones(s)
        typer.echo(f"downgraded {len(ids)} zone(s): {ids}")

    @ob.command("recategorise")
    def recategorise() -> None:
        """Recompute the categories and end dates of every active outbreak."""
        from cityops.db import session_scope
        from cityops.outbreak import tracing

        with session_scope() as s:
            n = tracing.recategorise_all(s)
        typer.echo(f"{n} person(s) changed")
