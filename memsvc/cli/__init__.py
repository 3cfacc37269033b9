"""The `memsvc` command line: one command per SDK method, split by job.

    data.py     records: add, recall, list, get, update, delete, restore, history, lineage,
                neighbors, graph, export-cube (export), import-cube (import)
    cubes.py    cubes: create-cube, get-cube, list-cubes, delete-cube, share-cube
    ops.py      operations: info, maintain, maintenance-runs, maintain-all, index-info,
                rebuild-index, cube-stats, load-indexes
    tiers.py    memory tiers: generate, promote, demote, consolidate
    keys.py     API keys: keys create, keys list, keys revoke (the methods of `Memory.keys`)
    common.py   what every command shares: the target (data directory, or --url server) and
                its options, opening it, errors as one line
    output.py   JSON, tables, progress bars, redaction

A command is named after the `Memory` / `MemoryClient` method it calls, hyphenated, and its
options are that method's keyword arguments. Methods with no command (`NOT_COMMANDS`), since
they make no sense for one process that opens the memory, runs one call and exits: `close`
and the context manager methods, `for_tenant` (a handle, not an operation; `memsvc serve`
and `memsvc mcp --tenant` act for tenants), `arecall` (`recall` for an event loop),
`maintenance_lease` and `maintain_due` (held and run by serving workers), `flush` (every
command saves its indexes when it closes), `index_cache` (`info` shows it: on a data
directory the command's own process's cache, from the indexes it loads; with `--url` the
answering server worker's, from its `/metrics`), and the properties (`settings`, `embedder`,
`keys` (its methods are the `keys` commands, but `authenticate`, which the server does),
`rate_limiter`, `tenant`, `local_lm`).

The faces above the core add their own commands: `memsvc.api` registers `serve` and `mcp`,
`memsvc.evals` registers `eval`, each through an entry point in the `memsvc.cli` group
(pyproject.toml). Loading them here, by name from the installed metadata, keeps every import
pointing down the layers: this package imports neither `memsvc.api` nor `memsvc.evals`.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import typer

ENTRY_POINT_GROUP = "memsvc.cli"
NOT_COMMANDS = frozenset(
    {"close", "for_tenant", "arecall", "maintenance_lease", "maintain_due", "flush", "index_cache"}
)


@cache
def build_app() -> typer.Typer:
    """The core commands plus every registered face's (once per process)."""
    from memsvc.cli import cubes, data, keys, ops, tiers

    app = typer.Typer(
        name="memsvc",
        help="Long-term memory for LLM agents: add what happened, recall what is relevant. "
        "Every command works on a data directory (--data-dir, default ./.memsvc) or on a "
        "running server (--url, --api-key).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    for job in (data, cubes, ops, tiers, keys):
        job.register(app)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(app)
    return app


def main() -> None:
    try:
        build_app()()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


def __getattr__(name: str) -> Any:
    if name == "app":  # `from memsvc.cli import app` gets the whole command, faces included
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
