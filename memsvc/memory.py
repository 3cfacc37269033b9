"""`Memory`: the embedded SDK, a facade over the services in `memsvc/services/`.

    from memsvc import Memory

    with Memory("./.memsvc") as mem:
        mem.add("Alice moved to Berlin in May.", user_id="alice")
        hits = mem.recall("Where does Alice live?", user_id="alice")

Each user gets a default cube (`user:<user_id>`) created on first add; pass `cube=` to use a
named cube made with `create_cube`. Every write is one database transaction; vector indexes
follow the database's change log and are rebuilt from it when needed.

Each method here is one delegation to the service that does the job (cubes, ingest, recall,
reads, lifecycle, tiers, transfer, admin) and the one place where store failures become the
public error tree (`_translated`). It is longer than our other modules because it carries the
SDK's whole surface (about 40 methods, each with its signature and docstring); no logic
lives here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from memsvc import tracing
from memsvc.clock import Clock, SystemClock
from memsvc.config import Settings, get_settings
from memsvc.embedder import Embedder
from memsvc.errors import Conflict, MemsvcError, StorageError
from memsvc.keys import KeyManager
from memsvc.lm import LocalLM
from memsvc.maintenance import Lease
from memsvc.models import (
    Added,
    Cube,
    Filters,
    Generation,
    GraphPage,
    Hit,
    IndexCache,
    IndexInfo,
    MaintenanceRun,
    MemoryRecord,
    Message,
    Neighbor,
    Page,
    RecordVersion,
)
from memsvc.organize import TopicNamer
from memsvc.ratelimit import RateLimiter
from memsvc.retrieval.recipe import Recipe
from memsvc.services.admin import AdminService
from memsvc.services.cubes import CubeService, default_cube_name
from memsvc.services.engine import Engine
from memsvc.services.ingest import IngestService
from memsvc.services.lifecycle import LifecycleService
from memsvc.services.reads import ReadService, StatusArg
from memsvc.services.recall import RecallService
from memsvc.services.tiers import TierName, TierService
from memsvc.services.transfer import TransferService
from memsvc.store.errors import StoreConflict, StoreError
from memsvc.validation import check_ident

__all__ = ["Memory", "default_cube_name"]

P = ParamSpec("P")
T = TypeVar("T")
Progress = Callable[[int, int | None], None]
DEFAULT_TENANT = "local"


def _public_error(exc: StoreError) -> MemsvcError:
    return Conflict(str(exc)) if isinstance(exc, StoreConflict) else StorageError(str(exc))


def _root_span(name: str, handle: Any) -> Any:
    """The span of one SDK call (`memsvc.<method>`): the root of an embedded call's trace,
    a child of the request's span over HTTP. The tenant only as a hash."""
    if not tracing.active():
        return tracing.span(name)  # the shared do-nothing one
    return tracing.span(name, {"memsvc.tenant_hash": tracing.digest(handle._tenant)})


def _translated(fn: Callable[P, T]) -> Callable[P, T]:
    """Map store failures onto the public error tree at the SDK boundary (sync or async),
    and trace each call (a do-nothing span while tracing is off)."""
    name = f"memsvc.{fn.__name__}"
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with _root_span(name, args[0]):
                try:
                    return await fn(*args, **kwargs)
                except StoreError as exc:
                    raise _public_error(exc) from exc

        return awrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with _root_span(name, args[0]):
            try:
                return fn(*args, **kwargs)
            except StoreError as exc:
                raise _public_error(exc) from exc

    return wrapper


