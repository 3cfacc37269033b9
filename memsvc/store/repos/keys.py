"""API keys: rows of a key id and a hash of its secret, each belonging to one tenant."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from memsvc.store.data import ApiKeyData
from memsvc.store.orm import ApiKeyRow, TenantRow, utcnow

__all__ = ["ApiKeys", "add_api_key", "find_api_key", "list_api_keys"]


def add_api_key(
    s: Session, tenant_pk: int, *, key_id: str, secret_hash: str, name: str | None
) -> ApiKeyRow:
    row = ApiKeyRow(
        key_id=key_id,
        tenant_pk=tenant_pk,
        secret_hash=secret_hash,
        name=name,
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return row


def find_api_key(s: Session, key_id: str) -> ApiKeyRow | None:
    return s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))


def list_api_keys(s: Session, tenant_pk: int | None = None) -> list[ApiKeyRow]:
    q = select(ApiKeyRow).order_by(ApiKeyRow.pk)
    if tenant_pk is not None:
        q = q.where(ApiKeyRow.tenant_pk == tenant_pk)
    return list(s.scalars(q))


def _key(row: ApiKeyRow) -> ApiKeyData:
    return ApiKeyData(
        pk=row.pk,
        key_id=row.key_id,
        tenant_pk=row.tenant_pk,
        tenant=row.tenant.name,
        secret_hash=row.secret_hash,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeys:
    """API keys, for the core (snapshots out)."""

    def __init__(self, s: Session) -> None:
        self._s = s

    def add(self, tenant_pk: int, *, key_id: str, secret_hash: str, name: str | None) -> ApiKeyData:
        row = add_api_key(self._s, tenant_pk, key_id=key_id, secret_hash=secret_hash, name=name)
        row.tenant = self._s.get(TenantRow, tenant_pk)  # usually in the session already
        return _key(row)

    def find(self, key_id: str) -> ApiKeyData | None:
        row = find_api_key(self._s, key_id)
        return None if row is None else _key(row)

    def all(self, tenant_pk: int | None = None) -> list[ApiKeyData]:
        """Every key (of one tenant, or of all), oldest first."""
        return [_key(r) for r in list_api_keys(self._s, tenant_pk)]

    def revoke(self, key_id: str) -> ApiKeyData | None:
        """Mark the key revoked now (a key revoked before keeps its time); None if unknown."""
        row = find_api_key(self._s, key_id)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _key(row)
