"""Operations: the state of the service and its upkeep (`info`, `maintain`, `maintenance-runs`,
`maintain-all`, `index-info`, `rebuild-index`, `cube-stats`, `load-indexes`).

`maintain-all` and `cube-stats` cover every tenant, and the index commands work on the vector
index files; the HTTP API offers neither, so these need a data directory. `info` works on
both, showing over `--url` what the API reports (cubes and their last maintenance) and the
index cache of the server worker that answered, from its `/metrics`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from memsvc.cli.common import Commands, JsonOut, Target
from memsvc.cli.output import (
    cache_line,
    changes_table,
    dump,
    err,
    index_table,
    maintenance_cell,
    out,
    print_json,
    redact,
    runs_table,
    show,
    stats_table,
)
from memsvc.errors import AuthError, MemsvcError
from memsvc.memory import Memory

command = Commands("Maintenance and indexes")
register = command.register

CubeArg = Annotated[str, typer.Argument(help="Cube name or id.")]
SomeCube = Annotated[str | None, typer.Argument(help="Cube name or id (default: every cube).")]
ALL_TENANTS = "it covers every tenant, which no API key does"
INDEX_FILES = "the HTTP API does not expose the vector index files"


OperatorToken = Annotated[
    str | None,
    typer.Option(
        "--operator-token",
        envvar="MEMSVC_OPERATOR_TOKEN",
        help="With --url: the server's operator token, for its index cache when /metrics needs it.",
    ),
]


@command("info")
def info(target: Target, as_json: JsonOut = False, operator_token: OperatorToken = None) -> None:
    """Show the data directory, database, cubes with record counts and index state, and the
    index cache: bytes held against MEMSVC_INDEX_MEMORY_BYTES, cubes loaded, hits, misses,
    evictions, load seconds (this process's, from loading each cube's index; with --url,
    the answering server worker's, from its /metrics, which needs --operator-token when the
    server has one set).

    Example: memsvc info --json
    """
    note = None
    with target.open() as mem:
        cubes = mem.list_cubes()
        runs = {r.cube: r for r in mem.maintenance_runs()}
        indexes: dict[str, Any] = {}
        local = isinstance(mem, Memory)
        if isinstance(mem, Memory):
            indexes = {c.id: mem.index_info(c.id) for c in cubes}
            data: dict[str, Any] = {
                "data_dir": str(mem.settings.home.resolve()),
                "database": redact(mem.settings.resolved_database_url()),
                "embedding_model": mem.embedder.model_id,
                "index_cache": dump(mem.index_cache()),
            }
        else:
            data = {"url": target.url, "index_cache": None}
            try:
                data["index_cache"] = dump(mem.index_cache(operator_token=operator_token))
            except AuthError:  # the rest of info is the tenant's own and still worth showing
                note = "index cache: not shown, the server's /metrics " + (
                    "refused the operator token given"
                    if operator_token
                    else "needs its operator token (--operator-token or MEMSVC_OPERATOR_TOKEN)"
                )
            except MemsvcError as exc:  # an older server, or /metrics not memsvc's own
                note = f"index cache: not shown ({exc.message})"
    data["cubes"] = [
        {
            **dump(c),
            "index": dump(indexes.get(c.id)),
            "last_maintenance": dump(runs.get(c.name)),
        }
        for c in cubes
    ]
    if as_json:
        if note:
            err.print(note)
        print_json(data)
        return
    if not local:
        out.print(f"server: {data['url']}")
    else:
        out.print(f"data dir: {data['data_dir']}\ndatabase: {data['database']}")
        out.print(f"embedding model: {data['embedding_model']}")
    out.print(note or cache_line(data["index_cache"]))
    table = Table()
    columns = ["cube", "records", "vectors", "index seq / db seq", "index file"]
    for col in [*(columns if local else columns[:2]), "last maintenance"]:
        table.add_column(col)
    for c in cubes:
        row = [c.name, str(c.records)]
        if local:
            ix = indexes[c.id]
            row += [
                str(ix.vectors),
                f"{ix.seq} / {ix.db_seq}",
                "present" if ix.file_exists else "missing",
            ]
        table.add_row(*row, maintenance_cell(runs.get(c.name)))
    out.print(table)


@command("maintain")
def maintain(target: Target, cube: SomeCube = None, as_json: JsonOut = False) -> None:
    """Run maintenance now: supersession, topic tree and links, duplicate merge, forgetting.

    Example: memsvc maintain user:alice
    """
    with target.open() as mem:
        show(mem.maintain(cube), as_json, changes_table)


@command("maintenance-runs")
def maintenance_runs(target: Target, cube: SomeCube = None, as_json: JsonOut = False) -> None:
    """The latest finished maintenance run of one cube, or of each of yours.

    Example: memsvc maintenance-runs user:alice --json
    """
    with target.open() as mem:
        show(mem.maintenance_runs(cube), as_json, runs_table)


@command("maintain-all", needs_data_dir=ALL_TENANTS)
def maintain_all(target: Target, as_json: JsonOut = False) -> None:
    """Maintenance of every cube of every tenant (what the scheduler in `memsvc serve` runs).

    Example: memsvc maintain-all --data-dir ./.memsvc
    """
    with target.open_memory() as mem:
        show(mem.maintain_all(), as_json, changes_table)


@command("index-info", needs_data_dir=INDEX_FILES)
def index_info(target: Target, cube: CubeArg, as_json: JsonOut = False) -> None:
    """A cube's vector index: vectors, change-log position against the database's, file.

    Example: memsvc index-info user:alice
    """
    with target.open_memory() as mem:
        show(mem.index_info(cube), as_json, lambda ix: index_table([ix]))


@command("rebuild-index", needs_data_dir=INDEX_FILES)
def rebuild_index(target: Target, cube: CubeArg, as_json: JsonOut = False) -> None:
    """Rebuild a cube's vector index from the database (the database is the source of truth).

    Example: memsvc rebuild-index user:alice
    """
    with target.open_memory() as mem:
        show(mem.rebuild_index(cube), as_json, lambda ix: index_table([ix]))


@command("cube-stats", needs_data_dir=ALL_TENANTS)
def cube_stats(target: Target, as_json: JsonOut = False) -> None:
    """Every cube of every tenant: records by status, loaded vectors, maintenance runs.

    Example: memsvc cube-stats --json
    """
    with target.open_memory() as mem:
        show(mem.cube_stats(), as_json, stats_table)


@command("load-indexes", needs_data_dir=INDEX_FILES)
def load_indexes(target: Target) -> None:
    """Load every cube's vector index and catch it up with the database (saved on exit).

    Example: memsvc load-indexes
    """
    with target.open_memory() as mem:
        n = mem.load_indexes()
    out.print(f"loaded {n} indexes")
