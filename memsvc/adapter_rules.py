"""What an adapter may be before it touches the shared model: the LoRA config keys, target
projections and rank bound that `LocalLM.check_adapter` enforces on every adapter it loads."""

from __future__ import annotations

import re

__all__ = ["ADAPTER_CONFIG_KEYS", "ADAPTER_TARGETS", "RANK_CEILING", "AdapterRejected"]


class AdapterRejected(ValueError):
    """An adapter's config or tensors are not a LoRA adapter this model may carry."""


# What an adapter may be: LoRA on these projections only (what `consolidate` trains), with
# these config keys; anything else (modules_to_save, DoRA, other tuners, base weights) is
# refused, since peft would load it into the model every tenant's adapters share.
ADAPTER_TARGETS = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
)
ADAPTER_CONFIG_KEYS = frozenset(
    {
        "r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "layers_to_transform",
        "bias",
        "task_type",
    }
)
RANK_CEILING = 256  # MEMSVC_LORA_MAX_RANK is at most this
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|block|blocks|layer)\.(\d+)\.")
_FLOATS = ("float32", "float16", "bfloat16")
