"""The index file format and the FAISS wrapper, on small random data."""

from __future__ import annotations

import json
import struct
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


@pytest.mark.parametrize("spec", ["Flat", "SQ8", "SQ8,Rescore4", "RBin,Rescore20"])
def test_the_spec_is_saved_in_the_header_and_rebuilt_on_read(tmp_path: Path, spec: str) -> None:
    x = _unit(120, 16)
    idx = CubeIndex(16, "m", seq=3, spec=spec)
    idx.upsert(np.arange(120), x)
    path = tmp_path / "c.faiss"
    write_index_file(path, idx)
    raw = path.read_bytes()
    (hlen,) = struct.unpack("<I", raw[8:12])
    assert json.loads(raw[12 : 12 + hlen])["spec"] == spec
    back = read_index_file(path)
    assert back.spec == idx.spec and back.spec.describe() == spec and back.count == 120
    assert (back._table is None) == (spec == "Flat")  # built in its spec, not converted later
    q = _unit(1, 16, 9)[0]
    assert list(back.search(q, 5)[0]) == list(idx.search(q, 5)[0])


def test_files_without_a_spec_and_with_an_unknown_one(tmp_path: Path) -> None:
    idx = CubeIndex(8, "m")
    idx.upsert(np.arange(10), _unit(10, 8))
    raw = idx.to_bytes()
    (hlen,) = struct.unpack("<I", raw[8:12])
    header = json.loads(raw[12 : 12 + hlen])

    def rewrapped(h: dict) -> bytes:
        data = json.dumps(h).encode()
        return raw[:8] + struct.pack("<I", len(data)) + data + raw[12 + hlen :]

    old = {k: v for k, v in header.items() if k != "spec"}  # written before specs were saved
    legacy = CubeIndex.from_bytes(rewrapped(old))
    assert legacy.spec.describe() == "Flat" and legacy.count == 10
    with pytest.raises(IndexFileError, match="unknown spec"):
        CubeIndex.from_bytes(rewrapped({**header, "spec": "HNSW32"}))
    with pytest.raises(IndexFileError, match="disagrees"):  # a FAISS payload is Flat
        CubeIndex.from_bytes(rewrapped({**header, "spec": "RBin,Rescore20"}))


def test_set_spec_rebuilds_only_on_a_change() -> None:
    x = _unit(64, 8)
    idx = CubeIndex(8, "m", spec="RBin,Rescore4")
    idx.upsert(np.arange(64), x)
    table = idx._table
    idx.set_spec("RBin,Rescore4")
    idx.set_mode("binary+rescore", oversample=4)  # the same spec by its legacy name
    assert idx._table is table
    idx.set_spec("SQ8,Rescore4")
    assert idx._table is not table and idx.mode == "int8" and idx.count == 64
    idx.set_spec("Flat")
    assert idx._table is None and idx.search(x[5], 1)[0][0] == 5
