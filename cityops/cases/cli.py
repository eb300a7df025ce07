"""``cityops cases ...`` sub-commands: reference data, imports, deadline arithmetic."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer

cases_app = typer.Typer(help="案件闭环 case engine: catalogue, calendar, imports", no_args_is_help=True)


@cases_app.command("seed-reference")
def seed_reference() -> None:
    """Load departments, the default catalogue, the calendar, rules and the transition table (idempotent)."""
    from cityops.cases import reference
    from cityops.db import session_scope
    from cityops.security.principal import SYSTEM

    with session_scope() as s:
        out = reference.seed_reference(s, SYSTEM)
    typer.echo(json.dumps(out, ensure_ascii=False, default=str))


@cases_app.command("evaluation-facts")
def evaluation_facts(arm: bool = typer.Option(True, help="also arm the worker's timer that keeps them")) -> None:
    """Build the evaluation's daily facts now (stale and missing days) and arm the worker's timer."""
    from cityops.cases import evaluation_facts as facts
    from cityops.cases import evaluation_jobs
    from cityops.db import session_scope

    with session_scope() as s:
        out = evaluation_jobs.refresh_all(s)
        if arm:
            facts.arm(s)
    typer.echo(json.dumps(out, ensure_ascii=False))


@cases_app.command("import-catalogue")
def import_catalogue(path: Path = typer.Argument(..., exists=True, help="cityops-catalogue/1 JSON document")) -> None:
    """Import catalogue versions (all or nothing)."""
    from cityops.cases import reference
    from cityops.db import session_scope
    from cityops.errors import CityOpsError
    from cityops.security.principal import SYSTEM

    try:
        with session_scope() as s:
            out = reference.import_catalogue(s, SYSTEM, json.loads(path.read_text("utf-8")))
    except CityOpsError as exc:
        typer.echo(json.dumps(exc.body(), ensure_ascii=False, indent=1), err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(out, ensure_ascii=False))


@cases_app.command("import-hotline")
def import_hotline(path: Path = typer.Argument(..., exists=True, help="12345 orders: .json list or .csv"),
                   skip_existing: bool = typer.Option(False, help="skip orders imported before")) -> None:
    """Import 12345 work orders (all or nothing, errors by row)."""
    from cityops.cases import intake
    from cityops.db import session_scope
    from cityops.errors import CityOpsError
    from cityops.security.principal import SYSTEM

    text = path.read_text("utf-8")
    try:
        rows = intake.hotline_rows_from_csv(text) if path.suffix.lower() == ".csv" else json.loads(text)
        with session_scope() as s:
            out = intake.import_hotline(s, SYSTEM, rows, skip_existing=skip_existing)
    except CityOpsError as exc:
        typer.echo(json.dumps(exc.body(), ensure_ascii=False, indent=1), err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps({k: v for k, v in out.items() if k != "items"}, ensure_ascii=False))


@cases_app.command("due")
def due(start: str = typer.Argument(..., help="ISO time with offset, e.g. 2025-03-07T16:00:00+08:00"),
        amount: float = typer.Argument(...), unit: str = typer.Argument("working_hour")) -> None:
    """Deadline of a time limit on the active working calendar."""
    from cityops.cases import reference, workcal
    from cityops.db import session_scope

    t = dt.datetime.fromisoformat(start)
    if t.tzinfo is None:
        raise typer.BadParameter("start needs a time-zone offset")
    with session_scope() as s:
        _cid, cal = reference.active_calendar(s)
    d = workcal.add_working_time(t, amount, unit, cal)
    typer.echo(d.astimezone(cal.tz).isoformat())


def register(app: typer.Typer) -> None:
    app.add_typer(cases_app, name="cases")
