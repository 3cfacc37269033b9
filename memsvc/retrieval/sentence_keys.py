"""Sentence keys: extra vectors that find a record by one of its sentences.

A record has one embedding of its whole text, and in a long turn a passing remark drowns in
the rest: "By the way, I come from a family with 3 sisters" inside a request for papers on
social networks is found by no question about siblings. The LongMemEval paper's key expansion
(index a turn under facts or phrases drawn from it as well as under its whole text) is worth
9.4 points of recall there; a sentence is the zero-model version of such a key. Each key
stands for its record; the `sentence` channel ranks records by their best key, apart from
the dense channel's whole-text ranking, so a recipe weighs the two.

Only what a person says at length gets keys: an assistant's reply restates the topic of
every question and is embedded from its opening anyway (`analyze.embedding_text`); a record
of one sentence needs none (its embedding is that sentence); a short turn (CONTEXT_MAX_WORDS
words or fewer) is one thought, embedded with the turns it answers. At most MAX_KEYS a
record bounds what one message costs to embed and hold, whatever its length.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from memsvc.retrieval.analyze import CONTEXT_MAX_WORDS, embedding_text

__all__ = ["MAX_KEYS", "MIN_KEY_WORDS", "key_texts", "sentences"]

MAX_KEYS = 16  # the first sentences of a long message; a pasted document's rest is its own
MIN_KEY_WORDS = 4  # a shorter fragment ("Thanks!", "Hi.") joins the sentence after it
_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text's sentences, fragments of fewer than MIN_KEY_WORDS words joined to the next
    (the last one to the one before)."""
    out: list[str] = []
    pending = ""
    for part in _SPLIT.split(text):
        part = " ".join(part.split())
        if not part:
            continue
        pending = f"{pending} {part}" if pending else part
        if len(pending.split()) >= MIN_KEY_WORDS:
            out.append(pending)
            pending = ""
    if pending:
        if out:
            out[-1] = f"{out[-1]} {pending}"
        else:
            out.append(pending)
    return out


def key_texts(
    content: str, source: dict[str, Any] | None, event_time: datetime | None
) -> list[str]:
    """What to embed as the record's keys (none for a reply or a one-sentence record), each
    framed as its record is (speaker and date for a named speaker)."""
    # A reply restates the question; a short turn is one thought, embedded with the turns
    # it answers; a record of one sentence is its own key.
    said_at_length = not (source and source.get("role") == "assistant") and (
        len(content.split()) > CONTEXT_MAX_WORDS
    )
    found = sentences(content) if said_at_length else []
    keyed = found[:MAX_KEYS] if len(found) >= 2 else ()
    return [embedding_text(s, source, event_time) for s in keyed]
