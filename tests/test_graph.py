"""Browsing a cube's graph through the SDK and over HTTP: typed edge pages with their nodes,
and a record's neighbourhood by hops."""

from __future__ import annotations

import pytest

from memsvc import InvalidInput, Memory, MemoryClient, RecordNotFound
from tests.conftest import Served

MSGS = [
    {"name": "Alice", "content": "Alice has a younger sister called Beth."},
    {"name": "Bob", "content": "Beth has a flat in Oslo now."},
    {"name": "Alice", "content": "Oslo is lovely in June."},
]


def test_graph_pages_cover_every_edge_once(mem: Memory) -> None:
    mem.add(messages=MSGS, user_id="u", session_id="s")
    whole = mem.graph("user:u", limit=1000)
    assert whole.next_cursor is None
    assert {e.type for e in whole.edges} == {"mentions", "follows"}
    assert sum(e.type == "follows" for e in whole.edges) == 2
    ids = {n.id for n in whole.nodes}
    assert all(e.source in ids and e.target in ids for e in whole.edges)
    assert {n.label for n in whole.nodes if n.kind == "entity"} >= {"Alice", "Beth", "Oslo"}
    seen, cursor = [], None
    while True:
        page = mem.graph("user:u", limit=2, cursor=cursor)
        assert len(page.edges) <= 2
        seen += page.edges
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == whole.edges
    only = mem.graph("user:u", types=["follows"])
    assert [e.type for e in only.edges] == ["follows", "follows"]
    assert {n.kind for n in only.nodes} == {"record"}


def test_neighbors_by_hops_and_type(mem: Memory) -> None:
    first, second, third = mem.add(messages=MSGS, user_id="u", session_id="s")
    near = mem.neighbors(first.id)
    assert {n.hops for n in near} == {1}
    labels = {n.node.label for n in near}
    assert {"Alice", "Beth", second.content} <= labels and third.content not in labels
    beth = next(n for n in near if n.node.label == "Beth")
    assert beth.edge == "mentions" and beth.direction == "out"
    two = mem.neighbors(first.id, depth=2)
    assert third.content in {n.node.label for n in two if n.hops == 2}
    assert [n.hops for n in two] == sorted(n.hops for n in two)
    follows = mem.neighbors(second.id, types="follows")
    got = {(n.node.label, n.direction) for n in follows}
    assert got == {(first.content, "in"), (third.content, "out")}


def test_bad_browse_input_is_a_clear_error(mem: Memory) -> None:
    rec = mem.add("hello", user_id="u")[0]
    with pytest.raises(InvalidInput, match="unknown edge type"):
        mem.graph("user:u", types=["likes"])
    with pytest.raises(InvalidInput, match="depth"):
        mem.neighbors(rec.id, depth=9)
    with pytest.raises(RecordNotFound):
        mem.neighbors("nope")


def test_graph_and_neighbors_over_http(served: Served) -> None:
    with MemoryClient(served.url, served.keys["acme"]) as client:
        recs = client.add(messages=MSGS, user_id="graph-user", session_id="s")
        page = client.graph("user:graph-user", types="follows")
        assert [e.type for e in page.edges] == ["follows", "follows"]
        near = client.neighbors(recs[1].id, types=["follows"])
        assert {n.node.id for n in near} == {f"record:{recs[0].id}", f"record:{recs[2].id}"}
        with pytest.raises(InvalidInput, match="unknown edge type"):
            client.graph("user:graph-user", types="likes")
