"""Writes that embed: add, update and restore, one pipeline (longer than 500 lines because
the three share every step, and add's idempotency and duplicate checks sit inside it).

    validate -> items -> turn context -> embed -> one transaction -> index

Validation and embedding run before the transaction (embedding is the slow part and must
not hold the write lock); the transaction writes records, versions, entity links, follows
edges and supersession together; the index then applies the write from its change
sequence numbers, or catches up from the change log when older records changed too.

An add with an idempotency key claims the key in that same transaction (store/repos/
idempotency.py): a repeat of the key, even one racing the first on another worker, finds
the first's key and returns its records instead of writing. A cube that refuses
duplicates is checked in that transaction too, after the cube's write lock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from memsvc import tracing
from memsvc._convert import record_model
from memsvc.chunking import chunk_id, split_text
from memsvc.errors import (
    Conflict,
    DuplicateRecord,
    IdempotencyKeyReused,
    InvalidInput,
    PayloadTooLarge,
)
from memsvc.models import Added, MemoryRecord, Message
from memsvc.retrieval.analyze import Stored, embedding_text, speaker_of, stored_anchor
from memsvc.retrieval.entities import extract_entities
from memsvc.retrieval.sentence_keys import key_texts
from memsvc.services.cubes import CubeService
from memsvc.store.data import CubeData, IdempotencyKeyData, RecordData, new_id
from memsvc.store.tx import Tx
from memsvc.supersession import key_of, resolve_records
from memsvc.turn_context import batch_contexts, context_of, session_before
from memsvc.validation import (
    check_idempotency_key,
    check_ident,
    check_importance,
    check_message,
    check_metadata,
    check_tags,
    check_text,
    to_utc,
)

__all__ = ["IngestService"]


@dataclass
class _Item:
    """One record to write, before embedding."""

    content: str
    kind: str
    source: dict[str, Any]
    event_time: datetime | None
    meta: dict[str, Any]
    origin: str = "text"  # the input field it came from, for errors
    context: list[str] = field(default_factory=list)


def _check_kind(kind: Any) -> None:
    if kind is not None and (not isinstance(kind, str) or not 0 < len(kind) <= 32):
        raise InvalidInput("kind must be 1-32 characters", details={"field": "kind"})


def _check_pinned(pinned: Any) -> None:
    if not isinstance(pinned, bool):
        raise InvalidInput("pinned must be true or false", details={"field": "pinned"})


def _mentions(content: str, source: dict[str, Any]) -> list[tuple[str, str, str]]:
    ents = extract_entities(content, speaker=speaker_of(source))
    return [(e.name, e.normalized, e.type) for e in ents]


def _digest(request: dict[str, Any]) -> str:
    """SHA-256 of an add's request, its fields as checked (defaults filled in, times in UTC):
    what a repeat of an idempotency key must match."""
    blob = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _chunked(
    content: str, source: dict[str, Any], chunk_bytes: int
) -> list[tuple[str, dict[str, Any]]]:
    """(content, source) of each record one text or message becomes; chunks of one message
    share its id and say their place, so a hit tells which message and chunk it is."""
    pieces = split_text(content, chunk_bytes)
    if len(pieces) == 1:
        return [(content, source)]
    message_id = new_id()
    return [
        (piece, {**source, "message_id": message_id, "chunk": i, "chunks": len(pieces)})
        for i, piece in enumerate(pieces)
    ]


def _chunk_record_id(source: dict[str, Any]) -> dict[str, str]:
    if "message_id" not in source:
        return {}
    return {"id": chunk_id(source["message_id"], source["chunk"])}


class _StoredBytes:
    """Bounds what an add stores, not only what it sends: metadata given once for a batch is
    copied into every record (and its first version), so it counts once per record."""

    def __init__(self, limit: int, shared: dict[str, Any]) -> None:
        self.limit = limit
        self.shared = len(json.dumps(shared)) if shared else 0
        self.total = 0

    def add(self, content: str, own: dict[str, Any], *, field: str) -> None:
        self.total += len(content.encode("utf-8")) + self.shared
        if own:
            self.total += len(json.dumps(own, default=str))
        if self.total > self.limit:
            raise PayloadTooLarge(
                f"this add would store more than {self.limit} bytes of text and metadata "
                "(metadata given for a batch is stored with every record)",
                details={"field": field, "limit": self.limit},
            )


def _refuse_duplicates(
    tx: Tx, cube: CubeData, items: list[_Item], user_id: str, session_id: str | None
) -> None:
    """`DuplicateRecord` when an item's text is an active record's, word for word, for the
    same user and session, in a cube that refuses duplicates."""
    found = tx.records.same_text(cube.pk, [it.content for it in items], user_id, session_id)
    for it in items:
        if it.content in found:
            rid = found[it.content]
            raise DuplicateRecord(
                f"cube {cube.name!r} refuses duplicates: record {rid} already holds this text "
                "for this user and session",
                details={"field": it.origin, "id": rid},
            )


def _write(
    tx: Tx,
    cube: CubeData,
    fields: list[dict[str, Any]],
    mentions: list[list[tuple[str, str, str]]],
    now: datetime,
    follows: bool,
) -> tuple[list[RecordData], tuple[int, int, int], bool]:
    """Records, entity links, supersession and (for messages) `follows` edges; returns the
    rows, their change sequence numbers and whether older records were closed."""
    rows, seqs = tx.records.insert(cube, fields)
    tx.graph.link_entities(cube.pk, [(r.pk, m) for r, m in zip(rows, mentions, strict=True) if m])
    closed = resolve_records(
        tx, cube, [r.pk for r, f in zip(rows, fields, strict=True) if f["fact_key"]], now
    )
    if follows and len(rows) > 1:
        tx.graph.add_edges(
            cube.pk, "follows", ((a.pk, b.pk) for a, b in itertools.pairwise(rows)), now
        )
    return rows, seqs, bool(closed)


class IngestService:
    def __init__(
        self, cubes: CubeService, restore_tier: Callable[[RecordData], MemoryRecord]
    ) -> None:
        self.cubes = cubes
        self.engine = cubes.engine
        self._restore_tier = restore_tier

    # ---- add -----------------------------------------------------------------------------------

    def add(
        self,
        text: str | Sequence[str] | None = None,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        cube: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: datetime | str | float | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        pinned: bool = False,
        idempotency_key: str | None = None,
    ) -> Added:
        _check_pinned(pinned)
        check_ident(user_id, field="user_id", required=True)
        check_ident(agent_id, field="agent_id")
        check_ident(session_id, field="session_id")
        key = check_idempotency_key(idempotency_key)
        when = to_utc(timestamp, field="timestamp")
        meta = check_metadata(metadata)
        tag_list = check_tags(tags)
        imp = check_importance(importance)
        _check_kind(kind)
        inputs: list[Any] = []
        items = self._items(text, messages, kind=kind, when=when, meta=meta, inputs=inputs)
        digest = ""
        if key is not None:
            digest = _digest(
                {
                    "text" if text is not None else "messages": inputs,
                    "user_id": user_id,
                    "agent_id": agent_id,
                    "session_id": session_id,
                    "cube": cube,
                    "metadata": meta,
                    "timestamp": when,
                    "kind": kind or ("fact" if text is not None else "episode"),
                    "tags": tag_list,
                    "importance": imp,
                    "pinned": pinned,
                }
            )
            with self.engine.db.reading() as tx:
                earlier = tx.idempotency.find(self.cubes.tenant_pk, key, self.engine.now())
            if earlier is not None:  # a repeat: nothing to embed or write
                return self._replay(earlier, digest)

        # An explicitly named cube must exist: fail before the (slow) embedding.
        cube_row = self.cubes.cube_for(cube=cube, user_id=user_id, create=False, write=True)
        if cube_row is not None:
            self.cubes.check_model(cube_row)
            if cube_row.refuse_duplicates:  # checked again in the write; this saves embedding
                with self.engine.db.reading() as tx:
                    _refuse_duplicates(tx, cube_row, items, user_id, session_id)
        if messages is not None:
            self._turn_context(items, cube_row, session_id, user_id)
        vectors, keys = self._embed_with_keys(
            [embedding_text(it.content, it.source, it.event_time, it.context) for it in items],
            [(it.content, it.source, it.event_time) for it in items],
        )
        now = self.engine.now()
        mentions = [_mentions(it.content, it.source) for it in items]
        fields = [
            {
                **_chunk_record_id(it.source),
                "kind": it.kind,
                "content": it.content,
                "source": it.source,
                "user_id": user_id,
                "agent_id": agent_id,
                "session_id": session_id,
                "event_time": it.event_time,
                "valid_from": it.event_time or now,
                "created_at": now,
                "tags": tag_list,
                "importance": imp,
                "embedding": vec.tobytes(),
                "key_embeddings": key.tobytes() if len(key) else None,
                "time_anchor": stored_anchor(it.content, it.source, it.event_time),
                "meta": it.meta,
                "entities": list(dict.fromkeys(m[1] for m in ments)),
                "pinned": pinned,
                "fact_key": key_of(it.content, it.source, user_id),
            }
            for it, vec, key, ments in zip(items, vectors, keys, mentions, strict=True)
        ]
        if cube_row is None:  # the user's default cube, made now with this model
            cube_row = self.cubes.cube_for(cube=None, user_id=user_id, create=True)
            assert cube_row is not None
            self.cubes.check_model(cube_row)
        tenant_pk = self.cubes.tenant_pk  # known before the write: it may write itself
        ttl = timedelta(seconds=self.engine.settings.idempotency_ttl_seconds)
        earlier = None
        with self.engine.db.writing() as tx:
            tx.changes.lock(cube_row.pk)  # the cube's write lock first, as every writer
            if key is not None:  # a racing repeat that committed first leaves its key here
                earlier = tx.idempotency.claim(
                    tenant_pk,
                    key,
                    digest=digest,
                    cube_pk=cube_row.pk,
                    now=now,
                    expires_at=now + ttl,
                )
            if earlier is None:
                if cube_row.refuse_duplicates:
                    _refuse_duplicates(tx, cube_row, items, user_id, session_id)
                rows, seqs, closed = _write(
                    tx, cube_row, fields, mentions, now, messages is not None
                )
                if key is not None:
                    tx.idempotency.finish(tenant_pk, key, [r.pk for r in rows])
        if earlier is not None:
            return self._replay(earlier, digest)
        with tracing.span("index.apply_write", {"memsvc.records": len(rows)}):
            pks = np.fromiter((r.pk for r in rows), np.int64, len(rows))
            self.engine.indexes.apply_write(
                cube_row,
                None if closed else seqs,  # older records changed too: catch up from the log
                pks,
                vectors,
                rows=[Stored(r, f["time_anchor"]) for r, f in zip(rows, fields, strict=True)],
                keys=(np.repeat(pks, [len(k) for k in keys]), np.concatenate(keys)),
            )
        if tracing.active():  # on the SDK call's span
            tracing.annotate({"memsvc.records": len(rows), "memsvc.cube_id": cube_row.id})
        return Added(record_model(r, cube_row) for r in rows)

    def _embed_with_keys(
        self, texts: list[str], records: list[tuple[str, Any, datetime | None]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The texts' embeddings and, per record (content, source, event time), its sentence
        keys' (an empty array for none), in one encoding batch."""
        wanted = [key_texts(*r) if self.engine.settings.sentence_keys else [] for r in records]
        vecs = self._embed(texts + [k for ks in wanted for k in ks])
        keys, at = [], len(texts)
        for ks in wanted:
            keys.append(vecs[at : at + len(ks)])
            at += len(ks)
        return vecs[: len(texts)], keys

    def _embed(self, texts: list[str]) -> np.ndarray:
        """The texts' embeddings, traced as `embed` with their count (never their text)."""
        with tracing.span("embed", {"memsvc.texts": len(texts)}):
            return self.engine.embedder.encode(texts)

    def _catch_up(self, cube_row: CubeData) -> None:
        """Bring the cube's index up to the change log now, so the write shows at once."""
        with tracing.span("index.catch_up", {"memsvc.index": "vectors"}):
            self.engine.indexes.get(cube_row)

    def _replay(self, earlier: IdempotencyKeyData, digest: str) -> Added:
        """The records the key's first add wrote, as they are now (a record hard-deleted
        since is left out); `IdempotencyKeyReused` when this request is another one."""
        if earlier.digest != digest:
            raise IdempotencyKeyReused(
                f"idempotency key {earlier.key!r} was used for a different add "
                f"(at {earlier.created_at.isoformat()}); repeat that request exactly, or use "
                "a new key for a new one",
                details={"field": "idempotency_key"},
            )
        with self.engine.db.reading() as tx:
            cube_row = tx.cubes.by_pk(earlier.cube_pk)
            rows = tx.records.by_pks(earlier.record_pks)
        if cube_row is None:  # the cube went after the key was read: so did its records
            return Added(replayed=True)
        return Added(
            (record_model(rows[pk], cube_row) for pk in earlier.record_pks if pk in rows),
            replayed=True,
        )

    def _items(
        self,
        text: str | Sequence[str] | None,
        messages: Sequence[Message | dict[str, Any]] | None,
        *,
        kind: str | None,
        when: datetime | None,
        meta: dict[str, Any],
        inputs: list[Any],
    ) -> list[_Item]:
        """The records an add asks for, checked: one per text, or one episode per message; a
        text or message over `chunk_bytes` becomes linked chunk records (memsvc/chunking.py).
        `inputs` gets each text or message as checked (what an idempotency key digests)."""
        settings = self.engine.settings
        budget = _StoredBytes(settings.max_add_bytes, meta)
        chunk = min(settings.chunk_bytes, settings.max_text_bytes)  # no record over the limit
        if (text is None) == (messages is None):
            raise InvalidInput("give exactly one of text or messages", details={"field": "text"})
        items: list[_Item] = []
        if text is not None:
            texts = [text] if isinstance(text, str | bytes | bytearray) else list(text)
            if not texts:
                raise InvalidInput("text list is empty", details={"field": "text"})
            for i, t in enumerate(texts):
                field_name = "text" if len(texts) == 1 else f"text[{i}]"
                content = check_text(t, field=field_name, max_bytes=settings.max_add_bytes)
                inputs.append(content)
                for piece, source in _chunked(content, {}, chunk):
                    budget.add(piece, {}, field=field_name)
                    items.append(_Item(piece, kind or "fact", source, when, meta, field_name))
        else:
            if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
                raise InvalidInput("messages must be a list", details={"field": "messages"})
            if not messages:
                raise InvalidInput("messages is empty", details={"field": "messages"})
            for i, raw in enumerate(messages):
                msg = check_message(raw, i)
                field_name = f"messages[{i}].content"
                content = check_text(
                    msg.content, field=field_name, max_bytes=settings.max_add_bytes
                )
                source = {"role": msg.role, "speaker": msg.name or msg.role, "message_index": i}
                own_time = to_utc(msg.timestamp, field=f"messages[{i}].timestamp")
                event_time = own_time or when
                msg_meta = {**meta, **msg.metadata} if msg.metadata else meta
                inputs.append(
                    {
                        "role": msg.role,
                        "content": content,
                        "name": msg.name,
                        "timestamp": own_time,
                        "metadata": msg.metadata,
                    }
                )
                for piece, src in _chunked(content, source, chunk):
                    budget.add(piece, msg.metadata, field=field_name)
                    items.append(
                        _Item(piece, kind or "episode", src, event_time, msg_meta, field_name)
                    )
        most = settings.max_batch_records
        if len(items) > most:
            raise InvalidInput(
                f"{len(items)} records in one add; the limit is {most}",
                details={"field": "text" if text is not None else "messages"},
            )
        return items

    def _turn_context(
        self,
        items: list[_Item],
        cube: CubeData | None,
        session_id: str | None,
        user_id: str,
    ) -> None:
        """Short chat turns are embedded with the turns before them (memsvc/turn_context.py)."""
        earlier: list[tuple[str, dict[str, Any]]] = []
        if cube is not None and session_id is not None:
            with self.engine.db.reading() as tx:
                earlier = session_before(tx, cube.pk, session_id, user_id)
        contexts = batch_contexts(earlier, [(it.content, it.source) for it in items])
        for it, ctx in zip(items, contexts, strict=True):
            it.context = ctx

    # ---- update --------------------------------------------------------------------------------

    def update(
        self,
        id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        kind: str | None = None,
        event_time: datetime | str | float | None = None,
        valid_from: datetime | str | float | None = None,
        valid_to: datetime | str | float | None = None,
        pinned: bool | None = None,
    ) -> RecordData:
        changes: dict[str, Any] = {}
        if pinned is not None:
            _check_pinned(pinned)
            changes["pinned"] = pinned
        if text is not None:
            changes["content"] = check_text(
                text, field="text", max_bytes=self.engine.settings.max_text_bytes
            )
        if metadata is not None:
            changes["meta"] = check_metadata(metadata)
        if tags is not None:
            changes["tags"] = check_tags(tags)
        if importance is not None:
            changes["importance"] = check_importance(importance)
        if kind is not None:
            _check_kind(kind)
            changes["kind"] = kind
        for name, value in (
            ("event_time", event_time),
            ("valid_from", valid_from),
            ("valid_to", valid_to),
        ):
            if value is not None:
                changes[name] = to_utc(value, field=name)
        if not changes:
            raise InvalidInput("nothing to update: give at least one field", details={})
        mentions: list[tuple[str, str, str]] = []
        if "content" in changes:
            with self.engine.db.reading() as tx:
                old = self.cubes.record(tx, id)
                when = changes.get("event_time", old.event_time)
                context = context_of(tx, old, changes["content"])
            text_in = embedding_text(changes["content"], old.source, when, context)
            vecs, keys = self._embed_with_keys([text_in], [(changes["content"], old.source, when)])
            vec = vecs[0]
            changes["key_embeddings"] = keys[0].tobytes() if len(keys[0]) else None
            mentions = _mentions(changes["content"], old.source)
            changes["entities"] = list(dict.fromkeys(m[1] for m in mentions))
            changes["fact_key"] = key_of(changes["content"], old.source, old.user_id)
            changes["embedding"], changes["embedding_precision"] = vec.tobytes(), "float32"
            changes["time_anchor"] = stored_anchor(changes["content"], old.source, when)
        elif "event_time" in changes:
            changes["time_anchor"] = None  # resolved again against the new time at load
        with self.engine.db.writing() as tx:
            row, cube_row = self.cubes.located_for_write(tx, id)
            if row.status == "deleted":
                raise Conflict(f"record {id} is deleted", details={"id": id})
            if "content" in changes:
                self.cubes.check_model(cube_row)
            vf = changes.get("valid_from", row.valid_from)
            vt = changes.get("valid_to", row.valid_to)
            if vf is not None and vt is not None and vt <= vf:
                raise InvalidInput(
                    "valid_to must be after valid_from", details={"field": "valid_to"}
                )
            now = self.engine.now()
            row = tx.records.change(row.pk, changes, change="update", at=now)
            if "content" in changes:
                tx.graph.link_entities(row.cube_pk, [(row.pk, mentions)])
            if "content" in changes or "valid_from" in changes or "event_time" in changes:
                resolve_records(tx, cube_row, [row.pk], now)
        self._catch_up(cube_row)
        return row

    # ---- restore -------------------------------------------------------------------------------

    def restore(self, id: str) -> MemoryRecord | None:
        """None when restored (the caller reads it back); the record when nothing to do."""
        with self.engine.db.reading() as tx:
            row, cube_row = self.cubes.located(tx, id, write=True)
            if row.status == "active":
                return record_model(row, cube_row)
            if row.tier != "plaintext":
                return self._restore_tier(row)
            text_in = embedding_text(row.content, row.source, row.event_time, context_of(tx, row))
            keyed = (row.content, row.source, row.event_time)
        vecs, keys = self._embed_with_keys([text_in], [keyed])
        vec = vecs[0]
        with self.engine.db.writing() as tx:
            row = self.cubes.record_for_write(tx, id)
            self.cubes.check_model(cube_row)
            if row.status != "active":
                now = self.engine.now()
                values = {
                    "status": "active",
                    "embedding": vec.tobytes(),
                    "key_embeddings": keys[0].tobytes() if len(keys[0]) else None,
                    "embedding_precision": "float32",
                    "last_recalled_at": now,
                }
                tx.records.change(row.pk, values, change="restore", at=now)
        self._catch_up(cube_row)
        return None
