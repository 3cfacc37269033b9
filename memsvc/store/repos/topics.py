"""A cube's topic tree: topics (level 0) and subtopics (level 1) with their centroids, and the
`part_of` edges that hang records below subtopics and subtopics below topics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from memsvc.store.orm import EdgeRow, TopicRow
from memsvc.store.precision import encode_stored

__all__ = ["TopicData", "Topics"]


@dataclass(frozen=True, slots=True)
class TopicData:
    pk: int
    parent_pk: int | None
    level: int
    label: str
    size: int
    built_n: int
    centroid: np.ndarray | None  # float32, as stored (not normalized)


class Topics:
    def __init__(self, s: Session) -> None:
        self._s = s

    def built_n(self, cube_pk: int) -> int | None:
        """How many records the cube had when its tree was built; None: it has no tree."""
        return self._s.scalar(
            select(TopicRow.built_n).where(TopicRow.cube_pk == cube_pk, TopicRow.level == 0)
        )

    def placed(self, cube_pk: int) -> set[int]:
        """pks of the records that hang in the tree (a `part_of` edge from the record)."""
        return set(
            self._s.scalars(
                select(EdgeRow.src_pk).where(
                    EdgeRow.cube_pk == cube_pk,
                    EdgeRow.type == "part_of",
                    EdgeRow.src_kind == "record",
                )
            )
        )

    def holds(self, cube_pk: int, record_pk: int) -> bool:
        """Whether the record hangs in the cube's tree (so its text may be in the labels)."""
        q = select(EdgeRow.pk).where(
            EdgeRow.cube_pk == cube_pk,
            EdgeRow.type == "part_of",
            EdgeRow.src_kind == "record",
            EdgeRow.src_pk == record_pk,
        )
        return self._s.scalar(q.limit(1)) is not None

    def subtopics(self, cube_pk: int) -> list[TopicData]:
        rows = self._s.scalars(
            select(TopicRow).where(TopicRow.cube_pk == cube_pk, TopicRow.level == 1)
        )
        return [
            TopicData(
                pk=t.pk,
                parent_pk=t.parent_pk,
                level=t.level,
                label=t.label,
                size=t.size,
                built_n=t.built_n,
                centroid=None if t.centroid is None else np.frombuffer(t.centroid, np.float32),
            )
            for t in rows
        ]

    def clear(self, cube_pk: int) -> None:
        """Remove the cube's tree: its topics and every `part_of` edge."""
        self._s.execute(
            delete(EdgeRow).where(EdgeRow.cube_pk == cube_pk, EdgeRow.type == "part_of")
        )
        self._s.execute(delete(TopicRow).where(TopicRow.cube_pk == cube_pk))

    def add(
        self,
        cube_pk: int,
        *,
        parent_pk: int | None,
        level: int,
        label: str,
        size: int,
        built_n: int,
        centroid: np.ndarray,
        at: datetime,
    ) -> int:
        """A new topic (its centroid stored as float32); its pk."""
        row = TopicRow(
            cube_pk=cube_pk,
            parent_pk=parent_pk,
            level=level,
            label=label,
            size=size,
            built_n=built_n,
            centroid=encode_stored(centroid, "float32"),
            created_at=at,
            updated_at=at,
        )
        self._s.add(row)
        self._s.flush()
        return row.pk

    def grow(self, sizes: Mapping[int, int], at: datetime) -> None:
        """Add `sizes[pk]` records to each of these topics' sizes."""
        if not sizes:
            return
        for row in self._s.scalars(select(TopicRow).where(TopicRow.pk.in_(set(sizes)))):
            row.size += sizes[row.pk]
            row.updated_at = at
