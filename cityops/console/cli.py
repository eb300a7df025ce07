"""``cityops console ...``: the daily briefing from the command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

console_app = typer.Typer(help="城运驾驶舱 console: daily briefing", no_args_is_help=True)


@console_app.command("briefing")
def briefing_cmd(date: str = typer.Option(None, help="YYYY-MM-DD (default: yesterday in Shanghai)"),
                 lang: str = typer.Option("zh", help="zh / en"),
                 out: Path = typer.Option(None, help="also write the PDF (and .html) here"),
                 no_pdf: bool = typer.Option(False, "--no-pdf", help="HTML only")) -> None:
    """Generate and store a day's district briefing (城运日报), HTML + PDF (headless Chromium)."""
    from cityops.console import briefing
    from cityops.db import session_scope
    from cityops.security.principal import SYSTEM

    day = briefing.parse_day(date)
    with session_scope() as s:
        row = briefing.generate(s, SYSTEM, day, lang, by="cli", pdf=not no_pdf)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".html").write_text(row.html, encoding="utf-8")
            if row.pdf:
                out.with_suffix(".pdf").write_bytes(row.pdf)
        typer.echo(f"briefing {day} {row.area_code}: html {len(row.html)} chars, "
                   + (f"pdf {len(row.pdf)} bytes ({row.pdf_engine})" if row.pdf else f"no pdf: {row.pdf_error}"))


@console_app.command("schedule-briefing")
def schedule_cmd() -> None:
    """Arm the 06:00 daily briefing timer (run by ``cityops worker``)."""
    from cityops.console.jobs import arm_daily_briefing
    from cityops.db import session_scope

    with session_scope() as s:
        at = arm_daily_briefing(s, dt.datetime.now(dt.UTC))
    typer.echo(f"daily briefing armed for {at.isoformat()} (UTC)")


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")
