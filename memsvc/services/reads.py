"""Reads of records and their structure: get, list, history, lineage, graph, neighbors.

A tenant reading a cube shared with it sees only its active plaintext records
(`shown_to_readers`): in lists, in lineage, as graph nodes, and through no edge that only a
hidden record holds; and of a record's history only its current version (earlier versions
hold what the owner changed away).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

from memsvc import browse
from memsvc._convert import record_model, version_model
from memsvc.chunking import chunk_id
from memsvc.errors import InvalidInput, RecordNotFound
from memsvc.models import (
    Filters,
    GraphPage,
    MemoryRecord,
    Neighbor,
    Page,
    RecordVersion,
    Status,
    Tier,
)
from memsvc.services.cubes import CubeService
from memsvc.services.recall import record_query
from memsvc.store.data import EdgeData
from memsvc.store.tx import Tx
from memsvc.supersession import chain_pks
from memsvc.validation import check_ident, check_k, decode_cursor, encode_cursor

__all__ = ["ReadService", "StatusArg"]

StatusArg = Literal["active", "archived", "deleted", "all"]
STATUSES: tuple[str, ...] = get_args(Status)
TIERS: tuple[str, ...] = get_args(Tier)


class _ReaderGraph:
    """`tx.graph` as a reader of a shared cube sees it: edges with a record end it may not
    see are left out, and with them whatever hangs only on such a record (an entity only a
    deleted record named). Browsing reads edges through here, so no node it reaches is one
    a reader may not see."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._graph = tx.graph
        self._shown: dict[int, bool] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)

    def _kept(self, edges: Iterable[EdgeData]) -> list[EdgeData]:
        edges = list(edges)
        ends = {
            pk
            for e in edges
            for kind, pk in ((e.src_kind, e.src_pk), (e.dst_kind, e.dst_pk))
            if kind == "record" and pk not in self._shown
        }
        if ends:
            shown = self._tx.records.active_plaintext(sorted(ends))
            self._shown.update({pk: pk in shown for pk in ends})
        return [
            e
            for e in edges
            if (e.src_kind != "record" or self._shown[e.src_pk])
            and (e.dst_kind != "record" or self._shown[e.dst_pk])
        ]

    def edges_page(
        self, cube_pk: int, *, after: int, types: Sequence[str], limit: int
    ) -> list[EdgeData]:
        out: list[EdgeData] = []
        while len(out) < limit:  # a full page of what the reader sees, however much is hidden
            rows = self._graph.edges_page(cube_pk, after=after, types=types, limit=limit)
            out += self._kept(rows)
            if len(rows) < limit:
                break
            after = rows[-1].pk
        return out[:limit]

    def edges_touching(
        self, cube_pk: int, nodes: Iterable[tuple[str, int]], *, types: Sequence[str]
    ) -> list[EdgeData]:
        return self._kept(self._graph.edges_touching(cube_pk, nodes, types=types))


class _ReaderTx:
    """A transaction whose graph is the reader's (`_ReaderGraph`); the rest as it is."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self.graph = _ReaderGraph(tx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class ReadService:
    def __init__(self, cubes: CubeService) -> None:
        self.cubes = cubes
        self.engine = cubes.engine

    def get(self, id: str) -> MemoryRecord:
        """A record by id, or a chunked message by its message id, reassembled."""
        with self.engine.db.reading() as tx:
            try:
                row, cube = self.cubes.located(tx, id)
                return record_model(row, cube, reader=not self.cubes.owns(cube))
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
        return record_model(first, cube, reader=not self.cubes.owns(cube)).model_copy(
            update={"id": message_id, "content": "".join(parts), "source": source}
        )

    def lineage(self, id: str) -> list[MemoryRecord]:
        with self.engine.db.reading() as tx:
            row, cube = self.cubes.located(tx, id)
            pks = chain_pks(tx, row.cube_pk, row.pk)
            reader = not self.cubes.owns(cube)
            if reader:
                shown = tx.records.active_plaintext(pks)
                pks = [pk for pk in pks if pk in shown]
            rows = tx.records.by_pks(pks)
            return [record_model(rows[pk], cube, reader=reader) for pk in pks if pk in rows]

    def history(self, id: str) -> list[RecordVersion]:
        with self.engine.db.reading() as tx:
            row, cube = self.cubes.located(tx, id)
            versions = tx.versions.of(row.pk)
            if not self.cubes.owns(cube):
                versions = versions[-1:]
            return [version_model(row.id, v) for v in versions]

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
        reader = not self.cubes.owns(cube_row)
        if reader:  # a reader: active plaintext records only
            rq.statuses = tuple(s for s in rq.statuses or STATUSES if s == "active")
            rq.tiers = tuple(t for t in rq.tiers or TIERS if t == "plaintext")
            if not rq.statuses or not rq.tiers:
                return Page(items=[])
        with self.engine.db.reading() as tx:
            rows = tx.queries.records(cube_row.pk, rq, after_pk=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].pk) if more and rows else None
        items = [record_model(r, cube_row, reader=reader) for r in rows]
        return Page(items=items, next_cursor=nxt)

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
            row, access = self.cubes.resolve(tx, cube)
            view: Any = tx if access == "owner" else _ReaderTx(tx)
            return browse.graph_page(view, row.pk, types=kinds, limit=limit, cursor=cursor)

    def neighbors(
        self, id: str, *, types: Sequence[str] | str | None = None, depth: int = 1
    ) -> list[Neighbor]:
        kinds = browse.check_types(types)
        depth = browse.check_depth(depth)
        with self.engine.db.reading() as tx:
            row, cube = self.cubes.located(tx, id)
            view: Any = tx if self.cubes.owns(cube) else _ReaderTx(tx)
            return browse.neighbors(view, row.cube_pk, row.pk, types=kinds, depth=depth)
