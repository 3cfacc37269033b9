"""Hostile tenants and the tier files (issue 22, findings 2, 3, 10 and 15): a tier file's path
comes from its record's own ids, never from stored or uploaded strings; an adapter is checked
against the base model before it touches it; LM work is bounded (prompt, queue, training);
tier files are private, written atomically, and their orphans are swept."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from memsvc import InvalidInput, Memory
from memsvc.api.app import create_app
from memsvc.errors import Busy, Conflict
from memsvc.lm import _ADAPTED, AdapterRejected, LocalLM
from memsvc.parametric import training_examples
from memsvc.store.blobs import BlobError, BlobStore
from memsvc.store.orm import RecordRow

FACT = "Alice's dog is called Rufus and he is a grey whippet."
BOB = "Bob plays the violin in a string quartet on Sundays."
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}


@pytest.fixture(scope="module")
def lm() -> LocalLM:
    return LocalLM()


def _forge(mem: Memory, rec_id: str, **fields: Any) -> None:
    """Change a record's row below the store's API, as a hostile import would have."""
    source = fields.pop("source", {})
    with mem._engine.db.write() as s:
        row = s.query(RecordRow).filter_by(id=rec_id).one()
        row.source = {**(row.source or {}), **source}
        for name, value in fields.items():
            setattr(row, name, value)


def _cube_id(mem: Memory, rec_id: str) -> str:
    with mem._engine.db.reading() as tx:
        row = tx.tiers.by_id(rec_id)
        assert row is not None
        cube = tx.cubes.by_pk(row.cube_pk)
        assert cube is not None
        return cube.id


# ---- finding 15: private, atomic tier files; orphans swept --------------------------------------


def test_tier_paths_come_from_ids_and_files_are_private(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "tiers")
    old = os.umask(0)  # the modes must not depend on the process's umask
    try:
        size = blobs.save("cube-1", "rec-1", {"x": torch.ones(3)}, {"format": "test"})
        blobs.save_bytes("cube-1", "rec-2", b"raw bytes")
    finally:
        os.umask(old)
    path = blobs.path_for("cube-1", "rec-1")
    assert path == tmp_path / "tiers" / "cube-1" / "rec-1.safetensors"
    assert size == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(blobs.path_for("cube-1", "rec-2").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    tensors, header = blobs.load("cube-1", "rec-1")
    assert header["format"] == "test" and torch.equal(tensors["x"], torch.ones(3))
    assert blobs.header("cube-1", "rec-1")["format"] == "test"
    assert blobs.load_bytes("cube-1", "rec-2") == b"raw bytes"
    assert blobs.has("cube-1", "rec-1") and not blobs.has("cube-1", "rec-3")
    for bad in ("../x", "a/b", "", ".", "..", "x" * 65, "a.safetensors", "a\x00b", " a"):
        with pytest.raises(BlobError):
            blobs.path_for(bad, "rec-1")
        with pytest.raises(BlobError):
            blobs.path_for("cube-1", bad)
    with pytest.raises(BlobError, match="missing"):
        blobs.load("cube-1", "rec-3")
    assert blobs.delete("cube-1", "rec-1") and not path.exists()
    assert not blobs.delete("cube-1", "rec-1")


def test_tier_writes_use_unique_temp_names_and_fsync_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = BlobStore(tmp_path / "tiers")
    renamed: list[tuple[str, str]] = []
    synced_dirs: list[bool] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: Any, dst: Any) -> None:
        renamed.append((str(src), str(dst)))
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        synced_dirs.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    blobs.save("c", "r", {"x": torch.zeros(2)}, {})
    blobs.save_bytes("c", "r", b"second")
    dest = str(blobs.path_for("c", "r"))
    temps = [src for src, dst in renamed if dst == dest]
    assert len(temps) == 2 and len(set(temps)) == 2 and dest not in temps
    assert all(Path(t).parent == Path(dest).parent for t in temps)  # same folder: atomic rename
    assert True in synced_dirs and False in synced_dirs  # the file, then its folder

    # a crash at the rename: the old file stays whole and no temp file is left behind
    def broken(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(BlobError):
        blobs.save_bytes("c", "r", b"third")
    monkeypatch.setattr(os, "replace", real_replace)
    assert blobs.load_bytes("c", "r") == b"second"
    assert sorted(p.name for p in Path(dest).parent.iterdir()) == ["r.safetensors"]


def test_a_tier_file_streams_from_parts_and_a_bad_source_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "tiers")
    assert blobs.save_chunks("c", "r", iter([b"ab", b"", b"cd"])) == 4
    assert blobs.load_bytes("c", "r") == b"abcd"
    assert stat.S_IMODE(blobs.path_for("c", "r").stat().st_mode) == 0o600

    def parts() -> Iterator[bytes]:
        yield b"half of a file"
        raise ValueError("the upload's next part is not base64")

    with pytest.raises(ValueError, match="base64"):
        blobs.save_chunks("c", "r", parts())
    assert blobs.load_bytes("c", "r") == b"abcd"
    assert [p.name for p in blobs.path_for("c", "r").parent.iterdir()] == ["r.safetensors"]


def test_maintenance_sweeps_orphans_of_crashes_and_deleted_cubes(
    open_memory: Callable[..., Memory],
) -> None:
    mem = open_memory()
    rec = mem.add(FACT, user_id="u")[0]
    cube_id = _cube_id(mem, rec.id)
    tiers = mem.settings.home / "tiers"
    old = time.time() - 2 * 86400

    def file(path: Path, age: float | None = old) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"orphan")
        if age is not None:
            os.utime(path, (age, age))
        return path

    gone_cube = file(tiers / str(uuid.uuid4()) / f"{uuid.uuid4()}.safetensors")
    crash_temp = file(tiers / cube_id / f".{uuid.uuid4()}.1a2b3c.tmp")
    stray = file(tiers / cube_id / f"{uuid.uuid4()}.safetensors")
    busy_cube = tiers / str(uuid.uuid4())  # an import still writing: one young file
    file(busy_cube / f"{uuid.uuid4()}.safetensors")
    young = file(busy_cube / f"{uuid.uuid4()}.safetensors", age=None)
    for folder in (gone_cube.parent, tiers / cube_id, busy_cube):
        os.utime(folder, (old, old))
    runs = mem.maintain("user:u")
    assert not gone_cube.parent.exists() and not crash_temp.exists() and not stray.exists()
    assert young.exists() and len(list(busy_cube.iterdir())) == 2
    assert runs[0].counts["tier_files_swept"] >= 3


# ---- finding 2: a stored path never names another tenant's file ---------------------------------


def test_a_forged_tier_path_never_reaches_another_tenants_file(
    open_memory: Callable[..., Memory],
) -> None:
    base = open_memory()
    a, b = base.for_tenant("a"), base.for_tenant("b")
    tiers = base.settings.home / "tiers"
    act_a = a.promote(a.add(FACT, user_id="u")[0].id)
    a_file = tiers / act_a.source["blob"]
    a_bytes = a_file.read_bytes()
    rb = b.add(BOB, user_id="u")[0]
    act_b = b.promote(rb.id)
    b_file = tiers / act_b.source["blob"]
    _forge(base, act_b.id, source={"blob": act_a.source["blob"]})

    # B's cache is B's own file, found by B's record's ids
    question = "What does Bob play on Sundays?"
    g = b.generate(question, user_id="u", k=1, max_tokens=4)
    assert g.cache_id == act_b.id and not g.cache_rebuilt
    assert g.text == b.generate(question, user_id="u", k=1, max_tokens=4, use_cache=False).text
    # deleting B's record removes B's file, never A's
    assert b.demote(act_b.id) == [act_b.id]
    assert not b_file.exists() and a_file.read_bytes() == a_bytes

    # a deleted adapter of B's whose row names A's file cannot come back through it
    spare = b.promote(rb.id)
    (tiers / spare.source["blob"]).unlink()
    _forge(
        base,
        spare.id,
        tier="parametric",
        kind="lora_adapter",
        status="deleted",
        source={"blob": act_a.source["blob"]},
    )
    with pytest.raises(Conflict):
        b.restore(spare.id)
    b.delete(spare.id, hard=True)
    assert a_file.read_bytes() == a_bytes
    assert a.generate("What is Alice's dog called?", user_id="u", k=1).cache_id == act_a.id


# ---- finding 3: adapters are checked before they touch the model --------------------------------


def _lora(
    lm: LocalLM,
    *,
    r: int = 2,
    layers: tuple[int, ...] = (29,),
    targets: tuple[str, ...] = ("q_proj", "down_proj"),
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A well-formed adapter for the real base model, built by hand (no training)."""
    _, model = lm.load()
    config = {
        "layers_to_transform": list(layers),
        "r": r,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.0,
        "target_modules": list(targets),
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }
    weights = {}
    for i in layers:
        for t in targets:
            name = f"model.layers.{i}.{'self_attn' if t in ATTENTION else 'mlp'}.{t}"
            lin = model.get_submodule(name)
            weights[f"base_model.model.{name}.lora_A.weight"] = torch.full(
                (r, lin.in_features), 0.01
            )
            weights[f"base_model.model.{name}.lora_B.weight"] = torch.full(
                (lin.out_features, r), 0.01
            )
    return config, weights


