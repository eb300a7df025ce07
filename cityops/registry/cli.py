"""``cityops import KIND FILE``: import base data (runs as the system principal).

Exit status: 0 imported, 1 rejected (every error printed with its row / feature number), 2 the
file could not be read.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("import", help="导入基础数据 import base data: buildings, households, persons, facilities, "
                               "organisations, places (CSV / XLSX / GeoJSON; all or nothing)")(import_cmd)


def import_cmd(kind: str = typer.Argument(..., help="buildings | households | persons | facilities | organisations | "
                                                    "places (或 建筑/户/人口/部件/企业/场所)"),
               file: Path = typer.Argument(..., help=".csv / .xlsx / .geojson"),
               dry_run: bool = typer.Option(False, "--dry-run", help="只校验不写入 validate only"),
               as_json: bool = typer.Option(False, "--json", help="print the report / errors as JSON")) -> None:
    from cityops.db import session_scope
    from cityops.errors import CityOpsError
    from cityops.registry import service
    from cityops.security.principal import SYSTEM

    try:
        data = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]无法读取 cannot read {file}: {exc.strerror}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            report = service.import_file(session, SYSTEM, kind, file.name, data, dry_run=dry_run)
    except CityOpsError as exc:
        if as_json:
            print(json.dumps(exc.body(), ensure_ascii=False, default=str))
        else:
            err.print(f"[red]{file.name} 未导入 NOT imported: {len(exc.problems)} 个错误 error(s)，未写入任何数据 "
                      f"nothing was written[/red]", soft_wrap=True)
            for p in exc.problems:
                err.print(f"  - {p.msg}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, default=str))
        return
    extra = "".join(f"，随之更新 {k} {v}" for k, v in report["cascaded"].items())
    verb = "校验通过（未写入）validated (dry run)" if dry_run else "已导入 imported"
    out.print(f"[green]{file.name} {verb}: {report['rows']} 条 rows — 新增 created {report['created']}，"
              f"更新 updated {report['updated']}，未变 unchanged {report['unchanged']}{extra}[/green]")
