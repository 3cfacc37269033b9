"""`Tx`: one database transaction, as the core sees it: repositories by job, no SQL, no rows.

    with db.writing() as tx:
        added = tx.records.insert(cube, fields)
        tx.graph.link_entities(cube.pk, mentions)

Everything a repository returns is a frozen snapshot (`memsvc/store/data.py`); the session
stays inside the store. `Database.reading()` / `.writing()` hand these out.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.orm import Session

from memsvc.store.repos.changes import Changes
from memsvc.store.repos.cubes import Cubes
from memsvc.store.repos.graph import Graph
from memsvc.store.repos.idempotency import IdempotencyKeys
from memsvc.store.repos.keys import ApiKeys
from memsvc.store.repos.lifecycle import Lifecycle
from memsvc.store.repos.queries import Queries
from memsvc.store.repos.records import Records
from memsvc.store.repos.runs import Runs
from memsvc.store.repos.tenancy import Tenancy
from memsvc.store.repos.tiers import TierRecords
from memsvc.store.repos.topics import Topics
from memsvc.store.repos.transfer import Transfer
from memsvc.store.repos.versions import Versions

__all__ = ["Tx"]


class Tx:
    """The repositories of one transaction (created on first use; they share the session)."""

    def __init__(self, session: Session, *, is_sqlite: bool) -> None:
        self._s = session
        self.is_sqlite = is_sqlite

    @cached_property
    def tenancy(self) -> Tenancy:
        return Tenancy(self._s)

    @cached_property
    def cubes(self) -> Cubes:
        return Cubes(self._s)

    @cached_property
    def records(self) -> Records:
        return Records(self._s, is_sqlite=self.is_sqlite)

    @cached_property
    def versions(self) -> Versions:
        return Versions(self._s)

    @cached_property
    def changes(self) -> Changes:
        return Changes(self._s)

    @cached_property
    def graph(self) -> Graph:
        return Graph(self._s)

    @cached_property
    def topics(self) -> Topics:
        return Topics(self._s)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self._s)

    @cached_property
    def queries(self) -> Queries:
        return Queries(self._s)

    @cached_property
    def tiers(self) -> TierRecords:
        return TierRecords(self._s, is_sqlite=self.is_sqlite)

    @cached_property
    def idempotency(self) -> IdempotencyKeys:
        return IdempotencyKeys(self._s)

    @cached_property
    def keys(self) -> ApiKeys:
        return ApiKeys(self._s)

    @cached_property
    def runs(self) -> Runs:
        return Runs(self._s)

    @cached_property
    def transfer(self) -> Transfer:
        return Transfer(self._s)

    def session(self) -> Session:
        """For the store's own modules (indexes, recall reads) only."""
        return self._s
