"""The `memsvc` command line.

The core commands live in `memsvc.cli.commands`. The faces above the core add their own:
`memsvc.api` registers `serve` and `mcp`, `memsvc.evals` registers `eval`, each through an entry
point in the `memsvc.cli` group (pyproject.toml). Loading them here, by name from the installed
metadata, keeps every import pointing down the layers.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import typer

ENTRY_POINT_GROUP = "memsvc.cli"


@cache
def build_app() -> typer.Typer:
    """The core commands plus every registered face's (once per process)."""
    from memsvc.cli.commands import app

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