def _plant_adapter(
    mem: Memory, lm: LocalLM, config: dict[str, Any], weights: dict[str, torch.Tensor]
) -> str:
    """A parametric record whose file holds `config` and `weights` (as an import could)."""
    rec = mem.add("Planted adapter.", user_id="u")[0]
    cube_id = _cube_id(mem, rec.id)
    header = {
        "format": "memsvc.lora.v1",
        "model_id": lm.model_id,
        "tokenizer_hash": lm.tokenizer_hash,
        "peft_config": json.dumps(config),
        "records": "[]",
    }
    mem._engine.tiers.blobs.save(cube_id, rec.id, weights, header)
    _forge(
        mem,
        rec.id,
        tier="parametric",
        kind="lora_adapter",
        source={
            "records": [],
            "model_id": lm.model_id,
            "tokenizer_hash": lm.tokenizer_hash,
            "blob": f"{cube_id}/{rec.id}.safetensors",
        },
    )
    return rec.id


def _fingerprint(lm: LocalLM) -> float:
    """The weights a hostile adapter would aim at, in the shared model and in the copy
    that carries every tenant's adapters."""
    models = [lm.load()[1], *([_ADAPTED[lm.path]] if lm.path in _ADAPTED else [])]
    return sum(
        float(p.detach().double().abs().sum())
        for m in models
        for name, p in m.named_parameters()
        if "lora_" not in name and (".29.self_attn.q_proj." in name or "embed_tokens" in name)
    )


