"""Two-stage tables kept on the device between searches, within a device-memory budget.

With the `triton` backend a table's codes and rescoring vectors are uploaded once and then
only the rows that changed since the last search; a search sends the queries and gets back
the best rows and their exact scores, so the database never crosses the bus per query. Every
resident table shares one budget (`MEMSVC_GPU_MEMORY_BYTES`, default half the device's
memory); the least recently searched tables are evicted (and upload again when searched)
when a new one would not fit, and a table bigger than the whole budget is not made resident
at all: its searches take the host path.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["DeviceBudget", "ResidentTable", "default_budget"]


class DeviceBudget:
    """Bytes of device memory that resident tables may hold, least recently used first out."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = int(limit_bytes)
        self.used = 0
        self.evictions = 0
        self._tables: OrderedDict[int, ResidentTable] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, table: ResidentTable, nbytes: int) -> bool:
        """Make room for `nbytes` more of `table` (evicting others); False if it cannot fit."""
        with self._lock:
            if table.nbytes + nbytes > self.limit:
                return False
            while self.used + nbytes > self.limit:
                victim = next((t for t in self._tables.values() if t is not table), None)
                if victim is None:
                    return False
                self._forget(victim)
                victim.evicted()
                self.evictions += 1
            self.used += nbytes
            self._tables[id(table)] = table
            self._tables.move_to_end(id(table))
            return True

    def touch(self, table: ResidentTable) -> None:
        with self._lock:
            if id(table) in self._tables:
                self._tables.move_to_end(id(table))

    def release(self, table: ResidentTable) -> None:
        with self._lock:
            self._forget(table)

    def _forget(self, table: ResidentTable) -> None:
        if self._tables.pop(id(table), None) is not None:
            self.used -= table.nbytes


_DEFAULT: DeviceBudget | None = None


def default_budget(device: str = "cuda") -> DeviceBudget:
    """The process-wide budget: MEMSVC_GPU_MEMORY_BYTES, else half the device's memory
    (1 GiB off a GPU, for the interpreter)."""
    global _DEFAULT
    if _DEFAULT is None:
        setting = os.environ.get("MEMSVC_GPU_MEMORY_BYTES")
        if setting:
            limit = int(setting)
        elif device != "cpu":
            import torch

            limit = torch.cuda.get_device_properties(device).total_memory // 2
        else:
            limit = 1 << 30
        _DEFAULT = DeviceBudget(limit)
    return _DEFAULT


class ResidentTable:
    """One table's codes (uint8 sign bits or int8) and float32 vectors on the device."""

    def __init__(self, device: str, budget: DeviceBudget | None = None) -> None:
        self.device = device
        self.budget = budget or default_budget(device)
        self.codes: Any = None  # int32 words (sign bits) or int8 codes, [capacity, width]
        self.vecs: Any = None  # float32 [capacity, dim]
        self.nbytes = 0
        self.uploads = 0  # rows copied to the device, for tests and metrics
        self._lock = threading.Lock()

    @property
    def resident(self) -> bool:
        return self.codes is not None

    def evicted(self) -> None:
        self.codes = self.vecs = None
        self.nbytes = 0

    def drop(self) -> None:
        with self._lock:
            self.budget.release(self)
            self.evicted()

    def sync(self, codes: np.ndarray, vecs: np.ndarray, dirty: np.ndarray | None) -> bool:
        """Mirror the host arrays (whole capacity): all of them when `dirty` is None or the
        capacity changed, else only the dirty rows. False if the table does not fit."""
        import torch

        from memsvc.kernels.encoders import to_kernel_codes

        host_codes = to_kernel_codes(codes)
        with self._lock:
            same_shape = (
                self.resident
                and self.codes.shape == host_codes.shape
                and self.vecs.shape == vecs.shape
            )
            if same_shape and dirty is not None:
                if len(dirty):
                    rows = torch.from_numpy(np.asarray(dirty, np.int64)).to(self.device)
                    self.codes.index_copy_(
                        0, rows, torch.from_numpy(host_codes[dirty]).to(self.device)
                    )
                    self.vecs.index_copy_(0, rows, torch.from_numpy(vecs[dirty]).to(self.device))
                    self.uploads += len(dirty)
                self.budget.touch(self)
                return True
            self.budget.release(self)
            self.evicted()
            need = host_codes.nbytes + vecs.nbytes
            if not self.budget.admit(self, need):
                return False
            self.codes = torch.from_numpy(np.ascontiguousarray(host_codes)).to(self.device)
            self.vecs = torch.from_numpy(np.ascontiguousarray(vecs)).to(self.device)
            self.nbytes = need
            self.uploads += len(host_codes)
            return True

    def search(
        self, q_codes: np.ndarray, queries: np.ndarray, n: int, k: int, candidates: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(exact scores, rows) [Q, k] over the first n rows: the scan's `candidates` best by
        code, rescored exactly, all on the device. Rows past the candidates are -1."""
        import torch

        from memsvc.kernels import triton_kernels as tk
        from memsvc.kernels.encoders import to_kernel_codes

        with self._lock:
            q = torch.from_numpy(np.ascontiguousarray(queries, np.float32)).to(self.device)
            qc = to_kernel_codes(q_codes)
            scores, rows = tk.two_stage_topk(
                qc, q, self.codes[:n], self.vecs[:n], k, candidates=candidates, device=self.device
            )
            return scores.cpu().numpy(), rows.cpu().numpy()
