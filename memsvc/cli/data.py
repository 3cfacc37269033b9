"""Records: write, read, change and move memories (`add`, `recall`, `list`, `get`, `update`,
`delete`, `restore`, `history`, `lineage`, `neighbors`, `graph`, `export-cube`, `import-cube`).

Each command calls the SDK method of the same name (hyphenated) and takes its keyword
arguments as options: `user_id` is `--user-id` (or `--user`, `-u`), a list is a repeatable
option (`--tag`), a dict is JSON (`--metadata`, `--filters`). `export` and `import` are the
older names of `export-cube` and `import-cube`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from memsvc.cli.common import (
    Commands,
    CubeOpt,
    JsonOut,
    Target,
    UserOpt,
    json_option,
    usage_error,
)
from memsvc.cli.output import (
    neighbors_table,
    out,
    print_json,
    progress,
    record_table,
    records_table,
    show,
    versions_table,
)

command = Commands("Records")
register = command.register

RecordId = Annotated[str, typer.Argument(help="Record id.")]
User = Annotated[str, typer.Option("--user", "-u", "--user-id", help="User id.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")]
Metadata = Annotated[str | None, typer.Option(help="JSON object stored with it.")]
FiltersOpt = Annotated[
    str | None,
    typer.Option(
        "--filters",
        help="JSON filters: agent_id, session_id, kinds, tiers, tags, since, until, metadata, "
        'e.g. \'{"tags": ["home"]}\'.',
    ),
]
TypesOpt = Annotated[
    str | None, typer.Option("--types", help="Edge types, comma-separated (default all).")
]


@command("add")
def add(
    target: Target,
    text: Annotated[str | None, typer.Argument(help="Text to remember.")] = None,
    user: User = ...,  # type: ignore[assignment]
    file: Annotated[
        Path | None, typer.Option("--file", help="Add each non-empty line of a text file.")
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option("--messages", help="JSON file: a list of {role, content, name?, timestamp?}."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", "--agent-id", help="Agent id.")] = None,
    session: Annotated[
        str | None, typer.Option("--session", "--session-id", help="Session id.")
    ] = None,
    cube: CubeOpt = None,
    metadata: Metadata = None,
    timestamp: Annotated[str | None, typer.Option(help="When it happened (ISO 8601).")] = None,
    kind: Annotated[str | None, typer.Option(help="fact, episode, preference, ...")] = None,
    tag: Tags = None,
    importance: Annotated[float | None, typer.Option(help="0 to 1.")] = None,
    pinned: Annotated[bool, typer.Option("--pinned", help="Never fades.")] = False,
    batch: Annotated[int, typer.Option(help="Records per write with --file.")] = 100,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Run it again with the same key and nothing is stored twice (with --file, "
            "batch N uses KEY.N, so a rerun after a failure adds only the missing batches).",
        ),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Remember text, the lines of a file, or a JSON list of chat messages.

    Example: memsvc add "Alice moved to Berlin" --user alice --tag home
    """
    if sum(x is not None for x in (text, file, messages)) != 1:
        usage_error("give exactly one of TEXT, --file or --messages")
    common = dict(
        user_id=user,
        agent_id=agent,
        session_id=session,
        cube=cube,
        metadata=json_option(metadata, "--metadata"),
        timestamp=timestamp,
        kind=kind,
        tags=tag,
        importance=importance,
        pinned=pinned,
    )
    with target.open() as mem:
        if text is not None:
            records = mem.add(text, **common, idempotency_key=idempotency_key)
        elif messages is not None:
            try:
                msgs = json.loads(messages.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                usage_error(f"cannot read {messages}: {exc}")
            records = mem.add(messages=msgs, **common, idempotency_key=idempotency_key)
        else:
            assert file is not None
            lines = [ln for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
            records = []
            with progress() as bar:
                task = bar.add_task("adding", total=len(lines))
                for n, i in enumerate(range(0, len(lines), batch)):
                    key = None if idempotency_key is None else f"{idempotency_key}.{n}"
                    records += mem.add(lines[i : i + batch], **common, idempotency_key=key)
                    bar.advance(task, len(lines[i : i + batch]))
    if as_json:
        print_json(records)
    else:
        out.print(f"added {len(records)} record(s) to cube {records[0].cube!r}")
        if len(records) <= 20:
            out.print(records_table(records))


@command("recall")
def recall(
    target: Target,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    user: User = ...,  # type: ignore[assignment]
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 10,
    filters: FiltersOpt = None,
    at: Annotated[str | None, typer.Option(help="Reference time (ISO 8601).")] = None,
    cube: CubeOpt = None,
    recipe: Annotated[
        str | None,
        typer.Option(help="fast, balanced, deep, or channels like 'dense=1+keyword=1|rrf20'."),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Find the memories most relevant to a query (--json shows each channel's rank).

    Example: memsvc recall "where does alice live" --user alice -k 5 --recipe deep
    """
    flt = json_option(filters, "--filters")
    with target.open() as mem:
        hits = mem.recall(query, user_id=user, k=k, filters=flt, at=at, cube=cube, recipe=recipe)
    if as_json:
        print_json(hits)
    elif not hits:
        out.print("no memories found")
    else:
        out.print(records_table([h.record for h in hits], scores=[h.score for h in hits]))


@command("list")
def list_(
    target: Target,
    user: UserOpt = None,
    cube: CubeOpt = None,
    filters: FiltersOpt = None,
    status: Annotated[str, typer.Option(help="active, archived, deleted or all.")] = "active",
    limit: Annotated[int, typer.Option(help="Records per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Cursor from the previous page.")] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(help="Only records of this tier: plaintext, activation, parametric."),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """List a cube's records, oldest first, one page at a time.

    Example: memsvc list --user alice --limit 20 --tier activation
    """
    flt: Any = json_option(filters, "--filters")
    if tier:
        flt = {**(flt or {}), "tiers": tier}
    with target.open() as mem:
        page = mem.list(
            user_id=user,
            cube=cube,
            filters=flt,
            status=status,  # type: ignore[arg-type]
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        print_json(page)
        return
    out.print(records_table(page.items))
    if page.next_cursor:
        out.print(f"next page: --cursor {page.next_cursor}")


@command("get")
def get(
    target: Target,
    record_id: RecordId,
    history: Annotated[bool, typer.Option("--history", help="Show every version.")] = False,
) -> None:
    """Show one record as JSON (or its version history).

    Example: memsvc get 5f1c... --history
    """
    with target.open() as mem:
        print_json(mem.history(record_id) if history else mem.get(record_id))


@command("update")
def update(
    target: Target,
    record_id: RecordId,
    text: Annotated[str | None, typer.Option(help="New text (re-embedded).")] = None,
    metadata: Annotated[
        str | None, typer.Option(help="JSON object: replaces the whole metadata.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Tag (repeatable): replaces the tags.")
    ] = None,
    importance: Annotated[float | None, typer.Option(help="0 to 1.")] = None,
    kind: Annotated[str | None, typer.Option(help="fact, episode, preference, ...")] = None,
    event_time: Annotated[str | None, typer.Option(help="When it happened (ISO 8601).")] = None,
    valid_from: Annotated[str | None, typer.Option(help="True from (ISO 8601).")] = None,
    valid_to: Annotated[str | None, typer.Option(help="True until (ISO 8601).")] = None,
    pinned: Annotated[
        bool | None, typer.Option("--pinned/--unpinned", help="Keep it from fading, or not.")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Change a record: a new version (the old one stays in `memsvc history`).

    Example: memsvc update 5f1c... --text "Alice moved to Munich" --tag home
    """
    changes = dict(
        text=text,
        metadata=json_option(metadata, "--metadata"),
        tags=tag,
        importance=importance,
        kind=kind,
        event_time=event_time,
        valid_from=valid_from,
        valid_to=valid_to,
        pinned=pinned,
    )
    with target.open() as mem:
        rec = mem.update(record_id, **changes)
    if as_json:
        print_json(rec)
        return
    out.print(f"updated {rec.id} (version {rec.version})")
    out.print(record_table(rec))


@command("delete")
def delete(
    target: Target,
    record_id: RecordId,
    hard: Annotated[bool, typer.Option("--hard", help="Purge instead of marking deleted.")] = False,
) -> None:
    """Delete a record (soft by default: kept in history, gone from recall).

    Example: memsvc delete 5f1c... --hard
    """
    with target.open() as mem:
        mem.delete(record_id, hard=hard)
    out.print(f"{'purged' if hard else 'deleted'} {record_id}")


@command("restore")
def restore(target: Target, record_id: RecordId, as_json: JsonOut = False) -> None:
    """Bring back an archived (faded or merged) or deleted record.

    Example: memsvc restore 5f1c...
    """
    with target.open() as mem:
        rec = mem.restore(record_id)
    if as_json:
        print_json(rec)
    else:
        out.print(f"restored {rec.id} ({rec.status})")


@command("history")
def history(target: Target, record_id: RecordId, as_json: JsonOut = False) -> None:
    """Every version of a record, oldest first (what changed, when, and what caused it).

    Example: memsvc history 5f1c... --json
    """
    with target.open() as mem:
        show(mem.history(record_id), as_json, versions_table)


@command("lineage")
def lineage(target: Target, record_id: RecordId, as_json: JsonOut = False) -> None:
    """The supersession chain through a record, oldest first, each closed by the next.

    Example: memsvc lineage 5f1c...
    """
    with target.open() as mem:
        show(mem.lineage(record_id), as_json, records_table)


@command("neighbors")
def neighbors(
    target: Target,
    record_id: RecordId,
    types: TypesOpt = None,
    depth: Annotated[int, typer.Option(help="Hops, 1 to 3.")] = 1,
    as_json: JsonOut = False,
) -> None:
    """A record's neighbors in the cube's graph, with the edge that reached each.

    Example: memsvc neighbors 5f1c... --types mentions,follows --depth 2
    """
    with target.open() as mem:
        show(mem.neighbors(record_id, types=types, depth=depth), as_json, neighbors_table)


@command("graph")
def graph(
    target: Target,
    cube: Annotated[str, typer.Argument(help="Cube name or id.")],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "graph.html"
    ),
    types: TypesOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many edges.")] = 5000,
    cursor: Annotated[str | None, typer.Option(help="Start from this page's cursor.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the edges and nodes as JSON, no HTML.")
    ] = False,
) -> None:
    """Write the cube's topic tree and graph as one self-contained offline HTML page (search,
    edge-type toggles, neighbourhoods; at most 2,000 nodes drawn, the best connected).

    Example: memsvc graph user:alice --out alice.html
    """
    from memsvc.graph_html import MAX_NODES, render_graph_html

    nodes: dict[str, Any] = {}
    edges: list[Any] = []
    with target.open() as mem:
        while len(edges) < limit:
            page = mem.graph(cube, types=types, limit=min(1000, limit - len(edges)), cursor=cursor)
            edges += page.edges
            nodes.update({n.id: n for n in page.nodes})
            cursor = page.next_cursor
            if cursor is None:
                break
    if as_json:
        print_json({"nodes": list(nodes.values()), "edges": edges, "next_cursor": cursor})
        return
    out_file.write_text(render_graph_html(cube, nodes.values(), edges), encoding="utf-8")
    drawn = f"; the page draws the {MAX_NODES} best connected" if len(nodes) > MAX_NODES else ""
    out.print(f"wrote {out_file} ({len(nodes)} nodes, {len(edges)} edges{drawn})")


@command("export-cube", aliases=("export",))
def export_cube(
    target: Target,
    cube: Annotated[str, typer.Argument(help="Cube name or id.")],
    path: Annotated[Path, typer.Argument(help="File to write (.memcube).")],
) -> None:
    """Export a cube to one portable file (also `memsvc export`).

    Example: memsvc export-cube user:alice alice.memcube
    """
    with target.open() as mem, progress() as bar:
        task = bar.add_task("exporting", total=None)
        counts = mem.export_cube(
            cube, path, progress=lambda n, total: bar.update(task, completed=n, total=total)
        )
    out.print(f"exported {counts['records']} records, {counts['edges']} edges to {path}")


@command("import-cube", aliases=("import",))
def import_cube(
    target: Target,
    path: Annotated[Path, typer.Argument(help="A .memcube file.")],
    cube: Annotated[str | None, typer.Option(help="Name for the new cube.")] = None,
    as_json: JsonOut = False,
) -> None:
    """Import a cube file as a new cube (also `memsvc import`).

    Example: memsvc import-cube alice.memcube --cube alice-restored
    """
    with target.open() as mem, progress() as bar:
        task = bar.add_task("importing", total=None)
        made = mem.import_cube(
            path, cube=cube, progress=lambda n, total: bar.update(task, completed=n, total=total)
        )
    if as_json:
        print_json(made)
    else:
        out.print(f"imported cube {made.name!r} ({made.records} records)")
