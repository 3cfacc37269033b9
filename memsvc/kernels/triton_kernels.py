"""Triton kernels: Hamming top-k over packed codes, int8 dot-product top-k, exact rescoring.

Scans are built for memory bandwidth. A program owns one database tile (BLOCK_N rows) and one
tile of queries (BLOCK_Q): the tile is loaded once and scored against every query of the tile,
so a batch of 64 reads the database once per 64/BLOCK_Q query tiles, not 64 times. Each
(query, tile) keeps its best K as packed int64 keys `(score_key << 32) | row` (Triton has no
argsort, so the row rides in the low bits: up to 2^32 rows), and the device merges the tiles'
lists with one `torch.topk`; nothing crosses to the host until the caller asks.

Selection without a full sort:
- Hamming distances are small integers (0..bits), so a tile's K nearest are found by a
  histogram of its distances: its cumulative sum gives the threshold distance, rows under it are
  kept and the threshold's ties are taken lowest row first (a prefix sum gives each kept row its
  slot). No sort at all.
- int8 dot products run on tensor cores (`tl.dot` of int8 tiles into int32) for BLOCK_Q >= 16
  queries at once (fewer are zero-padded; the scan is bandwidth-bound) and are selected with
  `tl.topk`, a partial bitonic sort that stops at K.

Grids put database tiles on axis 0 (2^31 - 1 programs) and query tiles on axis 1, so no size
of database hits CUDA's 65,535 limit of the other axes; row offsets are int64.

Every constant a kernel reads is a `tl.constexpr` (a plain module global compiles under
`TRITON_INTERPRET=1` but not for a GPU). tests/test_kernel_compile.py compiles every kernel for
sm_80 and sm_90 without a GPU and reports registers and spills.

Popcount is the SWAR bit trick: Triton has no `tl.popc`, and the trick compiles to the
hardware popcount on sm_80/sm_90 while still running under `TRITON_INTERPRET=1` (which is a
correctness harness only: far too slow to be a CPU path).

Tie order matches the NumPy reference: equal scores keep the lower database index first.

This module is longer than our others (about 550 lines) because each kernel sits beside its
launcher and grid: they share constexpr globals and block sizes that must agree, and the
compile check (memsvc/kernels/compile_check.py) reads them from one `KERNELS` table here.

`TritonBackend` puts these behind the methods of `backend.KernelBackend` (NumPy in and out);
this module is imported only when that backend is chosen, so Triton stays optional.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from memsvc.kernels.encoders import to_kernel_codes, to_words

__all__ = [
    "KERNELS",
    "DeviceScanner",
    "TritonBackend",
    "hamming_topk",
    "int8_topk",
    "rescore_topk",
    "two_stage_topk",
]

NONE_KEY = 0x7FFFFFFFFFFFFFFF  # sorts after every real key
INT8_OFFSET = 1 << 30  # int8 keys: OFFSET - score stays in (0, 2^31) for any dimension < 66k
_NONE = tl.constexpr(NONE_KEY)
_OFFSET = tl.constexpr(INT8_OFFSET)
MAX_ROWS = 1 << 32  # the row id shares an int64 key with the score


@triton.jit
def _popcount32(x):
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return (x * 0x01010101) >> 24


@triton.jit
def _hamming_tile_topk(
    q_ptr,
    db_ptr,
    out_ptr,
    N,
    Q,
    row0,
    W: tl.constexpr,
    WP: tl.constexpr,
    K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    NBINS: tl.constexpr,
):
    ti = tl.program_id(0)
    qt = tl.program_id(1)
    n_tiles = tl.num_programs(0)
    rows = row0 + ti.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, WP)
    rmask = rows < N
    cmask = cols < W
    tile = tl.load(
        db_ptr + rows[:, None] * W + cols[None, :],
        mask=rmask[:, None] & cmask[None, :],
        other=0,
    ).to(tl.uint32, bitcast=True)
    kk = tl.minimum(tl.sum(rmask.to(tl.int32), 0), K)  # a short last tile keeps all it has
    for j in range(BLOCK_Q):
        qi = qt * BLOCK_Q + j
        if qi < Q:
            q = tl.load(q_ptr + qi.to(tl.int64) * W + cols, mask=cmask, other=0)
            x = tile ^ q.to(tl.uint32, bitcast=True)[None, :]
            dist = tl.sum(_popcount32(x).to(tl.int32), axis=1)
            dist = tl.where(rmask, dist, NBINS - 1)  # padding rows land in a bin never chosen
            hist = tl.histogram(dist, NBINS)
            below = tl.cumsum(hist, 0) < kk
            t = tl.sum(below.to(tl.int32), 0)  # the distance of the kk-th nearest row
            n_lt = tl.sum(tl.where(below, hist, 0), 0)
            lt = dist < t
            eq = (dist == t) & rmask
            slot = tl.where(
                lt,
                tl.cumsum(lt.to(tl.int32), 0) - 1,
                n_lt + tl.cumsum(eq.to(tl.int32), 0) - 1,  # ties: lowest row first
            )
            keep = (lt | eq) & (slot < kk)
            key = (dist.to(tl.int64) << 32) | rows
            base = (qi.to(tl.int64) * n_tiles + ti) * K
            tl.store(out_ptr + base + slot, key, mask=keep)


@triton.jit
def _int8_tile_topk(
    q_ptr,
    db_ptr,
    out_ptr,
    N,
    Q,
    row0,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    K: tl.constexpr,
    KP: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):
    ti = tl.program_id(0)
    qt = tl.program_id(1)
    n_tiles = tl.num_programs(0)
    rows = row0 + ti.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    qs = qt.to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    rmask = rows < N
    qmask = qs < Q
    acc = tl.zeros([BLOCK_Q, BLOCK_N], dtype=tl.int32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        dmask = cols < D
        a = tl.load(
            q_ptr + qs[:, None] * D + cols[None, :], mask=qmask[:, None] & dmask[None, :], other=0
        )
        b = tl.load(
            db_ptr + rows[None, :] * D + cols[:, None],
            mask=rmask[None, :] & dmask[:, None],
            other=0,
        )
        acc = tl.dot(a, b, acc, out_dtype=tl.int32)  # int8 tensor cores, int32 accumulation
    key = ((_OFFSET - acc.to(tl.int64)) << 32) | rows[None, :]
    key = tl.where(rmask[None, :], key, _NONE)
    best = tl.topk(key, KP, dim=1, descending=False)  # stops at KP: no full sort
    slots = tl.arange(0, KP)
    base = (qs[:, None] * n_tiles + ti) * K + slots[None, :]
    tl.store(out_ptr + base, best, mask=qmask[:, None] & (slots[None, :] < K))


@triton.jit
def _rescore(
    q_ptr,
    db_ptr,
    cand_ptr,
    out_ptr,
    C,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    qi = tl.program_id(0).to(tl.int64)
    ci = tl.program_id(1)
    c = ci * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    ids = tl.load(cand_ptr + qi * C + c, mask=cmask, other=-1)
    valid = ids >= 0
    acc = tl.zeros([BLOCK_C], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):  # a loop, not unrolled: one chunk live at a time
        cols = d0 + tl.arange(0, BLOCK_D)
        dmask = cols < D
        q = tl.load(q_ptr + qi * D + cols, mask=dmask, other=0.0)
        offs = ids[:, None].to(tl.int64) * D + cols[None, :]
        x = tl.load(db_ptr + offs, mask=valid[:, None] & dmask[None, :], other=0.0)
        acc += tl.sum(x.to(tl.float32) * q[None, :], axis=1)
    acc = tl.where(valid, acc, float("-inf"))
    tl.store(out_ptr + qi * C + c, acc, mask=cmask)


# Every kernel, for the compile test: name -> (kernel, signature, constexprs) of a
# representative launch (MiniLM's 384 dimensions, k = 10 and the store's 200 candidates).
# Launch settings, shared by the launches below and the compile test.
HAMMING_WARPS = 8
INT8_WARPS = 8
RESCORE_WARPS = 4
RESCORE_BLOCK_C = 32
RESCORE_BLOCK_D = 64

_HAMMING_SIG = {
    "q_ptr": "*i32",
    "db_ptr": "*i32",
    "out_ptr": "*i64",
    "N": "i64",
    "Q": "i32",
    "row0": "i64",
}
_RESCORE_SIG = {"q_ptr": "*fp32", "cand_ptr": "*i64", "out_ptr": "*fp32", "C": "i32"}
_RESCORE_META = {"D": 384, "BLOCK_D": RESCORE_BLOCK_D, "BLOCK_C": RESCORE_BLOCK_C}

# Every kernel, for the compile test: name -> (kernel, signature, constexprs, options) of a
# representative launch (MiniLM's 384 dimensions, k = 10 and the store's 200 candidates).
KERNELS = {
    "hamming_batch1": (
        _hamming_tile_topk,
        _HAMMING_SIG,
        {"W": 12, "WP": 16, "K": 10, "BLOCK_N": 256, "BLOCK_Q": 1, "NBINS": 512},
        {"num_warps": HAMMING_WARPS},
    ),
    "hamming_batch16_k200": (
        _hamming_tile_topk,
        _HAMMING_SIG,
        {"W": 12, "WP": 16, "K": 200, "BLOCK_N": 256, "BLOCK_Q": 16, "NBINS": 512},
        {"num_warps": HAMMING_WARPS},
    ),
    "int8": (
        _int8_tile_topk,
        {"q_ptr": "*i8", "db_ptr": "*i8", "out_ptr": "*i64", "N": "i64", "Q": "i32", "row0": "i64"},
        {"D": 384, "BLOCK_D": 64, "K": 10, "KP": 16, "BLOCK_N": 128, "BLOCK_Q": 16},
        {"num_warps": INT8_WARPS},
    ),
    "rescore_fp32": (
        _rescore,
        {**_RESCORE_SIG, "db_ptr": "*fp32"},
        _RESCORE_META,
        {"num_warps": RESCORE_WARPS},
    ),
    "rescore_fp16": (
        _rescore,
        {**_RESCORE_SIG, "db_ptr": "*fp16"},
        _RESCORE_META,
        {"num_warps": RESCORE_WARPS},
    ),
}


def _tensor(x: np.ndarray | torch.Tensor, device: str | torch.device | None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device).contiguous() if device is not None else t.contiguous()


def _queries(x: np.ndarray | torch.Tensor, device: str | torch.device | None) -> torch.Tensor:
    q = _tensor(x, device)
    return q[None] if q.dim() == 1 else q


def _empty(n_q: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    e = torch.empty((n_q, 0), dtype=torch.int64, device=device)
    return e, e


def _merge(keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest keys of each query's tile lists, on the device: (score keys, rows)."""
    best = torch.topk(keys, k, dim=1, largest=False, sorted=True).values
    return best >> 32, best & 0xFFFFFFFF


