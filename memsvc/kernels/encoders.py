"""Vector encoders: 1-bit sign codes (plain, and centered + randomly rotated as RaBitQ does),
int8 scalar quantization with per-dimension calibration, and int4.

Bit layout (every 1-bit code here): bit j of a vector is byte j // 8, bit j % 8 (little-endian
bit order), so `np.packbits(bits, bitorder="little")` and the uint32 words that the kernels read
(4 bytes each, little-endian) agree. A dimension that is not a multiple of 32 is zero-padded in
both the query and the database codes, which leaves Hamming distances unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Int4Quantizer",
    "Int8Quantizer",
    "RotatedSignEncoder",
    "pack_sign_bits",
    "symmetric_codes",
    "to_kernel_codes",
    "to_words",
]


def pack_sign_bits(x: np.ndarray) -> np.ndarray:
    """uint8 codes [n, ceil(d/8)]: bit j set when x[:, j] > 0."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    return np.packbits(x > 0, axis=1, bitorder="little")


def to_words(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> int32 words [n, ceil(bytes/4)] (zero-padded), the kernels' layout."""
    codes = np.ascontiguousarray(np.atleast_2d(codes), dtype=np.uint8)
    pad = (-codes.shape[1]) % 4
    if pad:
        codes = np.concatenate([codes, np.zeros((codes.shape[0], pad), np.uint8)], axis=1)
    return codes.view("<u4").astype(np.uint32).view(np.int32)


def to_kernel_codes(codes: np.ndarray) -> np.ndarray:
    """The layout the Triton kernels read: uint8 sign codes as int32 words (`to_words`), int8
    codes as they are."""
    codes = np.atleast_2d(codes)
    return to_words(codes) if codes.dtype == np.uint8 else np.ascontiguousarray(codes, np.int8)


@functools.lru_cache(maxsize=8)
def _random_rotation(d: int, seed: int) -> np.ndarray:
    """A uniformly random orthogonal matrix, the same for every fit with this (d, seed): made
    once per process, since its QR took 0.47 s of each refit (every new cube refits as it
    grows: half of a 500-turn LongMemEval haystack's ingest)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q *= np.sign(np.diag(r))
    q = q.astype(np.float32)
    q.flags.writeable = False  # shared by every encoder
    return q


@dataclass
class RotatedSignEncoder:
    """Sign bits of R (x - c): c the data mean, R a random orthogonal matrix (seeded).

    Centering spreads the signs (MiniLM vectors share a large common direction, so plain sign
    bits waste capacity on it) and the rotation spreads information evenly over the bits, the
    two steps RaBitQ starts from. Queries are encoded the same way for Hamming scans.
    """

    center: np.ndarray
    rotation: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, *, seed: int = 0) -> RotatedSignEncoder:
        x = np.asarray(x, dtype=np.float32)
        d = x.shape[1]
        center = x.mean(axis=0) if len(x) else np.zeros(d, np.float32)
        return cls(center.astype(np.float32), _random_rotation(d, seed))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(np.asarray(x, dtype=np.float32)) - self.center) @ self.rotation.T

    def encode(self, x: np.ndarray) -> np.ndarray:
        return pack_sign_bits(self.transform(x))


def _per_dim_scale(x: np.ndarray, percentile: float, levels: int) -> np.ndarray:
    """Symmetric per-dimension scale mapping the calibration magnitude to `levels`."""
    mag = np.abs(np.asarray(x, dtype=np.float32))
    if len(mag) == 0:
        raise ValueError("cannot calibrate on an empty set")
    top = np.percentile(mag, percentile, axis=0) if percentile < 100 else mag.max(axis=0)
    return np.maximum(top, 1e-12).astype(np.float32) / levels


def symmetric_codes(x: np.ndarray, scale: np.ndarray, level: int) -> np.ndarray:
    """Round x / scale to the nearest integer in [-level, level] (int8)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    return np.clip(np.rint(x / scale), -level, level).astype(np.int8)


@dataclass
class Int8Quantizer:
    """Symmetric int8 per dimension: x_d ~ scale_d * code_d, code in [-127, 127].

    The scale of each dimension is calibrated on data (its largest magnitude, or a high
    percentile to ignore outliers). Dot products stay linear: q . x ~ sum_d (q_d scale_d) code_d,
    so a query folds the scales in once and scans integer codes.
    """

    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, *, percentile: float = 100.0) -> Int8Quantizer:
        return cls(_per_dim_scale(x, percentile, 127))

    def encode(self, x: np.ndarray) -> np.ndarray:
        return symmetric_codes(x, self.scale, 127)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return codes.astype(np.float32) * self.scale

    def query(self, q: np.ndarray) -> tuple[np.ndarray, float]:
        """(int8 query with the scales folded in, its float scale): score = scale * q8 . code."""
        folded = np.atleast_2d(np.asarray(q, dtype=np.float32)) * self.scale
        m = float(np.abs(folded).max()) or 1.0
        return np.clip(np.rint(folded / m * 127), -127, 127).astype(np.int8), m / 127.0


@dataclass
class Int4Quantizer:
    """Symmetric int4 per dimension (codes in [-7, 7]), two codes packed per byte: dimension
    2i in the low nibble of byte i, 2i+1 in the high nibble (two's complement nibbles)."""

    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, *, percentile: float = 99.9) -> Int4Quantizer:
        return cls(_per_dim_scale(x, percentile, 7))

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Unpacked int8 codes in [-7, 7]."""
        return symmetric_codes(x, self.scale, 7)

    def encode(self, x: np.ndarray) -> np.ndarray:
        c = self.codes(x)
        if c.shape[1] % 2:
            c = np.concatenate([c, np.zeros((c.shape[0], 1), np.int8)], axis=1)
        lo = c[:, 0::2].astype(np.uint8) & 0x0F
        hi = c[:, 1::2].astype(np.uint8) & 0x0F
        return (lo | (hi << 4)).astype(np.uint8)

    def unpack(self, packed: np.ndarray, dim: int) -> np.ndarray:
        lo = (packed & 0x0F).astype(np.int8)
        hi = (packed >> 4).astype(np.int8)
        lo = np.where(lo > 7, lo - 16, lo)
        hi = np.where(hi > 7, hi - 16, hi)
        out = np.empty((packed.shape[0], packed.shape[1] * 2), np.int8)
        out[:, 0::2], out[:, 1::2] = lo, hi
        return out[:, :dim]

    def decode(self, packed: np.ndarray, dim: int) -> np.ndarray:
        return self.unpack(packed, dim).astype(np.float32) * self.scale
