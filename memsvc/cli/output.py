"""How `memsvc` commands print: JSON (exact, for pipes) or rich tables, progress bars, redaction.

Everything here renders the SDK's public models, which `Memory` and `MemoryClient` return
alike, so a command prints the same whether it ran on a data directory or against a server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from memsvc.models import (
    ApiKey,
    Cube,
    IndexInfo,
    MaintenanceRun,
    MemoryRecord,
    Neighbor,
    RecordVersion,
)

out = Console()
err = Console(stderr=True)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def dump(value: Any) -> Any:
    """Models (alone, or in lists and dicts) as plain JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def print_json(data: Any) -> None:
    text = json.dumps(dump(data), default=str, indent=2, ensure_ascii=False)
    if out.is_terminal:
        out.print_json(text)
    else:  # exact JSON for pipes and scripts: rich may wrap long lines
        sys.stdout.write(text + "\n")


def show(data: Any, as_json: bool, table: Callable[[Any], Table]) -> None:
    """Print `data` as JSON with --json, else as the table `table` makes of it."""
    if as_json:
        print_json(data)
    else:
        out.print(table(data))


def _table(*columns: str) -> Table:
    table = Table(show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def records_table(records: Sequence[Any], *, scores: list[float] | None = None) -> Table:
    table = Table(show_lines=False)
    if scores is not None:
        table.add_column("score", justify="right")
    for col in ("id", "kind", "when", "content"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(records):
        row = [r.id, r.kind, _when(r.event_time or r.created_at), r.content]
        if scores is not None:
            row.insert(0, f"{scores[i]:.3f}")
        table.add_row(*row)
    return table


def record_table(record: MemoryRecord) -> Table:
    return records_table([record])


def versions_table(versions: Iterable[RecordVersion]) -> Table:
    table = _table("version", "change", "changed", "status", "content", "cause")
    for v in versions:
        table.add_row(
            str(v.version), v.change, _when(v.changed_at), v.status, v.content, v.cause_id or ""
        )
    return table


def neighbors_table(neighbors: Iterable[Neighbor]) -> Table:
    table = _table("hops", "edge", "direction", "node", "type", "label")
    for n in neighbors:
        table.add_row(str(n.hops), n.edge, n.direction, n.node.id, n.node.type, n.node.label)
    return table


def cubes_table(cubes: Iterable[Cube]) -> Table:
    table = _table("cube", "id", "records", "access", "shared with", "description")
    for c in cubes:
        table.add_row(
            c.name, c.id, str(c.records), c.access, ", ".join(c.shared_with), c.description or ""
        )
    return table


def cube_table(cube: Cube) -> Table:
    return cubes_table([cube])


def maintenance_cell(run: MaintenanceRun | None) -> str:
    if run is None:
        return "never"
    if run.finished_at is None:
        return "running"
    changed = sum(v for k, v in run.counts.items() if k != "index_vectors")
    return f"{run.finished_at:%Y-%m-%d %H:%M} ({changed} changes)"


def changes_table(runs: Iterable[MaintenanceRun]) -> Table:
    """What each maintenance run changed (`memsvc maintain`)."""
    table = Table()
    for col in ("cube", "changes"):
        table.add_column(col)
    for r in runs:
        changes = ", ".join(f"{k} {v}" for k, v in r.counts.items() if v and k != "index_vectors")
        table.add_row(r.cube, changes or "nothing to do")
    return table


def runs_table(runs: Iterable[MaintenanceRun]) -> Table:
    """The latest run per cube (`memsvc maintenance-runs`)."""
    table = _table("cube", "trigger", "last run", "error")
    for r in runs:
        table.add_row(r.cube, r.trigger, maintenance_cell(r), r.error or "")
    return table


def cache_line(cache: dict[str, Any]) -> str:
    """The index cache (`Memory.index_cache`, or a server worker's by
    `MemoryClient.index_cache`, dumped) in one line of `memsvc info`."""
    budget = cache["budget_bytes"]
    held = f"{_mib(cache['bytes'])}" + ("" if budget is None else f" of {_mib(budget)}")
    return (
        f"index cache: {held}, {cache['cubes']} cubes loaded; {cache['hits']} hits, "
        f"{cache['misses']} misses, {cache['evictions']} evictions, "
        f"{cache['load_seconds']:.2f} s loading"
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def index_table(infos: Iterable[IndexInfo]) -> Table:
    table = _table("cube", "vectors", "index seq / db seq", "index file", "mode", "last rebuild")
    for ix in infos:
        table.add_row(
            ix.cube,
            str(ix.vectors),
            f"{ix.seq} / {ix.db_seq}",
            "present" if ix.file_exists else "missing",
            ix.mode,
            ix.last_rebuild_reason or "",
        )
    return table


def stats_table(stats: Iterable[dict[str, Any]]) -> Table:
    table = _table("cube id", "tenant", "records", "loaded vectors", "maintenance runs")
    for s in stats:
        records = ", ".join(f"{k} {v}" for k, v in sorted(s["records"].items()))
        vectors = "" if s["index_vectors"] is None else str(s["index_vectors"])
        table.add_row(s["cube_id"], s["tenant"], records, vectors, str(s["maintenance"]["runs"]))
    return table


def keys_table(keys: Iterable[ApiKey]) -> Table:
    table = Table()
    for col in ("key id", "tenant", "name", "created", "status"):
        table.add_column(col)
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        table.add_row(k.key_id, k.tenant, k.name or "", f"{k.created_at:%Y-%m-%d %H:%M}", state)
    return table


def redact(url: str) -> str:
    """A database URL with its password hidden, as SQLAlchemy renders it (no SQLAlchemy here:
    only the store speaks SQL)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    credentials, at, host = netloc.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"