# Query tiles go on grid axis 1, which CUDA caps at 65,535: larger batches run in slices.
MAX_GRID_Y = 65535
MAX_GRID_X = 2**31 - 1


def scan_grids(n_rows: int, n_q: int, block_n: int, block_q: int) -> list[tuple[int, int, int]]:
    """(first query, grid x, grid y) per launch: database tiles on x, query tiles on y, within
    CUDA's limits for any database under 2^32 rows and any batch."""
    if n_rows >= MAX_ROWS:
        raise ValueError(f"{n_rows} rows: a scan takes fewer than 2^32 (split the database)")
    tiles = triton.cdiv(n_rows, block_n)
    assert tiles <= MAX_GRID_X
    step = block_q * MAX_GRID_Y
    return [(s, tiles, triton.cdiv(min(step, n_q - s), block_q)) for s in range(0, n_q, step)]


def _scan(
    kernel: Any,
    q: torch.Tensor,
    db: torch.Tensor,
    k: int,
    row_start: int,
    block_n: int,
    block_q: int,
    warps: int,
    pow2_k: bool = False,
    **meta: int,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Launch a tile scan over rows [row_start, N) and merge on the device: (keys, rows).
    `pow2_k`: the kernel also takes KP, the tile's K rounded up to a power of two."""
    n_q, n = q.shape[0], db.shape[0]
    if not 0 <= row_start <= n:
        raise ValueError(f"row_start {row_start} is outside the database's {n} rows")
    k = min(k, n - row_start)
    if k <= 0 or n_q == 0:
        return None
    bn = max(block_n, triton.next_power_of_2(k))
    kt = min(k, bn)  # a tile holds at most bn rows
    if pow2_k:
        meta["KP"] = triton.next_power_of_2(kt)
    launches = scan_grids(n - row_start, n_q, bn, block_q)
    out = torch.full((n_q, launches[0][1], kt), NONE_KEY, dtype=torch.int64, device=q.device)
    for first, gx, gy in launches:
        part = q[first : first + gy * block_q]
        kernel[(gx, gy)](
            part,
            db,
            out[first : first + part.shape[0]],
            n,
            part.shape[0],
            row_start,
            K=kt,
            BLOCK_N=bn,
            BLOCK_Q=block_q,
            num_warps=warps,
            **meta,
        )
    return _merge(out.view(n_q, -1), k)


def hamming_topk(
    q_words: np.ndarray | torch.Tensor,
    db_words: np.ndarray | torch.Tensor,
    k: int,
    *,
    device: str | torch.device | None = None,
    block_n: int = 256,
    block_q: int | None = None,
    row_start: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(int32 distances, int64 ids) [Q, min(k, N - row_start)], smallest first, over rows
    [row_start, N) of int32 word codes (ids stay absolute: a huge database scans in parts)."""
    q, db = _queries(q_words, device), _tensor(db_words, device)
    w = q.shape[1]
    found = _scan(
        _hamming_tile_topk,
        q,
        db,
        k,
        row_start,
        block_n,
        block_q or (1 if q.shape[0] == 1 else 16),
        HAMMING_WARPS,
        W=w,
        WP=triton.next_power_of_2(w),
        NBINS=triton.next_power_of_2(32 * w + 2),  # every distance 0..bits, plus padding's
    )
    if found is None:
        return _empty(q.shape[0], q.device)
    dist, ids = found
    return dist.to(torch.int32), ids


def int8_topk(
    q8: np.ndarray | torch.Tensor,
    db8: np.ndarray | torch.Tensor,
    k: int,
    *,
    device: str | torch.device | None = None,
    block_n: int = 128,
    block_d: int = 64,
    row_start: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(int32 dot products, int64 ids) [Q, min(k, N - row_start)], largest first; int8 codes
    in. Queries go 16 at a time through tensor cores (tl.dot needs 16 rows; fewer are padded)."""
    q, db = _queries(q8, device), _tensor(db8, device)
    d = q.shape[1]
    found = _scan(
        _int8_tile_topk,
        q,
        db,
        k,
        row_start,
        block_n,
        16,
        INT8_WARPS,
        pow2_k=True,
        D=d,
        BLOCK_D=max(16, min(block_d, triton.next_power_of_2(d))),
    )
    if found is None:
        return _empty(q.shape[0], q.device)
    key, ids = found
    return (INT8_OFFSET - key).to(torch.int32), ids


def rescore_topk(
    queries: np.ndarray | torch.Tensor,
    db: np.ndarray | torch.Tensor,
    candidates: np.ndarray | torch.Tensor,
    k: int,
    *,
    device: str | torch.device | None = None,
    block_c: int = RESCORE_BLOCK_C,
    block_d: int = RESCORE_BLOCK_D,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner products of each query with its candidate rows (-1 = none), the best k
    first; rows with fewer candidates end in (-inf, -1). The database may be float32 or float16
    (read as is, accumulated in float32)."""
    q = _tensor(queries, device).to(torch.float32)
    x = _tensor(db, device)
    if x.dtype not in (torch.float32, torch.float16):
        x = x.to(torch.float32)
    cand = _tensor(candidates, device).to(torch.int64)
    if q.dim() == 1:
        q, cand = q[None], cand.reshape(1, -1)
    n_q, d = q.shape
    c = cand.shape[1]
    k = min(k, c)
    if k <= 0 or n_q == 0:
        return (
            torch.empty((n_q, 0), dtype=torch.float32, device=q.device),
            torch.empty((n_q, 0), dtype=torch.int64, device=q.device),
        )
    # ascending ids first, so the stable sort by score keeps the lower index on ties
    cand, _ = torch.sort(torch.where(cand < 0, torch.iinfo(torch.int64).max, cand), dim=1)
    cand = torch.where(cand == torch.iinfo(torch.int64).max, -1, cand)
    scores = torch.empty((n_q, c), dtype=torch.float32, device=q.device)
    _rescore[(n_q, triton.cdiv(c, block_c))](
        q,
        x,
        cand,
        scores,
        c,
        D=d,
        BLOCK_D=min(block_d, triton.next_power_of_2(d)),
        BLOCK_C=block_c,
        num_warps=RESCORE_WARPS,
    )
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(scores, 1, order), torch.gather(cand, 1, order)


def two_stage_topk(
    q_codes: np.ndarray | torch.Tensor,
    queries: np.ndarray | torch.Tensor,
    db_codes: np.ndarray | torch.Tensor,
    vectors: np.ndarray | torch.Tensor,
    k: int,
    *,
    oversample: int = 20,
    candidates: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scan for `candidates` rows (default `oversample * k`), then rescore them exactly: both
    on the device, the candidates never leaving it. The codes say the scan: int32 sign-bit
    words by Hamming distance, int8 codes by dot product. (scores, ids) [Q, min(k, N)], best
    first."""
    db = _tensor(db_codes, device)
    scan = int8_topk if db.dtype == torch.int8 else hamming_topk
    c = candidates if candidates is not None else oversample * k
    _, cand = scan(q_codes, db, c, device=db.device)
    return rescore_topk(queries, vectors, cand, k, device=db.device)


# ---- the backend: NumPy in and out ------------------------------------------------------------


def _host(found: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = found
    return scores.cpu().numpy(), ids.cpu().numpy()


class DeviceScanner:
    """Codes kept on the device between searches: uint8 sign bits (Hamming distances, nearest
    first) or int8 codes (dot products, largest first)."""

    def __init__(self, codes: np.ndarray, device: str) -> None:
        codes = np.atleast_2d(codes)
        self.binary = codes.dtype == np.uint8
        self.device = device
        self.db = torch.from_numpy(to_kernel_codes(codes)).to(device)

    @property
    def count(self) -> int:
        return int(self.db.shape[0])

    def search(self, q_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scan = hamming_topk if self.binary else int8_topk
        return _host(scan(to_kernel_codes(q_codes), self.db, k, device=self.device))


class TritonBackend:
    """The Triton implementation of `backend.KernelBackend`: host arrays go to `device` for
    each call (a `resident_table` keeps a store table there between searches)."""

    name = "triton"

    def __init__(self, device: str) -> None:
        self.device = device

    def binary_scanner(self, codes: np.ndarray) -> DeviceScanner:
        return DeviceScanner(np.asarray(codes, np.uint8), self.device)

    def int8_scanner(self, codes: np.ndarray) -> DeviceScanner:
        return DeviceScanner(np.asarray(codes, np.int8), self.device)

    def hamming_topk(
        self, q_codes: np.ndarray, db_codes: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return _host(hamming_topk(to_words(q_codes), to_words(db_codes), k, device=self.device))

    def int8_topk(self, q8: np.ndarray, db8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return _host(int8_topk(q8, db8, k, device=self.device))

    def rescore_topk(
        self, queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return _host(rescore_topk(queries, vectors, candidates, k, device=self.device))

    def two_stage_topk(
        self,
        q_codes: np.ndarray,
        queries: np.ndarray,
        db_codes: np.ndarray,
        vectors: np.ndarray,
        k: int,
        *,
        candidates: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        found = two_stage_topk(
            to_kernel_codes(q_codes),
            np.asarray(queries, np.float32),
            to_kernel_codes(db_codes),
            vectors,
            k,
            candidates=candidates,
            device=self.device,
        )
        return _host(found)

    def resident_table(self) -> Any:
        """A `resident.ResidentTable` on this backend's device."""
        from memsvc.kernels.resident import ResidentTable

        return ResidentTable(self.device)
