"""Cubes: lookup by name or id (own or shared), creation, listing, counts, deletion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from memsvc.store.data import CubeData
from memsvc.store.orm import (
    ChangeRow,
    CubeRow,
    CubeShareRow,
    EdgeRow,
    EntityRow,
    RecallEventRow,
    RecordRow,
    VersionRow,
    utcnow,
)
from memsvc.store.repos.records import new_id
from memsvc.store.repos.tenancy import shared_cubes


def find_cube(s: Session, tenant_pk: int, *, name: str | None = None, id: str | None = None):
    q = select(CubeRow).where(CubeRow.tenant_pk == tenant_pk)
    q = q.where(CubeRow.name == name) if name is not None else q.where(CubeRow.id == id)
    return s.scalar(q)


def resolve_cube(s: Session, tenant_pk: int, ref: str) -> tuple[CubeRow, str] | None:
    """(cube, access) for a name or id: the tenant's own cube ("owner") first, else a cube
    shared with it ("read", by id only: names are only unique within their owner)."""
    own = find_cube(s, tenant_pk, name=ref) or find_cube(s, tenant_pk, id=ref)
    if own is not None:
        return own, "owner"
    shared = s.scalar(
        select(CubeRow)
        .join(CubeShareRow, CubeShareRow.cube_pk == CubeRow.pk)
        .where(CubeShareRow.tenant_pk == tenant_pk, CubeRow.id == ref)
    )
    return (shared, "read") if shared is not None else None


def create_cube(
    s: Session,
    tenant_pk: int,
    *,
    name: str,
    embedding_model: str,
    embedding_dim: int,
    description: str | None = None,
    owner_user_id: str | None = None,
    meta: dict[str, Any] | None = None,
    id: str | None = None,
    created_at: datetime | None = None,
    search_mode: str | None = None,
    refuse_duplicates: bool = False,
) -> CubeRow:
    row = CubeRow(
        search_mode=search_mode,
        refuse_duplicates=refuse_duplicates,
        id=id or new_id(),
        tenant_pk=tenant_pk,
        name=name,
        description=description,
        owner_user_id=owner_user_id,
        embedding_model=embedding_model,
        embedding_dim=embedding_dim,
        meta=meta or {},
        created_at=created_at or utcnow(),
    )
    s.add(row)
    s.flush()
    return row


def all_cubes(s: Session) -> list[CubeRow]:
    return list(s.scalars(select(CubeRow).order_by(CubeRow.pk)))


def list_cubes(s: Session, tenant_pk: int) -> list[CubeRow]:
    return list(
        s.scalars(select(CubeRow).where(CubeRow.tenant_pk == tenant_pk).order_by(CubeRow.pk))
    )


def cube_record_counts(s: Session, cube_pks: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per cube, the number of records in each status."""
    out: dict[int, dict[str, int]] = {pk: {} for pk in cube_pks}
    if not cube_pks:
        return out
    rows = s.execute(
        select(RecordRow.cube_pk, RecordRow.status, func.count())
        .where(RecordRow.cube_pk.in_(cube_pks))
        .group_by(RecordRow.cube_pk, RecordRow.status)
    )
    for cube_pk, status, n in rows:
        out[cube_pk][status] = n
    return out


def delete_cube(s: Session, cube: CubeRow) -> None:
    record_pks = select(RecordRow.pk).where(RecordRow.cube_pk == cube.pk)
    s.execute(delete(VersionRow).where(VersionRow.record_pk.in_(record_pks)))
    s.execute(delete(RecordRow).where(RecordRow.cube_pk == cube.pk))
    s.execute(delete(EdgeRow).where(EdgeRow.cube_pk == cube.pk))
    s.execute(delete(EntityRow).where(EntityRow.cube_pk == cube.pk))
    s.execute(delete(ChangeRow).where(ChangeRow.cube_pk == cube.pk))
    s.execute(delete(RecallEventRow).where(RecallEventRow.cube_pk == cube.pk))
    s.execute(delete(CubeShareRow).where(CubeShareRow.cube_pk == cube.pk))
    s.delete(cube)


class Cubes:
    """Cube lookups and changes, for the core (snapshots out)."""

    def __init__(self, s: Session) -> None:
        self._s = s

    def find(
        self, tenant_pk: int, *, name: str | None = None, id: str | None = None
    ) -> CubeData | None:
        row = find_cube(self._s, tenant_pk, name=name, id=id)
        return None if row is None else CubeData.of(row)

    def resolve(self, tenant_pk: int, ref: str) -> tuple[CubeData, str] | None:
        found = resolve_cube(self._s, tenant_pk, ref)
        return None if found is None else (CubeData.of(found[0]), found[1])

    def create(self, tenant_pk: int, **fields: Any) -> CubeData:
        return CubeData.of(create_cube(self._s, tenant_pk, **fields))

    def owned(self, tenant_pk: int) -> list[CubeData]:
        return [CubeData.of(r) for r in list_cubes(self._s, tenant_pk)]

    def shared_with(self, tenant_pk: int) -> list[CubeData]:
        return [CubeData.of(r) for r in shared_cubes(self._s, tenant_pk)]

    def all(self) -> list[CubeData]:
        return [CubeData.of(r) for r in all_cubes(self._s)]

    def by_pk(self, pk: int) -> CubeData | None:
        row = self._s.get(CubeRow, pk)
        return None if row is None else CubeData.of(row)

    def record_counts(self, cube_pks: Sequence[int]) -> dict[int, dict[str, int]]:
        return cube_record_counts(self._s, cube_pks)

    def delete(self, cube_pk: int) -> None:
        row = self._s.get(CubeRow, cube_pk)
        if row is not None:
            delete_cube(self._s, row)
