"""Coordination between workers that share one database: leases and token buckets.

Both are single short transactions, so they work the same on SQLite (writers queue on
BEGIN IMMEDIATE) and PostgreSQL (the row lock or the upsert serializes them). Times are Unix
seconds from the caller's clock; workers on several hosts need synchronized clocks (NTP).
"""

from __future__ import annotations

from sqlalchemy import case, func, literal, text
from sqlalchemy.dialects import postgresql, sqlite

from memsvc.store.database import Database
from memsvc.store.errors import StoreConflict
from memsvc.store.orm import LeaseRow, RateBucketRow

__all__ = ["acquire_lease", "release_lease", "take_token"]


def acquire_lease(db: Database, name: str, holder: str, ttl: float, now: float) -> bool:
    """Take or renew lease `name` for `ttl` seconds: True when `holder` has it now."""
    try:
        with db.write() as s:
            row = s.get(LeaseRow, name, with_for_update=True)
            if row is None:
                s.add(LeaseRow(name=name, holder=holder, expires_at=now + ttl))
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            row.holder = holder
            row.expires_at = now + ttl
            return True
    except StoreConflict:  # another worker inserted it first
        return False


def release_lease(db: Database, name: str, holder: str) -> None:
    """Give the lease up (on shutdown) so another worker takes it at its next tick."""
    with db.write() as s:
        row = s.get(LeaseRow, name, with_for_update=True)
        if row is not None and row.holder == holder:
            s.delete(row)


def take_token(db: Database, key: str, rate: float, burst: int, now: float) -> float:
    """One token from `key`'s bucket: 0 when granted, else the seconds until one is due."""
    dialect = db.write_engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    least = func.least if dialect == "postgresql" else func.min
    t = RateBucketRow.__table__
    elapsed = case((literal(now) > t.c.at, literal(now) - t.c.at), else_=literal(0.0))
    refill = least(literal(float(burst)), t.c.tokens + elapsed * rate)
    stmt = insert(t).values(key=key, tokens=float(burst) - 1.0, at=now, granted=True)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={
            "tokens": case((refill >= 1.0, refill - 1.0), else_=refill),
            "granted": refill >= 1.0,
            "at": literal(now),
        },
    ).returning(t.c.tokens, t.c.granted)
    with db.write() as s:
        if dialect == "postgresql":  # a bucket need not survive a crash: skip the WAL flush
            s.execute(text("SET LOCAL synchronous_commit TO OFF"))
        tokens, granted = s.execute(stmt).one()
    return 0.0 if granted else (1.0 - float(tokens)) / rate
