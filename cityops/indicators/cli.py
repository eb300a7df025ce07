"""CLI of vital signs: ``cityops readings import FILE``, ``cityops ingest mqtt``, ``cityops rules run``,
``cityops demo storm``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    readings = typer.Typer(help="感知读数 sensor readings", no_args_is_help=True)
    ingest_app = typer.Typer(help="读数接入 readings ingest", no_args_is_help=True)
    rules = typer.Typer(help="预警规则 warning rules", no_args_is_help=True)
    app.add_typer(readings, name="readings")
    app.add_typer(ingest_app, name="ingest")
    app.add_typer(rules, name="rules")

    @readings.command("import")
    def import_file(file: Path = typer.Argument(..., exists=True, readable=True),
                    chunk: int = typer.Option(5000, help="readings per transaction"),
                    partial: bool = typer.Option(False, help="store the good rows, report the bad ones")) -> None:
        """Import readings from NDJSON / JSON / CSV (导入读数), chunk by chunk, with a progress bar."""
        from cityops.db import get_sessionmaker
        from cityops.errors import InvalidInput
        from cityops.indicators import ingest, service
        from cityops.indicators.evaluator import pipeline
        from cityops.security.principal import SYSTEM

        data = file.read_bytes()
        ctype = {".csv": "text/csv", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson"}.get(
            file.suffix.lower(), "application/json")
        items = ingest.parse_body(data, ctype)
        totals = {"accepted": 0, "duplicates": 0, "corrections": 0, "rejected": 0}
        maker = get_sessionmaker()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar:
            task = bar.add_task("读数 readings", total=len(items))
            for i in range(0, len(items), chunk):
                part = items[i:i + chunk]
                with maker() as s:
                    try:
                        out = service.ingest_items(s, SYSTEM, part, partial=partial, source="cli")
                    except InvalidInput as exc:
                        s.rollback()
                        for p in exc.problems[:20]:
                            console.print(f"[red]{p.loc}: {p.msg}[/red]")
                        raise typer.Exit(2)
                    s.commit()
                for k in ("accepted", "duplicates", "corrections"):
                    totals[k] += out[k]
                totals["rejected"] += len(out["rejected"])
                bar.update(task, advance=len(part))
        pipeline().drain(timeout=600)
        console.print(f"[green]{totals}[/green]")

    @ingest_app.command("mqtt")
    def ingest_mqtt(host: str = typer.Option(None, help="broker host (CITYOPS_INDICATORS_MQTT_HOST)"),
                    port: int = typer.Option(None, help="broker port (CITYOPS_INDICATORS_MQTT_PORT)"),
                    client_id: str = typer.Option(None, help="MQTT client id (keep it across restarts)"),
                    duration: float = typer.Option(None, help="stop after this many seconds")) -> None:
        """Subscribe to cityops/readings/# (shared subscription, QoS 1, ack after commit)."""
        from cityops.indicators import mqtt

        stats = mqtt.run(host, port, client_id, duration)
        console.print(f"{stats}")

    @rules.command("run")
    def rules_run(duration: float = typer.Option(None, help="stop after this many seconds")) -> None:
        """Run an evaluator (takes the lease when free) without ingesting."""
        import signal
        import threading

        from cityops.indicators.evaluator import pipeline

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_a: stop.set())
        p = pipeline()
        p.ensure_thread()
        stop.wait(duration)
        p.stop()

    demo_group = _demo_group(app)
    if demo_group is not None:
        @demo_group.command("storm")  # type: ignore[untyped-decorator]
        def storm(duration: float = typer.Option(720.0, help="seconds the rain band takes to cross"),
                  tick: float = typer.Option(10.0, help="seconds between readings")) -> None:
            """A rainstorm crosses the district west to east (暴雨演示)."""
            from cityops.indicators.feed import run_storm

            with Progress(TextColumn("暴雨 storm"), BarColumn(), TextColumn("{task.fields[n]} readings"),
                          TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("storm", total=1.0, n=0)

                def tick_cb(frac: float, n: int) -> None:
                    bar.update(task, completed=frac, n=n)

                out = run_storm(duration, tick, tick_cb)
            from cityops.indicators.evaluator import pipeline

            pipeline().drain(timeout=120)
            console.print(f"[green]{out}[/green]")


def _demo_group(app: typer.Typer) -> Any:
    for g in app.registered_groups:
        if g.name == "demo":
            return g.typer_instance
    return None
