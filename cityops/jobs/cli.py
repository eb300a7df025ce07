"""``cityops worker`` and ``cityops jobs ...``."""

from __future__ import annotations

import datetime as dt
import json

import typer

jobs_app = typer.Typer(help="后台任务 jobs: outbox, timers, webhooks", no_args_is_help=True)


def worker_cmd(
    once: bool = typer.Option(False, "--once", help="run what is due now, then exit"),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=64, help="worker threads"),
    poll: float = typer.Option(None, "--poll", min=0.01, help="seconds between polls when idle"),
    batch: int = typer.Option(None, "--batch", min=1, max=1000, help="rows claimed per pass and kind"),
    name: str = typer.Option(None, "--name", help="worker name in claims (default host:pid)"),
) -> None:
    """Run outbox items, due timers and webhook deliveries (后台任务进程). Stops on SIGTERM."""
    from cityops.jobs.worker import Worker
    from cityops.logging import configure_logging

    configure_logging()
    totals = Worker(concurrency=concurrency, poll_seconds=poll, batch=batch, name=name).run(once=once)
    typer.echo(json.dumps(totals.as_dict()))


@jobs_app.command("status")
def status_cmd() -> None:
    """Counts of outbox items, timers and deliveries by status."""
    from cityops.db import session_scope
    from cityops.jobs import service

    with session_scope() as s:
        typer.echo(json.dumps(service.stats(s), ensure_ascii=False, indent=2))


@jobs_app.command("retry-dead")
def retry_dead_cmd(kind: str = typer.Argument("outbox", help="outbox / timers / deliveries")) -> None:
    """Give dead rows a fresh attempt budget."""
    from cityops.db import session_scope
    from cityops.jobs import service

    if kind not in ("outbox", "timers", "deliveries"):
        raise typer.BadParameter("kind must be outbox, timers or deliveries")
    with session_scope() as s:
        typer.echo(f"{service.retry_dead(s, kind)} {kind} rows queued again")


@jobs_app.command("purge")
def purge_cmd(days: float = typer.Option(7.0, min=0.0, help="keep finished rows younger than this")) -> None:
    """Delete finished outbox items, timers and deliveries older than --days (dead rows are kept)."""
    from cityops.db import session_scope
    from cityops.jobs import service

    with session_scope() as s:
        typer.echo(json.dumps(service.purge(s, dt.timedelta(days=days))))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_cmd)
    app.add_typer(jobs_app, name="jobs")
