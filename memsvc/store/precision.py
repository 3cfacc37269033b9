"""Per-vector storage precisions for fading memories: float32 -> int8 -> 1-bit.

A record's stored embedding shrinks as its retention falls (4 bytes a dimension, then 1, then
1/8). Each form is self-contained, so a vector decodes without any calibration data:
  - `int8`: float32 scale, then codes = round(x / scale), scale = max|x| / 127;
  - `binary`: float32 norm, then the sign bits (`pack_sign_bits` layout); it decodes to
    norm * sign(x) / sqrt(d), the unit direction its signs name.
"""

from __future__ import annotations

import numpy as np

from memsvc.kernels.encoders import pack_sign_bits, symmetric_codes

__all__ = ["PRECISIONS", "decode_stored", "encode_stored", "stored_bytes"]

PRECISIONS = ("float32", "int8", "binary")


def stored_bytes(dim: int, precision: str) -> int:
    if precision == "float32":
        return 4 * dim
    if precision == "int8":
        return 4 + dim
    if precision == "binary":
        return 4 + (dim + 7) // 8
    raise ValueError(f"unknown precision {precision!r}; precisions are {', '.join(PRECISIONS)}")


def encode_stored(vec: np.ndarray, precision: str) -> bytes:
    x = np.asarray(vec, dtype=np.float32).reshape(-1)
    if precision == "float32":
        return x.tobytes()
    if precision == "int8":
        scale = np.float32(max(float(np.abs(x).max(initial=0.0)), 1e-12) / 127.0)
        return scale.tobytes() + symmetric_codes(x, np.full_like(x, scale), 127)[0].tobytes()
    if precision == "binary":
        norm = np.float32(np.linalg.norm(x))
        return norm.tobytes() + pack_sign_bits(x)[0].tobytes()
    raise ValueError(f"unknown precision {precision!r}; precisions are {', '.join(PRECISIONS)}")


def decode_stored(data: bytes, precision: str, dim: int) -> np.ndarray:
    """float32 [dim]."""
    if len(data) != stored_bytes(dim, precision):
        raise ValueError(f"{len(data)} bytes is not a {precision} vector of {dim} dimensions")
    if precision == "float32":
        return np.frombuffer(data, dtype=np.float32).copy()
    head = float(np.frombuffer(data[:4], dtype=np.float32)[0])
    if precision == "int8":
        return np.frombuffer(data[4:], dtype=np.int8).astype(np.float32) * np.float32(head)
    bits = np.unpackbits(np.frombuffer(data[4:], dtype=np.uint8), bitorder="little")[:dim]
    return (bits.astype(np.float32) * 2 - 1) * np.float32(head / np.sqrt(dim))
