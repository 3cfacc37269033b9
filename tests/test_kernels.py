"""Kernels against the NumPy reference: Triton under TRITON_INTERPRET=1 (no GPU here), the CPU
paths, and the encoders. Shapes are small and deliberately awkward (not multiples of the block
size, k beyond the database, empty databases, one query and several). Both backends also run
through the one `KernelBackend` interface against the reference, tolerating ties."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from memsvc.kernels import backend, cpu
from memsvc.kernels import reference as ref
from memsvc.kernels import triton_kernels as tk
from memsvc.kernels.encoders import (
    Int4Quantizer,
    Int8Quantizer,
    RotatedSignEncoder,
    pack_sign_bits,
    to_words,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # conftest: interpreter on the CPU
rng = np.random.default_rng(7)


def _np(t: object) -> np.ndarray:
    return t.cpu().numpy() if hasattr(t, "cpu") else np.asarray(t)


def _codes(n: int, dim: int, *, dupes: bool = False) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    if dupes and n > 4:
        x[3] = x[1]  # equal codes: ties must keep the lower index first
        x[n - 1] = x[1]
    return pack_sign_bits(x)


# ---- Triton (interpreted on the CPU) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "dim", "n_q", "k"),
    [(300, 70, 3, 10), (37, 384, 1, 50), (1, 64, 2, 5), (130, 96, 4, 130)],
)
def test_triton_hamming_matches_reference_exactly(n: int, dim: int, n_q: int, k: int) -> None:
    db = to_words(_codes(n, dim, dupes=True))
    q = to_words(_codes(n_q, dim))
    d, i = tk.hamming_topk(q, db, k, device=DEVICE, block_n=64)
    rd, ri = ref.hamming_topk(q, db, k)
    assert _np(d).shape == (n_q, min(k, n))
    assert np.array_equal(_np(d), rd)
    assert np.array_equal(_np(i), ri)  # same ids, same tie order (lower index first)


def test_triton_scans_handle_an_empty_database() -> None:
    d, i = tk.hamming_topk(to_words(_codes(2, 64)), np.empty((0, 2), np.int32), 5, device=DEVICE)
    assert _np(d).shape == (2, 0) and _np(i).shape == (2, 0)
    s, i = tk.int8_topk(np.ones((1, 8), np.int8), np.empty((0, 8), np.int8), 3, device=DEVICE)
    assert _np(s).shape == (1, 0)


@pytest.mark.parametrize(("n", "dim", "n_q", "k"), [(150, 70, 4, 7), (20, 384, 1, 25)])
def test_triton_int8_matches_reference(n: int, dim: int, n_q: int, k: int) -> None:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    quant = Int8Quantizer.fit(x)
    db8 = quant.encode(x)
    q8, _ = quant.query(rng.standard_normal((n_q, dim)).astype(np.float32))
    db8[5] = db8[2]  # a tie
    s, i = tk.int8_topk(q8, db8, k, device=DEVICE, block_n=64, block_d=32)
    rs, ri = ref.int8_topk(q8, db8, k)
    # integer dot products are exact; the tolerance the issue allows is not even needed
    assert np.array_equal(_np(s), rs) and np.array_equal(_np(i), ri)


def test_triton_rescore_matches_reference() -> None:
    x = rng.standard_normal((90, 70)).astype(np.float32)
    q = rng.standard_normal((3, 70)).astype(np.float32)
    cand = np.stack([rng.choice(90, 20, replace=False) for _ in range(3)])
    cand[0, -5:] = -1  # padding
    s, i = tk.rescore_topk(q, x, cand, 8, device=DEVICE, block_c=16, block_d=32)
    rs, ri = ref.rescore_topk(q, x, cand, 8)
    assert np.allclose(_np(s), rs, atol=1e-4) and np.array_equal(_np(i), ri)
    s, i = tk.rescore_topk(q[:1], x, cand[:1], 50, device=DEVICE)  # k beyond the candidates
    assert _np(i).shape == (1, 20) and (_np(i)[0, 15:] == -1).all()


@pytest.mark.parametrize(("n", "n_q"), [(10**7, 1), (16_777_217, 64), (10**8, 64), (2**32 - 1, 3)])
def test_scan_grids_stay_within_cuda_limits(n: int, n_q: int) -> None:
    """The launches that failed on an H200 (int8 at 10M, Hamming at 16.7M) and beyond."""
    for block_n, block_q in ((64, 1), (256, 16), (128, 16)):
        launches = tk.scan_grids(n, n_q, block_n, block_q)
        assert all(gx <= tk.MAX_GRID_X and gy <= tk.MAX_GRID_Y for _, gx, gy in launches)
        assert all(gx * block_n >= n for _, gx, _ in launches)
        assert sum(gy for _, _, gy in launches) * block_q >= n_q
    many = tk.scan_grids(1000, 16 * tk.MAX_GRID_Y + 5, 256, 16)  # a batch over axis y's cap
    assert [(f, gy) for f, _, gy in many] == [(0, tk.MAX_GRID_Y), (16 * tk.MAX_GRID_Y, 1)]
    with pytest.raises(ValueError, match="2\\^32"):
        tk.scan_grids(2**32, 1, 256, 1)


def _huge(rows: int, width: int, dtype: type) -> np.ndarray:
    """A database of `rows` rows of which only the last ones are ever touched: np.zeros maps
    pages lazily, so 100M rows cost virtual address space, not memory."""
    return np.zeros((rows, width), dtype=dtype)


def test_triton_scans_address_rows_past_100_million() -> None:
    """Row ids and byte offsets past 2^31 (int64 arithmetic), checked against the reference on
    the tail of a 100M-row database (the interpreter scans only rows from row_start on)."""
    start, tail = 100_000_000, 300
    db = _huge(start + tail, 2, np.int32)  # 64-bit codes: byte offsets reach 800 MB
    db[start:] = to_words(_codes(tail, 64, dupes=True))
    q = to_words(_codes(3, 64))
    d, i = tk.hamming_topk(q, db, 20, device=DEVICE, block_n=64, row_start=start)
    rd, ri = ref.hamming_topk(q, db[start:], 20)
    assert np.array_equal(_np(d), rd) and np.array_equal(_np(i), ri + start)

    x = rng.standard_normal((tail, 96)).astype(np.float32)
    quant = Int8Quantizer.fit(x)
    big8 = _huge(start + tail, 96, np.int8)  # byte offsets reach 9.6 GB: past 2^32
    big8[start:] = quant.encode(x)
    q8, _ = quant.query(rng.standard_normal((2, 96)).astype(np.float32))
    s, i = tk.int8_topk(q8, big8, 10, device=DEVICE, block_n=64, block_d=32, row_start=start)
    rs, ri = ref.int8_topk(q8, big8[start:], 10)
    assert np.array_equal(_np(s), rs) and np.array_equal(_np(i), ri + start)
    with pytest.raises(ValueError, match="row_start"):
        tk.hamming_topk(q, db[:10], 5, device=DEVICE, row_start=11)


def test_triton_hamming_batches_share_each_tile() -> None:
    """A batch larger than one query tile, k past the tile size, and ties: still exact."""
    db = to_words(_codes(700, 128, dupes=True))
    q = to_words(_codes(37, 128))
    d, i = tk.hamming_topk(q, db, 90, device=DEVICE, block_n=64, block_q=16)
    rd, ri = ref.hamming_topk(q, db, 90)
    assert np.array_equal(_np(d), rd) and np.array_equal(_np(i), ri)


def test_triton_two_stage_stays_on_the_device_and_matches_the_reference() -> None:
    x = rng.standard_normal((500, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:4] + 0.05 * rng.standard_normal((4, 64)).astype(np.float32)
    words, q_words = to_words(pack_sign_bits(x)), to_words(pack_sign_bits(q))
    dev_words = torch.from_numpy(words).to(DEVICE)
    dev_vecs = torch.from_numpy(x).to(DEVICE).to(torch.float16)  # rescoring reads fp16 as is
    s, i = tk.two_stage_topk(q_words, q, dev_words, dev_vecs, 5, oversample=4, device=DEVICE)
    assert isinstance(i, torch.Tensor) and i.device.type == DEVICE
    _, cand = ref.hamming_topk(q_words, words, 20)
    rs, ri = ref.rescore_topk(q, x.astype(np.float16).astype(np.float32), cand, 5)
    assert np.array_equal(_np(i), ri) and np.allclose(_np(s), rs, atol=1e-3)
    assert (_np(i)[:, 0] == np.arange(4)).all()  # each query finds its own row first


# ---- CPU paths --------------------------------------------------------------------------------


def test_cpu_binary_scan_gives_the_reference_distances() -> None:
    codes = _codes(500, 384, dupes=True)
    q = _codes(4, 384)
    scan = cpu.BinaryScanCPU(codes)
    d, i = scan.search(q, 20)
    rd, _ = ref.hamming_topk(to_words(q), to_words(codes), 20)
    assert np.array_equal(d, rd)  # ids may differ only among equal distances
    full = ref.hamming_distances(to_words(q), to_words(codes))
    assert all((full[r, i[r]] == d[r]).all() for r in range(4))
    assert scan.search(q, 10_000)[0].shape == (4, 500)
    assert cpu.BinaryScanCPU(np.empty((0, 48), np.uint8)).search(q, 5)[0].shape == (4, 0)


def test_cpu_int8_scan_ranks_like_exact_search() -> None:
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    q = rng.standard_normal((10, 64)).astype(np.float32)
    s, i = cpu.Int8ScanCPU(x).search(q, 10)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i, exact, strict=True)])
    assert overlap >= 0.9
    assert np.allclose(s, np.take_along_axis(q @ x.T, i, axis=1), atol=0.5)


def test_cpu_rescore_matches_reference() -> None:
    x = rng.standard_normal((60, 33)).astype(np.float32)
    q = rng.standard_normal((2, 33)).astype(np.float32)
    cand = np.array([[5, 9, 1, -1, 30], [-1, -1, -1, -1, -1]])
    s, i = cpu.rescore_topk(q, x, cand, 3)
    rs, ri = ref.rescore_topk(q, x, cand, 3)
    assert np.array_equal(i, ri) and np.allclose(s, rs, atol=1e-5)
    assert (i[1] == -1).all()


# ---- encoders and the registry ---------------------------------------------------------------


def test_sign_bit_layout_and_words() -> None:
    x = -np.ones((1, 40), np.float32)
    x[0, 9] = 1.0
    codes = pack_sign_bits(x)
    assert codes.shape == (1, 5) and codes[0, 1] == 0b10 and codes[0].sum() == 2
    words = to_words(codes)
    assert words.shape == (1, 2) and words.dtype == np.int32 and words[0, 0] == 1 << 9


def test_rotated_sign_encoder_is_a_seeded_rotation() -> None:
    x = rng.standard_normal((200, 48)).astype(np.float32) + 3.0  # a shared offset
    enc = RotatedSignEncoder.fit(x, seed=1)
    assert np.allclose(enc.rotation @ enc.rotation.T, np.eye(48), atol=1e-5)
    assert np.allclose(enc.center, x.mean(axis=0), atol=1e-5)
    assert np.array_equal(RotatedSignEncoder.fit(x, seed=1).rotation, enc.rotation)
    bits = np.unpackbits(enc.encode(x), axis=1, bitorder="little")[:, :48]
    # centering removes the shared offset: bits are balanced, unlike plain sign codes
    assert 0.4 < bits.mean() < 0.6
    assert np.unpackbits(pack_sign_bits(x), axis=1).mean() > 0.95


def test_int8_and_int4_quantizers() -> None:
    x = rng.standard_normal((300, 37)).astype(np.float32)
    q8 = Int8Quantizer.fit(x)
    err = np.abs(q8.decode(q8.encode(x)) - x)
    assert (err <= q8.scale / 2 + 1e-6).all()
    qv = rng.standard_normal((2, 37)).astype(np.float32)
    codes, scale = q8.query(qv)
    approx = scale * (codes.astype(np.int32) @ q8.encode(x).astype(np.int32).T)
    assert np.abs(approx - qv @ x.T).max() < 0.25  # dot products here are of order 5-10
    q4 = Int4Quantizer.fit(x, percentile=100)
    packed = q4.encode(x)
    assert packed.shape == (300, 19)  # odd dimension: one nibble of padding
    assert np.array_equal(q4.unpack(packed, 37), q4.codes(x))
    assert np.abs(q4.decode(packed, 37) - x).max() <= q4.scale.max() / 2 + 1e-6
    with pytest.raises(ValueError, match="empty"):
        Int8Quantizer.fit(np.empty((0, 4), np.float32))


def test_backend_registry_picks_by_device_and_obeys_the_setting(monkeypatch) -> None:
    monkeypatch.delenv("MEMSVC_KERNEL_BACKEND", raising=False)
    assert backend.default_backend() == ("triton" if DEVICE == "cuda" else "cpu")
    monkeypatch.setenv("MEMSVC_KERNEL_BACKEND", "triton")
    assert backend.default_backend() == "triton"
    codes = _codes(70, 64)
    q = _codes(2, 64)
    a = backend.get_backend(device=DEVICE).binary_scanner(codes).search(q, 5)  # Triton
    b = backend.get_backend("cpu").binary_scanner(codes).search(q, 5)
    assert np.array_equal(a[0], b[0])
    monkeypatch.setenv("MEMSVC_KERNEL_BACKEND", "tpu")
    with pytest.raises(ValueError, match="unknown kernel backend"):
        backend.default_backend()


def test_the_registry_falls_back_and_hints_without_triton(monkeypatch) -> None:
    monkeypatch.setattr(backend, "_has_triton", lambda: False)
    monkeypatch.setattr(backend, "_cuda", lambda: True)  # a GPU without the gpu extra
    monkeypatch.delenv("MEMSVC_KERNEL_BACKEND", raising=False)
    assert backend.get_backend().name == "cpu"
    with pytest.raises(ImportError, match=r"memsvc\[gpu\]"):
        backend.get_backend("triton")
    monkeypatch.setenv("MEMSVC_KERNEL_BACKEND", "triton")
    with pytest.raises(ImportError, match=r"memsvc\[gpu\]"):
        backend.get_backend()
    monkeypatch.setattr(backend, "_cuda", lambda: False)
    monkeypatch.delenv("MEMSVC_KERNEL_BACKEND")
    assert backend.get_backend() is backend.get_backend("cpu")  # one object per backend


def test_choosing_the_cpu_backend_never_imports_triton() -> None:
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from memsvc.kernels.backend import get_backend

        b = get_backend("cpu")
        u8, f32 = np.uint8, np.float32
        s, i = b.two_stage_topk(
            np.zeros((1, 4), u8), np.ones((1, 32), f32), np.zeros((3, 4), u8),
            np.ones((3, 32), f32), 2, candidates=2,
        )
        assert s.shape == (1, 2), s
        assert "triton" not in sys.modules and "torch" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- one interface, both backends, against the reference -------------------------------------

BACKEND_NAMES = ["cpu", "triton"]


@pytest.fixture(params=BACKEND_NAMES)
def kb(request: pytest.FixtureRequest) -> backend.KernelBackend:
    return backend.get_backend(request.param, device=DEVICE)


def assert_knn(d: np.ndarray, i: np.ndarray, ref_d: np.ndarray, full: np.ndarray) -> None:
    """(scores, ids) is a correct top-k whatever order ties took: the reference's scores, each
    id really has its score (`full` [Q, N] holds them all), no id twice."""
    assert np.array_equal(d, ref_d)
    for r in range(len(full)):
        assert np.array_equal(full[r, i[r]], d[r])
        assert len(set(i[r].tolist())) == len(i[r])


def test_both_backends_have_the_whole_interface(kb: backend.KernelBackend) -> None:
    assert isinstance(kb, backend.KernelBackend) and kb.name in backend.BACKENDS
    methods = {m for m in dir(backend.KernelBackend) if not m.startswith("_")}
    assert methods <= set(dir(kb))
    table = kb.resident_table()
    assert (table is None) == (kb.name == "cpu")


@pytest.mark.parametrize(
    ("n", "dim", "n_q", "k"), [(300, 70, 3, 10), (37, 384, 1, 50), (0, 64, 2, 5)]
)
def test_backend_hamming_matches_the_reference(
    kb: backend.KernelBackend, n: int, dim: int, n_q: int, k: int
) -> None:
    db = _codes(n, dim, dupes=True) if n else np.empty((0, (dim + 7) // 8), np.uint8)
    q = _codes(n_q, dim)
    full = ref.hamming_distances(to_words(q), to_words(db))
    rd, _ = ref.hamming_topk(to_words(q), to_words(db), k)
    for d, i in (kb.hamming_topk(q, db, k), kb.binary_scanner(db).search(q, k)):
        assert d.shape == i.shape == (n_q, min(k, n))
        assert_knn(d, i, rd, full)
    assert kb.binary_scanner(db).count == n


@pytest.mark.parametrize(("n", "dim", "n_q", "k"), [(150, 70, 4, 7), (20, 384, 1, 25)])
def test_backend_int8_matches_the_reference(
    kb: backend.KernelBackend, n: int, dim: int, n_q: int, k: int
) -> None:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    quant = Int8Quantizer.fit(x)
    db8 = quant.encode(x)
    db8[5] = db8[2]  # a tie
    q8, _ = quant.query(rng.standard_normal((n_q, dim)).astype(np.float32))
    full = q8.astype(np.int32) @ db8.astype(np.int32).T
    rs, _ = ref.int8_topk(q8, db8, k)
    for s, i in (kb.int8_topk(q8, db8, k), kb.int8_scanner(db8).search(q8, k)):
        assert s.shape == (n_q, min(k, n))
        assert_knn(s, i, rs, full)


def test_backend_rescore_matches_the_reference(kb: backend.KernelBackend) -> None:
    x = rng.standard_normal((90, 70)).astype(np.float32)
    q = rng.standard_normal((3, 70)).astype(np.float32)
    cand = np.stack([rng.choice(90, 20, replace=False) for _ in range(3)])
    cand[0, -5:] = -1
    s, i = kb.rescore_topk(q, x, cand, 8)
    rs, ri = ref.rescore_topk(q, x, cand, 8)
    assert np.array_equal(i, ri) and np.allclose(s, rs, atol=1e-4)


@pytest.mark.parametrize("codes", ["binary", "int8"])
@pytest.mark.parametrize("candidates", [12, 40, 500])
def test_backend_two_stage_is_a_valid_scan_then_exact_rescoring(
    kb: backend.KernelBackend, codes: str, candidates: int
) -> None:
    """Tie-tolerant: the answer must be the exact top k of SOME valid scan result, i.e. of
    every row strictly inside the scan's cut plus some of the rows tied at it."""
    x = rng.standard_normal((300, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[7] = x[3]  # equal codes and equal scores
    q = x[:3] + 0.2 * rng.standard_normal((3, 64)).astype(np.float32)
    if codes == "binary":
        db, qc = pack_sign_bits(x), pack_sign_bits(q)
        dist = ref.hamming_distances(to_words(qc), to_words(db)).astype(np.int64)
    else:
        quant = Int8Quantizer.fit(x)
        db, qc = quant.encode(x), quant.query(q)[0]
        dist = -(qc.astype(np.int64) @ db.astype(np.int64).T)  # smaller is nearer
    k = 10
    s, i = kb.two_stage_topk(qc, q, db, x, k, candidates=candidates)
    exact = q @ x.T
    assert s.shape == i.shape == (3, k)
    c = min(candidates, len(x))
    for r in range(3):
        cut = np.sort(dist[r])[c - 1]  # the scan's c-th nearest code distance
        assert (dist[r, i[r]] <= cut).all()  # every answer could have been scanned
        assert np.allclose(s[r], exact[r, i[r]], atol=1e-5)  # scores are exact
        assert (np.diff(s[r]) <= 1e-6).all()  # best first
        surely = np.flatnonzero(dist[r] < cut)  # candidates in every valid scan
        missed = np.setdiff1d(surely, i[r])
        assert (exact[r, missed] <= s[r, -1] + 1e-5).all()  # none of them beats the k-th


def test_backend_two_stage_on_an_empty_table(kb: backend.KernelBackend) -> None:
    s, i = kb.two_stage_topk(
        np.zeros((2, 8), np.uint8),
        np.zeros((2, 64), np.float32),
        np.empty((0, 8), np.uint8),
        np.empty((0, 64), np.float32),
        5,
        candidates=5,
    )
    assert s.shape == i.shape == (2, 0)
