"""`RecallSource`: what recall reads of one cube, and nothing more.

Retrieval never sees a database session or an ORM row: the store hands it one of these
(`memsvc/store/recall_source.py`), read through one transaction so the index catch-up, the
filters and the records share one snapshot. A test can hand it a fake built from a
`CubeIndex`, a `CubeTextIndex` and a dict of `RecordData`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from memsvc.store.data import RecordData, RecordQuery
from memsvc.store.text_index import CubeTextIndex

__all__ = ["RecallSource", "VectorSearch"]


class VectorSearch(Protocol):
    """The cube's vector index: inner-product search over its active records (ids = pks)."""

    @property
    def count(self) -> int: ...

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(pks, scores), best first; `allowed` restricts to those pks (exactly), `candidates`
        is how many codes a two-stage index rescores (None: its own oversample)."""
        ...

    def search_keys(
        self,
        query: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The records whose sentence keys are nearest, as `search` (each by its best key;
        only records with keys)."""
        ...


class RecallSource(Protocol):
    """One cube as recall reads it, within one read transaction."""

    @property
    def cube_pk(self) -> int: ...

    @property
    def oversample(self) -> int:
        """Codes a two-stage scan rescores per result wanted (the service's setting)."""
        ...

    def vectors(self) -> VectorSearch:
        """The cube's vector index, caught up with the change log (within `sync_seconds`)."""
        ...

    def text(self) -> CubeTextIndex:
        """The cube's side index (keywords, entities, sessions, speakers, times)."""
        ...

    def matching_pks(self, rq: RecordQuery) -> np.ndarray:
        """Pks of the cube's records that pass `rq` (the explicit filters)."""
        ...

    def records(self, pks: Sequence[int]) -> Mapping[int, RecordData]:
        """The records' fields (no embeddings) by pk; a pk gone from the store is absent."""
        ...
