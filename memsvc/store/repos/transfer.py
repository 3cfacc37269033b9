"""Moving a cube's rows in and out as they are: the streaming reads behind an export and
the inserts of an import, which keep the file's ids, versions and times.

An import writes records that already have a history, so it does not go through
`Records.insert` (which would make each a new version 1); its records reach the change log
through `Changes.append`. It writes them into a staging cube of a tenant no key belongs to,
in short transactions, and hands the cube to its tenant at the end (`hand_over`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from memsvc.store.data import EdgeData, EntityData, RecordData
from memsvc.store.orm import CubeRow, EdgeRow, EntityRow, RecordRow, VersionRow, utcnow
from memsvc.store.repos.graph import edges_for_cube, entities_for_cube
from memsvc.store.repos.records import RECORD_DEFAULTS, iter_cube_records

__all__ = ["Transfer"]


class Transfer:
    def __init__(self, s: Session) -> None:
        self._s = s

    # ---- export --------------------------------------------------------------------------------

    def records(self, cube_pk: int) -> Iterator[tuple[RecordData, bytes | None, bytes | None]]:
        """Every record of a cube (any status) with its stored embedding and sentence keys,
        in pk order, streamed in batches."""
        for row in iter_cube_records(self._s, cube_pk):
            yield RecordData.of(row), row.embedding, row.key_embeddings

    def entities(self, cube_pk: int) -> list[EntityData]:
        return [
            EntityData(pk=e.pk, name=e.name, normalized=e.normalized, type=e.type)
            for e in entities_for_cube(self._s, cube_pk)
        ]

    def edges(self, cube_pk: int) -> list[EdgeData]:
        return [
            EdgeData(
                pk=e.pk,
                type=e.type,
                src_kind=e.src_kind,
                src_pk=e.src_pk,
                dst_kind=e.dst_kind,
                dst_pk=e.dst_pk,
                weight=e.weight,
                meta=dict(e.meta or {}),
                created_at=e.created_at,
            )
            for e in edges_for_cube(self._s, cube_pk)
        ]

    # ---- import --------------------------------------------------------------------------------

    def add_record(
        self, cube_pk: int, values: dict[str, Any], versions: Sequence[dict[str, Any]]
    ) -> RecordData:
        """Insert one record as it was exported (`values`: its columns, `embedding` bytes
        included) with its versions (`record_pk` is filled in). Not in the change log yet:
        `Changes.append` it once its embedding is final."""
        v = {**RECORD_DEFAULTS, **values, "cube_pk": cube_pk}
        pk = self._s.scalar(insert(RecordRow).values(v).returning(RecordRow.pk))
        if versions:
            self._s.execute(insert(VersionRow), [{**x, "record_pk": pk} for x in versions])
        return RecordData.of(RecordRow(pk=pk, **v))

    def add_versions(self, record_pk: int, versions: Sequence[dict[str, Any]]) -> None:
        """More of a record's history, for a record already added."""
        if versions:
            self._s.execute(insert(VersionRow), [{**x, "record_pk": record_pk} for x in versions])

    def taken_ids(self, tenant_pk: int, ids: Sequence[str]) -> dict[str, bool]:
        """Which of `ids` some record already has (record ids are unique across the whole
        database), each with whether that record is in one of `tenant_pk`'s own cubes."""
        out: dict[str, bool] = {}
        for i in range(0, len(ids), 500):
            q = (
                select(RecordRow.id, CubeRow.tenant_pk)
                .join(CubeRow, CubeRow.pk == RecordRow.cube_pk)
                .where(RecordRow.id.in_(ids[i : i + 500]))
            )
            out.update({rid: owner == tenant_pk for rid, owner in self._s.execute(q)})
        return out

    def touch_cube(self, cube_pk: int, at: datetime) -> None:
        """Mark a staging cube as still being written (its `created_at` until handed over)."""
        self._s.execute(update(CubeRow).where(CubeRow.pk == cube_pk).values(created_at=at))

    def hand_over(self, cube_pk: int, tenant_pk: int, name: str, at: datetime) -> None:
        """Give a staging cube to its tenant under its name, created `at`."""
        self._s.execute(
            update(CubeRow)
            .where(CubeRow.pk == cube_pk)
            .values(tenant_pk=tenant_pk, name=name, created_at=at)
        )

    def add_entity(self, cube_pk: int, *, name: str, normalized: str, type: str) -> int:
        """A new entity node; returns its pk."""
        return int(
            self._s.scalar(
                insert(EntityRow)
                .values(cube_pk=cube_pk, name=name, normalized=normalized, type=type)
                .returning(EntityRow.pk)
            )
        )

    def add_edge(
        self,
        cube_pk: int,
        *,
        type: str,
        src: tuple[str, int],
        dst: tuple[str, int],
        weight: float,
        meta: dict[str, Any],
        created_at: datetime | None,
    ) -> None:
        """A graph edge between two nodes (kind, pk); `created_at` None: now."""
        self._s.add(
            EdgeRow(
                cube_pk=cube_pk,
                type=type,
                src_kind=src[0],
                src_pk=src[1],
                dst_kind=dst[0],
                dst_pk=dst[1],
                weight=weight,
                meta=meta,
                created_at=created_at or utcnow(),
            )
        )
