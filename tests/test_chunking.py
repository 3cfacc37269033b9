"""A message over the text limit is stored as linked chunk records of one message; what one add
may store is bounded by what is stored, not only by what is sent."""

from __future__ import annotations

import os
import random
from pathlib import Path

import httpx
import pytest

from memsvc import InvalidInput, Memory, PayloadTooLarge
from memsvc.chunking import chunk_id, split_text

from .conftest import Served


def _document(n_paragraphs: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "épsilon", "zeta", "ηta", "theta", "iota"]
    paragraphs = []
    for _ in range(n_paragraphs):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 18))).capitalize() + "."
            for _ in range(rng.randint(2, 8))
        ]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("max_bytes", [64, 300, 4096])
def test_pieces_fit_and_join_back_exactly(max_bytes: int) -> None:
    for text in (_document(60), "x" * 5000, "é" * 3001, "a b\n" * 999, "€" * 10 + " " + "y" * 700):
        pieces = split_text(text, max_bytes)
        assert "".join(pieces) == text
        assert all(len(p.encode("utf-8")) <= max_bytes for p in pieces)
        assert all(p.strip() for p in pieces)


def test_cuts_prefer_paragraphs_then_sentences() -> None:
    text = _document(40)
    pieces = split_text(text, 2000)
    assert len(pieces) > 1
    # every cut but the last lands after a paragraph break or a sentence end
    assert all(p.endswith("\n\n") or p.rstrip().endswith(".") for p in pieces[:-1])


def test_short_text_is_one_piece_and_tiny_limits_are_refused() -> None:
    assert split_text("short", 100) == ["short"]
    with pytest.raises(ValueError):
        split_text("anything", 3)


def test_long_message_becomes_linked_chunks(mem: Memory) -> None:
    """The LongMemEval case: a pasted document of 42 KB in a chat turn (the limit is 32 KiB)."""
    doc = _document(300)
    doc += "\n\nThe final clause names the Zanzibar warehouse lease."
    assert len(doc.encode()) > 40_000
    recs = mem.add(
        messages=[
            {"role": "user", "content": doc},
            {"role": "assistant", "content": "I read the whole contract."},
        ],
        user_id="u",
        session_id="s1",
    )
    chunks = [r for r in recs if "message_id" in r.source]
    n = len(chunks)
    assert n >= 2 and len(recs) == n + 1
    message_id = chunks[0].source["message_id"]
    for i, r in enumerate(chunks):
        assert r.source["message_index"] == 0 and r.source["role"] == "user"
        assert (r.source["chunk"], r.source["chunks"]) == (i, n)
        assert r.id == chunk_id(message_id, i)
        assert len(r.content.encode()) <= 32 * 1024
    assert "message_id" not in recs[-1].source  # a short message stays one record

    whole = mem.get(message_id)
    assert whole.content == doc and whole.id == message_id
    assert whole.source["chunk_ids"] == [r.id for r in chunks]
    assert "chunk" not in whole.source

    # the text only the last chunk holds is found, and the hit says where it is
    hits = mem.recall("Zanzibar warehouse lease", user_id="u", k=3)
    top = hits[0].record
    assert top.id == chunks[-1].id
    assert (top.source["message_id"], top.source["chunk"]) == (message_id, n - 1)


def test_long_text_is_chunked_too_and_update_keeps_the_record_limit(open_memory) -> None:
    mem = open_memory(max_text_bytes=200)
    recs = mem.add("word " * 100, user_id="u")
    assert len(recs) == 3 and {r.source["chunks"] for r in recs} == {3}
    assert mem.get(recs[0].source["message_id"]).content == "word " * 100
    with pytest.raises(InvalidInput, match="limit is 200"):
        mem.update(recs[0].id, text="x" * 201)


def test_an_add_is_bounded_by_what_it_stores(open_memory) -> None:
    """Metadata given for a batch is copied into every record: it counts once per record."""
    mem = open_memory(max_add_bytes=50_000)
    meta = {"blob": "m" * 2_000}
    mem.add([f"note {i}" for i in range(10)], user_id="u", metadata=meta)  # ~20 KB stored
    before = mem.list(user_id="u").items
    with pytest.raises(PayloadTooLarge, match="more than 50000 bytes"):
        mem.add([f"note {i}" for i in range(40)], user_id="u", metadata=meta)  # ~80 KB
    with pytest.raises(InvalidInput, match="limit is 50000"):
        mem.add("y " * 30_000, user_id="u")  # one long text, however it would be chunked
    assert mem.list(user_id="u").items == before


def _db_bytes(home: Path) -> int:
    return sum(f.stat().st_size for f in home.glob("memsvc.db*"))


def test_metadata_amplification_is_refused_over_http(served: Served) -> None:
    """The review's reproduction: a 0.95 MB request that would store ~180 MB is a 413, fast,
    and the database does not grow."""
    body = {
        "text": [f"t{i}" for i in range(200)],
        "user_id": "amplifier",
        "metadata": {"pad": "p" * 900_000},
    }
    before = _db_bytes(served.home)
    with httpx.Client(
        base_url=served.url,
        headers={"Authorization": f"Bearer {served.keys['acme']}"},
        timeout=60,
    ) as http:
        r = http.post("/v1/memories", json=body)
        assert r.status_code == 413, r.text
        assert "stored with every record" in r.json()["error"]["message"]
        listed = http.get("/v1/memories", params={"user_id": "amplifier"})
        assert listed.status_code in (200, 404) and not listed.json().get("items")
    assert _db_bytes(served.home) - before < 1_000_000
    assert os.path.exists(served.home)
