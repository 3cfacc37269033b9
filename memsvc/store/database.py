"""Database access: engines, one-transaction sessions and schema migration.

SQLite (WAL) by default, any SQLAlchemy URL otherwise. On SQLite, writes use a separate
engine that starts transactions with BEGIN IMMEDIATE, so concurrent writers (threads or
processes) queue on the lock instead of failing to upgrade a read lock; reads stay deferred
and never block each other.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from memsvc import tracing
from memsvc.store.errors import StoreConflict, StoreError
from memsvc.store.tx import Tx

__all__ = ["MIGRATIONS_DIR", "Database", "alembic_config"]

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=16
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        # synchronous=FULL: a committed (acknowledged) write survives power loss too.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # secure_delete: what a delete frees is zeroed, not left readable in the file.
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


class Database:
    """Owns the engines; hands out sessions that are one transaction each."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if not path or path == ":memory:":
                raise StoreError("SQLite needs a file path; in-memory databases are not shared")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            self.write_engine = create_engine(url, pool_pre_ping=True)
            self.read_engine = self.write_engine
        self._span_attrs = {"db.system": self.write_engine.dialect.name}
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest revision; existing data is migrated, never dropped."""
        try:
            command.upgrade(alembic_config(self.write_engine), "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"database migration failed: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back whole on any error.
        Traced as one `db.write` span (not one per statement)."""
        with tracing.span("db.write", self._span_attrs), self._write_sessions() as session:
            try:
                with session.begin():
                    yield session
            except IntegrityError as exc:
                raise StoreConflict(f"conflicting write: {exc.orig}") from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"database write failed: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One read transaction (one snapshot), traced as one `db.read` span."""
        with tracing.span("db.read", self._span_attrs), self._read_sessions() as session:
            try:
                with session.begin():
                    yield session
            except SQLAlchemyError as exc:
                raise StoreError(f"database read failed: {exc}") from exc

    @contextmanager
    def writing(self) -> Iterator[Tx]:
        """`write()` as the core sees it: repositories, no session."""
        with self.write() as s:
            yield Tx(s, is_sqlite=self.is_sqlite)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self.read() as s:
            yield Tx(s, is_sqlite=self.is_sqlite)

    def checkpoint(self) -> bool:
        """Move the WAL into the database file and empty it, after a hard delete: the WAL's
        older frames still hold the pages as they were before (secure_delete zeroes only
        the database file). Best effort: behind a writer or a reader of an older snapshot
        it gives up after 2 s and the text stays in the WAL until a later checkpoint
        overwrites it. Whether the WAL was emptied (always True off SQLite)."""
        if not self.is_sqlite:
            return True
        raw = self.write_engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA busy_timeout=2000")
            try:
                busy = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        except (sqlite3.Error, SQLAlchemyError) as exc:  # the delete itself is committed
            log.warning("WAL checkpoint after a hard delete failed: %s", exc)
            return False
        finally:
            raw.close()
        return busy == 0

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
