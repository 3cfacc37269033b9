"""Parametric tier: consolidate plaintext memories into a LoRA adapter on the local LM.

Training data comes from the memories alone, no LLM: each memory becomes
  - the answer to "What do you know about <entity>?" for up to two of its entities, or
  - the answer to a generic "What do you remember?" when it names none,
framed exactly as `Memory.generate` frames a prompt with no retrieved context, so the adapter
learns to say the facts where generation will ask for them. Loss is taken on the answer
tokens only. A bounded number of AdamW steps on a fresh copy of the base model (the shared
model is never touched); the adapter is saved as its peft state dict with its config,
settings and loss curve. An example is cut to `max_example_tokens`: a batch of 32 KiB
memories would otherwise need tens of GB for its activations. The service caps steps, rank
and records further (MEMSVC_LORA_*).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memsvc import tracing
from memsvc.activation import context_ids
from memsvc.lm import RANK_CEILING, LocalLM, require_tiers_extra

__all__ = ["LoraSettings", "TrainedAdapter", "train_adapter", "training_examples", "training_pairs"]

GENERIC_QUESTION = "What do you remember?"


@dataclass(frozen=True)
class LoraSettings:
    steps: int = 100
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    learning_rate: float = 2e-3
    batch_size: int = 8
    seed: int = 0
    top_layers: int = 12  # 0: every layer
    max_example_tokens: int = 256
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )

    def check(self) -> LoraSettings:
        if not 1 <= self.steps <= 5000:
            raise ValueError("steps must be 1-5000")
        if not 1 <= self.rank <= RANK_CEILING:
            raise ValueError(f"rank must be 1-{RANK_CEILING}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError("learning_rate must be in (0, 1]")
        if self.top_layers < 0:
            raise ValueError("top_layers must be >= 0")
        if not 1 <= self.batch_size <= 256:
            raise ValueError("batch_size must be 1-256")
        if not 16 <= self.max_example_tokens <= 4096:
            raise ValueError("max_example_tokens must be 16-4096")
        return self

    def peft_config(self, layers: int) -> dict[str, Any]:
        """LoRA on the top `top_layers` of `layers` blocks only: backpropagation stops there,
        which halves a training step on the CPU and is where facts are best written."""
        first = max(0, layers - self.top_layers) if self.top_layers else 0
        return {
            "layers_to_transform": list(range(first, layers)),
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": list(self.target_modules),
            "bias": "none",
            "task_type": "CAUSAL_LM",
        }


@dataclass
class TrainedAdapter:
    weights: dict[str, Any]
    config: dict[str, Any]
    settings: dict[str, Any]
    loss_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0
    examples: int = 0


def question_for(entity: str) -> str:
    return f"What do you know about {entity}?"


def training_pairs(memories: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, str]]:
    """(question, answer) pairs from (text, entities) memories; a memory naming no entity
    answers the generic question."""
    pairs = []
    for text, entities in memories:
        ents = list(dict.fromkeys(entities))[:2]
        pairs += [(question_for(e), text) for e in ents] or [(GENERIC_QUESTION, text)]
    return pairs


def prompt_ids(lm: LocalLM, question: str) -> list[int]:
    """What generation feeds for a question with no retrieved memories."""
    return context_ids(lm, []) + lm.tail_ids(question)


def answer_ids(lm: LocalLM, answer: str) -> list[int]:
    tok, _ = lm.load()
    end = tok.get_vocab().get("<|im_end|>", tok.eos_token_id)
    return lm.encode(answer) + ([end] if end is not None else [])


def training_examples(
    lm: LocalLM, pairs: Sequence[tuple[str, str]], max_tokens: int
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per pair, at most `max_tokens` long; labels are -100 on the
    prompt. A pair whose prompt alone fills the limit teaches nothing and is left out."""
    examples = []
    for q, a in pairs:
        p, t = prompt_ids(lm, q), answer_ids(lm, a)
        ids, labels = (p + t)[:max_tokens], ([-100] * len(p) + t)[:max_tokens]
        if any(x != -100 for x in labels):
            examples.append((ids, labels))
    return examples


def train_adapter(
    lm: LocalLM,
    pairs: Sequence[tuple[str, str]],
    settings: LoraSettings,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainedAdapter:
    """A LoRA adapter trained on `pairs`, traced as one `lm.train_adapter` span."""
    with tracing.span("lm.train_adapter", {"memsvc.lm.steps": settings.steps}) as sp:
        trained = _train_adapter(lm, pairs, settings, progress=progress)
        sp.set_attribute("memsvc.lm.examples", trained.examples)
    return trained


def _train_adapter(
    lm: LocalLM,
    pairs: Sequence[tuple[str, str]],
    settings: LoraSettings,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainedAdapter:
    require_tiers_extra("peft", "training a LoRA adapter")
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    if not pairs:
        raise ValueError("nothing to train on")
    settings.check()
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    examples = training_examples(lm, pairs, settings.max_example_tokens)
    if not examples:
        raise ValueError("every memory is longer than a training example may be")
    config = settings.peft_config(lm.dims["layers"])
    model = get_peft_model(lm.fresh_copy(), LoraConfig(**config))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / 10) * max(0.05, 1 - i / settings.steps)
    )
    curve: list[float] = []
    order: list[int] = []
    t0 = time.perf_counter()
    for step in range(settings.steps):
        if len(order) < settings.batch_size:
            more = list(range(len(examples)))
            rng.shuffle(more)
            order += more
        batch = [examples[i] for i in order[: settings.batch_size]]
        del order[: settings.batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, (x, y) in enumerate(batch):
            ids[j, : len(x)] = torch.tensor(x)
            labels[j, : len(y)] = torch.tensor(y)
            mask[j, : len(x)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        curve.append(round(float(loss.detach()), 4))
        if progress is not None:
            progress(step + 1, settings.steps, curve[-1])
    state = get_peft_model_state_dict(model, save_embedding_layers=False)  # LoRA only
    weights = {k: v.detach().clone() for k, v in state.items()}
    return TrainedAdapter(
        weights=weights,
        config=config,
        settings=asdict(settings),
        loss_curve=curve,
        seconds=round(time.perf_counter() - t0, 2),
        examples=len(examples),
    )