def test_a_well_formed_adapter_loads(open_memory: Callable[..., Memory], lm: LocalLM) -> None:
    mem = open_memory()
    rid = _plant_adapter(mem, lm, *_lora(lm))
    g = mem.generate("Hello", user_id="u", k=0, adapter=rid, max_tokens=2)
    assert g.adapter_id == rid and rid in lm.loaded_adapters()
    assert mem.demote(rid) == [rid] and rid not in lm.loaded_adapters()


Lora = tuple[dict[str, Any], dict[str, torch.Tensor]]
Q = "base_model.model.model.layers.29.self_attn.q_proj"


def _with(lm: LocalLM, config: dict[str, Any] | None = None, **tensors: torch.Tensor) -> Lora:
    cfg, w = _lora(lm)
    return {**cfg, **(config or {})}, {**w, **tensors}


# Each a well-formed adapter with one thing wrong (built lazily: some are large).
BAD_ADAPTERS: dict[str, Callable[[LocalLM], Any]] = {
    "base weight": lambda lm: _with(lm, **{f"{Q}.base_layer.weight": torch.zeros(576, 576)}),
    "base weight, plain name": lambda lm: _with(lm, **{f"{Q}.weight": torch.zeros(576, 576)}),
    "lm_head": lambda lm: _with(lm, **{"base_model.model.lm_head.weight": torch.zeros(49152, 576)}),
    "modules_to_save": lambda lm: _with(lm, {"modules_to_save": ["lm_head"]}),
    "unknown key": lambda lm: _with(lm, {"use_dora": True}),
    "huge rank": lambda lm: _with(lm, {"r": 100_000}),
    "rank beyond the cap": lambda lm: _lora(lm, r=65),
    "alpha": lambda lm: _with(lm, {"lora_alpha": 1e12}),
    "dropout": lambda lm: _with(lm, {"lora_dropout": 5}),
    "target not allowed": lambda lm: _with(lm, {"target_modules": ["embed_tokens"]}),
    "layer out of range": lambda lm: _with(lm, {"layers_to_transform": [99]}),
    "bias": lambda lm: _with(lm, {"bias": "all"}),
    "config not an object": lambda lm: (["r", 2], _lora(lm)[1]),
    "wrong shape": lambda lm: _with(lm, **{f"{Q}.lora_A.weight": torch.zeros(2, 100)}),
    "rank mismatch": lambda lm: _with(lm, **{f"{Q}.lora_A.weight": torch.zeros(3, 576)}),
    "layer not configured": lambda lm: _with(
        lm, **{Q.replace(".29.", ".3.") + ".lora_A.weight": torch.zeros(2, 576)}
    ),
    "missing tensor": lambda lm: (
        _lora(lm)[0],
        {k: v for k, v in _lora(lm)[1].items() if "down_proj.lora_B" not in k},
    ),
    "not finite": lambda lm: _with(
        lm, **{f"{Q}.lora_B.weight": torch.full((576, 2), float("nan"))}
    ),
    "integers": lambda lm: _with(
        lm, **{f"{Q}.lora_B.weight": torch.zeros((576, 2), dtype=torch.int64)}
    ),
}


@pytest.mark.parametrize("name", ["base weight", "base weight, plain name", "modules_to_save"])
def test_a_hostile_adapter_is_refused_and_touches_nothing(
    open_memory: Callable[..., Memory], lm: LocalLM, name: str
) -> None:
    """Through `generate(adapter=...)`, as a tenant would use an imported adapter."""
    config, weights = BAD_ADAPTERS[name](lm)
    mem = open_memory()
    rid = _plant_adapter(mem, lm, config, weights)
    before, loaded = _fingerprint(lm), lm.loaded_adapters()
    with pytest.raises(InvalidInput, match="adapter"):
        mem.generate("Hello", user_id="u", k=0, adapter=rid, max_tokens=2)
    assert lm.loaded_adapters() == loaded and rid not in loaded
    assert _fingerprint(lm) == before


