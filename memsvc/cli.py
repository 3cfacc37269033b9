"""`memsvc` command line: each command wraps one SDK method of the same name.

Every command takes --data-dir / --database-url (or MEMSVC_HOME / MEMSVC_DATABASE_URL) and
prints a table, or JSON with --json.
"""

from __future__ import annotations

import ipaddress
import json
import os
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

app = typer.Typer(
    name="memsvc",
    help="Long-term memory for LLM agents: add what happened, recall what is relevant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["home"] = data_dir
    if database_url is not None:
        update["database_url"] = database_url
    return Settings().model_copy(update=update)


@contextmanager
def _memory(data_dir: Path | None, database_url: str | None) -> Iterator[Memory]:
    """Open the data directory; library errors become a one-line message and exit code 1."""
    try:
        with Memory(settings=_settings(data_dir, database_url)) as mem:
            yield mem
    except MemsvcError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _print_json(data: Any) -> None:
    text = json.dumps(data, default=str, indent=2, ensure_ascii=False)
    if out.is_terminal:
        out.print_json(text)
    else:  # exact JSON for pipes and scripts: rich may wrap long lines
        sys.stdout.write(text + "\n")


def _records_table(records: list[Any], *, scores: list[float] | None = None) -> Table:
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


def _maintenance_cell(run: Any) -> str:
    if run is None:
        return "never"
    changed = sum(v for k, v in run.counts.items() if k != "index_vectors")
    return f"{run.finished_at:%Y-%m-%d %H:%M} ({changed} changes)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
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

    from api.server import HTTP_PROTOCOL

    settings = _settings(data_dir, database_url)
    host = host or settings.host
    port = settings.port if port is None else port
    workers = workers or settings.workers
    auth = settings.auth and not no_auth
    if not auth and not _is_loopback(host):
        err.print(f"[red]error:[/red] --no-auth only binds loopback addresses, not {host!r}")
        raise typer.Exit(2)
    mode = "API keys required" if auth else "NO AUTH (loopback only)"
    err.print(f"memsvc serving {settings.home.resolve()} on http://{host}:{port} ({mode})")
    if workers == 1:
        from api.app import create_app

        app_ = create_app(settings=settings.model_copy(update={"auth": auth}))
        uvicorn.run(app_, host=host, port=port, log_level="info", http=HTTP_PROTOCOL)
        return
    # Each worker process builds its own app from the environment.
    os.environ["MEMSVC_HOME"] = str(settings.home.resolve())
    os.environ["MEMSVC_AUTH"] = "true" if auth else "false"
    # Workers share the cores: give each its slice for bulk embedding unless set explicitly.
    os.environ.setdefault("MEMSVC_EMBED_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    if settings.database_url:
        os.environ["MEMSVC_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        http=HTTP_PROTOCOL,
    )


@app.command()
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
    from api.mcp_tools import build_mcp_server

    with _memory(data_dir, database_url) as mem:
        scoped = mem.for_tenant(tenant) if tenant else mem
        mem.embedder.encode(["warm up"])  # the first tool call should not wait for the model
        err.print(f"memsvc MCP on stdio: {mem.settings.home.resolve()} ({scoped.tenant})")
        build_mcp_server(lambda _ctx: scoped).run("stdio")


keys_app = typer.Typer(help="Manage API keys (each belongs to one tenant).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for (created if new).")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Create an API key and print it once (only its hash is stored).

    Example: memsvc keys create --tenant acme --name ci
    """
    with _memory(data_dir, database_url) as mem:
        key, token = mem.keys.create(tenant, name=name)
    if as_json:
        _print_json({**key.model_dump(mode="json"), "key": token})
        return
    out.print(token)
    err.print(f"key {key.key_id} for tenant {key.tenant!r}: store it now, it is not shown again")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """List API keys (ids, tenants, status; never the secrets).

    Example: memsvc keys list --tenant acme
    """
    with _memory(data_dir, database_url) as mem:
        keys = mem.keys.list(tenant)
    if as_json:
        _print_json([k.model_dump(mode="json") for k in keys])
        return
    table = Table()
    for col in ("key id", "tenant", "name", "created", "status"):
        table.add_column(col)
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        table.add_row(k.key_id, k.tenant, k.name or "", f"{k.created_at:%Y-%m-%d %H:%M}", state)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `keys list`.")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Revoke an API key: requests with it are refused from now on.

    Example: memsvc keys revoke 3f9a1c2b7d4e
    """
    with _memory(data_dir, database_url) as mem:
        key = mem.keys.revoke(key_id)
    out.print(f"revoked {key.key_id} (tenant {key.tenant!r})")


@app.command()
def add(
    text: Annotated[str | None, typer.Argument(help="Text to remember.")] = None,
    user: Annotated[str, typer.Option("--user", "-u", help="User id.")] = ...,  # type: ignore[assignment]
    file: Annotated[
        Path | None, typer.Option("--file", help="Add each non-empty line of a text file.")
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option("--messages", help="JSON file: a list of {role, content, name?, timestamp?}."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Agent id.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Session id.")] = None,
    cube: CubeOpt = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object stored with it.")] = None,
    timestamp: Annotated[str | None, typer.Option(help="When it happened (ISO 8601).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")] = None,
    batch: Annotated[int, typer.Option(help="Records per write with --file.")] = 100,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Remember text, the lines of a file, or a JSON list of chat messages.

    Example: memsvc add "Alice moved to Berlin" --user alice --tag home
    """
    given = [x is not None for x in (text, file, messages)]
    if sum(given) != 1:
        err.print("[red]error:[/red] give exactly one of TEXT, --file or --messages")
        raise typer.Exit(2)
    try:
        meta = json.loads(metadata) if metadata else None
    except ValueError as exc:
        err.print(f"[red]error:[/red] --metadata is not JSON: {exc}")
        raise typer.Exit(2) from exc
    common = dict(
        user_id=user,
        agent_id=agent,
        session_id=session,
        cube=cube,
        metadata=meta,
        timestamp=timestamp,
        tags=tag,
    )
    with _memory(data_dir, database_url) as mem:
        if text is not None:
            records = mem.add(text, **common)
        elif messages is not None:
            try:
                msgs = json.loads(messages.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                err.print(f"[red]error:[/red] cannot read {messages}: {exc}")
                raise typer.Exit(2) from exc
            records = mem.add(messages=msgs, **common)
        else:
            assert file is not None
            lines = [ln for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
            records = []
            with _progress() as bar:
                task = bar.add_task("adding", total=len(lines))
                for i in range(0, len(lines), batch):
                    records += mem.add(lines[i : i + batch], **common)
                    bar.advance(task, len(lines[i : i + batch]))
        if as_json:
            _print_json([r.model_dump(mode="json") for r in records])
        else:
            out.print(f"added {len(records)} record(s) to cube {records[0].cube!r}")
            if len(records) <= 20:
                out.print(_records_table(records))


@app.command()
def recall(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    user: Annotated[str, typer.Option("--user", "-u", help="User id.")] = ...,  # type: ignore[assignment]
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 10,
    cube: CubeOpt = None,
    at: Annotated[str | None, typer.Option(help="Reference time (ISO 8601).")] = None,
    recipe: Annotated[
        str | None,
        typer.Option(help="fast, balanced, deep, or channels like 'dense=1+keyword=1|rrf20'."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Find the memories most relevant to a query (--json shows each channel's rank).

    Example: memsvc recall "where does alice live" --user alice -k 5 --recipe deep
    """
    with _memory(data_dir, database_url) as mem:
        hits = mem.recall(query, user_id=user, k=k, cube=cube, at=at, recipe=recipe)
        if as_json:
            _print_json([h.model_dump(mode="json") for h in hits])
        elif not hits:
            out.print("no memories found")
        else:
            out.print(_records_table([h.record for h in hits], scores=[h.score for h in hits]))


@app.command("list")
def list_(
    user: UserOpt = None,
    cube: CubeOpt = None,
    status: Annotated[str, typer.Option(help="active, archived, deleted or all.")] = "active",
    limit: Annotated[int, typer.Option(help="Records per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Cursor from the previous page.")] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(help="Only records of this tier: plaintext, activation, parametric."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """List a cube's records, oldest first, one page at a time.

    Example: memsvc list --user alice --limit 20 --tier activation
    """
    with _memory(data_dir, database_url) as mem:
        filters = {"tiers": tier} if tier else None
        page = mem.list(
            user_id=user,
            cube=cube,
            filters=filters,
            status=status,  # type: ignore[arg-type]
            limit=limit,
            cursor=cursor,
        )
        if as_json:
            _print_json(page.model_dump(mode="json"))
            return
        out.print(_records_table(page.items))
        if page.next_cursor:
            out.print(f"next page: --cursor {page.next_cursor}")


@app.command()
def get(
    record_id: Annotated[str, typer.Argument(help="Record id.")],
    history: Annotated[bool, typer.Option("--history", help="Show every version.")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show one record as JSON (or its version history).

    Example: memsvc get 5f1c... --history
    """
    with _memory(data_dir, database_url) as mem:
        if history:
            _print_json([v.model_dump(mode="json") for v in mem.history(record_id)])
        else:
            _print_json(mem.get(record_id).model_dump(mode="json"))


@app.command()
def delete(
    record_id: Annotated[str, typer.Argument(help="Record id.")],
    hard: Annotated[bool, typer.Option("--hard", help="Purge instead of marking deleted.")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Delete a record (soft by default: kept in history, gone from recall).

    Example: memsvc delete 5f1c... --hard
    """
    with _memory(data_dir, database_url) as mem:
        mem.delete(record_id, hard=hard)
        out.print(f"{'purged' if hard else 'deleted'} {record_id}")


@app.command()
def restore(
    record_id: Annotated[str, typer.Argument(help="Record id.")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Bring back an archived (faded or merged) or deleted record.

    Example: memsvc restore 5f1c...
    """
    with _memory(data_dir, database_url) as mem:
        rec = mem.restore(record_id)
        out.print(f"restored {rec.id} ({rec.status})")


@app.command()
def maintain(
    cube: Annotated[
        str | None, typer.Argument(help="Cube name or id (default: every cube).")
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Run maintenance now: supersession, topic tree and links, duplicate merge, forgetting.

    Example: memsvc maintain user:alice
    """
    with _memory(data_dir, database_url) as mem:
        runs = mem.maintain(cube)
        if as_json:
            _print_json([r.model_dump(mode="json") for r in runs])
            return
        table = Table()
        for col in ("cube", "changes"):
            table.add_column(col)
        for r in runs:
            changes = ", ".join(
                f"{k} {v}" for k, v in r.counts.items() if v and k != "index_vectors"
            )
            table.add_row(r.cube, changes or "nothing to do")
        out.print(table)


@app.command()
def graph(
    cube: Annotated[str, typer.Argument(help="Cube name or id.")],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "graph.html"
    ),
    types: Annotated[
        str | None, typer.Option("--types", help="Edge types, comma-separated (default all).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many edges.")] = 5000,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Write the cube's topic tree and graph as one self-contained interactive HTML page.

    Example: memsvc graph user:alice --out alice.html
    """
    from memsvc.graph_html import render_graph_html

    with _memory(data_dir, database_url) as mem:
        nodes: dict[str, Any] = {}
        edges: list[Any] = []
        cursor = None
        while len(edges) < limit:
            page = mem.graph(cube, types=types, limit=min(1000, limit - len(edges)), cursor=cursor)
            edges += page.edges
            nodes.update({n.id: n for n in page.nodes})
            cursor = page.next_cursor
            if cursor is None:
                break
        out_file.write_text(render_graph_html(cube, nodes.values(), edges), encoding="utf-8")
        out.print(f"wrote {out_file} ({len(nodes)} nodes, {len(edges)} edges)")


@app.command("export")
def export_(
    cube: Annotated[str, typer.Argument(help="Cube name or id.")],
    path: Annotated[Path, typer.Argument(help="File to write (.memcube).")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Export a cube to one portable file.

    Example: memsvc export user:alice alice.memcube
    """
    with _memory(data_dir, database_url) as mem, _progress() as bar:
        task = bar.add_task("exporting", total=None)
        counts = mem.export_cube(
            cube, path, progress=lambda n, total: bar.update(task, completed=n, total=total)
        )
    out.print(f"exported {counts['records']} records, {counts['edges']} edges to {path}")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A .memcube file.")],
    cube: Annotated[str | None, typer.Option(help="Name for the new cube.")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Import a cube file as a new cube.

    Example: memsvc import alice.memcube --cube alice-restored
    """
    with _memory(data_dir, database_url) as mem, _progress() as bar:
        task = bar.add_task("importing", total=None)
        made = mem.import_cube(
            path, cube=cube, progress=lambda n, total: bar.update(task, completed=n, total=total)
        )
    out.print(f"imported cube {made.name!r} ({made.records} records)")


@app.command()
def info(
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Show the data directory, database, cubes with record counts and index state.

    Example: memsvc info --json
    """
    with _memory(data_dir, database_url) as mem:
        cubes = mem.list_cubes()
        indexes = {c.id: mem.index_info(c.id) for c in cubes}
        runs = {r.cube: r for r in mem.maintenance_runs()}
        url = mem.settings.resolved_database_url()
        data = {
            "data_dir": str(mem.settings.home.resolve()),
            "database": _redact(url),
            "embedding_model": mem.embedder.model_id,
            "cubes": [
                {
                    **c.model_dump(mode="json"),
                    "index": indexes[c.id].model_dump(mode="json"),
                    "last_maintenance": runs[c.name].model_dump(mode="json")
                    if c.name in runs
                    else None,
                }
                for c in cubes
            ],
        }
        if as_json:
            _print_json(data)
            return
        out.print(f"data dir: {data['data_dir']}\ndatabase: {data['database']}")
        out.print(f"embedding model: {data['embedding_model']}")
        table = Table()
        for col in (
            "cube",
            "records",
            "vectors",
            "index seq / db seq",
            "index file",
            "last maintenance",
        ):
            table.add_column(col)
        for c in cubes:
            ix = indexes[c.id]
            table.add_row(
                c.name,
                str(c.records),
                str(ix.vectors),
                f"{ix.seq} / {ix.db_seq}",
                "present" if ix.file_exists else "missing",
                _maintenance_cell(runs.get(c.name)),
            )
        out.print(table)


eval_app = typer.Typer(
    help="Measure retrieval (and QA) on LoCoMo and LongMemEval beside plain baselines.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

EvalData = Annotated[Path, typer.Option("--data", help="The benchmark's JSON file.")]
EvalOut = Annotated[
    Path, typer.Option("--out", help="Directory for results.json, report.md, plots.")
]
EvalSystems = Annotated[
    list[str] | None,
    typer.Option(
        "--system",
        help="memsvc, memsvc+forgetting (ingest at the sessions' dates, maintain after each), "
        "bm25, dense, or memsvc:<recipe> such as memsvc:fast or memsvc:dense=1+keyword=1 "
        "(repeat or comma-separate; default memsvc, bm25, dense).",
    ),
]
EvalK = Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")]
EvalMode = Annotated[str, typer.Option("--mode", help="retrieval, or qa (answer + judge).")]
EvalServer = Annotated[
    str | None,
    typer.Option("--server", help="Evaluate a running memsvc (key from MEMSVC_API_KEY)."),
]
LlmUrl = Annotated[
    str | None,
    typer.Option("--llm-base-url", help="OpenAI-compatible endpoint (default: the local LM)."),
]
LlmModel = Annotated[
    str | None,
    typer.Option("--llm-model", help="Model name at the endpoint, or a local model path."),
]
LlmKeyEnv = Annotated[
    str, typer.Option("--llm-api-key-env", help="Env var holding the endpoint's API key.")
]
JudgeModel = Annotated[
    str | None, typer.Option("--judge-model", help="Judge model (default: the answer model).")
]
QaK = Annotated[int, typer.Option("--qa-k", help="Memories the answer model reads.")]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Embedding cache (default ~/.cache/memsvc/eval)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to ask the local LM.")],
    user: Annotated[str, typer.Option("--user", "-u", help="User id.")] = ...,  # type: ignore[assignment]
    cube: CubeOpt = None,
    k: Annotated[int, typer.Option("-k", help="Memories recalled into the prompt.")] = 5,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompute instead of using KV caches.")
    ] = False,
    adapter: Annotated[
        str | None, typer.Option(help="A parametric record's id (its LoRA adapter).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 64,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Answer with the local LM and recalled memories (KV caches used where present).

    Example: memsvc generate "what is my dog called?" --user alice -k 3
    """
    with _memory(data_dir, database_url) as mem:
        g = mem.generate(
            prompt,
            user_id=user,
            cube=cube,
            k=k,
            use_cache=not no_cache,
            adapter=adapter,
            max_tokens=max_tokens,
        )
        if as_json:
            _print_json(g.model_dump(mode="json"))
            return
        out.print(g.text)
        used = f"{len(g.memories)} memories"
        if g.cache_id:
            used += f", cache {g.cache_id} ({g.cached_tokens} of {g.prompt_tokens} tokens)"
        if g.adapter_id:
            used += f", adapter {g.adapter_id}"
        err.print(f"[dim]{used}; first token {g.ttft_s:.3f} s, total {g.total_s:.3f} s[/dim]")


@app.command()
def promote(
    record_ids: Annotated[list[str], typer.Argument(help="Plaintext record ids, in order.")],
    tier: Annotated[str, typer.Option(help="activation (KV cache) or parametric (LoRA).")] = (
        "activation"
    ),
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Build a KV cache (or a LoRA adapter) from memories: a new tier record.

    Example: memsvc promote 5f1c... 77ab... --tier activation
    """
    with _memory(data_dir, database_url) as mem:
        rec = mem.promote(record_ids, tier=tier)  # type: ignore[arg-type]
        size = rec.source.get("bytes", 0)
        out.print(f"{rec.tier} record {rec.id} ({size / 1e6:.1f} MB)")


@app.command()
def demote(
    record_id: Annotated[str, typer.Argument(help="A tier record, or a plaintext record.")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Delete a tier record and its file, or the caches built from a plaintext record.

    Example: memsvc demote 5f1c...
    """
    with _memory(data_dir, database_url) as mem:
        removed = mem.demote(record_id)
        out.print(f"removed {len(removed)} tier records" + "".join(f"\n  {r}" for r in removed))


@app.command()
def consolidate(
    cube: Annotated[str, typer.Argument(help="Cube name or id.")],
    record: Annotated[
        list[str] | None, typer.Option("--record", help="Train on these (default: all).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps (default 100).")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank (default 16).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Train a LoRA adapter on a cube's memories (minutes on a CPU): a parametric record.

    Example: memsvc consolidate user:alice --steps 100
    """
    with _memory(data_dir, database_url) as mem, _progress() as bar:
        task = bar.add_task("training", total=None)

        def tick(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"loss {loss:.3f}")

        rec = mem.consolidate(
            cube, record_ids=record, steps=steps, rank=rank, learning_rate=lr, progress=tick
        )
    if as_json:
        _print_json(rec.model_dump(mode="json"))
        return
    curve = rec.metadata.get("loss_curve") or []
    out.print(
        f"parametric record {rec.id}: {len(rec.source.get('records', []))} memories, "
        f"loss {curve[0] if curve else 0:.3f} -> {curve[-1] if curve else 0:.3f}"
    )


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise typer.BadParameter(f"--k must be comma-separated integers, not {text!r}") from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter("--k values must be positive")
    return ks


def _run_eval(kind: str, **fields: Any) -> None:
    from evals.locomo import LocomoError
    from evals.longmemeval import LongMemEvalError
    from evals.runner import EvalConfig, run_locomo, run_longmemeval

    try:
        cfg = EvalConfig(**fields)
        results = run_locomo(cfg) if kind == "locomo" else run_longmemeval(cfg)
    except (LocomoError, LongMemEvalError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)  # unwrapped: paths stay whole
        raise typer.Exit(1) from None
    except MemsvcError as exc:
        typer.echo(f"error: {exc}", err=True)  # unwrapped: paths stay whole
        raise typer.Exit(1) from None
    table = Table(title=f"{kind}: {cfg.out / 'report.md'}")
    agg = results["aggregates"]
    if kind == "locomo":
        k = 10 if 10 in results["ks"] else results["ks"][0]
        cats = ["overall", "overall_1_4", "single-hop", "multi-hop", "temporal", "open-domain"]
        cats.append("adversarial")
        table.add_column("system")
        names = {"overall": f"recall@{k} overall", "overall_1_4": "categories 1-4"}
        for c in cats:
            table.add_column(names.get(c, c), justify="right")
        for name, a in agg.items():
            vals = a[f"recall@{k}"]
            table.add_row(
                name, *("-" if vals.get(c) is None else f"{100 * vals[c]:.1f}" for c in cats)
            )
    else:
        level = "session"
        cols = ["recall_all@5", "recall_all@10", "recall_any@5", "ndcg_any@5"]
        table.add_column("system")
        for c in cols:
            table.add_column(f"{level} {c}", justify="right")
        for name, a in agg.items():
            vals = a.get(level, {})
            table.add_row(
                name, *("-" if vals.get(c) is None else f"{100 * vals[c]:.1f}" for c in cols)
            )
    Console(width=max(out.width, 140)).print(table)  # wide: column names stay whole


@eval_app.command("locomo")
def eval_locomo(
    data: EvalData,
    out_dir: EvalOut,
    conversations: Annotated[
        list[str] | None,
        typer.Option("--conversations", help="Sample ids (repeat or comma-separate; default all)."),
    ] = None,
    system: EvalSystems = None,
    k: EvalK = "5,10,25,50",
    mode: EvalMode = "retrieval",
    server: EvalServer = None,
    llm_base_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_api_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    judge_model: JudgeModel = None,
    qa_k: QaK = 10,
    max_questions: Annotated[
        int | None, typer.Option("--max-questions", help="Per conversation (quick QA runs).")
    ] = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """LoCoMo: evidence recall@k per category (official and repaired), optional QA.

    Example: memsvc eval locomo --data locomo10.json --conversations conv-26 --out runs/l1
    """
    _run_eval(
        "locomo",
        data=data,
        out=out_dir,
        conversations=_split(conversations),
        systems=_split(system) or ["memsvc", "bm25", "dense"],
        ks=_ks(k),
        mode=mode,
        server=server,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_api_key_env=llm_api_key_env,
        judge_model=judge_model,
        qa_k=qa_k,
        max_questions=max_questions,
        cache_dir=cache_dir,
        progress=not quiet,
    )


@eval_app.command("longmemeval")
def eval_longmemeval(
    data: EvalData,
    out_dir: EvalOut,
    granularity: Annotated[
        str, typer.Option("--granularity", help="session or turn documents.")
    ] = "session",
    limit: Annotated[int | None, typer.Option("--limit", help="First N questions only.")] = None,
    system: EvalSystems = None,
    k: EvalK = "1,3,5,10,30,50",
    mode: EvalMode = "retrieval",
    server: EvalServer = None,
    llm_base_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_api_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    judge_model: JudgeModel = None,
    qa_k: QaK = 10,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """LongMemEval: recall_any/recall_all/ndcg_any@k at session and turn level, optional QA.
    The file is checked against the official ones (size, sha256) first.

    Example: memsvc eval longmemeval --data longmemeval_s_cleaned.json --out runs/lme
    """
    _run_eval(
        "longmemeval",
        data=data,
        out=out_dir,
        granularity=granularity,
        limit=limit,
        systems=_split(system) or ["memsvc", "bm25", "dense"],
        ks=_ks(k),
        mode=mode,
        server=server,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_api_key_env=llm_api_key_env,
        judge_model=judge_model,
        qa_k=qa_k,
        cache_dir=cache_dir,
        progress=not quiet,
    )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
