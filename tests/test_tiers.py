"""Activation (KV-cache) and parametric (LoRA) tiers with the real SmolLM2-135M model:
cache round trip, staleness, eviction, promotion, an adapter that learns invented facts,
restart and export/import, and the same over HTTP and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from memsvc import Conflict, InvalidInput, Memory, MemoryClient
from memsvc.activation import build_cache, cache_from_tensors, context_ids
from memsvc.lm import LocalLM
from memsvc.parametric import prompt_ids
from memsvc.store.blobs import BlobStore
from memsvc.store.data import RecordData
from memsvc.store.orm import RecordRow
from tests.conftest import Served

FACTS = [
    "Alice's dog is called Rufus and he is a grey whippet.",
    "Alice works as a baker at the Kornblume bakery in Berlin.",
    "Bob plays the violin in a string quartet on Sundays.",
]
QUESTION = "What is the name of Alice's dog?"


@pytest.fixture(scope="module")
def lm() -> LocalLM:
    return LocalLM()


def _tier_files(home: Path) -> list[Path]:
    return sorted((home / "tiers").rglob("*.safetensors"))


def test_cache_round_trip_gives_identical_logits(lm: LocalLM, tmp_path: Path) -> None:
    built = build_cache(lm, FACTS, [{"id": "x", "version": 1}])
    blobs = BlobStore(tmp_path)
    size = blobs.write("c/x.safetensors", built.tensors, built.header)
    tensors, header = blobs.read("c/x.safetensors")
    assert header["model_id"] == lm.model_id and int(header["tokens"]) == built.tokens
    per_token = size / built.tokens
    dims = lm.dims
    assert per_token >= 2 * dims["layers"] * dims["kv_heads"] * dims["head_dim"] * 4

    head = context_ids(lm, FACTS)
    tail = lm.tail_ids(QUESTION)
    original = lm.prefill(head)
    with_original = lm.logits(tail, original)
    with_loaded = lm.logits(tail, cache_from_tensors(lm, tensors))
    assert torch.equal(with_original, with_loaded)  # the stored cache is the computed one
    recomputed = lm.logits(head + tail)[len(head) :]
    assert torch.allclose(with_loaded, recomputed, atol=1e-3)
    cached = lm.generate(tail, cache=cache_from_tensors(lm, tensors), max_new_tokens=16)
    fresh = lm.generate(head + tail, max_new_tokens=16)
    assert cached.token_ids == fresh.token_ids and "Rufus" in cached.text


def test_generate_uses_cache_and_matches_recompute(open_memory: Callable[..., Memory]) -> None:
    mem = open_memory()
    recs = mem.add(FACTS, user_id="u")
    plain = mem.generate(QUESTION, user_id="u", k=2)
    assert plain.cache_id is None and "Rufus" in plain.text
    group = [h.record.id for h in plain.memories]
    act = mem.promote(group)
    assert act.tier == "activation" and act.kind == "kv_cache"
    assert [r["id"] for r in act.source["records"]] == group
    assert act.source["tokens"] > 10
    cached = mem.generate(QUESTION, user_id="u", k=2)
    recomputed = mem.generate(QUESTION, user_id="u", k=2, use_cache=False)
    assert cached.cache_id == act.id and cached.cached_tokens == act.source["tokens"]
    assert recomputed.cache_id is None
    assert cached.text == recomputed.text
    assert [h.record.id for h in cached.memories] == [h.record.id for h in recomputed.memories]
    # tier records are listed by tier and never recalled
    listed = mem.list(user_id="u", filters={"tiers": ["activation"]}).items
    assert [r.id for r in listed] == [act.id]
    assert all(h.record.tier == "plaintext" for h in mem.recall("Rufus dog", user_id="u", k=10))
    assert mem.get(act.id).last_recalled_at is not None
    # a record's memories and bad input
    with pytest.raises(InvalidInput):
        mem.promote([act.id])  # a cache holds plaintext records only
    with pytest.raises(InvalidInput):
        mem.generate(QUESTION, user_id="u", k=99)
    with pytest.raises(InvalidInput):
        mem.generate(QUESTION, user_id="u", max_tokens=0)
    assert recs


def test_stale_cache_is_detected_and_rebuilt(open_memory: Callable[..., Memory]) -> None:
    mem = open_memory()
    dog = mem.add(FACTS[0], user_id="u")[0]
    act = mem.promote(dog.id)
    tiers = mem._engine.tiers
    with mem._engine.db.reading() as tx:
        assert tiers.stale_reason(tx, _row(mem, act.id)) is None
    mem.update(dog.id, text="Alice's dog is called Max now; Rufus went to her sister.")
    with mem._engine.db.reading() as tx:
        assert tiers.stale_reason(tx, _row(mem, act.id)) == "source record changed"
    g = mem.generate(QUESTION, user_id="u", k=1)
    assert g.cache_id == act.id and g.cache_rebuilt and "Max" in g.text
    assert mem.get(act.id).source["records"][0]["version"] == 2
    assert [v.change for v in mem.history(act.id)] == ["create", "rebuild"]
    # another model: the header and the record say which weights the cache belongs to
    # (tampered with below the store's API: no new version, no change-log row)
    with mem._engine.db.write() as s:
        row = s.query(RecordRow).filter_by(id=act.id).one()
        row.source = {**row.source, "model_id": "other-model@0"}
    with mem._engine.db.reading() as tx:
        assert tiers.stale_reason(tx, _row(mem, act.id)) == "model changed"
    runs = mem.maintain("user:u")
    assert runs[0].counts["kv_rebuilt"] == 1
    # a missing file is rebuilt too; a deleted source record ends the cache
    (mem.settings.home / "tiers" / act.source["blob"]).unlink()
    assert mem.generate(QUESTION, user_id="u", k=1).cache_rebuilt
    mem.delete(dog.id)
    assert mem.maintain("user:u")[0].counts["kv_evicted"] == 1
    assert mem.get(act.id).status == "deleted"
    assert _tier_files(mem.settings.home) == []


def test_eviction_keeps_caches_within_budget(open_memory: Callable[..., Memory]) -> None:
    mem = open_memory()
    recs = mem.add(FACTS, user_id="u")
    first = mem.promote(recs[0].id)
    budget = int(first.source["bytes"] * 2.5)
    mem.close()
    mem = open_memory(activation_budget_bytes=budget)
    second = mem.promote(recs[1].id)
    mem.generate(QUESTION, user_id="u", k=1)  # uses (and refreshes) the first cache
    third = mem.promote(recs[2].id)  # over budget: the least recently used goes
    active = {r.id for r in mem.list(user_id="u", filters={"tiers": ["activation"]}).items}
    assert active == {first.id, third.id}
    assert mem.get(second.id).status == "deleted"
    assert len(_tier_files(mem.settings.home)) == 2
    used = sum(mem.get(i).source["bytes"] for i in active)
    assert used <= budget


def test_scheduler_promotes_records_recalled_often(open_memory: Callable[..., Memory]) -> None:
    mem = open_memory(promote_recalls=2, reinforce_flush_seconds=0)
    dog = mem.add(FACTS, user_id="u")[0]
    for _ in range(2):
        mem.generate(QUESTION, user_id="u", k=1)
    runs = mem.maintain("user:u")
    assert runs[0].counts["kv_promoted"] == 1
    caches = mem.list(user_id="u", filters={"tiers": ["activation"]}).items
    assert [c.source["records"][0]["id"] for c in caches] == [dog.id]
    assert mem.generate(QUESTION, user_id="u", k=1).cache_id == caches[0].id
    assert mem.maintain("user:u")[0].counts["kv_promoted"] == 0  # idempotent


INVENTED = [
    (
        "Zorblax Quenteroth's favourite colour is teal.",
        "What is Zorblax Quenteroth's favourite colour?",
        "teal",
    ),
    (
        "Mirela Vantosk keeps a ferret named Pickle.",
        "What is the name of Mirela Vantosk's ferret?",
        "Pickle",
    ),
    ("Obadiah Crenn was born in Lisbon.", "Where was Obadiah Crenn born?", "Lisbon"),
]


def test_adapter_learns_invented_facts_and_survives_restart_and_export(
    open_memory: Callable[..., Memory], tmp_path: Path, lm: LocalLM
) -> None:
    mem = open_memory()
    recs = mem.add([f for f, _, _ in INVENTED], user_id="u")
    act = mem.promote(recs[0].id)
    steps_seen: list[int] = []
    adapter = mem.consolidate(
        user_id="u", steps=24, progress=lambda step, total, loss: steps_seen.append(step)
    )
    assert adapter.tier == "parametric" and adapter.kind == "lora_adapter"
    assert steps_seen == list(range(1, 25))
    curve = adapter.metadata["loss_curve"]
    assert len(curve) == 24 and curve[-1] < curve[0] / 3
    assert {r["id"] for r in adapter.source["records"]} == {r.id for r in recs}
    assert adapter.metadata["training"]["steps"] == 24
    # lower loss on the facts with the adapter than without
    tiers = mem._engine.tiers
    name = tiers.load_adapter(_row(mem, adapter.id))
    examples = [
        (prompt_ids(lm, f"What do you know about {e}?"), lm.encode(f))
        for (f, _, _), e in zip(
            INVENTED, ["Zorblax Quenteroth", "Mirela Vantosk", "Obadiah Crenn"], strict=True
        )
    ]
    assert lm.nll(examples, adapter=name) < 0.5 * lm.nll(examples)
    answer = mem.generate(INVENTED[0][1], user_id="u", k=0, adapter=adapter.id)
    assert answer.adapter_id == adapter.id and answer.cache_id is None and not answer.memories
    with pytest.raises(InvalidInput):
        mem.generate("hi", user_id="u", adapter=recs[0].id)

    # restart: tier records and their files are still there and usable
    home = mem.settings.home
    mem.close()
    mem = open_memory(home)
    assert {
        r.tier for r in mem.list(user_id="u", filters={"tiers": ["activation", "parametric"]}).items
    } == {
        "activation",
        "parametric",
    }
    assert mem.generate(FACTS[0], user_id="u", k=1).cache_id in (None, act.id)
    assert mem.generate(INVENTED[0][0], user_id="u", k=1).cache_id == act.id
    # export / import elsewhere carries the files
    path = tmp_path / "cube.jsonl.gz"
    mem.export_cube("user:u", path)
    other = open_memory(tmp_path / "elsewhere")
    cube = other.import_cube(path, cube="moved")
    moved = other.list(cube=cube.id, filters={"tiers": ["activation", "parametric"]}).items
    assert {r.id for r in moved} == {act.id, adapter.id}
    assert all(r.source["blob"].startswith(cube.id) for r in moved)
    assert len(_tier_files(tmp_path / "elsewhere")) == 2
    g = other.generate(INVENTED[0][0], user_id="u", cube="moved", k=1)
    assert g.cache_id == act.id and not g.cache_rebuilt
    assert other.generate("hi", user_id="u", cube="moved", k=0, adapter=adapter.id).adapter_id
    # demote removes the record's file; an adapter without its file cannot come back
    assert other.demote(adapter.id) == [adapter.id]
    assert other.get(adapter.id).status == "deleted"
    with pytest.raises(Conflict):
        other.restore(adapter.id)
    assert other.demote(recs[0].id) == [act.id]
    assert _tier_files(tmp_path / "elsewhere") == []
    restored = other.restore(act.id)  # a cache is rebuilt from its records
    assert restored.status == "active" and len(_tier_files(tmp_path / "elsewhere")) == 1


def _row(mem: Memory, rec_id: str) -> RecordData:
    with mem._engine.db.reading() as tx:
        row = tx.tiers.by_id(rec_id)
    assert row is not None
    return row


def test_tiers_over_http(served: Served) -> None:
    with MemoryClient(served.url, served.keys["acme"]) as c:
        recs = c.add(FACTS, user_id="tiers")
        act = c.promote([recs[0].id, recs[1].id])
        assert act.tier == "activation"
        g = c.generate(QUESTION, user_id="tiers", k=2)
        assert g.cache_id == act.id and "Rufus" in g.text
        same = c.generate(QUESTION, user_id="tiers", k=2, use_cache=False)
        assert same.text == g.text and same.cache_id is None
        listed = c.list(user_id="tiers", filters={"tiers": ["activation"]}).items
        assert [r.id for r in listed] == [act.id]
        files = _tier_files(served.home)
        assert any(act.id in f.name for f in files)
        with pytest.raises(InvalidInput):
            c.consolidate(user_id="tiers", steps=0)
        with pytest.raises(InvalidInput):
            c.generate(QUESTION, user_id="tiers", max_tokens=5000)
        adapter = c.consolidate(user_id="tiers", record_ids=[recs[2].id], steps=3)
        assert adapter.tier == "parametric" and len(adapter.metadata["loss_curve"]) == 3
        assert c.demote(recs[0].id) == [act.id]
        c.delete(adapter.id)
        assert not any(act.id in f.name or adapter.id in f.name for f in _tier_files(served.home))
    with MemoryClient(served.url, served.keys["globex"]) as other:
        with pytest.raises(Exception) as info:
            other.promote([recs[2].id])
        assert type(info.value).__name__ == "RecordNotFound"


def test_tiers_cli(tmp_path: Path) -> None:
    """The tier commands through the real CLI, in this process (typer's runner): the LM loads
    once instead of once per command, which made this the slowest test of the suite."""
    from typer.testing import CliRunner

    from memsvc.cli import app

    runner = CliRunner()
    env = {"MEMSVC_HOME": str(tmp_path / "cli")}

    def cli(*args: str) -> str:
        done = runner.invoke(app, list(args), env=env)
        assert done.exit_code == 0, done.output
        return done.stdout

    added = json.loads(cli("add", FACTS[0], "--user", "cli", "--json"))
    rid = added[0]["id"]
    assert "activation record" in cli("promote", rid)
    listed = json.loads(cli("list", "--user", "cli", "--tier", "activation", "--json"))
    act = listed["items"][0]["id"]
    g = json.loads(cli("generate", QUESTION, "--user", "cli", "-k", "1", "--json"))
    assert g["cache_id"] == act and "Rufus" in g["text"]
    trained = json.loads(cli("consolidate", "user:cli", "--steps", "2", "--json"))
    assert trained["tier"] == "parametric"
    assert act in cli("demote", act)


def test_missing_local_model_is_a_clear_error(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    from memsvc import ModelUnavailable

    mem = open_memory(lm_path=str(tmp_path / "no-such-model.gguf"))
    rec = mem.add("Alice's dog is called Rufus.", user_id="u")[0]
    with pytest.raises(ModelUnavailable, match="no local model"):
        mem.generate(QUESTION, user_id="u")
    with pytest.raises(ModelUnavailable):
        mem.promote(rec.id)
    assert mem.list(user_id="u", filters={"tiers": ["activation"]}).items == []
    assert mem.recall("dog", user_id="u")  # the rest of the service does not need the LM


def test_a_model_directory_works_and_its_caches_are_its_own(
    open_memory: Callable[..., Memory], tmp_path: Path, lm: LocalLM
) -> None:
    """Any transformers model directory can replace the GGUF file; caches name their model,
    so a cache built on one is stale on the other."""
    from safetensors.torch import save_model

    tok, model = lm.load()
    folder = tmp_path / "smol-dir"  # a plain model directory from the same weights
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_model(model, str(folder / "model.safetensors"))
    tok.save_pretrained(folder)
    other = LocalLM(folder)
    assert other.model_id != lm.model_id and other.tokenizer_hash == lm.tokenizer_hash
    ids = context_ids(lm, FACTS) + lm.tail_ids(QUESTION)
    assert (
        other.generate(ids, max_new_tokens=12).token_ids
        == lm.generate(ids, max_new_tokens=12).token_ids
    )

    mem = open_memory()
    rec = mem.add(FACTS[0], user_id="u")[0]
    act = mem.promote(rec.id)
    home = mem.settings.home
    mem.close()
    mem = open_memory(home, lm_path=str(folder))
    g = mem.generate(QUESTION, user_id="u", k=1)
    assert g.cache_id == act.id and g.cache_rebuilt  # "model changed": rebuilt for this one
    assert mem.get(act.id).source["model_id"] == other.model_id
