"""Browsing a cube's graph: pages of typed edges with the nodes they touch, and the
neighbourhood of one record up to a few hops (networkx over the SQL edge table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from memsvc.errors import InvalidInput
from memsvc.models import EDGE_TYPES, GraphEdge, GraphNode, GraphPage, Neighbor
from memsvc.store.data import EdgeData
from memsvc.store.tx import Tx
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


def _nodes(tx: Tx, cube_pk: int, keys: set[tuple[str, int]]) -> dict[tuple[str, int], GraphNode]:
    """The cube's nodes among `keys`; an end in another cube is no node of this graph (its
    edge is left out like one whose end was purged)."""
    out: dict[tuple[str, int], GraphNode] = {}
    recs = [pk for kind, pk in keys if kind == "record"]
    ents = [pk for kind, pk in keys if kind == "entity"]
    for pk, rid, content, kind in tx.graph.record_nodes(cube_pk, recs):
        out[("record", pk)] = GraphNode(
            id=f"record:{rid}", kind="record", label=content[:200], type=kind
        )
    for ent in tx.graph.entities(cube_pk, ents):
        out[("entity", ent.pk)] = GraphNode(
            id=f"entity:{ent.pk}", kind="entity", label=ent.name, type=ent.type
        )
    topics = [pk for kind, pk in keys if kind == "topic"]
    for pk, label, level in tx.graph.topic_nodes(cube_pk, topics):
        typ = "topic" if level == 0 else "subtopic"
        out[("topic", pk)] = GraphNode(id=f"topic:{pk}", kind="topic", label=label, type=typ)
    return out


def _edge(e: EdgeData, nodes: dict[tuple[str, int], GraphNode]) -> GraphEdge | None:
    a, b = nodes.get(_key(e.src_kind, e.src_pk)), nodes.get(_key(e.dst_kind, e.dst_pk))
    if a is None or b is None:
        return None  # an end was purged
    return GraphEdge(type=e.type, source=a.id, target=b.id, weight=e.weight)


def graph_page(
    tx: Tx, cube_pk: int, *, types: tuple[str, ...], limit: int, cursor: str | None
) -> GraphPage:
    after = decode_cursor(cursor)
    rows = tx.graph.edges_page(cube_pk, after=after, types=types, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    keys = {_key(e.src_kind, e.src_pk) for e in rows} | {_key(e.dst_kind, e.dst_pk) for e in rows}
    nodes = _nodes(tx, cube_pk, keys)
    edges = [g for e in rows if (g := _edge(e, nodes)) is not None]
    return GraphPage(
        nodes=sorted(nodes.values(), key=lambda n: n.id),
        edges=edges,
        next_cursor=encode_cursor(rows[-1].pk) if more and rows else None,
    )


def neighbors(
    tx: Tx, cube_pk: int, record_pk: int, *, types: tuple[str, ...], depth: int
) -> list[Neighbor]:
    """Nodes within `depth` hops of the record, nearest first, over edges of `types`; the
    walk goes through the cube's own nodes only."""
    g = nx.MultiDiGraph()
    start = _key("record", record_pk)
    frontier = {start}
    nodes: dict[tuple[str, int], GraphNode] = {}
    seen = {start}
    for _ in range(depth):  # grow the graph one ring at a time: only the edges needed
        ring = tx.graph.edges_touching(cube_pk, frontier, types=types)
        ends = {_key(e.src_kind, e.src_pk) for e in ring} | {
            _key(e.dst_kind, e.dst_pk) for e in ring
        }
        nodes.update(_nodes(tx, cube_pk, ends - seen))
        nxt: set[tuple[str, int]] = set()
        for e in ring:
            a, b = _key(e.src_kind, e.src_pk), _key(e.dst_kind, e.dst_pk)
            if (a == start or a in nodes) and (b == start or b in nodes):
                g.add_edge(a, b, type=e.type)
                nxt |= {a, b} - seen
        seen |= nxt
        frontier = nxt
        if not frontier:
            break
    if start not in g:
        return []
    hops = nx.single_source_shortest_path_length(g.to_undirected(as_view=True), start, depth)
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
