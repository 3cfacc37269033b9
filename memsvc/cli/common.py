"""What every `memsvc` command shares: the data-directory options, opening `Memory`, output.

Faces above the core (`memsvc.api`, `memsvc.evals`) build their commands from these too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from memsvc.config import Settings
from memsvc.errors import MemsvcError
from memsvc.memory import Memory

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="MEMSVC_HOME", help="Data directory (default ./.memsvc)."),
]
DbUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="MEMSVC_DATABASE_URL", help="SQLAlchemy database URL."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CubeOpt = Annotated[str | None, typer.Option("--cube", help="Cube name or id.")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="User id.")]


def settings_for(data_dir: Path | None, database_url: str | None) -> Settings:
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["home"] = data_dir
    if database_url is not None:
        update["database_url"] = database_url
    return Settings().model_copy(update=update)


@contextmanager
def open_memory(data_dir: Path | None, database_url: str | None) -> Iterator[Memory]:
    """Open the data directory; library errors become a one-line message and exit code 1."""
    try:
        with Memory(settings=settings_for(data_dir, database_url)) as mem:
            yield mem
    except MemsvcError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def print_json(data: Any) -> None:
    text = json.dumps(data, default=str, indent=2, ensure_ascii=False)
    if out.is_terminal:
        out.print_json(text)
    else:  # exact JSON for pipes and scripts: rich may wrap long lines
        sys.stdout.write(text + "\n")


def records_table(records: list[Any], *, scores: list[float] | None = None) -> Table:
    table = Table(show_lines=False)
    if scores is not None:
        table.add_column("score", justify="right")
    for col in ("id", "kind", "when", "content"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(records):
        when = (r.event_time or r.created_at).isoformat(timespec="seconds")
        row = [r.id, r.kind, when, r.content]
        if scores is not None:
            row.insert(0, f"{scores[i]:.3f}")
        table.add_row(*row)
    return table


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
