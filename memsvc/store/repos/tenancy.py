"""Tenants and the read-only shares of cubes between them (API keys: `keys.py`)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from memsvc.store.orm import (
    CubeRow,
    CubeShareRow,
    TenantRow,
    utcnow,
)


def ensure_tenant(s: Session, name: str) -> TenantRow:
    row = s.scalar(select(TenantRow).where(TenantRow.name == name))
    if row is None:
        row = TenantRow(name=name, created_at=utcnow())
        s.add(row)
        s.flush()
    return row


def find_tenant(s: Session, name: str) -> TenantRow | None:
    return s.scalar(select(TenantRow).where(TenantRow.name == name))


def share_cube(s: Session, cube_pk: int, tenant_pk: int) -> CubeShareRow:
    row = s.scalar(
        select(CubeShareRow).where(
            CubeShareRow.cube_pk == cube_pk, CubeShareRow.tenant_pk == tenant_pk
        )
    )
    if row is None:
        row = CubeShareRow(cube_pk=cube_pk, tenant_pk=tenant_pk, mode="read", created_at=utcnow())
        s.add(row)
        s.flush()
    return row


def unshare_cube(s: Session, cube_pk: int, tenant_pk: int) -> None:
    s.execute(
        delete(CubeShareRow).where(
            CubeShareRow.cube_pk == cube_pk, CubeShareRow.tenant_pk == tenant_pk
        )
    )


def shares_of(s: Session, cube_pk: int) -> list[str]:
    """Names of the tenants a cube is shared with."""
    return list(
        s.scalars(
            select(TenantRow.name)
            .join(CubeShareRow, CubeShareRow.tenant_pk == TenantRow.pk)
            .where(CubeShareRow.cube_pk == cube_pk)
            .order_by(TenantRow.name)
        )
    )


def shared_cubes(s: Session, tenant_pk: int) -> list[CubeRow]:
    return list(
        s.scalars(
            select(CubeRow)
            .join(CubeShareRow, CubeShareRow.cube_pk == CubeRow.pk)
            .where(CubeShareRow.tenant_pk == tenant_pk)
            .order_by(CubeRow.pk)
        )
    )


class Tenancy:
    """Tenants and shares, for the core (snapshots out, names in)."""

    def __init__(self, s: Session) -> None:
        self._s = s

    def ensure(self, name: str) -> int:
        """The tenant's pk, creating the tenant on first use."""
        return ensure_tenant(self._s, name).pk

    def find(self, name: str) -> int | None:
        row = find_tenant(self._s, name)
        return None if row is None else row.pk

    def share(self, cube_pk: int, tenant: str) -> None:
        share_cube(self._s, cube_pk, ensure_tenant(self._s, tenant).pk)

    def unshare(self, cube_pk: int, tenant: str) -> None:
        """Revoke a share; a tenant it was never shared with (or none of that name) is a
        no-op, and no tenant is created for it."""
        row = find_tenant(self._s, tenant)
        if row is not None:
            unshare_cube(self._s, cube_pk, row.pk)

    def shares_of(self, cube_pk: int) -> list[str]:
        return shares_of(self._s, cube_pk)
