"""``cityops classify train|evaluate|promote|rollback|versions`` (smart dispatch)."""

from __future__ import annotations

import json
from typing import Any

import typer

classify_app = typer.Typer(help="智能派单 smart dispatch: train, evaluate, promote, roll back", no_args_is_help=True)


def _fail(exc: Exception) -> None:
    from cityops.errors import CityOpsError

    if isinstance(exc, CityOpsError):
        typer.echo(json.dumps(exc.body(), ensure_ascii=False, indent=1), err=True)
        raise typer.Exit(1)
    raise exc


def _table(title: str, rows: list[list[Any]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r])
    Console().print(t)


@classify_app.command("train")
def train(promote: bool = typer.Option(True, help="promote the new version if it is not worse than the active one"),
          queue: bool = typer.Option(False, help="queue a retraining job for the worker instead of training here")) -> None:
    """Train a new version on the corpus + every correction, evaluate it on the held-out split."""
    from rich.progress import Progress

    from cityops.ai import models_service
    from cityops.ai import service as svc
    from cityops.db import session_scope
    from cityops.security.principal import SYSTEM

    try:
        with session_scope() as s:
            if queue:
                typer.echo(json.dumps(svc.queue_retrain(s, SYSTEM), ensure_ascii=False))
                return
            with Progress() as bar:
                task = bar.add_task("训练 training", total=1.0)
                row = models_service.train(s, SYSTEM, progress=lambda stage, f: bar.update(
                    task, completed=f, description=f"训练 {stage}"))
            out: dict[str, Any] = {"version": row.version, "n_train": row.n_train, "n_corrections": row.n_corrections,
                                   "train_s": row.train_s, "top1": row.metrics["heldout"]["top1"],
                                   "top3": row.metrics["heldout"]["top3"], "traps_top1": row.metrics["traps"]["top1"]}
            if promote:
                out |= models_service.promote(s, SYSTEM, row.version)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
        return
    typer.echo(json.dumps(out, ensure_ascii=False))


@classify_app.command("evaluate")
def evaluate(version: int | None = typer.Option(None, help="a model version (default: the active one)"),
             as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables")) -> None:
    """Top-1 / top-3 per category and overall on the held-out split (and on the hand-written traps)."""
    from cityops.ai import models_service
    from cityops.db import session_scope

    try:
        with session_scope() as s:
            row = models_service.get_version(s, version) if version else models_service.active_row(s)
            if row is None:
                typer.echo("no active model: run `cityops classify train`", err=True)
                raise typer.Exit(1)
            m = models_service.evaluate_model(s, models_service.load(row))
            ver = row.version
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps({"version": ver, **m}, ensure_ascii=False))
        return
    h = m["heldout"]
    _table(f"version {ver}: held-out split per category", [[code, v["name_zh"], v["n"], v["top1"], v["top3"]]
                                                           for code, v in sorted(h["per_label"].items())],
           ["code", "category", "n", "top-1", "top-3"])
    _table("overall", [["held-out", h["n"], h["top1"], h["top3"], h["ece"]],
                       ["traps (hand-written)", m["traps"]["n"], m["traps"]["top1"], m["traps"]["top3"], m["traps"]["ece"]]],
           ["set", "n", "top-1", "top-3", "ECE"])
    _table("traps by kind", [[k, v["n"], v.get("top1", 0.0)] for k, v in sorted(m["traps"]["by_kind"].items())],
           ["kind", "n", "top-1"])


@classify_app.command("promote")
def promote(version: int = typer.Argument(...), force: bool = typer.Option(False, help="even if worse")) -> None:
    """Make a version active (only if its held-out top-1 is not worse than the active one's)."""
    from cityops.ai import models_service
    from cityops.db import session_scope
    from cityops.security.principal import SYSTEM

    try:
        with session_scope() as s:
            out = models_service.promote(s, SYSTEM, version, force=force)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
        return
    typer.echo(json.dumps(out, ensure_ascii=False))


@classify_app.command("rollback")
def rollback() -> None:
    """Re-activate the version that was active before the current one."""
    from cityops.ai import models_service
    from cityops.db import session_scope
    from cityops.security.principal import SYSTEM

    try:
        with session_scope() as s:
            out = models_service.rollback(s, SYSTEM)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
        return
    typer.echo(json.dumps(out, ensure_ascii=False))


@classify_app.command("versions")
def versions() -> None:
    """List the model versions."""
    from cityops.ai import models_service
    from cityops.db import session_scope

    with session_scope() as s:
        rows = models_service.list_versions(s)
    _table("model versions", [[r["version"], r["status"], r["n_train"], r["n_corrections"], r["top1"] or 0.0,
                               r["top3"] or 0.0, r["train_s"], r["size_bytes"]] for r in rows],
           ["version", "status", "n", "corrections", "top-1", "top-3", "train s", "bytes"])


def register(app: typer.Typer) -> None:
    app.add_typer(classify_app, name="classify")
