"""The systems an eval compares, behind one small interface: load a corpus, rank it for a query.

`memsvc` goes through the public SDK like any user: a fresh cube per corpus, each session
added as chat messages with the session date as event time, `recall` for queries; `Memory` on
a temporary data directory, or `MemoryClient` against `--server`. `bm25` (bm25s over the same
documents) and `dense` (exact cosine with the same embedder, fp32) are the plain baselines.
`memsvc+forgetting` lives through the corpus: a ManualClock is set to each session's date
before it is added, maintenance (supersession, organization, demotion, archiving) runs after
each session, and the questions are asked the day after the last one, so memories have aged
as they would have in use.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from memsvc import ManualClock, Memory, MemoryClient
from memsvc.embedder import Embedder

__all__ = [
    "SYSTEMS",
    "BM25System",
    "DenseSystem",
    "Doc",
    "MemsvcSystem",
    "RetrievalSystem",
    "make_system",
]

SYSTEMS = ("memsvc", "memsvc+forgetting", "bm25", "dense")


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    time: datetime | None = None
    session: str | None = None
    speaker: str | None = None
    body: str | None = None  # the speaker's own words, when `text` prefixes the speaker
    role: str = "user"  # an assistant turn is filed under the user turn it answers (`id`)


class RetrievalSystem(Protocol):
    name: str
    add_latencies: list[float]  # seconds per ingest call

    def load(self, docs: Sequence[Doc]) -> None:
        """Replace the corpus with `docs`."""

    def search(self, query: str, k: int, *, at: datetime | None = None) -> list[tuple[str, float]]:
        """(doc id, score) pairs, best first, at most k; `at` is when the question is asked
        (a memory system resolves "last week" from it; the baselines ignore it)."""

    def close(self) -> None: ...


class MemsvcSystem:
    """memsvc through its SDK: `Memory` in-process, or `MemoryClient` with `server`."""

    name = "memsvc"

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        server: str | None = None,
        api_key: str | None = None,
        recipe: str | None = None,
        forgetting: bool = False,
        share: MemsvcSystem | None = None,
    ) -> None:
        """`share`: another memsvc system (no forgetting) whose store and cubes this one
        reads with its own recipe, so several recipes are compared on one ingest."""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.mem: Memory | MemoryClient
        self.clock: ManualClock | None = None
        self.owner = share
        self._loaded: Sequence[Doc] | None = None
        if forgetting and server:
            raise ValueError("memsvc+forgetting runs in-process (it drives the clock)")
        if share is not None:
            if forgetting or share.clock is not None:
                raise ValueError("memsvc+forgetting ages its own store; it shares none")
            self.mem = share.mem
        elif server:
            key = api_key or os.environ.get("MEMSVC_API_KEY")
            self.mem = MemoryClient(server, key, timeout=600)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="memsvc-eval-")
            if forgetting:  # lived time: each session is added, then maintained, at its date
                self.clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
            self.mem = Memory(self._tmp.name, embedder=embedder, clock=self.clock)
        self.cube: str | None = None
        self.add_latencies: list[float] = []
        self.recipe = recipe
        base = "memsvc+forgetting" if forgetting else "memsvc"
        self.name = f"{base}:{recipe}" if recipe is not None else base

    def load(self, docs: Sequence[Doc]) -> None:
        if self.owner is not None:  # the owner ingests (once per corpus); this one reads
            if self.owner._loaded is not docs:
                self.owner.load(docs)
            self.cube = self.owner.cube
            return
        self._drop()
        self._loaded = docs
        cube = f"eval-{uuid.uuid4().hex[:12]}"
        self.mem.create_cube(cube)
        self.cube = cube  # only a cube that exists is dropped afterwards
        sessions: dict[str | None, list[Doc]] = {}
        for d in docs:
            sessions.setdefault(d.session, []).append(d)

        def start(group: list[Doc]) -> datetime:
            return min((d.time for d in group if d.time), default=datetime(1970, 1, 1, tzinfo=UTC))

        for session, group in sorted(sessions.items(), key=lambda kv: start(kv[1])):
            if self.clock is not None:
                self.clock.set(max(self.clock.now(), start(group)))
            for i in range(0, len(group), 1000):
                part = group[i : i + 1000]
                messages = [
                    {
                        "role": d.role,
                        "name": d.speaker,
                        "content": d.body or d.text,
                        "timestamp": d.time,
                        "metadata": {"doc_id": d.id},
                    }
                    for d in part
                ]
                t = time.perf_counter()
                self.mem.add(messages=messages, user_id="eval", session_id=session, cube=self.cube)
                self.add_latencies.append(time.perf_counter() - t)
            if self.clock is not None:
                self.mem.maintain(self.cube)
        if self.clock is not None:  # the questions come the day after the last session
            self.clock.advance(days=1)
            self.mem.maintain(self.cube)

    def search(self, query: str, k: int, *, at: datetime | None = None) -> list[tuple[str, float]]:
        assert self.cube is not None, "load a corpus first"
        hits = self.mem.recall(
            query, user_id="eval", cube=self.cube, k=k, recipe=self.recipe, at=at
        )
        # chunks of one long document are hits of that document: its best chunk ranks it
        ranked: dict[str, float] = {}
        for h in hits:
            ranked.setdefault(str(h.record.metadata["doc_id"]), h.score)
        return list(ranked.items())

    def _drop(self) -> None:
        if self.owner is not None:  # the cube is the owner's
            self.cube = None
            return
        if self.cube is not None:
            self.mem.delete_cube(self.cube)
            self.cube = None

    def close(self) -> None:
        self._drop()
        if self.owner is not None:
            return
        self.mem.close()
        if self._tmp is not None:
            self._tmp.cleanup()


class BM25System:
    """Plain BM25 (bm25s, English stopwords, no stemming) over the documents."""

    name = "bm25"

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.add_latencies: list[float] = []
        self._index = None

    def load(self, docs: Sequence[Doc]) -> None:
        import bm25s

        t = time.perf_counter()
        self.ids = [d.id for d in docs]
        tokens = bm25s.tokenize([d.text for d in docs], stopwords="en", show_progress=False)
        self._index = bm25s.BM25()
        self._index.index(tokens, show_progress=False)
        self.add_latencies.append(time.perf_counter() - t)

    def search(self, query: str, k: int, *, at: datetime | None = None) -> list[tuple[str, float]]:
        import bm25s

        assert self._index is not None, "load a corpus first"
        k = min(k, len(self.ids))
        q = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)
        if not q or not q[0]:  # nothing but stopwords: no evidence for any document
            return []
        found, scores = self._index.retrieve(q, k=k, show_progress=False)
        return [(self.ids[i], float(s)) for i, s in zip(found[0], scores[0], strict=True)]

    def close(self) -> None:
        self._index = None


class DenseSystem:
    """Exact cosine over fp32 embeddings from the same embedder memsvc uses."""

    name = "dense"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.ids: list[str] = []
        self.vecs = np.empty((0, 0), dtype=np.float32)
        self.add_latencies: list[float] = []

    def load(self, docs: Sequence[Doc]) -> None:
        t = time.perf_counter()
        self.ids = [d.id for d in docs]
        self.vecs = self.embedder.encode([d.text for d in docs])
        self.add_latencies.append(time.perf_counter() - t)

    def search(self, query: str, k: int, *, at: datetime | None = None) -> list[tuple[str, float]]:
        if not self.ids:
            return []
        q = self.embedder.encode([query])[0]
        scores = self.vecs @ q
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top]

    def close(self) -> None:
        self.vecs = np.empty((0, 0), dtype=np.float32)


def check_system(name: str) -> None:
    """`name` is a system, or "memsvc:<recipe>" (a preset or compact recipe string)."""
    base, _, recipe = name.partition(":")
    if base not in SYSTEMS or (recipe and not base.startswith("memsvc")):
        raise ValueError(
            f"unknown system {name!r}; choose from {', '.join(SYSTEMS)} "
            "or memsvc:<recipe> (e.g. memsvc:fast, memsvc:dense=1+keyword=1)"
        )
    if recipe:
        from memsvc.retrieval.recipe import RecipeError, parse_recipe

        try:
            parse_recipe(recipe)
        except RecipeError as exc:
            raise ValueError(f"system {name!r}: {exc}") from exc


def make_system(
    name: str,
    embedder: Embedder,
    *,
    server: str | None = None,
    api_key: str | None = None,
    share: MemsvcSystem | None = None,
) -> RetrievalSystem:
    """`share`: for a memsvc system without forgetting, read that system's store (one
    ingest for several recipes); ignored for any other system."""
    check_system(name)
    base, _, recipe = name.partition(":")
    if base.startswith("memsvc"):
        forgetting = base == "memsvc+forgetting"
        return MemsvcSystem(
            embedder,
            server=server,
            api_key=api_key,
            recipe=recipe or None,
            forgetting=forgetting,
            share=None if forgetting else share,
        )
    if name == "bm25":
        return BM25System()
    if name == "dense":
        return DenseSystem(embedder)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
