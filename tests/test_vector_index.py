"""The index file format and the FAISS wrapper, on small random data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsvc.store.vector_index import CubeIndex, IndexFileError, read_index_file, write_index_file


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_matches_exact_numpy() -> None:
    x = _unit(200, 16)
    idx = CubeIndex(16, "m")
    idx.upsert(np.arange(100, 300), x)
    q = _unit(1, 16, seed=1)[0]
    pks, scores = idx.search(q, 5)
    ref = np.argsort(-(x @ q))[:5] + 100
    assert list(pks) == list(ref)
    assert np.allclose(scores, np.sort(x @ q)[::-1][:5], atol=1e-5)


def test_selector_upsert_remove_and_k_beyond_size() -> None:
    x = _unit(50, 8)
    idx = CubeIndex(8, "m")
    idx.upsert(np.arange(50), x)
    pks, _ = idx.search(x[3], 10, allowed=np.array([3, 7, 9]))
    assert sorted(pks) == [3, 7, 9]
    idx.upsert(np.array([3]), -x[3:4])  # replaced, not duplicated
    assert idx.count == 50 and idx.search(x[3], 1)[0][0] != 3
    idx.remove(np.array([0, 1, 2]))
    assert idx.count == 47 and len(idx.search(x[0], 500)[0]) == 47
    assert len(CubeIndex(8, "m").search(x[0], 5)[0]) == 0


def test_file_round_trip_and_corruption(tmp_path: Path) -> None:
    idx = CubeIndex(8, "model-a", seq=42)
    idx.upsert(np.arange(10), _unit(10, 8))
    path = tmp_path / "c.faiss"
    write_index_file(path, idx)
    back = read_index_file(path)
    assert (back.dim, back.model, back.seq, back.count) == (8, "model-a", 42, 10)
    assert list(back.search(_unit(1, 8, 3)[0], 3)[0]) == list(idx.search(_unit(1, 8, 3)[0], 3)[0])
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFileError, match="corrupt"):
        read_index_file(path)
    with pytest.raises(IndexFileError, match="no index file"):
        read_index_file(tmp_path / "missing.faiss")
    assert not list(tmp_path.glob(".*.tmp"))
