"""The core `memsvc` commands: each wraps one SDK method of the same name.

Every command takes --data-dir / --database-url (or MEMSVC_HOME / MEMSVC_DATABASE_URL) and
prints a table, or JSON with --json. `serve`/`mcp` (memsvc.api) and `eval` (memsvc.evals) are
registered by those packages (see memsvc.cli), so the core never imports the layers above it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from memsvc.cli.common import (
    CubeOpt,
    DataDir,
    DbUrl,
    JsonOut,
    UserOpt,
    err,
    open_memory,
    out,
    print_json,
    progress,
    records_table,
    redact,
)

app = typer.Typer(
    name="memsvc",
    help="Long-term memory for LLM agents: add what happened, recall what is relevant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _maintenance_cell(run: Any) -> str:
    if run is None:
        return "never"
    changed = sum(v for k, v in run.counts.items() if k != "index_vectors")
    return f"{run.finished_at:%Y-%m-%d %H:%M} ({changed} changes)"


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
    with open_memory(data_dir, database_url) as mem:
        key, token = mem.keys.create(tenant, name=name)
    if as_json:
        print_json({**key.model_dump(mode="json"), "key": token})
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
    with open_memory(data_dir, database_url) as mem:
        keys = mem.keys.list(tenant)
    if as_json:
        print_json([k.model_dump(mode="json") for k in keys])
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
    with open_memory(data_dir, database_url) as mem:
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
    with open_memory(data_dir, database_url) as mem:
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
            with progress() as bar:
                task = bar.add_task("adding", total=len(lines))
                for i in range(0, len(lines), batch):
                    records += mem.add(lines[i : i + batch], **common)
                    bar.advance(task, len(lines[i : i + batch]))
        if as_json:
            print_json([r.model_dump(mode="json") for r in records])
        else:
            out.print(f"added {len(records)} record(s) to cube {records[0].cube!r}")
            if len(records) <= 20:
                out.print(records_table(records))


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
    with open_memory(data_dir, database_url) as mem:
        hits = mem.recall(query, user_id=user, k=k, cube=cube, at=at, recipe=recipe)
        if as_json:
            print_json([h.model_dump(mode="json") for h in hits])
        elif not hits:
            out.print("no memories found")
        else:
            out.print(records_table([h.record for h in hits], scores=[h.score for h in hits]))


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
    with open_memory(data_dir, database_url) as mem:
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
            print_json(page.model_dump(mode="json"))
            return
        out.print(records_table(page.items))
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
    with open_memory(data_dir, database_url) as mem:
        if history:
            print_json([v.model_dump(mode="json") for v in mem.history(record_id)])
        else:
            print_json(mem.get(record_id).model_dump(mode="json"))


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
    with open_memory(data_dir, database_url) as mem:
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
    with open_memory(data_dir, database_url) as mem:
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
    with open_memory(data_dir, database_url) as mem:
        runs = mem.maintain(cube)
        if as_json:
            print_json([r.model_dump(mode="json") for r in runs])
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

    with open_memory(data_dir, database_url) as mem:
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
    with open_memory(data_dir, database_url) as mem, progress() as bar:
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
    with open_memory(data_dir, database_url) as mem, progress() as bar:
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
    with open_memory(data_dir, database_url) as mem:
        cubes = mem.list_cubes()
        indexes = {c.id: mem.index_info(c.id) for c in cubes}
        runs = {r.cube: r for r in mem.maintenance_runs()}
        url = mem.settings.resolved_database_url()
        data = {
            "data_dir": str(mem.settings.home.resolve()),
            "database": redact(url),
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
            print_json(data)
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
    with open_memory(data_dir, database_url) as mem:
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
            print_json(g.model_dump(mode="json"))
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
    with open_memory(data_dir, database_url) as mem:
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
    with open_memory(data_dir, database_url) as mem:
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
    with open_memory(data_dir, database_url) as mem, progress() as bar:
        task = bar.add_task("training", total=None)

        def tick(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"loss {loss:.3f}")

        rec = mem.consolidate(
            cube, record_ids=record, steps=steps, rank=rank, learning_rate=lr, progress=tick
        )
    if as_json:
        print_json(rec.model_dump(mode="json"))
        return
    curve = rec.metadata.get("loss_curve") or []
    out.print(
        f"parametric record {rec.id}: {len(rec.source.get('records', []))} memories, "
        f"loss {curve[0] if curve else 0:.3f} -> {curve[-1] if curve else 0:.3f}"
    )
