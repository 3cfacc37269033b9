"""The earlier turns a chat turn is embedded with (retrieval/analyze.py says why).

A turn's context is the CONTEXT_TURNS records before it in its session (same cube and
user), or, for messages added without a session, the messages before it in the same call.
It is read when the turn is embedded: later edits of an earlier turn do not re-embed the
turns after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memsvc.retrieval.analyze import CONTEXT_TURNS, is_turn, takes_context, turn_line
from memsvc.store.data import RecordData
from memsvc.store.tx import Tx

__all__ = ["batch_contexts", "context_of", "session_before"]


def batch_contexts(
    earlier: Sequence[tuple[str, dict[str, Any]]], items: Sequence[tuple[str, dict[str, Any]]]
) -> list[list[str]]:
    """The context of each of `items` (content, source), in order, after the `earlier`
    turns of their session (oldest first)."""
    lines = [turn_line(c, src) for c, src in earlier][-CONTEXT_TURNS:]
    out: list[list[str]] = []
    for content, source in items:
        out.append(list(lines) if is_turn(source) else [])
        lines = [*lines, turn_line(content, source)][-CONTEXT_TURNS:]
    return out


def session_before(
    tx: Tx, cube_pk: int, session_id: str, user_id: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """The last turns of a session so far: the context of the next message added to it."""
    return tx.records.preceding_turns(cube_pk, session_id, user_id, n=CONTEXT_TURNS)


def context_of(tx: Tx, record: RecordData, content: str | None = None) -> list[str]:
    """The context of a stored record (anything with pk, cube_pk, session_id, user_id,
    source, content), for embedding it, or the new `content` it is given, again; no query
    for a record that takes none."""
    text = record.content if content is None else content
    if record.session_id is None or not takes_context(text, record.source):
        return []
    before = tx.records.preceding_turns(
        record.cube_pk, record.session_id, record.user_id, before_pk=record.pk, n=CONTEXT_TURNS
    )
    return [turn_line(c, src) for c, src in before]
