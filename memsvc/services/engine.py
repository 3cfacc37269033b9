"""`Engine`: the composition root. One per data directory, shared by every tenant's view.

It builds the parts once (database, indexes, embedder, tiers, keys, limiter, reinforcer) and
holds the two small caches every service reads through: tenant pks and the recall path's cube
lookups.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from memsvc.clock import Clock
from memsvc.config import Settings
from memsvc.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.forgetting import Reinforcer
from memsvc.keys import KeyManager
from memsvc.maintenance import CubeLocks
from memsvc.organize import TopicNamer
from memsvc.ratelimit import LocalRateLimiter, RateLimiter, SharedRateLimiter
from memsvc.retrieval.analyze import text_doc
from memsvc.store.data import CubeData
from memsvc.store.database import Database
from memsvc.store.errors import StoreConflict
from memsvc.store.indexes import IndexManager
from memsvc.store.tx import Tx
from memsvc.store.vector_index import set_search_threads
from memsvc.tiers import Tiers

__all__ = ["Engine"]

# Recall's cube lookups remembered at most (each for `index_sync_seconds`): a worker serving
# many tenants would otherwise keep one entry for every cube it ever served.
_RECALL_CUBES_KEPT = 4096


class Engine:
    """What every tenant view of one data directory shares: database, indexes, embedder."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None,
        clock: Clock,
        topic_namer: TopicNamer | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.topic_namer = topic_namer
        self.policy = settings.forget_policy()
        settings.home.mkdir(parents=True, exist_ok=True)
        set_search_threads(settings.search_threads)
        self.db = Database(settings.resolved_database_url())
        self.db.migrate()
        self.indexes = IndexManager(
            self.db,
            settings.home / "indexes",
            flush_seconds=settings.index_flush_seconds,
            file_min_vectors=settings.index_file_min_vectors,
            sync_seconds=settings.index_sync_seconds,
            search_mode=settings.search_mode,
            oversample=settings.search_oversample,
            analyzer=text_doc,
            memory_bytes=settings.index_memory_bytes,
        )
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            settings.embedding_model,
            threads=settings.embed_threads,
            query_threads=settings.query_threads,
            backend=settings.embed_backend,
            cache_dir=settings.cache_dir,
            batch_size=settings.embed_batch_size,
            query_precision=settings.query_precision,
        )
        self.keys = KeyManager(self.db, cache_seconds=settings.auth_cache_seconds)
        self.rate_limiter: RateLimiter = (
            SharedRateLimiter(self.db, settings.rate_limit_per_second, settings.rate_limit_burst)
            if settings.rate_limit_shared
            else LocalRateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        )
        self.reinforcer = Reinforcer(
            self.db, self.policy, flush_seconds=settings.reinforce_flush_seconds
        )
        self.locks = CubeLocks()
        self.tiers = Tiers(
            self.db,
            settings.home,
            lm_path=settings.lm_path,
            lm_threads=settings.lm_threads,
            budget_bytes=settings.activation_budget_bytes,
            max_tokens=settings.activation_max_tokens,
        )
        self._tenants: dict[str, int] = {}
        self._cubes: dict[tuple[int, str, bool], tuple[CubeData, float]] = {}
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock.now()

    def tenant_pk(self, name: str) -> int:
        with self._lock:
            pk = self._tenants.get(name)
        if pk is None:
            try:
                with self.db.writing() as tx:
                    pk = tx.tenancy.ensure(name)
            except StoreConflict:  # created by another process meanwhile
                with self.db.writing() as tx:
                    pk = tx.tenancy.ensure(name)
            with self._lock:
                self._tenants[name] = pk
        return pk

    def recall_cube(self, tx: Tx, tenant_pk: int, ref: str, *, by_name: bool) -> CubeData | None:
        """Cube lookup for recall, remembered for `index_sync_seconds` like the index itself:
        a deletion made in this process applies at once, one from another process within it."""
        key = (tenant_pk, ref, by_name)
        now = time.monotonic()
        hit = self._cubes.get(key)
        if hit is not None and now - hit[1] < self.settings.index_sync_seconds:
            return hit[0]
        if by_name:
            row = tx.cubes.find(tenant_pk, name=ref)
        else:
            found = tx.cubes.resolve(tenant_pk, ref)
            row = found[0] if found is not None else None
        if row is None:
            self._cubes.pop(key, None)
        else:
            if len(self._cubes) >= _RECALL_CUBES_KEPT:  # one entry per cube ever recalled else
                ttl = self.settings.index_sync_seconds
                for k, (_, at) in list(self._cubes.items()):
                    if now - at >= ttl:
                        self._cubes.pop(k, None)
                if len(self._cubes) >= _RECALL_CUBES_KEPT:
                    self._cubes.clear()
            self._cubes[key] = (row, now)
        return row

    def forget_cube(self, cube_pk: int) -> None:
        for key, (row, _) in list(self._cubes.items()):
            if row.pk == cube_pk:
                self._cubes.pop(key, None)

    def close(self) -> None:
        self.reinforcer.flush()
        self.indexes.flush()
        self.db.dispose()
