"""Cubes: make, inspect, delete and share named cubes (`create-cube`, `get-cube`, `list-cubes`,
`delete-cube`, `share-cube`, `unshare-cube`), each the SDK method of the same name.

Moving a cube to or from a file (`export-cube`, `import-cube`) is in `memsvc.cli.data`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from memsvc.cli.common import Commands, JsonOut, Target, json_option
from memsvc.cli.output import cube_table, cubes_table, out, show

command = Commands("Cubes")
register = command.register

CubeArg = Annotated[str, typer.Argument(help="Cube name or id.")]


@command("create-cube")
def create_cube(
    target: Target,
    name: Annotated[str, typer.Argument(help="Letters, digits and . _ @ : -")],
    description: Annotated[str | None, typer.Option(help="What the cube holds.")] = None,
    owner_user_id: Annotated[str | None, typer.Option(help="The user it belongs to.")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object stored with it.")] = None,
    search_mode: Annotated[
        str | None,
        typer.Option(help="exact, int8 or binary+rescore (default: the service's)."),
    ] = None,
    refuse_duplicates: Annotated[
        bool,
        typer.Option(
            "--refuse-duplicates",
            help="Refuse an add of an active record's exact text (same user and session).",
        ),
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Create a named cube (a shared team cube, say); records go in with --cube NAME.

    Example: memsvc create-cube team-notes --description "what the team knows"
    """
    meta = json_option(metadata, "--metadata")
    with target.open() as mem:
        made = mem.create_cube(
            name,
            description=description,
            owner_user_id=owner_user_id,
            metadata=meta,
            search_mode=search_mode,
            refuse_duplicates=refuse_duplicates,
        )
    show(made, as_json, cube_table)


@command("get-cube")
def get_cube(target: Target, cube: CubeArg, as_json: JsonOut = False) -> None:
    """Show one cube: id, record count, access, who it is shared with.

    Example: memsvc get-cube user:alice --json
    """
    with target.open() as mem:
        show(mem.get_cube(cube), as_json, cube_table)


@command("list-cubes")
def list_cubes(target: Target, as_json: JsonOut = False) -> None:
    """Your cubes, then the cubes other tenants shared with you (access "read").

    Example: memsvc list-cubes --url http://127.0.0.1:8000
    """
    with target.open() as mem:
        show(mem.list_cubes(), as_json, cubes_table)


@command("delete-cube")
def delete_cube(target: Target, cube: CubeArg) -> None:
    """Delete a cube with all its records, history, graph and index.

    Example: memsvc delete-cube team-notes
    """
    with target.open() as mem:
        mem.delete_cube(cube)
    out.print(f"deleted cube {cube}")


@command("share-cube")
def share_cube(
    target: Target,
    cube: CubeArg,
    tenant: Annotated[str, typer.Argument(help="The tenant that may read it.")],
    as_json: JsonOut = False,
) -> None:
    """Grant another tenant read-only access to one of your cubes (by its id on their side).

    Example: memsvc share-cube team-notes globex
    """
    with target.open() as mem:
        show(mem.share_cube(cube, tenant), as_json, cube_table)


@command("unshare-cube")
def unshare_cube(
    target: Target,
    cube: CubeArg,
    tenant: Annotated[str, typer.Argument(help="The tenant that may no longer read it.")],
    as_json: JsonOut = False,
) -> None:
    """Revoke another tenant's read access to one of your cubes.

    Example: memsvc unshare-cube team-notes globex
    """
    with target.open() as mem:
        show(mem.unshare_cube(cube, tenant), as_json, cube_table)
