"""Idempotency keys of adds, claimed inside the add's own transaction.

An add with a key first claims it (`claim`), then writes its records and notes their pks on
the key (`finish`), all in one transaction: an acknowledged add always has its key, and an
add that failed has neither. A second add of the same key that races the first waits on the
key's primary key (PostgreSQL: the insert blocks until the first transaction ends; SQLite:
writers run one at a time) and then finds the first's key, committed, instead of writing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from memsvc.store.data import IdempotencyKeyData
from memsvc.store.orm import IdempotencyKeyRow

__all__ = ["IdempotencyKeys"]


def _data(row: IdempotencyKeyRow) -> IdempotencyKeyData:
    return IdempotencyKeyData(
        tenant_pk=row.tenant_pk,
        key=row.key,
        digest=row.digest,
        cube_pk=row.cube_pk,
        record_pks=tuple(int(p) for p in row.record_pks or ()),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class IdempotencyKeys:
    def __init__(self, s: Session) -> None:
        self._s = s

    def _row(self, tenant_pk: int, key: str) -> IdempotencyKeyRow | None:
        q = (
            select(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.tenant_pk == tenant_pk, IdempotencyKeyRow.key == key)
            .execution_options(populate_existing=True)
        )
        return self._s.scalar(q)

    def find(self, tenant_pk: int, key: str, now: datetime) -> IdempotencyKeyData | None:
        """The tenant's key, unless it expired (an expired key is as good as unknown)."""
        row = self._row(tenant_pk, key)
        return None if row is None or row.expires_at <= now else _data(row)

    def claim(
        self,
        tenant_pk: int,
        key: str,
        *,
        digest: str,
        cube_pk: int,
        now: datetime,
        expires_at: datetime,
    ) -> IdempotencyKeyData | None:
        """Take the key for this transaction's add: None when taken (write, then `finish`),
        else the key as an earlier add committed it (write nothing). An expired key is
        dropped and taken anew."""
        t = IdempotencyKeyRow.__table__
        self._s.execute(
            delete(t).where(t.c.tenant_pk == tenant_pk, t.c.key == key, t.c.expires_at <= now)
        )
        dialect = self._s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(t)
            .values(
                tenant_pk=tenant_pk,
                key=key,
                digest=digest,
                cube_pk=cube_pk,
                record_pks=[],
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=["tenant_pk", "key"])
            .returning(t.c.key)  # a row when inserted, none when the key was there
        )
        if self._s.execute(stmt).first() is not None:
            return None
        row = self._row(tenant_pk, key)
        if row is None:  # cannot happen: the conflicting row is committed and not expired
            raise RuntimeError(f"idempotency key {key!r} conflicted but is not there")
        return _data(row)

    def finish(self, tenant_pk: int, key: str, record_pks: list[int]) -> None:
        """Note the records the add wrote on its key (same transaction as `claim`)."""
        t = IdempotencyKeyRow.__table__
        self._s.execute(
            update(t)
            .where(t.c.tenant_pk == tenant_pk, t.c.key == key)
            .values(record_pks=[int(p) for p in record_pks])
        )

    def purge(self, now: datetime) -> int:
        """Drop every expired key; returns how many."""
        t = IdempotencyKeyRow.__table__
        return int(self._s.execute(delete(t).where(t.c.expires_at <= now)).rowcount or 0)
