"""Activation tier: KV caches of memory contexts, as tensors and back.

A cache is the `past_key_values` of `preamble + memory lines` (memsvc/lm.py) under the base
model. It is stored as float32 safetensors, one key and one value tensor per layer, with a
header naming the model, the tokenizer and the record versions it was built from, so a
cache built on other weights, another tokenizer or an older version of a record is known to
be stale. Float32 keeps the round trip exact: the logits after a loaded cache are the logits
after the cache as computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from memsvc.lm import LocalLM

__all__ = ["BuiltCache", "build_cache", "cache_from_tensors", "cache_tensors", "context_ids"]


@dataclass(frozen=True)
class BuiltCache:
    tensors: dict[str, Any]
    header: dict[str, str]
    tokens: int


def context_ids(lm: LocalLM, texts: list[str]) -> list[int]:
    """Token ids of the cached head of a prompt: the preamble and one line per memory."""
    ids = lm.preamble_ids()
    for t in texts:
        ids += lm.memory_ids(t)
    return ids


def cache_tensors(cache: Any) -> dict[str, Any]:
    return {
        name: t.detach().contiguous()
        for i, layer in enumerate(cache.layers)
        for name, t in ((f"k.{i}", layer.keys), (f"v.{i}", layer.values))
    }


def cache_from_tensors(lm: LocalLM, tensors: dict[str, Any], *, tokens: int | None = None) -> Any:
    """A fresh `DynamicCache` holding the stored keys and values (generation extends it, so
    each use gets its own). The file may come from an import: every tensor must have this
    model's shape for `tokens` positions, in float32, or it is a ValueError."""
    import torch
    from transformers import DynamicCache

    _, model = lm.load()
    dims = lm.dims
    n = dims["layers"]
    wanted = {f"{kv}.{i}" for i in range(n) for kv in "kv"}
    if set(tensors) != wanted:
        odd = sorted(set(tensors) ^ wanted)[:3]
        raise ValueError(f"cache tensors {odd} do not fit a {n}-layer model")
    first = tensors["k.0"]
    length = tokens if tokens is not None else (first.shape[2] if first.dim() == 4 else -1)
    shape = (1, dims["kv_heads"], length, dims["head_dim"])
    for name, t in tensors.items():
        if t.dtype != torch.float32 or tuple(t.shape) != shape:
            raise ValueError(
                f"cache tensor {name} is {t.dtype} {tuple(t.shape)}; this model's is "
                f"torch.float32 {shape}"
            )
    pairs = [(tensors[f"k.{i}"].clone(), tensors[f"v.{i}"].clone()) for i in range(n)]
    return DynamicCache(pairs, config=model.config)


def build_cache(lm: LocalLM, texts: list[str], sources: list[dict[str, Any]]) -> BuiltCache:
    """Prefill the context of `texts` (in order); `sources` are the records' ids and
    versions, kept in the header for staleness checks."""
    ids = context_ids(lm, texts)
    cache = lm.prefill(ids)
    header = {
        "format": "memsvc.kv.v1",
        "model_id": lm.model_id,
        "tokenizer_hash": lm.tokenizer_hash,
        "tokens": str(len(ids)),
        "records": json.dumps(sources),
    }
    return BuiltCache(cache_tensors(cache), header, len(ids))
