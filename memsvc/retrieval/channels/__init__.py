"""Recall channels: one signature, one registry.

Every channel is `fn(ctx, scores) -> Ranked`: it reads the query's read-only `QueryContext`
and a read-only mapping of scores, and returns (record pk, score) pairs, best first. It
mutates nothing, so the channels of a stage may run in any order (or at once).

- generators find candidates in the whole cube (dense, keyword, sentence, entity, temporal);
  they get no scores; their rankings are fused (rrf or weighted, `memsvc/retrieval/fusion.py`);
- boosters re-score the fused list (session, vote, near, aside, speaker, recency, own); each
  gets the fused scores and returns a signal per record, which the pipeline folds into the
  score as its `fold` says, in registry order;
- rescorers re-weigh the head of the boosted list (retention, the lifecycle's forgetting);
  each gets the head's scores.

`needs_vector`: the channel ranks by cosine, so the query must be embedded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from memsvc.retrieval.channels.aside import aside
from memsvc.retrieval.channels.dense import dense
from memsvc.retrieval.channels.entity import entity
from memsvc.retrieval.channels.keyword import keyword
from memsvc.retrieval.channels.near import near
from memsvc.retrieval.channels.own import own
from memsvc.retrieval.channels.recency import recency
from memsvc.retrieval.channels.retention import retention
from memsvc.retrieval.channels.sentence import sentence
from memsvc.retrieval.channels.session import session
from memsvc.retrieval.channels.speaker import speaker
from memsvc.retrieval.channels.temporal import temporal
from memsvc.retrieval.channels.vote import vote
from memsvc.retrieval.context import QueryContext, Ranked

__all__ = [
    "BOOSTERS",
    "CHANNELS",
    "GENERATORS",
    "REGISTRY",
    "RESCORERS",
    "Channel",
    "ChannelSpec",
]

Channel = Callable[[QueryContext, Mapping[int, float]], Ranked]
Role = Literal["generator", "booster", "rescorer"]
# How the pipeline folds a channel's output into the scores (memsvc/retrieval/fusion.py):
# fuse: fused with the other generators; add: + weight * signal; scale: + weight * signal *
# score; rank: + weight / (rrf_k + rank by signal); retain: score * (1 - w + w * signal).
Fold = Literal["fuse", "add", "scale", "rank", "retain"]


@dataclass(frozen=True)
class ChannelSpec:
    run: Channel
    role: Role
    fold: Fold
    needs_vector: bool


# Registry order is the order outputs are folded in (boosters: session, vote, near, aside,
# speaker, recency, own).
REGISTRY: Mapping[str, ChannelSpec] = MappingProxyType(
    {
        "dense": ChannelSpec(dense, "generator", "fuse", needs_vector=True),
        "keyword": ChannelSpec(keyword, "generator", "fuse", needs_vector=False),
        "sentence": ChannelSpec(sentence, "generator", "fuse", needs_vector=True),
        "entity": ChannelSpec(entity, "generator", "fuse", needs_vector=True),
        "temporal": ChannelSpec(temporal, "generator", "fuse", needs_vector=True),
        "session": ChannelSpec(session, "booster", "add", needs_vector=False),
        "vote": ChannelSpec(vote, "booster", "add", needs_vector=False),
        "near": ChannelSpec(near, "booster", "add", needs_vector=False),
        "aside": ChannelSpec(aside, "booster", "add", needs_vector=True),
        "speaker": ChannelSpec(speaker, "booster", "scale", needs_vector=False),
        "recency": ChannelSpec(recency, "booster", "rank", needs_vector=False),
        # last of the boosters: where it lifts every candidate alike, the order stays
        "own": ChannelSpec(own, "booster", "scale", needs_vector=False),
        "retention": ChannelSpec(retention, "rescorer", "retain", needs_vector=False),
    }
)
GENERATORS = tuple(n for n, c in REGISTRY.items() if c.role == "generator")
BOOSTERS = tuple(n for n, c in REGISTRY.items() if c.role == "booster")
RESCORERS = tuple(n for n, c in REGISTRY.items() if c.role == "rescorer")
CHANNELS = tuple(REGISTRY)
