"""Sentence channel: records by their nearest sentence key (retrieval.sentence_keys), so a
remark inside a long message is found though the message as a whole is about something else."""

from __future__ import annotations

from collections.abc import Mapping

from memsvc.retrieval.context import QueryContext, Ranked


def sentence(ctx: QueryContext, scores: Mapping[int, float]) -> Ranked:
    return list(ctx.sentence_hits)
