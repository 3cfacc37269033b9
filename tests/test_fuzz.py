"""Schemathesis against the OpenAPI schema of a live server: generated requests (boundary
values, random bodies, stateful sequences through the links it finds) must never get a
server error. The session's `memsvc serve` takes every route but the LM-bound tier routes and
import; the tier routes (generate, promote, demote, consolidate, restore) run against an app
on a thread of this process whose settings keep every LM call small, with the LM loaded on
the first call that needs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from memsvc import Memory, SentenceTransformerEmbedder, Settings
from memsvc import lm as lm_module
from memsvc.api.app import create_app
from tests.conftest import Served, app_in_thread


def test_schemathesis_finds_no_server_error(served: Served) -> None:
    st = Path(sys.executable).parent / "st"
    done = subprocess.run(
        [
            str(st),
            "run",
            f"{served.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {served.keys['acme']}",
            "--max-examples",
            "15",
            "--checks",
            "not_a_server_error",
            "--phases",
            "coverage,fuzzing,stateful",
            "--exclude-path-regex",
            "generate|promote|demote|consolidate|import",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "passed" in done.stdout


# ---- the tier routes, with the LM loaded lazily and bounded by tiny settings --------------------

TIER_HOOKS = '''
"""Some generated cases are aimed at records, a cube and an adapter that exist, so that the
LM runs on them (every 2nd case of promote, demote and restore, every 6th of consolidate,
every 12th of generate: those cost a training run or a generation each); the rest are sent
as generated."""
import collections, json, os

import schemathesis

IDS = json.loads(os.environ["MEMSVC_FUZZ_IDS"])
EVERY = {"generate": 12, "consolidate": 6}
_turns = collections.Counter()


@schemathesis.hook
def map_case(context, case):
    op = next((k for k in EVERY if k in case.path), "other")
    n = _turns[op]
    _turns[op] += 1
    if n % EVERY.get(op, 2):
        return case
    records = IDS["records"]
    pick = records[n % len(records)]
    params = dict(case.path_parameters or {})
    if "record_id" in params:
        params["record_id"] = pick
    if "cube" in params:
        params["cube"] = IDS["cube"]
    case.path_parameters = params
    if isinstance(case.body, dict):
        body = dict(case.body)
        if "record_ids" in body:
            body["record_ids"] = [pick, *IDS["plaintext"][:1]]
        if "prompt" in body:
            body.update(user_id=IDS["user"], k=n % 4, max_tokens=1 + n % 3)
            if not (isinstance(body["prompt"], str) and body["prompt"].strip()):
                body["prompt"] = "What is the dog called?"
            for name in ("cube", "recipe", "filters"):
                body.pop(name, None)
            if n % 16 == 0:
                body["adapter"] = IDS["adapter"]
        case.body = body
    return case
'''


def test_schemathesis_on_the_tier_routes_finds_no_server_error(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    """generate, promote, demote, consolidate and restore, some cases aimed at real records,
    a cache and an adapter (TIER_HOOKS): no 500. The LM loads on the first tier call, not
    when the app starts; the settings keep each LM call small (a 128-token context, one
    training step of rank 1 on at most 4 records), so no generated value runs long."""
    settings = Settings(
        home=tmp_path / "data",
        maintain_seconds=0,
        lm_context_tokens=128,
        activation_max_tokens=64,
        lora_max_steps=1,
        lora_max_rank=1,
        lora_max_records=4,
        lora_max_example_tokens=64,
    )
    mem = Memory(settings=settings, embedder=embedder)
    try:
        _, key = mem.keys.create("acme")
        acme = mem.for_tenant("acme")
        facts = ["Alice's dog is called Rufus.", "Bob plays chess on Sundays.", "Carol cycles."]
        plain = [r.id for r in acme.add(facts, user_id="u")]
        acme.delete(plain[-1])
        loaded_before = set(lm_module._LOADED)
        with app_in_thread(create_app(mem)) as url:
            tiers = mem._engine.tiers
            assert tiers._lm is None  # nothing at start asked for the LM
            assert set(lm_module._LOADED) == loaded_before
            cache = acme.promote(plain[0]).id
            adapter = acme.consolidate("user:u", record_ids=plain[:2], steps=1, rank=1).id
            ids = {
                "records": [*plain, cache, adapter],
                "plaintext": plain[:2],
                "cube": "user:u",
                "user": "u",
                "adapter": adapter,
            }
            hooks = tmp_path / "hooks.py"
            hooks.write_text(TIER_HOOKS)
            env = {
                **os.environ,
                "SCHEMATHESIS_HOOKS": str(hooks),
                "MEMSVC_FUZZ_IDS": json.dumps(ids),
            }
            done = subprocess.run(
                [
                    str(Path(sys.executable).parent / "st"),
                    "run",
                    f"{url}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {key}",
                    "--max-examples",
                    "5",
                    "--checks",
                    "not_a_server_error",
                    "--phases",
                    "coverage,fuzzing",
                    "--include-path-regex",
                    "generate|promote|demote|consolidate|restore",
                    "--seed",
                    "1",
                    "--request-timeout",
                    "60",
                ],
                capture_output=True,
                text=True,
                timeout=300,
                env=env,
            )
    finally:
        mem.close()
    assert done.returncode == 0, done.stdout[-4000:]
    assert "passed" in done.stdout