class Memory:
    """Embedded memory service on a local data directory (SQLite + FAISS by default).

    Parameters:
        path: data directory (default `$MEMSVC_HOME`, else `./.memsvc`).
        database_url: any SQLAlchemy URL; default SQLite inside `path`.
        settings: a full `Settings`; `path`/`database_url` override its fields.
        embedder: an `Embedder`; default the bundled all-MiniLM-L6-v2 (or
            `settings.embedding_model`). Share one across instances to load the model once.
        tenant: whose data this handle sees; the embedded default is "local".
        clock: where "now" comes from (default the system clock); a `ManualClock` lets a
            test or an eval age a cube by months, or ingest a conversation at its own dates.
        topic_namer: names the topics of the topic tree (e.g. with an LLM): called with a
            sample of a topic's texts, returns a name or None for the keyword name.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        tenant: str = DEFAULT_TENANT,
        clock: Clock | None = None,
        topic_namer: TopicNamer | None = None,
    ) -> None:
        settings = settings or get_settings()
        tracing.setup_from_env()  # OTEL_* may ask for traces (memsvc/tracing.py)
        update: dict[str, Any] = {}
        if path is not None:
            update["home"] = Path(path).expanduser()
        if database_url is not None:
            update["database_url"] = database_url
        if update:
            settings = settings.model_copy(update=update)
        try:
            engine = Engine(settings, embedder, clock or SystemClock(), topic_namer)
        except StoreError as exc:
            raise StorageError(str(exc)) from exc
        self._attach(engine, tenant, owner=True)

    def _attach(self, engine: Engine, tenant: str, *, owner: bool) -> None:
        """Wire the services of one tenant's view; every view shares the engine."""
        self._engine = engine
        self._tenant = tenant
        self._owner = owner
        self._cubes = cubes = CubeService(engine, tenant)
        self._recall = RecallService(cubes)
        self._reads = ReadService(cubes)
        self._tiers = TierService(cubes, self.get, self.recall)
        self._ingest = IngestService(cubes, self._tiers.restore)
        self._lifecycle = LifecycleService(cubes, self._tiers.files_gone)
        self._transfer = TransferService(cubes)
        self._admin = AdminService(cubes)

    def for_tenant(self, tenant: str) -> Memory:
        """A handle on the same data directory that sees only `tenant`'s cubes."""
        check_ident(tenant, field="tenant", required=True)
        view = Memory.__new__(Memory)
        view._attach(self._engine, tenant, owner=False)
        return view

    @property
    def settings(self) -> Settings:
        return self._engine.settings

    @property
    def embedder(self) -> Embedder:
        return self._engine.embedder

    @property
    def keys(self) -> KeyManager:
        """API key administration for the service (all tenants)."""
        return self._admin.keys

    @property
    def rate_limiter(self) -> RateLimiter:
        """Requests per API key: in this process, or shared through the database."""
        return self._admin.rate_limiter

    def maintenance_lease(self, ttl: float) -> Lease:
        """The lease that lets one of several workers on this database run the scheduled
        maintenance (`memsvc serve` takes it at each tick).
        """
        return self._admin.maintenance_lease(ttl)

    def maintain_due(self) -> list[MaintenanceRun]:
        """The scheduled tick of `memsvc serve`: maintenance of the cubes with something to do
        (a change or a recall since their last run, or a last run `maintain_idle_seconds`
        old), every tenant's; `maintain_all` runs every cube.
        """
        return self._admin.maintain_all(only_due=True)

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def local_lm(self) -> LocalLM:
        """The local LM of the tiers (loaded on first use): for measuring, e.g. `nll`."""
        return self._tiers.local_lm

    def close(self) -> None:
        """Save unsaved index changes and release the database (owner handle only)."""
        if self._owner:
            self._engine.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- cubes (memsvc/services/cubes.py) ------------------------------------------------------

    @_translated
    def create_cube(
        self,
        name: str,
        *,
        description: str | None = None,
        owner_user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        search_mode: str | None = None,
        refuse_duplicates: bool = False,
    ) -> Cube:
        """Create a named cube; `Conflict` if this tenant already has one of that name.
        `search_mode` ("exact", "int8", "binary+rescore") overrides the service default.
        `refuse_duplicates=True`: an add of an active record's exact text (same user and
        session) is refused with `DuplicateRecord` naming that record.
        """
        return self._cubes.create_cube(
            name,
            description=description,
            owner_user_id=owner_user_id,
            metadata=metadata,
            search_mode=search_mode,
            refuse_duplicates=refuse_duplicates,
        )

    @_translated
    def get_cube(self, cube: str) -> Cube:
        return self._cubes.get_cube(cube)

    @_translated
    def list_cubes(self) -> list[Cube]:
        """Your cubes, then the cubes other tenants shared with you (access "read")."""
        return self._cubes.list_cubes()

    @_translated
    def delete_cube(self, cube: str) -> None:
        """Delete a cube with all its records, history, graph and index file."""
        self._cubes.delete_cube(cube)

    @_translated
    def share_cube(self, cube: str, tenant: str) -> Cube:
        """Grant `tenant` read-only access to one of your cubes (by its id on their side)."""
        return self._cubes.share_cube(cube, tenant)

    @_translated
    def unshare_cube(self, cube: str, tenant: str) -> Cube:
        """Revoke `tenant`'s read access to one of your cubes (a no-op if it had none)."""
        return self._cubes.unshare_cube(cube, tenant)

    # ---- writes (memsvc/services/ingest.py, lifecycle.py) --------------------------------------

    @_translated
    def add(
        self,
        text: str | Sequence[str] | None = None,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        cube: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: datetime | str | float | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        pinned: bool = False,
        idempotency_key: str | None = None,
    ) -> Added:
        """Store text (one record per string) or chat messages (one episode per message).

        `timestamp` is when it happened (the event time; default now); a message's own
        `timestamp` wins over it. `pinned` records never fade. A record that states a newer
        value of a fact an older one states ("I moved to Berlin" after "I live in Paris")
        closes the older one (memsvc/supersession.py). Returns the created records in input
        order.

        `idempotency_key` (1-255 visible ASCII characters, e.g. a UUID) makes a retry safe:
        a repeat of the key with the same request within `MEMSVC_IDEMPOTENCY_TTL_SECONDS`
        writes nothing and returns the first add's records (`.replayed` is True); with
        another request it raises `IdempotencyKeyReused`. In a cube created with
        `refuse_duplicates=True`, an active record's exact text (same user and session)
        raises `DuplicateRecord`.
        """
        return self._ingest.add(
            text,
            messages,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            cube=cube,
            metadata=metadata,
            timestamp=timestamp,
            kind=kind,
            tags=tags,
            importance=importance,
            pinned=pinned,
            idempotency_key=idempotency_key,
        )

    @_translated
    def update(
        self,
        id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        kind: str | None = None,
        event_time: datetime | str | float | None = None,
        valid_from: datetime | str | float | None = None,
        valid_to: datetime | str | float | None = None,
        pinned: bool | None = None,
    ) -> MemoryRecord:
        """Change a record; the previous version stays in `history(id)`.

        `metadata` replaces the whole metadata dict; new text is re-embedded. `pinned=True`
        keeps a record from fading (retention stays 1).
        """
        self._ingest.update(
            id,
            text=text,
            metadata=metadata,
            tags=tags,
            importance=importance,
            kind=kind,
            event_time=event_time,
            valid_from=valid_from,
            valid_to=valid_to,
            pinned=pinned,
        )
        return self.get(id)

    @_translated
    def delete(self, id: str, *, hard: bool = False) -> None:
        """Soft delete (default): kept with status `deleted`, excluded from recall, listed on
        request, visible in history. `hard=True` purges the record, its history, its graph
        edges and index entries, and what was derived from it: the KV caches and adapters
        built from it, entities only it named, the topic tree it hung in (README: "What a
        hard delete removes").
        """
        self._lifecycle.delete(id, hard=hard)

    @_translated
    def restore(self, id: str) -> MemoryRecord:
        """Bring back an archived (faded or merged) or soft-deleted record: active again,
        retention reset to 1 as if just recalled, its vector re-embedded at full precision.
        """
        unchanged = self._ingest.restore(id)
        return unchanged if unchanged is not None else self.get(id)

    # ---- reads (memsvc/services/reads.py) ------------------------------------------------------

    @_translated
    def get(self, id: str) -> MemoryRecord:
        return self._reads.get(id)

    @_translated
    def lineage(self, id: str) -> list[MemoryRecord]:
        """The supersession chain through a record, oldest first: each record was closed
        (valid_to) by the next ("I live in Paris" -> "I moved to Berlin" -> ...).
        """
        return self._reads.lineage(id)

    @_translated
    def history(self, id: str) -> list[RecordVersion]:
        """Every version of a record, oldest first (version 1 is the record as created)."""
        return self._reads.history(id)

    @_translated
    def list(
        self,
        *,
        user_id: str | None = None,
        cube: str | None = None,
        filters: Filters | dict[str, Any] | None = None,
        status: StatusArg = "active",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Records of a cube (the user's default cube unless `cube` is given), oldest first."""
        return self._reads.list(
            user_id=user_id, cube=cube, filters=filters, status=status, limit=limit, cursor=cursor
        )

    @_translated
    def graph(
        self,
        cube: str,
        *,
        types: Sequence[str] | str | None = None,
        limit: int = 200,
        cursor: str | None = None,
    ) -> GraphPage:
        """A page of the cube's graph: edges (of `types`, oldest first) and the nodes they
        touch; pass `next_cursor` back for the next page.
        """
        return self._reads.graph(cube, types=types, limit=limit, cursor=cursor)

    @_translated
    def neighbors(
        self, id: str, *, types: Sequence[str] | str | None = None, depth: int = 1
    ) -> list[Neighbor]:
        """Records and entities within `depth` (1-3) hops of a record, nearest first."""
        return self._reads.neighbors(id, types=types, depth=depth)

    # ---- recall (memsvc/services/recall.py) ----------------------------------------------------

    @_translated
    def recall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> list[Hit]:
        """The `k` records most relevant to `query`, best first, each with per-channel explain.

        `at` is the reference time (default now): only records valid then are returned, and
        relative times in the query ("last week") are read from it. `recipe` picks the
        channels and fusion: a preset ("fast", "balanced" (default), "deep"), a compact
        string ("dense=1+keyword=1|rrf20") or a dict / `Recipe`.
        """
        return self._recall.recall(
            query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
        )

    @_translated
    async def arecall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> list[Hit]:
        """`recall` for an event loop (the HTTP layer): the query embedding is awaited, not
        waited on by a pool thread, and the search itself is a few milliseconds of work."""
        return await self._recall.arecall(
            query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
        )

    # ---- lifecycle (memsvc/services/lifecycle.py) ----------------------------------------------

    @_translated
    def maintain(self, cube: str | None = None) -> list[MaintenanceRun]:
        """Run maintenance now on one cube (by name or id), or on every cube this tenant
        owns: supersession, organization (topic tree, follows / related edges, duplicate
        merge), forgetting (demote, archive) and index catch-up. Idempotent: a second run
        right after changes nothing.
        """
        return self._lifecycle.maintain(cube)

    @_translated
    def maintenance_runs(self, cube: str | None = None) -> list[MaintenanceRun]:
        """The latest finished maintenance run of one cube, or of each of this tenant's
        cubes (cubes never maintained are left out).
        """
        return self._lifecycle.maintenance_runs(cube)

    # ---- tiers (memsvc/services/tiers.py) ------------------------------------------------------

    @_translated
    def generate(
        self,
        prompt: str,
        *,
        user_id: str,
        cube: str | None = None,
        k: int = 5,
        use_cache: bool = True,
        adapter: str | None = None,
        max_tokens: int = 64,
        filters: Filters | dict[str, Any] | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> Generation:
        """Answer `prompt` with the local LM, its `k` most relevant memories in the prompt.

        Memories held by an activation record (a KV cache) are not recomputed: the cache
        that covers the most recalled memories (and no others) is loaded as
        `past_key_values`, rebuilt first if stale. `use_cache=False` recomputes the same
        prompt, so greedy output is identical either way. `adapter` (a parametric record's
        id) puts its LoRA adapter on the model; caches were built without it, so they are
        not used then. `k=0` recalls nothing (the adapter alone answers).
        """
        return self._tiers.generate(
            prompt,
            user_id=user_id,
            cube=cube,
            k=k,
            use_cache=use_cache,
            adapter=adapter,
            max_tokens=max_tokens,
            filters=filters,
            recipe=recipe,
        )

    @_translated
    def promote(self, id: str | Sequence[str], *, tier: TierName = "activation") -> MemoryRecord:
        """Move memories up a tier: "activation" builds one KV cache of the records (in the
        given order); "parametric" consolidates them into a LoRA adapter. Returns the new
        tier record; the plaintext records stay as they are."""
        return self._tiers.promote(id, tier=tier)

    @_translated
    def demote(self, id: str) -> list[str]:
        """Move down a tier: an activation or parametric record is deleted with its file
        (listed as deleted, kept in history); for a plaintext record, the caches built from
        it are. Returns the ids of the tier records removed."""
        return self._tiers.demote(id)

    @_translated
    def consolidate(
        self,
        cube: str | None = None,
        *,
        user_id: str | None = None,
        record_ids: Sequence[str] | None = None,
        steps: int | None = None,
        rank: int | None = None,
        learning_rate: float | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> MemoryRecord:
        """Train a LoRA adapter on plaintext memories (default: every active one in the
        cube, at most 2000) and store it as a parametric record with its provenance,
        training settings and loss curve. Takes minutes on a CPU for about 100 facts;
        `progress(step, steps, loss)` reports each step."""
        return self._tiers.consolidate(
            cube,
            user_id=user_id,
            record_ids=record_ids,
            steps=steps,
            rank=rank,
            learning_rate=learning_rate,
            progress=progress,
        )

    # ---- export / import (memsvc/services/transfer.py) -----------------------------------------

    @_translated
    def export_cube(
        self, cube: str, path: str | Path, *, progress: Progress | None = None
    ) -> dict[str, int]:
        """Write the cube (records, versions, embeddings, entities, edges) to one file."""
        return self._transfer.export_cube(cube, path, progress=progress)

    @_translated
    def import_cube(
        self,
        path: str | Path,
        *,
        cube: str | None = None,
        progress: Progress | None = None,
    ) -> Cube:
        """Load a cube file as a new cube (named `cube`, default the exported name).

        Record ids are kept, except one another tenant's record already has, which gets a new
        id; `Conflict` if the cube name or one of your own record ids already exists. All or
        nothing: batches are staged in a hidden cube and handed over in one last transaction.
        Embeddings made by another model are redone.
        """
        return self._transfer.import_cube(path, cube=cube, progress=progress)

    # ---- operations (memsvc/services/admin.py) -------------------------------------------------

    @_translated
    def maintain_all(self) -> list[MaintenanceRun]:
        """Maintenance of every cube of every tenant, now (an admin call; the scheduler of
        `memsvc serve` runs only the cubes due, `maintain_due`); a cube that fails is logged
        and the others still run.
        """
        return self._admin.maintain_all()

    @_translated
    def index_info(self, cube: str) -> IndexInfo:
        return self._admin.index_info(cube)

    @_translated
    def index_cache(self) -> IndexCache:
        """This process's cube indexes in memory: bytes held against the budget
        (`MEMSVC_INDEX_MEMORY_BYTES`), cubes loaded, and the hits, misses, evictions and
        load seconds since it started (a server's, per worker, are in its /metrics)."""
        return self._admin.index_cache()

    @_translated
    def rebuild_index(self, cube: str) -> IndexInfo:
        """Rebuild a cube's vector index from the database."""
        return self._admin.rebuild_index(cube)

    @_translated
    def cube_stats(self) -> list[dict[str, Any]]:
        """Every cube of every tenant: record counts by status and loaded index size (for
        metrics; an admin view, not tenant-scoped).
        """
        return self._admin.cube_stats()

    @_translated
    def load_indexes(self) -> int:
        """Load (and catch up) every cube's vector index now, saving each file; returns how
        many. Past the index budget the least recently used are evicted as it goes."""
        return self._admin.load_indexes()

    def flush(self) -> None:
        """Save every vector index with unsaved changes now."""
        self._admin.flush()
