"""Reads of records and their structure: get, list, history, lineage, graph, neighbors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from memsvc import browse
from memsvc._convert import record_model, version_model
from memsvc.chunking import chunk_id
from memsvc.errors import InvalidInput, RecordNotFound
from memsvc.models import Filters, GraphPage, MemoryRecord, Neighbor, Page, RecordVersion
from memsvc.services.cubes import CubeService
from memsvc.services.recall import record_query
from memsvc.store.tx import Tx
from memsvc.supersession import chain_pks
from memsvc.validation import check_ident, check_k, decode_cursor, encode_cursor

__all__ = ["ReadService", "StatusArg"]

StatusArg = Literal["active", "archived", "deleted", "all"]


class ReadService:
    def __init__(self, cubes: CubeService) -> None:
        self.cubes = cubes
        self.engine = cubes.engine

    def get(self, id: str) -> MemoryRecord:
        """A record by id, or a chunked message by its message id, reassembled."""
        with self.engine.db.reading() as tx:
            try:
                return record_model(*self.cubes.located(tx, id))
            except RecordNotFound:
                message = self._message(tx, id)
                if message is None:
                    raise
                return message

    def _message(self, tx: Tx, message_id: str) -> MemoryRecord | None:
        """The message whose chunks `add` stored (memsvc/chunking.py), as one record: the first
        chunk's fields, the chunks' text joined, and `source.chunk_ids` naming them."""
        try:
            first_id = chunk_id(message_id, 0)
        except ValueError:  # not a UUID: no message has this id
            return None
        try:
            first, cube = self.cubes.located(tx, first_id)
        except RecordNotFound:
            return None
        if first.source.get("message_id") != message_id:
            return None
        parts, ids = [first.content], [first.id]
        chunks = first.source.get("chunks")
        count = chunks if isinstance(chunks, int) else 1
        for i in range(1, min(count, self.engine.settings.max_batch_records)):
            try:
                row, _ = self.cubes.located(tx, chunk_id(message_id, i))
            except RecordNotFound:  # a chunk deleted for good: the rest still reads
                continue
            parts.append(row.content)
            ids.append(row.id)
        source = {k: v for k, v in first.source.items() if k != "chunk"}
        source["chunk_ids"] = ids
        return record_model(first, cube).model_copy(
            update={"id": message_id, "content": "".join(parts), "source": source}
        )

    def lineage(self, id: str) -> list[MemoryRecord]:
        with self.engine.db.reading() as tx:
            row, cube = self.cubes.located(tx, id)
            pks = chain_pks(tx, row.cube_pk, row.pk)
            rows = tx.records.by_pks(pks)
            return [record_model(rows[pk], cube) for pk in pks if pk in rows]

    def history(self, id: str) -> list[RecordVersion]:
        with self.engine.db.reading() as tx:
            row = self.cubes.record(tx, id)
            return [version_model(row.id, v) for v in tx.versions.of(row.pk)]

    def list(
        self,
        *,
        user_id: str | None = None,
        cube: str | None = None,
        filters: Filters | dict[str, Any] | None = None,
        status: StatusArg = "active",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        check_ident(user_id, field="user_id")
        limit = check_k(limit, max_k=self.engine.settings.max_k)
        if status not in ("active", "archived", "deleted", "all"):
            raise InvalidInput(f"unknown status {status!r}", details={"field": "status"})
        rq = record_query(filters)
        rq.statuses = () if status == "all" else (status,)
        after = decode_cursor(cursor)
        cube_row = self.cubes.cube_for(cube=cube, user_id=user_id, create=False)
        if cube_row is None:
            return Page(items=[])
        with self.engine.db.reading() as tx:
            rows = tx.queries.records(cube_row.pk, rq, after_pk=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].pk) if more and rows else None
        return Page(items=[record_model(r, cube_row) for r in rows], next_cursor=nxt)

    def graph(
        self,
        cube: str,
        *,
        types: Sequence[str] | str | None = None,
        limit: int = 200,
        cursor: str | None = None,
    ) -> GraphPage:
        kinds = browse.check_types(types)
        limit = check_k(limit, max_k=self.engine.settings.max_k)
        with self.engine.db.reading() as tx:
            row = self.cubes.find(tx, cube)
            return browse.graph_page(tx, row.pk, types=kinds, limit=limit, cursor=cursor)

    def neighbors(
        self, id: str, *, types: Sequence[str] | str | None = None, depth: int = 1
    ) -> list[Neighbor]:
        kinds = browse.check_types(types)
        depth = browse.check_depth(depth)
        with self.engine.db.reading() as tx:
            row = self.cubes.record(tx, id)
            return browse.neighbors(tx, row.cube_pk, row.pk, types=kinds, depth=depth)
