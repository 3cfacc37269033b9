"""API keys: `memsvc keys create|list|revoke`, the methods of `Memory.keys`.

Keys are stored in the service's database and the HTTP API has no route to manage them (a key
acts for one tenant; these act for all), so these commands need a data directory: given
`--url` they say so and exit 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from memsvc.cli.common import Commands, JsonOut, Target
from memsvc.cli.output import err, keys_table, out, print_json, show

NO_KEY_ROUTES = "the HTTP API has no key administration"

keys_app = typer.Typer(help="Manage API keys (each belongs to one tenant).", no_args_is_help=True)
command = Commands(group="keys")


def register(app: typer.Typer) -> None:
    command.register(keys_app)
    app.add_typer(keys_app, name="keys", rich_help_panel="API keys")


@command("create", needs_data_dir=NO_KEY_ROUTES)
def create(
    target: Target,
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for (created if new).")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    as_json: JsonOut = False,
) -> None:
    """Create an API key and print it once (only its hash is stored).

    Example: memsvc keys create --tenant acme --name ci
    """
    with target.open_memory() as mem:
        key, token = mem.keys.create(tenant, name=name)
    if as_json:
        print_json({**key.model_dump(mode="json"), "key": token})
        return
    out.print(token)
    err.print(f"key {key.key_id} for tenant {key.tenant!r}: store it now, it is not shown again")


@command("list", needs_data_dir=NO_KEY_ROUTES)
def list_(
    target: Target,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: JsonOut = False,
) -> None:
    """List API keys (ids, tenants, status; never the secrets).

    Example: memsvc keys list --tenant acme
    """
    with target.open_memory() as mem:
        keys = mem.keys.list(tenant)
    show(keys, as_json, keys_table)


@command("revoke", needs_data_dir=NO_KEY_ROUTES)
def revoke(
    target: Target,
    key_id: Annotated[str, typer.Argument(help="The key id shown by `keys list`.")],
) -> None:
    """Revoke an API key: requests with it are refused from now on.

    Example: memsvc keys revoke 3f9a1c2b7d4e
    """
    with target.open_memory() as mem:
        key = mem.keys.revoke(key_id)
    out.print(f"revoked {key.key_id} (tenant {key.tenant!r})")
