"""Record filters (`RecordQuery`) and the reads the indexes and recall are built from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session

from memsvc.store.data import RecordData, RecordQuery
from memsvc.store.orm import (
    RecordRow,
)
from memsvc.store.precision import decode_stored


def where(rq: RecordQuery, q: Any) -> Any:
    """`q` narrowed by the query's SQL-checkable conditions (tags and metadata are checked
    in Python by `RecordQuery.matches`)."""
    R = RecordRow
    if rq.statuses:
        q = q.where(R.status.in_(rq.statuses))
    for col, val in (
        (R.user_id, rq.user_id),
        (R.agent_id, rq.agent_id),
        (R.session_id, rq.session_id),
    ):
        if val is not None:
            q = q.where(col == val)
    if rq.kinds:
        q = q.where(R.kind.in_(rq.kinds))
    if rq.tiers:
        q = q.where(R.tier.in_(rq.tiers))
    if rq.since is not None:
        q = q.where(func.coalesce(R.event_time, R.created_at) >= rq.since)
    if rq.until is not None:
        q = q.where(func.coalesce(R.event_time, R.created_at) <= rq.until)
    if rq.valid_at is not None:
        q = q.where(or_(R.valid_from.is_(None), R.valid_from <= rq.valid_at))
        q = q.where(or_(R.valid_to.is_(None), R.valid_to > rq.valid_at))
    return q


def query_records(
    s: Session, cube_pk: int, rq: RecordQuery, *, after_pk: int = 0, limit: int | None = None
) -> list[RecordRow]:
    """Records matching `rq` in pk order after a cursor; tag and metadata checks run in Python
    so the same code works on every database's JSON flavour."""
    out: list[RecordRow] = []
    cursor = after_pk
    chunk = max(limit or 0, 500)
    while True:
        q = where(rq, select(RecordRow).where(RecordRow.cube_pk == cube_pk, RecordRow.pk > cursor))
        batch = list(s.scalars(q.order_by(RecordRow.pk).limit(chunk)))
        for r in batch:
            if rq.matches(r):
                out.append(r)
                if limit is not None and len(out) >= limit:
                    return out
        if len(batch) < chunk:
            return out
        cursor = batch[-1].pk


def matching_pks(s: Session, cube_pk: int, rq: RecordQuery) -> np.ndarray:
    if not rq.tags and not rq.metadata:
        q = where(rq, select(RecordRow.pk).where(RecordRow.cube_pk == cube_pk))
        return np.fromiter(s.scalars(q), dtype=np.int64)
    return np.array([r.pk for r in query_records(s, cube_pk, rq)], dtype=np.int64)


def active_vectors(
    s: Session, cube_pk: int, pks: Sequence[int] | None = None, *, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pks, vectors) of the active records with an embedding, optionally among `pks`."""
    q = select(RecordRow.pk, RecordRow.embedding, RecordRow.embedding_precision).where(
        RecordRow.cube_pk == cube_pk,
        RecordRow.status == "active",
        RecordRow.embedding.is_not(None),
    )
    if pks is not None:
        q = q.where(RecordRow.pk.in_([int(p) for p in pks]))
    return _vectors(s.connection().execute(q.order_by(RecordRow.pk)).all(), dim)


def _vectors(rows: Sequence[Row[Any]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(pks, float32 vectors) of rows of (pk, embedding, embedding_precision)."""
    if not rows:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if all(r[2] == "float32" for r in rows):
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
    else:  # some faded records keep int8 or 1-bit vectors
        vecs = np.stack([decode_stored(r[1], r[2], dim) for r in rows])
    return ids, vecs


def _keys(rows: Iterable[tuple[int, bytes | None]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(owner pk, vector) of every sentence key in (pk, key_embeddings) pairs: one owner entry
    per key, in the pairs' order and each record's key order."""
    owners: list[np.ndarray] = []
    vecs: list[np.ndarray] = []
    for pk, blob in rows:
        if not blob or len(blob) % (4 * dim):
            continue  # written for another model's dimension: no keys rather than wrong ones
        keys = np.frombuffer(blob, dtype=np.float32).reshape(-1, dim)
        owners.append(np.full(len(keys), pk, np.int64))
        vecs.append(keys)
    if not owners:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    return np.concatenate(owners), np.concatenate(vecs)


_TEXT_COLUMNS = (
    RecordRow.pk,
    RecordRow.content,
    RecordRow.source,
    RecordRow.session_id,
    RecordRow.event_time,
    RecordRow.entities,
    RecordRow.kind,
    RecordRow.time_anchor,
)


def active_text_rows(s: Session, cube_pk: int, pks: Sequence[int] | None = None) -> list[Row[Any]]:
    """The fields the side index reads (content, speaker, session, time, entities) of the
    active records, optionally among `pks`, in pk order."""
    R = RecordRow
    q = select(*_TEXT_COLUMNS).where(
        R.cube_pk == cube_pk, R.status == "active", R.tier == "plaintext"
    )
    if pks is not None:
        q = q.where(R.pk.in_([int(p) for p in pks]))
    return list(s.connection().execute(q.order_by(R.pk)).all())


@dataclass
class ActiveRows:
    """What a cube's indexes are built from, from one read (`active_rows`)."""

    pks: np.ndarray  # records with an embedding, pk order
    vectors: np.ndarray
    key_owners: np.ndarray  # one entry per sentence key
    keys: np.ndarray
    text_rows: list[Row[Any]]  # the plaintext records' `active_text_rows` fields


def active_rows(
    s: Session, cube_pk: int, pks: Sequence[int] | None = None, *, dim: int, text: bool
) -> ActiveRows:
    """`active_vectors`, every sentence key (`_keys`) and, with `text`, `active_text_rows` of
    the active records (optionally among `pks`) in one statement: a cold cube's load read
    them in three, each a round trip and a pass over the cube's rows (on PostgreSQL, a
    200-record cube's first recall ran 8 statements)."""
    R = RecordRow
    cols = [R.tier, R.embedding, R.embedding_precision, R.key_embeddings]
    q = select(*_TEXT_COLUMNS, *cols) if text else select(R.pk, *cols)
    q = q.where(R.cube_pk == cube_pk, R.status == "active")
    if pks is not None:
        q = q.where(R.pk.in_([int(p) for p in pks]))
    rows = s.connection().execute(q.order_by(R.pk)).all()
    ids, vecs = _vectors(
        [(r.pk, r.embedding, r.embedding_precision) for r in rows if r.embedding is not None],
        dim,
    )
    owners, keys = _keys(((r.pk, r.key_embeddings) for r in rows), dim)
    text_rows = [r for r in rows if r.tier == "plaintext"] if text else []
    return ActiveRows(ids, vecs, owners, keys, text_rows)


class Queries:
    def __init__(self, s: Session) -> None:
        self._s = s

    def records(
        self, cube_pk: int, rq: RecordQuery, *, after_pk: int = 0, limit: int | None = None
    ) -> list[RecordData]:
        return [
            RecordData.of(r)
            for r in query_records(self._s, cube_pk, rq, after_pk=after_pk, limit=limit)
        ]

    def matching_pks(self, cube_pk: int, rq: RecordQuery) -> np.ndarray:
        return matching_pks(self._s, cube_pk, rq)