@pytest.mark.parametrize("name", list(BAD_ADAPTERS))
def test_every_adapter_check_refuses_before_loading(lm: LocalLM, name: str) -> None:
    config, weights = BAD_ADAPTERS[name](lm)
    with pytest.raises(AdapterRejected):
        lm.check_adapter(config, weights, max_rank=64)
    with pytest.raises(AdapterRejected):
        lm.load_adapter(f"hostile-{name}", config, weights, max_rank=64)
    assert f"hostile-{name}" not in lm.loaded_adapters()


# ---- finding 10: bounded LM work -----------------------------------------------------------------


def test_generate_fits_the_prompt_into_the_context_window(
    open_memory: Callable[..., Memory], lm: LocalLM
) -> None:
    assert lm.context_tokens == 8192  # SmolLM2's own window: the default bound
    mem = open_memory(lm_context_tokens=300)
    long = [
        f"Fact {i} about the Quenteroth archive: " + " ".join(f"shelf{i}x{j}" for j in range(120))
        for i in range(4)
    ]
    mem.add(long, user_id="u")
    g = mem.generate(
        "What is on the shelves of the Quenteroth archive?", user_id="u", k=4, max_tokens=8
    )
    assert 0 < g.prompt_tokens <= 300 - 8
    assert len(g.memories) == 1  # the best memory, cut to fit; the rest left out
    with pytest.raises(InvalidInput, match="context") as info:
        mem.generate("shelf " * 400, user_id="u", k=0, max_tokens=8)
    assert info.value.details["field"] == "prompt"


@contextmanager
def _occupied(mem: Memory, kind: str) -> Iterator[None]:
    """Hold every running slot of one of the LM queues from another thread."""
    queue = mem._tiers.queue(kind)
    release, held = threading.Event(), []

    def hold() -> None:
        with queue.slot():
            held.append(1)
            release.wait(30)

    threads = [threading.Thread(target=hold) for _ in range(queue.slots)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(held) < queue.slots and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield
    finally:
        release.set()
        for t in threads:
            t.join()


def test_lm_work_beyond_the_queue_is_refused_with_retry_after(
    open_memory: Callable[..., Memory],
) -> None:
    mem = open_memory(lm_queue_size=0, lm_training_jobs=1)
    rec = mem.add(FACT, user_id="u")[0]
    key = mem.keys.create("acme")[1]
    with _occupied(mem, "lm"):
        with pytest.raises(Busy) as info:
            mem.generate("What is Alice's dog called?", user_id="u", k=1)
        assert info.value.details["retry_after"] > 0
        with pytest.raises(Busy):
            mem.promote(rec.id)
        with TestClient(create_app(mem)) as client:
            res = client.post(
                "/v1/generate",
                json={"prompt": "hi", "user_id": "u", "k": 0},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert res.status_code == 429, res.text
        assert res.json()["error"]["code"] == "busy" and int(res.headers["Retry-After"]) >= 1
    with _occupied(mem, "training"), pytest.raises(Busy):
        mem.consolidate(user_id="u", steps=1)
    assert mem.generate("What is Alice's dog called?", user_id="u", k=1, max_tokens=4).text


def test_consolidate_caps_its_training_settings(open_memory: Callable[..., Memory]) -> None:
    mem = open_memory(lora_max_steps=5, lora_max_rank=4, lora_max_records=2)
    recs = mem.add([FACT, BOB, "Carol keeps bees in Lisbon."], user_id="u")
    one = [recs[0].id]
    for kwargs, field in (
        ({"steps": 6, "record_ids": one}, "steps"),
        ({"steps": 1, "rank": 5, "record_ids": one}, "rank"),
        ({"steps": 1, "record_ids": [r.id for r in recs]}, "record_ids"),
        ({"steps": 1}, "record_ids"),  # every active record: three, over the cap
    ):
        with pytest.raises(InvalidInput) as info:
            mem.consolidate(user_id="u", **kwargs)
        assert info.value.details["field"] == field, kwargs


def test_training_examples_are_bounded_in_tokens(lm: LocalLM) -> None:
    long = " ".join(f"word{i}" for i in range(2000))
    examples = training_examples(lm, [("What do you remember?", long), ("Q?", "A short one.")], 64)
    assert len(examples) == 2
    for ids, labels in examples:
        assert len(ids) == len(labels) <= 64
        assert any(t != -100 for t in labels)  # something left to learn from
