"""What recall needs to know of a record beyond its vector, derived from its fields.

`text_doc` feeds the side index (keywords, entities, sessions, time anchors); it runs when a
record is indexed, so a record's time anchor ("yesterday", said on 8 May) is resolved
against its own event time. `embedding_text` is what the dense channel embeds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retrieval.timeexpr import first_time
from store.text_index import TextDoc

__all__ = ["embedding_text", "speaker_of", "text_doc"]


def speaker_of(source: dict[str, Any] | None) -> str | None:
    """A message's named speaker; a bare role ("user", "assistant") is not a name."""
    if not source:
        return None
    name = source.get("speaker")
    if not isinstance(name, str) or not name.strip() or name == source.get("role"):
        return None
    return name.strip()


def embedding_text(content: str, source: dict[str, Any] | None, event_time: datetime | None) -> str:
    """A named speaker's turn is embedded as "Speaker (8 May 2023): text": who said it and
    when are part of what it means (measured on LoCoMo dev: dense evidence recall@10 0.30
    for the bare text, 0.51 with the speaker, 0.56 with speaker and date)."""
    speaker = speaker_of(source)
    if speaker is None:
        return content
    if event_time is None:
        return f"{speaker}: {content}"
    return f"{speaker} ({event_time.day} {event_time:%B %Y}): {content}"


def text_doc(row: Any) -> TextDoc:
    """A record row (anything with pk, content, source, session_id, event_time, entities)."""
    speaker = speaker_of(row.source)
    anchor = None
    if row.event_time is not None:
        span = first_time(row.content, row.event_time)
        if span is not None:
            anchor = (span.start, span.end)
    return TextDoc(
        pk=row.pk,
        text=f"{speaker}: {row.content}" if speaker else row.content,
        session=row.session_id,
        speaker=speaker,
        event_time=row.event_time,
        anchor=anchor,
        entities=tuple(row.entities or ()),
        asks="?" in row.content,
    )
