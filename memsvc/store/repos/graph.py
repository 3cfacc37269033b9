"""Graph nodes and edges stored in SQL: entities, mentions, follows and other edges, and the
reads that browse them (pages of edges, the edges around a set of nodes, node labels)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from memsvc.store.data import EdgeData, EntityData
from memsvc.store.orm import (
    EdgeRow,
    EntityRow,
    RecordRow,
    TopicRow,
)

NodeKey = tuple[str, int]  # (kind, pk): kind is "record", "entity" or "topic"


def graph_edge(
    cube_pk: int,
    type: str,
    src_pk: int,
    dst_pk: int,
    at: datetime,
    *,
    src_kind: str = "record",
    dst_kind: str = "record",
    weight: float = 1.0,
) -> EdgeRow:
    return EdgeRow(
        cube_pk=cube_pk,
        type=type,
        src_kind=src_kind,
        src_pk=src_pk,
        dst_kind=dst_kind,
        dst_pk=dst_pk,
        weight=weight,
        created_at=at,
    )


def link_entities(
    s: Session, cube_pk: int, mentions: Sequence[tuple[int, Sequence[tuple[str, str, str]]]]
) -> None:
    """Entity nodes and `mentions` edges for records: `mentions` pairs a record pk with its
    (name, normalized, type) entities. Existing nodes are reused; a record's old mention
    edges are replaced (its text may have changed)."""
    if not mentions:
        return
    mentions = [(pk, [(n, norm[:512], t) for n, norm, t in ents]) for pk, ents in mentions]
    wanted = {(norm, typ): name for _, ents in mentions for name, norm, typ in ents}

    def lookup(norms: list[str]) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for i in range(0, len(norms), 500):
            q = select(EntityRow.pk, EntityRow.normalized, EntityRow.type).where(
                EntityRow.cube_pk == cube_pk, EntityRow.normalized.in_(norms[i : i + 500])
            )
            found.update({(n, t): pk for pk, n, t in s.execute(q)})
        return found

    known = lookup(sorted({n for n, _ in wanted}))
    fresh = [
        {"cube_pk": cube_pk, "name": name[:512], "normalized": norm, "type": typ}
        for (norm, typ), name in wanted.items()
        if (norm, typ) not in known
    ]
    if fresh:
        # Two writers may name the same new entity at once (on PostgreSQL they do not
        # queue on one lock): the second one's insert does nothing and reads the first's.
        upsert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        t = EntityRow.__table__
        for k in range(0, len(fresh), 1000):  # bounded statements: SQLite caps bound values
            s.execute(
                upsert(t)
                .values(fresh[k : k + 1000])
                .on_conflict_do_nothing(index_elements=[t.c.cube_pk, t.c.normalized, t.c.type])
            )
        known.update(lookup(sorted({e["normalized"] for e in fresh})))
    s.execute(
        delete(EdgeRow).where(
            EdgeRow.cube_pk == cube_pk,
            EdgeRow.type == "mentions",
            EdgeRow.src_kind == "record",
            EdgeRow.src_pk.in_([pk for pk, _ in mentions]),
        )
    )
    # One executemany, not the ORM's unit of work: a 500-turn haystack writes thousands of
    # mention edges, and ORM objects made edge linking a third of an add's time.
    edges = [
        {
            "cube_pk": cube_pk,
            "type": "mentions",
            "src_kind": "record",
            "src_pk": pk,
            "dst_kind": "entity",
            "dst_pk": known[(norm, typ)],
        }
        for pk, ents in mentions
        for _, norm, typ in ents
    ]
    if edges:
        s.execute(insert(EdgeRow), edges)


def entities_for_cube(s: Session, cube_pk: int) -> list[EntityRow]:
    return list(
        s.scalars(select(EntityRow).where(EntityRow.cube_pk == cube_pk).order_by(EntityRow.pk))
    )


def edges_for_cube(s: Session, cube_pk: int) -> list[EdgeRow]:
    return list(s.scalars(select(EdgeRow).where(EdgeRow.cube_pk == cube_pk).order_by(EdgeRow.pk)))


def edge_data(row: EdgeRow) -> EdgeData:
    return EdgeData(
        pk=row.pk,
        type=row.type,
        src_kind=row.src_kind,
        src_pk=row.src_pk,
        dst_kind=row.dst_kind,
        dst_pk=row.dst_pk,
        weight=row.weight,
        meta=dict(row.meta or {}),
        created_at=row.created_at,
    )


class Graph:
    def __init__(self, s: Session) -> None:
        self._s = s

    def link_entities(
        self, cube_pk: int, mentions: Sequence[tuple[int, Sequence[tuple[str, str, str]]]]
    ) -> None:
        link_entities(self._s, cube_pk, mentions)

    def add_edges(
        self, cube_pk: int, type: str, pairs: Iterable[tuple[int, int]], at: datetime
    ) -> None:
        """Record-to-record edges of one type."""
        self._s.add_all(graph_edge(cube_pk, type, a, b, at) for a, b in pairs)

    def add_edge(
        self,
        cube_pk: int,
        type: str,
        src_pk: int,
        dst_pk: int,
        at: datetime,
        *,
        src_kind: str = "record",
        dst_kind: str = "record",
        weight: float = 1.0,
    ) -> None:
        """One edge; edges get their pks in the order they are added."""
        self._s.add(
            graph_edge(
                cube_pk,
                type,
                src_pk,
                dst_pk,
                at,
                src_kind=src_kind,
                dst_kind=dst_kind,
                weight=weight,
            )
        )

    def add_edge_once(
        self, cube_pk: int, type: str, src_pk: int, dst_pk: int, at: datetime
    ) -> bool:
        """A record-to-record edge, unless one of this type already joins `src_pk` to
        `dst_pk`; whether it was added."""
        exists = self._s.scalar(
            select(EdgeRow.pk).where(
                EdgeRow.cube_pk == cube_pk,
                EdgeRow.type == type,
                EdgeRow.src_pk == src_pk,
                EdgeRow.dst_pk == dst_pk,
            )
        )
        if exists is not None:
            return False
        self.add_edge(cube_pk, type, src_pk, dst_pk, at)
        return True

    def edge_pairs(
        self, cube_pk: int, type: str, *, src_pks: Sequence[int] | None = None
    ) -> list[tuple[int, int]]:
        """(src_pk, dst_pk) of the cube's edges of one type (from `src_pks` only, if given),
        in the order they were added."""
        q = select(EdgeRow.src_pk, EdgeRow.dst_pk).where(
            EdgeRow.cube_pk == cube_pk, EdgeRow.type == type
        )
        if src_pks is not None:
            q = q.where(EdgeRow.src_pk.in_(src_pks))
        return [(a, b) for a, b in self._s.execute(q.order_by(EdgeRow.pk))]

    def edges_page(
        self, cube_pk: int, *, after: int, types: Sequence[str], limit: int
    ) -> list[EdgeData]:
        """Up to `limit` of the cube's edges after pk `after`, of `types` (all when empty),
        in pk order."""
        q = select(EdgeRow).where(EdgeRow.cube_pk == cube_pk, EdgeRow.pk > after)
        if types:
            q = q.where(EdgeRow.type.in_(types))
        return [edge_data(e) for e in self._s.scalars(q.order_by(EdgeRow.pk).limit(limit))]

    def edges_touching(
        self, cube_pk: int, nodes: Iterable[NodeKey], *, types: Sequence[str]
    ) -> list[EdgeData]:
        """The cube's edges of `types` (all when empty) that start or end at one of `nodes`."""
        keys = list(nodes)
        conds = [(EdgeRow.src_kind == kind) & (EdgeRow.src_pk == pk) for kind, pk in keys] + [
            (EdgeRow.dst_kind == kind) & (EdgeRow.dst_pk == pk) for kind, pk in keys
        ]
        out: list[EdgeData] = []
        for i in range(0, len(conds), 400):  # bounded statements: SQLite caps bound values
            q = select(EdgeRow).where(EdgeRow.cube_pk == cube_pk, or_(*conds[i : i + 400]))
            if types:
                q = q.where(EdgeRow.type.in_(types))
            out += [edge_data(e) for e in self._s.scalars(q)]
        return out

    # Node lookups take the cube: an edge's ends are bare pks, and an edge written before
    # imports were checked may name another tenant's topic, entity or record.

    def record_nodes(self, cube_pk: int, pks: Sequence[int]) -> list[tuple[int, str, str, str]]:
        """(pk, id, content, kind) of the cube's records among `pks`."""
        out: list[tuple[int, str, str, str]] = []
        for i in range(0, len(pks), 500):
            q = select(RecordRow.pk, RecordRow.id, RecordRow.content, RecordRow.kind).where(
                RecordRow.cube_pk == cube_pk, RecordRow.pk.in_(pks[i : i + 500])
            )
            out += [(pk, rid, content, kind) for pk, rid, content, kind in self._s.execute(q)]
        return out

    def entities(self, cube_pk: int, pks: Sequence[int]) -> list[EntityData]:
        """The cube's entities among `pks`."""
        out: list[EntityData] = []
        for i in range(0, len(pks), 500):
            q = select(EntityRow.pk, EntityRow.name, EntityRow.normalized, EntityRow.type).where(
                EntityRow.cube_pk == cube_pk, EntityRow.pk.in_(pks[i : i + 500])
            )
            out += [
                EntityData(pk=pk, name=name, normalized=norm, type=typ)
                for pk, name, norm, typ in self._s.execute(q)
            ]
        return out

    def topic_nodes(self, cube_pk: int, pks: Sequence[int]) -> list[tuple[int, str, int]]:
        """(pk, label, level) of the cube's topics among `pks` (level 0: topic, 1: subtopic)."""
        out: list[tuple[int, str, int]] = []
        for i in range(0, len(pks), 500):
            q = select(TopicRow.pk, TopicRow.label, TopicRow.level).where(
                TopicRow.cube_pk == cube_pk, TopicRow.pk.in_(pks[i : i + 500])
            )
            out += [(pk, label, level) for pk, label, level in self._s.execute(q)]
        return out
