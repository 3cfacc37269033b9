"""Memory tiers: the local LM, KV caches and LoRA adapters (`generate`, `promote`, `demote`,
`consolidate`), each the SDK method of the same name. Over `--url` the server's LM does the
work; `consolidate` then reports its loss curve once, when training is done.
"""

from __future__ import annotations

from typing import Annotated

import typer

from memsvc.cli.common import Commands, CubeOpt, JsonOut, Target, UserOpt, json_option
from memsvc.cli.output import err, out, print_json, progress

command = Commands("Memory tiers")
register = command.register


@command("generate")
def generate(
    target: Target,
    prompt: Annotated[str, typer.Argument(help="What to ask the local LM.")],
    user: Annotated[str, typer.Option("--user", "-u", "--user-id", help="User id.")] = ...,  # type: ignore[assignment]
    cube: CubeOpt = None,
    k: Annotated[int, typer.Option("-k", help="Memories recalled into the prompt.")] = 5,
    use_cache: Annotated[
        bool, typer.Option("--use-cache/--no-cache", help="Use KV caches, or recompute.")
    ] = True,
    adapter: Annotated[
        str | None, typer.Option(help="A parametric record's id (its LoRA adapter).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 64,
    filters: Annotated[
        str | None, typer.Option(help="JSON filters for the recall (as `memsvc recall`).")
    ] = None,
    recipe: Annotated[str | None, typer.Option(help="Recall recipe (as `memsvc recall`).")] = None,
    as_json: JsonOut = False,
) -> None:
    """Answer with the local LM and recalled memories (KV caches used where present).

    Example: memsvc generate "what is my dog called?" --user alice -k 3
    """
    flt = json_option(filters, "--filters")
    with target.open() as mem:
        g = mem.generate(
            prompt,
            user_id=user,
            cube=cube,
            k=k,
            use_cache=use_cache,
            adapter=adapter,
            max_tokens=max_tokens,
            filters=flt,
            recipe=recipe,
        )
    if as_json:
        print_json(g)
        return
    out.print(g.text)
    used = f"{len(g.memories)} memories"
    if g.cache_id:
        used += f", cache {g.cache_id} ({g.cached_tokens} of {g.prompt_tokens} tokens)"
    if g.adapter_id:
        used += f", adapter {g.adapter_id}"
    err.print(f"[dim]{used}; first token {g.ttft_s:.3f} s, total {g.total_s:.3f} s[/dim]")


@command("promote")
def promote(
    target: Target,
    record_ids: Annotated[list[str], typer.Argument(help="Plaintext record ids, in order.")],
    tier: Annotated[str, typer.Option(help="activation (KV cache) or parametric (LoRA).")] = (
        "activation"
    ),
) -> None:
    """Build a KV cache (or a LoRA adapter) from memories: a new tier record.

    Example: memsvc promote 5f1c... 77ab... --tier activation
    """
    with target.open() as mem:
        rec = mem.promote(record_ids, tier=tier)  # type: ignore[arg-type]
    size = rec.source.get("bytes", 0)
    out.print(f"{rec.tier} record {rec.id} ({size / 1e6:.1f} MB)")


@command("demote")
def demote(
    target: Target,
    record_id: Annotated[str, typer.Argument(help="A tier record, or a plaintext record.")],
) -> None:
    """Delete a tier record and its file, or the caches built from a plaintext record.

    Example: memsvc demote 5f1c...
    """
    with target.open() as mem:
        removed = mem.demote(record_id)
    out.print(f"removed {len(removed)} tier records" + "".join(f"\n  {r}" for r in removed))


@command("consolidate")
def consolidate(
    target: Target,
    cube: Annotated[
        str | None, typer.Argument(help="Cube name or id (default: the --user's cube).")
    ] = None,
    user: UserOpt = None,
    record: Annotated[
        list[str] | None,
        typer.Option("--record", "--record-ids", help="Train on these (default: all)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps (default 100).")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank (default 16).")] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", "--learning-rate", help="Learning rate.")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Train a LoRA adapter on a cube's memories (minutes on a CPU): a parametric record.

    Example: memsvc consolidate user:alice --steps 100
    """
    with target.open() as mem, progress() as bar:
        task = bar.add_task("training", total=None)

        def tick(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"loss {loss:.3f}")

        rec = mem.consolidate(
            cube,
            user_id=user,
            record_ids=record,
            steps=steps,
            rank=rank,
            learning_rate=lr,
            progress=tick,
        )
    if as_json:
        print_json(rec)
        return
    curve = rec.metadata.get("loss_curve") or []
    out.print(
        f"parametric record {rec.id}: {len(rec.source.get('records', []))} memories, "
        f"loss {curve[0] if curve else 0:.3f} -> {curve[-1] if curve else 0:.3f}"
    )
