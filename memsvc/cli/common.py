"""Where a `memsvc` command's memory lives, and how the command opens it.

Every command targets a data directory (the default: `--data-dir` / `--database-url`, or
MEMSVC_HOME / MEMSVC_DATABASE_URL), opened as an embedded `Memory`, or a running server
(`--url` / `--api-key`, or MEMSVC_URL / MEMSVC_API_KEY), reached through `MemoryClient`. The
two have the same methods, return types and exception classes (`memsvc.errors`), so a
command's body is written once: `with target.open() as mem: mem.recall(...)`; a `MemsvcError`
from either becomes one line on stderr and exit code 1. An option given on the command line
wins over the environment (`--data-dir` over MEMSVC_URL, `--url` over MEMSVC_HOME).

`Commands` collects one job module's commands and gives each the four target options. A
command that needs direct access to the data directory (key administration, index files,
every tenant at once) says so and exits 2 when given `--url`, and ignores MEMSVC_URL.

Faces above the core (`memsvc.api`, `memsvc.evals`) build their commands from `open_memory`,
the options and the consoles here too.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from memsvc.cli.output import err, out
from memsvc.client import MemoryClient
from memsvc.config import Settings
from memsvc.errors import MemsvcError
from memsvc.memory import Memory

__all__ = [
    "ApiKey",
    "Commands",
    "CubeOpt",
    "DataDir",
    "DbUrl",
    "JsonOut",
    "Target",
    "Url",
    "UserOpt",
    "err",
    "json_option",
    "open_memory",
    "out",
    "reporting_errors",
    "settings_for",
    "usage_error",
]

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="MEMSVC_HOME", help="Data directory (default ./.memsvc)."),
]
DbUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="MEMSVC_DATABASE_URL", help="SQLAlchemy database URL."),
]
Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MEMSVC_URL",
        help="A running memsvc server (http://127.0.0.1:8000) instead of a data directory.",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="MEMSVC_API_KEY", help="API key for --url."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CubeOpt = Annotated[str | None, typer.Option("--cube", help="Cube name or id.")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", "--user-id", help="User id.")]


def settings_for(data_dir: Path | None, database_url: str | None) -> Settings:
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["home"] = data_dir
    if database_url is not None:
        update["database_url"] = database_url
    return Settings().model_copy(update=update)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """A library error (embedded or from the server) becomes one line and exit code 1."""
    try:
        yield
    except MemsvcError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


@contextmanager
def open_memory(data_dir: Path | None, database_url: str | None) -> Iterator[Memory]:
    """Open the data directory; library errors become a one-line message and exit code 1."""
    with reporting_errors(), Memory(settings=settings_for(data_dir, database_url)) as mem:
        yield mem


def usage_error(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def json_option(value: str | None, option: str) -> Any:
    """The value of a JSON option (`--metadata`, `--filters`), or exit 2 naming it."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        usage_error(f"{option} is not JSON: {exc}")


@dataclass(frozen=True)
class Target:
    """Where one command invocation's memory lives: a data directory, or a server's URL."""

    data_dir: Path | None = None
    database_url: str | None = None
    url: str | None = None
    api_key: str | None = None

    @property
    def remote(self) -> bool:
        return self.url is not None

    @contextmanager
    def open(self) -> Iterator[Memory | MemoryClient]:
        """`Memory` on the data directory, or `MemoryClient` on the server."""
        if self.url is None:
            with open_memory(self.data_dir, self.database_url) as mem:
                yield mem
        else:
            with reporting_errors(), MemoryClient(self.url, self.api_key) as client:
                yield client

    def open_memory(self) -> Any:
        """The data directory, for a command that exists only embedded (`needs_data_dir`)."""
        assert self.url is None
        return open_memory(self.data_dir, self.database_url)


_TARGET_PARAMS = ("data_dir", "database_url", "url", "api_key")


def _target(ctx: typer.Context, command: str, needs_data_dir: str | None, **where: Any) -> Target:
    def typed(name: str) -> bool:  # given on the command line, not by the environment
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    url = where["url"]
    if url is not None and needs_data_dir:
        if typed("url"):
            usage_error(
                f"`memsvc {command}` needs a data directory (--data-dir or MEMSVC_HOME), "
                f"not --url: {needs_data_dir}"
            )
        url = None  # MEMSVC_URL in the environment: this command stays on the data directory
    if url is not None and (typed("data_dir") or typed("database_url")):
        if typed("url"):
            usage_error("give --url or --data-dir/--database-url, not both")
        url = None  # the command line's data directory wins over MEMSVC_URL
    if url is None and typed("api_key"):
        usage_error("--api-key goes with --url")
    return Target(where["data_dir"], where["database_url"], url, where["api_key"])


def _with_target(fn: Callable[..., None], command: str, needs_data_dir: str | None) -> Any:
    """`fn(target, **options)` as a typer callback that also takes the four target options."""
    sig = inspect.signature(fn, eval_str=True)
    first, *own = sig.parameters.values()
    assert first.name == "target", fn
    url: Any = Url
    if needs_data_dir:
        url = Annotated[
            str | None,
            typer.Option(
                "--url",
                envvar="MEMSVC_URL",
                help=f"Not for this command: it needs a data directory ({needs_data_dir}).",
            ),
        ]
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("ctx", kw, annotation=typer.Context),
        *(p.replace(kind=kw) for p in own),
        *(
            inspect.Parameter(name, kw, default=None, annotation=ann)
            for name, ann in zip(_TARGET_PARAMS, (DataDir, DbUrl, url, ApiKey), strict=True)
        ),
    ]

    @functools.wraps(fn)
    def callback(ctx: typer.Context, **kwargs: Any) -> None:
        where = {name: kwargs.pop(name) for name in _TARGET_PARAMS}
        fn(_target(ctx, command, needs_data_dir, **where), **kwargs)

    callback.__signature__ = sig.replace(parameters=params, return_annotation=None)  # type: ignore[attr-defined]
    callback.__annotations__ = {p.name: p.annotation for p in params}
    return callback


class Commands:
    """One job module's commands; `register(app)` adds them to a typer app under one help
    panel. Each command is `fn(target: Target, ...)`, named like the SDK method it calls."""

    def __init__(self, panel: str | None = None, *, group: str | None = None) -> None:
        self.panel = panel
        self.group = group  # "keys": messages name the command `memsvc keys create`
        self._commands: list[tuple[str, Any, bool]] = []

    def __call__(
        self, name: str, *, aliases: tuple[str, ...] = (), needs_data_dir: str | None = None
    ) -> Callable[[Callable[..., None]], Callable[..., None]]:
        """`needs_data_dir`: why the command has no server form (it refuses `--url`)."""

        def decorate(fn: Callable[..., None]) -> Callable[..., None]:
            full = f"{self.group} {name}" if self.group else name
            callback = _with_target(fn, full, needs_data_dir)
            self._commands.append((name, callback, False))
            self._commands += [(alias, callback, True) for alias in aliases]
            return fn

        return decorate

    def register(self, app: typer.Typer) -> None:
        for name, callback, hidden in self._commands:
            app.command(name, hidden=hidden, rich_help_panel=self.panel)(callback)
