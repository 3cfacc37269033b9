"""Long messages become linked chunk records of one message.

People paste whole documents into chats; a record holds at most `chunk_bytes`, so a longer
message is cut at the most natural boundary inside each window (a blank line, a line, a
sentence end, a space; a character boundary only when the window has none of them). Joining
the chunks gives the message back exactly, except that a chunk of whitespace alone is not
stored. Chunk ids derive from the message id, so the message is found again from its id
with indexed lookups (`chunk_id`) and no new table.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["chunk_id", "split_text"]

# Preferred cut points, best first: each pattern's match end is where a chunk may end.
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"[.!?]\s"), re.compile(r"\s"))


def _fit(text: str, start: int, max_bytes: int) -> int:
    """The largest end such that text[start:end] is at most max_bytes in UTF-8."""
    hi = min(len(text), start + max_bytes)  # a character is at least one byte
    if len(text[start:hi].encode("utf-8")) <= max_bytes:
        return hi
    lo = start + max(1, max_bytes // 4)  # a character is at most four bytes
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(text[start:mid].encode("utf-8")) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut(window: str) -> int:
    """Where to end a full window: the last good break in its second half, else its end."""
    half = len(window) // 2
    for pattern in _BREAKS:
        last = None
        for m in pattern.finditer(window, half):
            last = m
        if last is not None:
            return last.end()
    return len(window)


def split_text(text: str, max_bytes: int) -> list[str]:
    """`text` as pieces of at most `max_bytes` UTF-8 bytes, in order, none whitespace-only."""
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4 (one UTF-8 character)")
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = _fit(text, start, max_bytes)
        if end < len(text):
            end = start + _cut(text[start:end])
        piece = text[start:end]
        if piece.strip():
            pieces.append(piece)
        start = end
    return pieces


def chunk_id(message_id: str, index: int) -> str:
    """The record id of chunk `index` of a message: derived, so nobody can choose it."""
    return str(uuid.uuid5(uuid.UUID(message_id), f"chunk:{index}"))
