"""The `memsvc serve` and `memsvc mcp` commands, registered with the CLI by this package.

`memsvc.cli` finds `register` through the `memsvc.cli` entry point group (pyproject.toml), so
the core CLI never imports the API layer.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from memsvc.api.limits import is_loopback
from memsvc.cli.common import DataDir, DbUrl, err, open_memory, settings_for


def register(app: typer.Typer) -> None:
    """Add `serve` and `mcp` to the `memsvc` command."""
    app.command()(serve)
    app.command()(mcp)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default MEMSVC_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default MEMSVC_PORT, 8000).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default MEMSVC_WORKERS, 1).")
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No API keys: local development on loopback only.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Start the HTTP service (API keys required unless --no-auth).

    Example: memsvc serve --port 8000 --workers 2
    """
    import uvicorn

    from memsvc.api.server import HTTP_PROTOCOL

    settings = settings_for(data_dir, database_url)
    host = host or settings.host
    port = settings.port if port is None else port
    workers = workers or settings.workers
    auth = settings.auth and not no_auth
    if not auth and not is_loopback(host):
        err.print(f"[red]error:[/red] --no-auth only binds loopback addresses, not {host!r}")
        raise typer.Exit(2)
    mode = "API keys required" if auth else "NO AUTH (loopback only)"
    err.print(f"memsvc serving {settings.home.resolve()} on http://{host}:{port} ({mode})")
    if workers == 1:
        from memsvc.api.app import create_app

        app_ = create_app(settings=settings.model_copy(update={"auth": auth, "host": host}))
        uvicorn.run(app_, host=host, port=port, log_level="info", http=HTTP_PROTOCOL)
        return
    # Each worker process builds its own app from the environment.
    os.environ["MEMSVC_HOME"] = str(settings.home.resolve())
    os.environ["MEMSVC_AUTH"] = "true" if auth else "false"
    os.environ["MEMSVC_HOST"] = host  # the app checks it too: no keys only on loopback
    # Workers share the cores: give each its slice for bulk embedding unless set explicitly.
    os.environ.setdefault("MEMSVC_EMBED_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    # ... and of the default index budget (a value set explicitly is each worker's).
    os.environ.setdefault("MEMSVC_INDEX_MEMORY_BYTES", str(settings.index_memory_bytes // workers))
    if settings.database_url:
        os.environ["MEMSVC_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "memsvc.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        http=HTTP_PROTOCOL,
    )


def mcp(
    tenant: Annotated[
        str | None,
        typer.Option(help="Whose memories the tools see (default: the embedded 'local')."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Serve the memory tools over MCP on stdio, for an agent that starts memsvc itself.

    Example: memsvc mcp --tenant acme
    (in an MCP host's config: {"command": "memsvc", "args": ["mcp", "--tenant", "acme"]})
    """
    from memsvc.api.mcp_tools import build_mcp_server

    with open_memory(data_dir, database_url) as mem:
        scoped = mem.for_tenant(tenant) if tenant else mem
        mem.embedder.encode(["warm up"])  # the first tool call should not wait for the model
        err.print(f"memsvc MCP on stdio: {mem.settings.home.resolve()} ({scoped.tenant})")
        build_mcp_server(lambda _ctx: scoped).run("stdio")
