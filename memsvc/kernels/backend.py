"""Which implementation runs each search: one backend object, picked once.

A backend has the methods of `KernelBackend`; two implement them, with the same names and
signatures, NumPy arrays in and out:
- `cpu.CpuBackend` (FAISS / NumPy), always there;
- `triton_kernels.TritonBackend` (Triton kernels on a CUDA GPU, or on the CPU under
  `TRITON_INTERPRET=1` for tests), with the `memsvc[gpu]` extra. It is imported only when chosen.

`get_backend(name)` picks: `name` if given, else MEMSVC_KERNEL_BACKEND=cpu|triton, else
`triton` when CUDA is available and Triton installed, `cpu` otherwise. Asking for `triton` (by
name or by the variable) without Triton raises ImportError with the install hint; a GPU
without the extra quietly gets `cpu`. Callers hold the object and never branch on the device.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memsvc.kernels import cpu

__all__ = ["BACKENDS", "KernelBackend", "Scanner", "default_backend", "get_backend"]

log = logging.getLogger(__name__)
BACKENDS = ("cpu", "triton")
ENV = "MEMSVC_KERNEL_BACKEND"


class Scanner(Protocol):
    """Codes held for repeated top-k scans."""

    @property
    def count(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class KernelBackend(Protocol):
    """The similarity searches, one implementation per device. Codes: uint8 sign bits
    (`encoders.pack_sign_bits` layout) or int8. Every top-k returns (scores, int64 row ids)
    [Q, min(k, N)], best first, equal scores to the lower row (the reference's order; FAISS's
    Hamming scan may order equal distances otherwise)."""

    name: str

    def binary_scanner(self, codes: np.ndarray) -> Scanner:
        """Hamming scans over uint8 codes [N, bytes]: int32 distances, smallest first."""
        ...

    def int8_scanner(self, codes: np.ndarray) -> Scanner:
        """Dot-product scans over int8 codes [N, D] with int8 queries: int32, largest first."""
        ...

    def hamming_topk(
        self, q_codes: np.ndarray, db_codes: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One stateless Hamming scan over uint8 codes."""
        ...

    def int8_topk(self, q8: np.ndarray, db8: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """One stateless int8 dot-product scan."""
        ...

    def rescore_topk(
        self, queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact float32 inner products with each query's candidate rows (-1 = none); rows with
        fewer candidates end in (-inf, -1)."""
        ...

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
        """Scan the codes (uint8: Hamming, int8: dot product) for `candidates` rows, then
        `rescore_topk` them: exact scores of the best k."""
        ...

    def resident_table(self) -> Any:
        """A table kept on the device between searches (`resident.ResidentTable`), or None
        where there is no device (the caller searches host arrays through this backend)."""
        ...


@functools.cache
def _cuda() -> bool:
    """Asked once per process: every automatic choice comes through here."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def default_backend(override: str | None = None) -> str:
    """The backend's name: `override`, else MEMSVC_KERNEL_BACKEND, else by device."""
    asked = override or os.environ.get(ENV)
    choice = asked or ("triton" if _cuda() else "cpu")
    if choice not in BACKENDS:
        raise ValueError(f"unknown kernel backend {choice!r}; choose from {', '.join(BACKENDS)}")
    if choice == "triton" and not _has_triton():
        if asked:
            raise ImportError("the triton kernel backend needs Triton: pip install 'memsvc[gpu]'")
        return "cpu"  # a GPU without the gpu extra: the CPU path still answers
    return choice


def get_backend(name: str | None = None, *, device: str | None = None) -> KernelBackend:
    """The backend object (one per name and device per process). `device` places the triton
    backend's tensors (default: cuda when there is one, else the CPU for the interpreter)."""
    return _backend(default_backend(name), device)


@functools.cache
def _backend(name: str, device: str | None) -> KernelBackend:
    if name == "cpu":
        return cpu.CpuBackend()
    from memsvc.kernels.triton_kernels import TritonBackend

    chosen = device or ("cuda" if _cuda() else "cpu")
    log.info("kernel backend: triton on %s", chosen)
    return TritonBackend(chosen)
