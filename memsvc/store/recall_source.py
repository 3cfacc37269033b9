"""The store's `RecallSource` (memsvc/retrieval/source.py): one cube as recall reads it.

Everything is read through the caller's transaction, so the index catch-up, the filters and
the records share one snapshot; retrieval sees snapshots (`RecordData`), never a row or a
session. A record is read once per source: the rescorers and the final filter of one recall
see the same snapshot of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np

from memsvc import tracing
from memsvc.store.data import CubeData, RecordData, RecordQuery
from memsvc.store.indexes import IndexManager
from memsvc.store.repos.queries import matching_pks
from memsvc.store.repos.records import record_fields_by_pks
from memsvc.store.text_index import CubeTextIndex
from memsvc.store.tx import Tx
from memsvc.store.vector_index import CubeIndex

__all__ = ["StoreRecallSource", "recall_source"]

_VECTORS = {"memsvc.index": "vectors"}
_TEXT = {"memsvc.index": "text"}


class StoreRecallSource:
    def __init__(self, tx: Tx, indexes: IndexManager, cube: CubeData) -> None:
        self._s = tx.session()
        self._indexes = indexes
        self._cube = cube
        self._seen: dict[int, RecordData | None] = {}

    @property
    def cube_pk(self) -> int:
        return self._cube.pk

    @property
    def oversample(self) -> int:
        return self._indexes.oversample

    def vectors(self) -> CubeIndex:
        # recall accepts an index checked within `sync_seconds` (IndexManager docstring);
        # the span covers a cold cube's load and the change-log catch-up alike
        with tracing.span("index.catch_up", _VECTORS) as sp:
            index = self._indexes.get(self._cube, session=self._s, fresh=False)
            sp.set_attribute("memsvc.index.vectors", index.count)
        return index

    def text(self) -> CubeTextIndex:
        with tracing.span("index.catch_up", _TEXT):
            return self._indexes.text_for(self._cube, self._s)

    def matching_pks(self, rq: RecordQuery) -> np.ndarray:
        return matching_pks(self._s, self._cube.pk, rq)

    def records(self, pks: Sequence[int]) -> dict[int, RecordData]:
        seen = self._seen
        missing = [int(p) for p in pks if int(p) not in seen]
        if missing:
            rows = record_fields_by_pks(self._s, missing)
            in_order = bool(rows) and next(iter(rows.values()))._fields == _FIELDS
            for pk in missing:
                row = rows.get(pk)
                seen[pk] = None if row is None else _snapshot(row, in_order)
        out: dict[int, RecordData] = {}
        for p in pks:
            rec = seen[int(p)]
            if rec is not None:
                out[rec.pk] = rec
        return out


_FIELDS = tuple(f.name for f in dataclass_fields(RecordData))


def _snapshot(row: Any, in_order: bool) -> RecordData:
    """`RecordData.of` for a plain row of the record's fields (`in_order`: exactly the
    snapshot's fields, in its order). Recall's hot path: the JSON columns are freshly decoded
    per row, so nothing needs copying."""
    if in_order:
        rec = RecordData(*row)
        if not (
            rec.source is None
            or rec.meta is None
            or rec.tags is None
            or rec.entities is None
            or rec.pinned.__class__ is not bool
        ):
            return rec
    return RecordData.of(row)


def recall_source(tx: Tx, indexes: IndexManager, cube: CubeData) -> StoreRecallSource:
    """`cube` as recall reads it, through `tx` (a read transaction)."""
    return StoreRecallSource(tx, indexes, cube)
