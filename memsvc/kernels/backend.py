"""One small registry: which implementation runs each search, picked by device.

`triton` (GPU kernels) when CUDA is available, else `cpu` (FAISS / NumPy); the environment
variable MEMSVC_KERNEL_BACKEND=cpu|triton overrides. Both backends expose the same scanners,
so callers never branch on the device.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any, Protocol

import numpy as np

from memsvc.kernels import cpu

__all__ = [
    "BACKENDS",
    "Scanner",
    "binary_scanner",
    "default_backend",
    "hamming_topk",
    "int8_topk",
    "rescore_topk",
]

BACKENDS = ("cpu", "triton")


class Scanner(Protocol):
    count: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


@functools.cache
def _cuda() -> bool:
    """Asked once per process: every two-stage search dispatches through here."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def default_backend(override: str | None = None) -> str:
    choice = override or os.environ.get("MEMSVC_KERNEL_BACKEND") or ("triton" if _cuda() else "cpu")
    if choice not in BACKENDS:
        raise ValueError(f"unknown kernel backend {choice!r}; choose from {', '.join(BACKENDS)}")
    if choice == "triton" and not _has_triton():
        if override or os.environ.get("MEMSVC_KERNEL_BACKEND"):
            raise ImportError("the triton kernel backend needs Triton: pip install 'memsvc[gpu]'")
        return "cpu"  # a GPU without the gpu extra: the CPU path still answers
    return choice


@functools.cache
def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def resident_table(backend: str | None = None) -> Any:
    """A device-resident two-stage table (kernels.resident) when the backend is triton, else
    None: the caller keeps searching on the host."""
    if default_backend(backend) != "triton":
        return None
    from memsvc.kernels.resident import ResidentTable

    return ResidentTable("cuda" if _cuda() else "cpu")


class _TritonBinary:
    """Packed codes resident on the GPU (or CPU tensors under TRITON_INTERPRET=1)."""

    def __init__(self, codes: np.ndarray, device: str) -> None:
        import torch

        from memsvc.kernels.encoders import to_words

        self.device = device
        self.words = torch.from_numpy(to_words(codes)).to(device)
        self.count = int(self.words.shape[0])

    def search(self, q_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from memsvc.kernels import triton_kernels
        from memsvc.kernels.encoders import to_words

        d, i = triton_kernels.hamming_topk(to_words(q_codes), self.words, k, device=self.device)
        return d.cpu().numpy(), i.cpu().numpy()


def binary_scanner(
    codes: np.ndarray, *, backend: str | None = None, device: str | None = None
) -> Any:
    """A Hamming scanner over uint8 codes [N, bytes]."""
    if default_backend(backend) == "triton":
        return _TritonBinary(codes, device or ("cuda" if _cuda() else "cpu"))
    return cpu.BinaryScanCPU(codes)


def hamming_topk(
    q_codes: np.ndarray,
    db_codes: np.ndarray,
    k: int,
    *,
    backend: str | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, row ids) over uint8 codes, nearest first (stateless)."""
    if default_backend(backend) == "triton":
        from memsvc.kernels import triton_kernels
        from memsvc.kernels.encoders import to_words

        d, i = triton_kernels.hamming_topk(
            to_words(q_codes),
            to_words(db_codes),
            k,
            device=device or ("cuda" if _cuda() else "cpu"),
        )
        return d.cpu().numpy(), i.cpu().numpy()
    return cpu.hamming_knn(q_codes, db_codes, k)


def int8_topk(
    q8: np.ndarray,
    db8: np.ndarray,
    k: int,
    *,
    backend: str | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(int32 dot products, row ids) over int8 codes, largest first (stateless)."""
    if default_backend(backend) == "triton":
        from memsvc.kernels import triton_kernels

        s, i = triton_kernels.int8_topk(q8, db8, k, device=device or ("cuda" if _cuda() else "cpu"))
        return s.cpu().numpy(), i.cpu().numpy()
    return cpu.int8_knn(q8, db8, k)


def rescore_topk(
    queries: np.ndarray,
    vectors: np.ndarray,
    candidates: np.ndarray,
    k: int,
    *,
    backend: str | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    if default_backend(backend) == "triton":
        from memsvc.kernels import triton_kernels

        s, i = triton_kernels.rescore_topk(
            queries, vectors, candidates, k, device=device or ("cuda" if _cuda() else "cpu")
        )
        return s.cpu().numpy(), i.cpu().numpy()
    return cpu.rescore_topk(queries, vectors, candidates, k)
