"""Records as the lifecycle passes read and write them: supersession (fact keys, statements
of one fact), organization (vectors, texts, session order, duplicate merge), forgetting
(fading batches, stored precision) and reinforcement (strength, recall events).

The writes here are the ones that do not version a record (they never did): the fields
they set are not part of a record's history. Whether the indexes must see one is the
caller's call (`tx.changes.append`), as before; a change that versions a record goes
through `tx.records.change`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from memsvc.store.data import RecordData
from memsvc.store.errors import StoreError
from memsvc.store.orm import RecallEventRow, RecordRow
from memsvc.store.repos.queries import active_vectors
from memsvc.store.repos.records import records_by_pks

__all__ = ["Lifecycle"]


class Lifecycle:
    def __init__(self, s: Session) -> None:
        self._s = s

    # ---- reads ---------------------------------------------------------------------------

    def records(self, pks: Sequence[int], *, chunk: int = 500) -> dict[int, RecordData]:
        """Records by pk (any status), read `chunk` at a time."""
        wanted = [int(p) for p in pks]
        out: dict[int, RecordData] = {}
        for i in range(0, len(wanted), chunk):
            part = records_by_pks(self._s, wanted[i : i + chunk], with_cube=False)
            out.update({pk: RecordData.of(r) for pk, r in part.items()})
        return out

    def get(self, pk: int) -> RecordData | None:
        """One record as this transaction sees it (its own changes included)."""
        row = self._s.get(RecordRow, pk)
        return None if row is None else RecordData.of(row)

    def embedding(self, pk: int) -> bytes | None:
        """A record's stored vector (in its `embedding_precision`), None if it has none."""
        return self._s.scalar(select(RecordRow.embedding).where(RecordRow.pk == pk))

    def active_vectors(self, cube_pk: int, *, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(pks, float32 vectors) of the cube's active records with an embedding, pk order."""
        return active_vectors(self._s, cube_pk, dim=dim)

    def contents(self, pks: Sequence[int]) -> dict[int, str]:
        """Content by record pk."""
        out: dict[int, str] = {}
        for i in range(0, len(pks), 20_000):
            part = [int(p) for p in pks[i : i + 20_000]]
            q = select(RecordRow.pk, RecordRow.content).where(RecordRow.pk.in_(part))
            out.update({pk: text for pk, text in self._s.execute(q)})
        return out

    def speakers(self, pks: Sequence[int]) -> set[str]:
        """The named speakers of these records' messages (a bare role is no name): topic
        names leave them out."""
        out: set[str] = set()
        for i in range(0, len(pks), 20_000):
            part = [int(p) for p in pks[i : i + 20_000]]
            for (source,) in self._s.execute(
                select(RecordRow.source).where(RecordRow.pk.in_(part))
            ):
                name = (source or {}).get("speaker")
                if isinstance(name, str) and name.strip() and name != source.get("role"):
                    out.add(name.strip())
        return out

    def session_turns(
        self, cube_pk: int, session_id: str
    ) -> list[tuple[int, datetime | None, datetime]]:
        """(pk, event_time, created_at) of a session's active records in a cube, unordered."""
        q = select(RecordRow.pk, RecordRow.event_time, RecordRow.created_at).where(
            RecordRow.cube_pk == cube_pk,
            RecordRow.session_id == session_id,
            RecordRow.status == "active",
        )
        return [(pk, et, ca) for pk, et, ca in self._s.execute(q)]

    def unkeyed(self, cube_pk: int) -> list[tuple[int, str, Any, str | None]]:
        """(pk, content, source, user_id) of the cube's plaintext records with no fact key
        yet (imported, or written before keys existed)."""
        q = select(RecordRow.pk, RecordRow.content, RecordRow.source, RecordRow.user_id).where(
            RecordRow.cube_pk == cube_pk,
            RecordRow.fact_key.is_(None),
            RecordRow.tier == "plaintext",
        )
        return [
            (pk, content, source, user_id) for pk, content, source, user_id in self._s.execute(q)
        ]

    def fact_stats(
        self, cube_pk: int, keys: Iterable[str]
    ) -> dict[str, tuple[int, datetime | None]]:
        """Per fact key: how many active statements and the latest valid_from."""
        q = (
            select(RecordRow.fact_key, func.count(), func.max(RecordRow.valid_from))
            .where(
                RecordRow.cube_pk == cube_pk,
                RecordRow.fact_key.in_(set(keys)),
                RecordRow.status == "active",
            )
            .group_by(RecordRow.fact_key)
        )
        return {key: (int(n), latest) for key, n, latest in self._s.execute(q)}

    def _statements(self, cube_pk: int, fact_key: str, other_than: int, *cols: Any) -> Any:
        return select(*(cols or (RecordRow,))).where(
            RecordRow.cube_pk == cube_pk,
            RecordRow.fact_key == fact_key,
            RecordRow.status == "active",
            RecordRow.pk != other_than,
        )

    def earlier_statements(
        self, cube_pk: int, fact_key: str, other_than: int, before: datetime, *, limit: int
    ) -> list[tuple[int, datetime | None]]:
        """(pk, valid_to) of the `limit` active statements of a fact nearest before `before`
        (by valid_from), newest first, open or not, leaving out record `other_than`."""
        q = (
            self._statements(cube_pk, fact_key, other_than, RecordRow.pk, RecordRow.valid_to)
            .where(RecordRow.valid_from < before)
            .order_by(RecordRow.valid_from.desc(), RecordRow.pk.desc())
            .limit(limit)
        )
        return [(pk, valid_to) for pk, valid_to in self._s.execute(q)]

    def later_statements(
        self, cube_pk: int, fact_key: str, other_than: int, after: datetime, *, limit: int
    ) -> list[RecordData]:
        """The `limit` active statements of a fact nearest after `after` (by valid_from),
        oldest first, leaving out record `other_than`."""
        q = (
            self._statements(cube_pk, fact_key, other_than)
            .where(RecordRow.valid_from > after)
            .order_by(RecordRow.valid_from, RecordRow.pk)
            .limit(limit)
        )
        return [RecordData.of(r) for r in self._s.scalars(q)]

    def fading(self, cube_pk: int, *, after_pk: int, limit: int) -> list[RecordData]:
        """The next `limit` records retention applies to (active, plaintext, unpinned: caches
        and adapters go by budget) after `after_pk`, in pk order."""
        q = (
            select(RecordRow)
            .where(
                RecordRow.cube_pk == cube_pk,
                RecordRow.status == "active",
                RecordRow.tier == "plaintext",
                RecordRow.pinned.is_(False),
                RecordRow.pk > after_pk,
            )
            .order_by(RecordRow.pk)
            .limit(limit)
        )
        return [RecordData.of(r) for r in self._s.scalars(q)]

    # ---- unversioned writes --------------------------------------------------------------

    def unanchored(
        self, cube_pk: int, limit: int, *, after_pk: int = 0
    ) -> list[tuple[int, str, Any, datetime]]:
        """(pk, content, source, event_time) of up to `limit` active plaintext records past
        `after_pk` with an event time and no stored time anchor (written before migration
        0011, or whose event time changed since), in pk order."""
        q = (
            select(RecordRow.pk, RecordRow.content, RecordRow.source, RecordRow.event_time)
            .where(
                RecordRow.cube_pk == cube_pk,
                RecordRow.pk > after_pk,
                RecordRow.time_anchor.is_(None),
                RecordRow.event_time.is_not(None),
                RecordRow.status == "active",
                RecordRow.tier == "plaintext",
            )
            .order_by(RecordRow.pk)
            .limit(limit)
        )
        return [(pk, content, source, when) for pk, content, source, when in self._s.execute(q)]

    def set_time_anchors(self, values: Sequence[tuple[int, bytes]]) -> None:
        """Stored time anchors of records that have none (derived data: no version, no
        change-log row); a record given one meanwhile by a write keeps that."""
        if not values:
            return
        t = RecordRow.__table__
        q = (
            update(t)
            .where(t.c.pk == bindparam("b_pk"), t.c.time_anchor.is_(None))
            .values(time_anchor=bindparam("b_anchor"))
        )
        self._s.connection().execute(q, [{"b_pk": pk, "b_anchor": a} for pk, a in values])

    def set_fact_key(self, pk: int, fact_key: str) -> None:
        """A record's fact key ("" for none): no version, no change-log row."""
        self._s.execute(update(RecordRow).where(RecordRow.pk == pk).values(fact_key=fact_key))

    def absorb(
        self, pk: int, *, source: dict[str, Any], importance: float, recall_count: int
    ) -> RecordData:
        """The survivor of a duplicate merge takes the duplicate's provenance, importance and
        recalls: no version, no change-log row (the duplicate's "merge" version has them)."""
        row = self._s.get(RecordRow, pk)
        if row is None:
            raise StoreError(f"record {pk} vanished during the write")
        row.source = source
        row.importance = importance
        row.recall_count = recall_count
        return RecordData.of(row)

    def set_embeddings(self, changes: Sequence[tuple[int, bytes, str]]) -> None:
        """(pk, stored vector, precision) of records re-encoded at another precision: no
        version; the caller appends the change-log rows the indexes catch up with."""
        for pk, embedding, precision in changes:
            self._s.execute(
                update(RecordRow)
                .where(RecordRow.pk == pk)
                .values(embedding=embedding, embedding_precision=precision)
            )

    def reinforcement_inputs(self, pks: Sequence[int], *, chunk: int = 500) -> list[Any]:
        """(pk, cube_pk, pinned, importance, strength, last_recalled_at, created_at) rows of
        these records (any status): what a reinforcement flush reads. Plain rows, no
        embeddings: a flush reads hundreds every few seconds while recalls wait on the GIL."""
        c = RecordRow.__table__.c
        cols = (c.pk, c.cube_pk, c.pinned, c.importance, c.strength, c.last_recalled_at)
        wanted = [int(p) for p in pks]
        out: list[Any] = []
        for i in range(0, len(wanted), chunk):
            q = select(*cols, c.created_at).where(c.pk.in_(wanted[i : i + chunk]))
            out.extend(self._s.connection().execute(q))
        return out

    def reinforce(self, hits: Sequence[tuple[Any, float, int, datetime]]) -> None:
        """(record, new strength, recalls, last recall time) of records recalled since the
        last flush (a record: anything with `pk` and `cube_pk`): strength, recall count and
        last_recalled_at (no version, no change-log row), and one recall event each. One
        statement for all (executemany); the count is added in SQL, so two workers'
        flushes of one record both count."""
        if not hits:
            return
        t = RecordRow.__table__
        conn = self._s.connection()
        conn.execute(
            update(t)
            .where(t.c.pk == bindparam("b_pk"))
            .values(
                strength=bindparam("b_strength"),
                recall_count=t.c.recall_count + bindparam("b_n"),
                last_recalled_at=bindparam("b_at"),
            ),
            [
                {"b_pk": rec.pk, "b_strength": strength, "b_n": n, "b_at": at}
                for rec, strength, n, at in hits
            ],
        )
        conn.execute(
            insert(RecallEventRow.__table__),
            [
                {"cube_pk": rec.cube_pk, "record_pk": rec.pk, "at": at, "n": n}
                for rec, _, n, at in hits
            ],
        )
