"""Shared fixtures: one real embedding model per test session, a fresh data dir per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memsvc import Memory, SentenceTransformerEmbedder, Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    emb = SentenceTransformerEmbedder(threads=2)
    emb.encode(["warm up"])
    return emb


@pytest.fixture
def open_memory(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[Callable[..., Memory]]:
    """Open a Memory on a data dir (default the test's tmp dir); all are closed at the end."""
    opened: list[Memory] = []

    def _open(path: Path | None = None, **settings: object) -> Memory:
        home = path or tmp_path / "data"
        mem = Memory(settings=Settings(home=home, **settings), embedder=embedder)
        opened.append(mem)
        return mem

    yield _open
    for mem in opened:
        mem.close()


@pytest.fixture
def mem(open_memory: Callable[..., Memory]) -> Memory:
    return open_memory()
