"""Browsing a cube's graph: pages of typed edges with the nodes they touch, and the
neighbourhood of one record up to a few hops (networkx over the SQL edge table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from memsvc.errors import InvalidInput
from memsvc.models import EDGE_TYPES, GraphEdge, GraphNode, GraphPage, Neighbor
from memsvc.store.orm import EdgeRow, EntityRow, RecordRow, TopicRow
from memsvc.validation import decode_cursor, encode_cursor

__all__ = ["check_depth", "check_types", "graph_page", "neighbors"]

MAX_DEPTH = 3


def check_types(types: Sequence[str] | str | None) -> tuple[str, ...]:
    if types is None:
        return ()
    if isinstance(types, str):
        types = [t for t in types.split(",") if t.strip()]
    bad = sorted(set(types) - set(EDGE_TYPES))
    if bad:
        raise InvalidInput(
            f"unknown edge type {', '.join(bad)}; types are {', '.join(EDGE_TYPES)}",
            details={"field": "types"},
        )
    return tuple(types)


def check_depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise InvalidInput(f"depth must be 1-{MAX_DEPTH}", details={"field": "depth"})
    return depth


def _key(kind: str, pk: int) -> tuple[str, int]:
    return (kind, pk)


def _nodes(s: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], GraphNode]:
    out: dict[tuple[str, int], GraphNode] = {}
    recs = [pk for kind, pk in keys if kind == "record"]
    ents = [pk for kind, pk in keys if kind == "entity"]
    for i in range(0, len(recs), 500):
        q = select(RecordRow.pk, RecordRow.id, RecordRow.content, RecordRow.kind).where(
            RecordRow.pk.in_(recs[i : i + 500])
        )
        for pk, rid, content, kind in s.execute(q):
            out[("record", pk)] = GraphNode(
                id=f"record:{rid}", kind="record", label=content[:200], type=kind
            )
    for i in range(0, len(ents), 500):
        q = select(EntityRow.pk, EntityRow.name, EntityRow.type).where(
            EntityRow.pk.in_(ents[i : i + 500])
        )
        for pk, name, typ in s.execute(q):
            out[("entity", pk)] = GraphNode(id=f"entity:{pk}", kind="entity", label=name, type=typ)
    topics = [pk for kind, pk in keys if kind == "topic"]
    for i in range(0, len(topics), 500):
        q = select(TopicRow.pk, TopicRow.label, TopicRow.level).where(
            TopicRow.pk.in_(topics[i : i + 500])
        )
        for pk, label, level in s.execute(q):
            typ = "topic" if level == 0 else "subtopic"
            out[("topic", pk)] = GraphNode(id=f"topic:{pk}", kind="topic", label=label, type=typ)
    return out


def _edge(e: Any, nodes: dict[tuple[str, int], GraphNode]) -> GraphEdge | None:
    a, b = nodes.get(_key(e.src_kind, e.src_pk)), nodes.get(_key(e.dst_kind, e.dst_pk))
    if a is None or b is None:
        return None  # an end was purged
    return GraphEdge(type=e.type, source=a.id, target=b.id, weight=e.weight)


def graph_page(
    s: Session, cube_pk: int, *, types: tuple[str, ...], limit: int, cursor: str | None
) -> GraphPage:
    after = decode_cursor(cursor)
    q = select(EdgeRow).where(EdgeRow.cube_pk == cube_pk, EdgeRow.pk > after)
    if types:
        q = q.where(EdgeRow.type.in_(types))
    rows = list(s.scalars(q.order_by(EdgeRow.pk).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    keys = {_key(e.src_kind, e.src_pk) for e in rows} | {_key(e.dst_kind, e.dst_pk) for e in rows}
    nodes = _nodes(s, keys)
    edges = [g for e in rows if (g := _edge(e, nodes)) is not None]
    return GraphPage(
        nodes=sorted(nodes.values(), key=lambda n: n.id),
        edges=edges,
        next_cursor=encode_cursor(rows[-1].pk) if more and rows else None,
    )


def neighbors(
    s: Session, cube_pk: int, record_pk: int, *, types: tuple[str, ...], depth: int
) -> list[Neighbor]:
    """Nodes within `depth` hops of the record, nearest first, over edges of `types`."""
    g = nx.MultiDiGraph()
    start = _key("record", record_pk)
    frontier = {start}
    seen = {start}
    for _ in range(depth):  # grow the graph one ring at a time: only the edges needed
        conds = [(EdgeRow.src_kind == kind) & (EdgeRow.src_pk == pk) for kind, pk in frontier] + [
            (EdgeRow.dst_kind == kind) & (EdgeRow.dst_pk == pk) for kind, pk in frontier
        ]
        nxt: set[tuple[str, int]] = set()
        for i in range(0, len(conds), 400):
            q = select(EdgeRow).where(EdgeRow.cube_pk == cube_pk, or_(*conds[i : i + 400]))
            if types:
                q = q.where(EdgeRow.type.in_(types))
            for e in s.scalars(q):
                a, b = _key(e.src_kind, e.src_pk), _key(e.dst_kind, e.dst_pk)
                g.add_edge(a, b, type=e.type)
                nxt |= {a, b} - seen
        seen |= nxt
        frontier = nxt
        if not frontier:
            break
    if start not in g:
        return []
    hops = nx.single_source_shortest_path_length(g.to_undirected(as_view=True), start, depth)
    nodes = _nodes(s, set(hops) - {start})
    out: list[Neighbor] = []
    for key, h in sorted(hops.items(), key=lambda x: (x[1], x[0])):
        if key == start or key not in nodes:
            continue
        # the edge that reached it: from any node one hop nearer
        via, direction = None, "out"
        for prev in g.predecessors(key):
            if hops.get(prev) == h - 1:
                via, direction = next(iter(g[prev][key].values()))["type"], "out"
                break
        if via is None:
            for succ in g.successors(key):
                if hops.get(succ) == h - 1:
                    via, direction = next(iter(g[key][succ].values()))["type"], "in"
                    break
        out.append(Neighbor(node=nodes[key], edge=via or "", direction=direction, hops=h))
    return out
