"""The one command-line entry point: ``cityops``."""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

app = typer.Typer(help="cityops 城运 — city operations platform", no_args_is_help=True)
db_app = typer.Typer(help="database 数据库", no_args_is_help=True)
seed_app = typer.Typer(help="demo data 演示数据", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
console = Console(stderr=True)

# domains may add their own sub-commands: a module with ``register(app)``
DOMAIN_CLIS = ["cityops.security.cli", "cityops.registry.cli", "cityops.cases.cli", "cityops.geo.cli",
               "cityops.geo.basemap_cli",
               "cityops.jobs.cli", "cityops.console.cli", "cityops.ai.cli",
               "cityops.emergency.cli_command", "cityops.indicators.cli",
               "cityops.outbreak.cli"]


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations (升级数据库结构), then load the permission catalogue (a feature's new
    permissions reach the built-in roles; grants a 安全管理员 changed stay)."""
    from cityops.db import session_scope
    from cityops.migrate import upgrade
    from cityops.security import service as security

    upgrade(revision=revision)
    with session_scope() as s:
        added = security.ensure_catalog(s)
    console.print(f"[green]database at {revision}[/green]; catalogue: {added}")


@seed_app.command("demo")
def seed_demo_cmd(small: bool = typer.Option(False, "--small", help="a small district for fast tests"),
                  force: bool = typer.Option(False, "--force", help="replace existing data"),
                  seed: int = typer.Option(20210220, help="random seed")) -> None:
    """Generate and load the Songjiang-like demo district (生成演示区)."""
    from cityops.db import session_scope
    from cityops.demo.seed import seed_demo

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        with session_scope() as session:
            created = seed_demo(session, small=small, force=force, rng_seed=seed, progress=tick)
    console.print("[green]demo district seeded[/green]" if created else "demo district already present (use --force)")


@app.command()
def serve(host: str = "127.0.0.1", port: int = typer.Option(int(os.environ.get("CITYOPS_PORT", "8000"))),
          workers: int = 1, reload: bool = False) -> None:
    """Serve the API and console (提供服务)."""
    import uvicorn

    uvicorn.run("cityops.app:create_app", factory=True, host=host, port=port, workers=workers, reload=reload,
                log_level="info")


# `cityops demo` serves the demo; domains add scripted scenarios as sub-commands
# (`cityops demo incident`, `cityops demo storm`)
demo_app = typer.Typer(help="一键演示 demo; sub-commands run scripted scenarios", invoke_without_command=True)
app.add_typer(demo_app, name="demo")


@demo_app.callback()
def demo(ctx: typer.Context, host: str = "127.0.0.1",
         port: int = typer.Option(int(os.environ.get("CITYOPS_PORT", "8000"))),
         small: bool = False, feed: bool = typer.Option(True, help="keep synthetic reports arriving")) -> None:
    """Upgrade the DB, seed the demo district if empty, print logins and serve (一键演示)."""
    if ctx.invoked_subcommand is not None:
        return
    from cityops.migrate import upgrade

    upgrade()
    seed_demo_cmd(small=small, force=False, seed=20210220)
    url = f"http://{host}:{port}/"
    console.print(f"\n[bold]cityops 城运[/bold] console: [link]{url}[/link]   API docs: {url}docs\n")
    try:
        mod = importlib.import_module("cityops.security.cli")
        mod.print_demo_logins(console)
    except (ModuleNotFoundError, AttributeError):
        pass
    try:  # timers, outbox and webhooks run in this process for the demo
        importlib.import_module("cityops.jobs.worker").start_background_worker()
    except (ModuleNotFoundError, AttributeError):
        pass
    if feed:
        try:
            flows = importlib.import_module("cityops.cases.feed")
            flows.start_background_feed()
        except (ModuleNotFoundError, AttributeError):
            pass
        try:  # sensor readings through the real ingest path, and now and then a rainstorm
            importlib.import_module("cityops.indicators.feed").start_background_stream()
        except (ModuleNotFoundError, AttributeError):
            pass
    serve(host=host, port=port, workers=1, reload=False)


def _register_domains() -> None:
    for name in DOMAIN_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)


def main() -> None:
    _register_domains()
    app(prog_name="cityops")


if __name__ == "__main__":
    main()
    sys.exit(0)
