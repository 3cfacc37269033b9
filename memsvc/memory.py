"""`Memory`: the embedded SDK. Everything runs in-process on a data directory.

    from memsvc import Memory

    with Memory("./.memsvc") as mem:
        mem.add("Alice moved to Berlin in May.", user_id="alice")
        hits = mem.recall("Where does Alice live?", user_id="alice")

Each user gets a default cube (`user:<user_id>`) created on first add; pass `cube=` to use a
named cube made with `create_cube`. Every write is one database transaction; vector indexes
follow the database's change log and are rebuilt from it when needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np

from memsvc import browse, portable, retrieval, transfer
from memsvc._convert import cube_model, record_model, version_model
from memsvc.clock import Clock, SystemClock
from memsvc.config import Settings, get_settings
from memsvc.embedder import Embedder, SentenceTransformerEmbedder, encode_queries
from memsvc.errors import (
    Conflict,
    CubeNotFound,
    InvalidInput,
    MemsvcError,
    PermissionDenied,
    RecordNotFound,
    StorageError,
)
from memsvc.forgetting import Reinforcer
from memsvc.keys import KeyManager
from memsvc.maintenance import (
    CubeLocks,
    Lease,
    MaintenanceReport,
    last_runs,
    maintain_cube,
    run_counts,
)
from memsvc.models import (
    Cube,
    Filters,
    GraphPage,
    Hit,
    IndexInfo,
    MaintenanceRun,
    MemoryRecord,
    Message,
    Neighbor,
    Page,
    RecordVersion,
)
from memsvc.organize import TopicNamer
from memsvc.ratelimit import LocalRateLimiter, RateLimiter, SharedRateLimiter
from memsvc.retrieval.analyze import embedding_text, speaker_of, text_doc
from memsvc.retrieval.entities import extract_entities
from memsvc.retrieval.recipe import Recipe, RecipeError, parse_recipe
from memsvc.store import repository as repo
from memsvc.store.database import Database
from memsvc.store.errors import StoreConflict, StoreError
from memsvc.store.indexes import IndexManager
from memsvc.store.orm import CubeRow, RecordRow, utcnow
from memsvc.store.two_stage import MODES
from memsvc.store.vector_index import IndexFileError, set_search_threads
from memsvc.supersession import chain_pks, key_of, resolve_records
from memsvc.tier_methods import TierMethods
from memsvc.tiers import Tiers
from memsvc.turn_context import batch_contexts, context_of, session_before
from memsvc.validation import (
    brief,
    check_cube_name,
    check_ident,
    check_importance,
    check_k,
    check_message,
    check_metadata,
    check_tags,
    check_text,
    decode_cursor,
    encode_cursor,
    to_utc,
)

__all__ = ["Memory"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
Progress = Callable[[int, int | None], None]
StatusArg = Literal["active", "archived", "deleted", "all"]
DEFAULT_TENANT = "local"


def _public_error(exc: StoreError) -> MemsvcError:
    return Conflict(str(exc)) if isinstance(exc, StoreConflict) else StorageError(str(exc))


def _translated(fn: Callable[P, T]) -> Callable[P, T]:
    """Map store failures onto the public error tree at the SDK boundary (sync or async)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return await fn(*args, **kwargs)
            except StoreError as exc:
                raise _public_error(exc) from exc

        return awrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            raise _public_error(exc) from exc

    return wrapper


@dataclasses.dataclass(frozen=True)
class _RecallPlan:
    query: str
    user_id: str
    k: int
    rq: repo.RecordQuery
    cube: str | None
    recipe: Recipe
    reinforce: bool = True  # recalling a memory strengthens it (memsvc/forgetting.py)


def _run_model(rep: MaintenanceReport) -> MaintenanceRun:
    return MaintenanceRun(
        cube=rep.cube,
        trigger=rep.trigger,
        started_at=rep.started_at,
        finished_at=rep.finished_at,
        counts=rep.counts,
    )


def default_cube_name(user_id: str) -> str:
    return f"user:{user_id}"


class _Engine:
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
            sync_seconds=settings.index_sync_seconds,
            search_mode=settings.search_mode,
            oversample=settings.search_oversample,
            analyzer=text_doc,
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
        self._cubes: dict[tuple[int, str, bool], tuple[CubeRow, float]] = {}
        self._lock = threading.Lock()

    def tenant_pk(self, name: str) -> int:
        with self._lock:
            pk = self._tenants.get(name)
        if pk is None:
            try:
                with self.db.write() as s:
                    pk = repo.ensure_tenant(s, name).pk
            except StoreConflict:  # created by another process meanwhile
                with self.db.write() as s:
                    pk = repo.ensure_tenant(s, name).pk
            with self._lock:
                self._tenants[name] = pk
        return pk

    def recall_cube(self, s: Any, tenant_pk: int, ref: str, *, by_name: bool) -> CubeRow | None:
        """Cube lookup for recall, remembered for `index_sync_seconds` like the index itself:
        a deletion made in this process applies at once, one from another process within it."""
        key = (tenant_pk, ref, by_name)
        now = time.monotonic()
        hit = self._cubes.get(key)
        if hit is not None and now - hit[1] < self.settings.index_sync_seconds:
            return hit[0]
        if by_name:
            row = repo.find_cube(s, tenant_pk, name=ref)
        else:
            found = repo.resolve_cube(s, tenant_pk, ref)
            row = found[0] if found is not None else None
        if row is None:
            self._cubes.pop(key, None)
        else:
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


class Memory(TierMethods):
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
        update: dict[str, Any] = {}
        if path is not None:
            update["home"] = Path(path).expanduser()
        if database_url is not None:
            update["database_url"] = database_url
        if update:
            settings = settings.model_copy(update=update)
        try:
            self._engine = _Engine(settings, embedder, clock or SystemClock(), topic_namer)
        except StoreError as exc:
            raise StorageError(str(exc)) from exc
        self._tenant = tenant
        self._owner = True

    @classmethod
    def _view(cls, engine: _Engine, tenant: str) -> Memory:
        obj = cls.__new__(cls)
        obj._engine = engine
        obj._tenant = tenant
        obj._owner = False
        return obj

    def for_tenant(self, tenant: str) -> Memory:
        """A handle on the same data directory that sees only `tenant`'s cubes."""
        check_ident(tenant, field="tenant", required=True)
        return Memory._view(self._engine, tenant)

    @property
    def settings(self) -> Settings:
        return self._engine.settings

    @property
    def embedder(self) -> Embedder:
        return self._engine.embedder

    @property
    def keys(self) -> KeyManager:
        """API key administration for the service (all tenants)."""
        return self._engine.keys

    @property
    def rate_limiter(self) -> RateLimiter:
        """Requests per API key: in this process, or shared through the database."""
        return self._engine.rate_limiter

    def maintenance_lease(self, ttl: float) -> Lease:
        """The lease that lets one of several workers on this database run the scheduled
        maintenance (`memsvc serve` takes it at each tick)."""
        return Lease(self._engine.db, "maintenance", ttl)

    @property
    def tenant(self) -> str:
        return self._tenant

    def close(self) -> None:
        """Save unsaved index changes and release the database (owner handle only)."""
        if self._owner:
            self._engine.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- cubes -------------------------------------------------------------------------------

    @property
    def _tenant_pk(self) -> int:
        return self._engine.tenant_pk(self._tenant)

    def _find_cube(self, s: Any, cube: str, *, write: bool = False) -> CubeRow:
        return self._resolve_cube(s, cube, write=write)[0]

    def _resolve_cube(self, s: Any, cube: str, *, write: bool = False) -> tuple[CubeRow, str]:
        """(cube, access); `PermissionDenied` when writing to a cube shared read-only."""
        if not isinstance(cube, str) or not cube or len(cube) > 300:
            raise InvalidInput("cube must be a cube name or id", details={"field": "cube"})
        found = repo.resolve_cube(s, self._tenant_pk, cube) if "\x00" not in cube else None
        if found is None:
            raise CubeNotFound(f"cube {cube!r} not found", details={"cube": cube})
        if write and found[1] != "owner":
            raise PermissionDenied(
                f"cube {cube!r} is shared with you read-only", details={"cube": cube}
            )
        return found

    def _cube_for(
        self, *, cube: str | None, user_id: str | None, create: bool, write: bool = False
    ) -> CubeRow | None:
        """The named cube (must exist), or the user's default cube (made when `create`)."""
        if cube is not None:
            with self._engine.db.read() as s:
                return self._find_cube(s, cube, write=write)
        if user_id is None:
            raise InvalidInput("give user_id or cube", details={"field": "user_id"})
        name = default_cube_name(user_id)
        with self._engine.db.read() as s:
            row = repo.find_cube(s, self._tenant_pk, name=name)
        if row is not None or not create:
            return row
        try:
            return self._create_cube_row(name=name, owner_user_id=user_id)
        except StoreConflict:  # another writer made it first
            with self._engine.db.read() as s:
                return repo.find_cube(s, self._tenant_pk, name=name)

    def _create_cube_row(self, **fields: Any) -> CubeRow:
        emb = self._engine.embedder
        with self._engine.db.write() as s:
            return repo.create_cube(
                s,
                self._tenant_pk,
                embedding_model=emb.model_id,
                embedding_dim=emb.dim,
                **fields,
            )

    @_translated
    def create_cube(
        self,
        name: str,
        *,
        description: str | None = None,
        owner_user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        search_mode: str | None = None,
    ) -> Cube:
        """Create a named cube; `Conflict` if this tenant already has one of that name.
        `search_mode` ("exact", "int8", "binary+rescore") overrides the service default."""
        check_cube_name(name)
        check_ident(owner_user_id, field="owner_user_id")
        metadata = check_metadata(metadata) if metadata is not None else None
        if description is not None and (not isinstance(description, str) or "\x00" in description):
            raise InvalidInput(
                "description must be text without NUL", details={"field": "description"}
            )
        if search_mode is not None and search_mode not in MODES:
            raise InvalidInput(
                f"search_mode must be one of {', '.join(MODES)}", details={"field": "search_mode"}
            )
        with self._engine.db.read() as s:
            if repo.find_cube(s, self._tenant_pk, name=name) is not None:
                raise Conflict(f"cube {name!r} already exists", details={"cube": name})
        try:
            row = self._create_cube_row(
                name=name,
                description=description,
                owner_user_id=owner_user_id,
                meta=metadata,
                search_mode=search_mode,
            )
        except StoreConflict as exc:
            raise Conflict(f"cube {name!r} already exists", details={"cube": name}) from exc
        return cube_model(row)

    @_translated
    def get_cube(self, cube: str) -> Cube:
        with self._engine.db.read() as s:
            row, access = self._resolve_cube(s, cube)
            return self._cube_out(s, row, access)

    @staticmethod
    def _cube_out(s: Any, row: CubeRow, access: str) -> Cube:
        counts = repo.cube_record_counts(s, [row.pk])[row.pk]
        shared = repo.shares_of(s, row.pk) if access == "owner" else []
        return cube_model(row, sum(counts.values()), access=access, shared_with=shared)

    @_translated
    def list_cubes(self) -> list[Cube]:
        """Your cubes, then the cubes other tenants shared with you (access "read")."""
        with self._engine.db.read() as s:
            own = [(r, "owner") for r in repo.list_cubes(s, self._tenant_pk)]
            shared = [(r, "read") for r in repo.shared_cubes(s, self._tenant_pk)]
            return [self._cube_out(s, r, a) for r, a in own + shared]

    @_translated
    def delete_cube(self, cube: str) -> None:
        """Delete a cube with all its records, history, graph and index file."""
        with self._engine.db.write() as s:
            row = self._find_cube(s, cube, write=True)
            repo.delete_cube(s, row)
        self._engine.forget_cube(row.pk)
        self._engine.indexes.drop(row)
        self._engine.tiers.blobs.drop_cube(row.id)

    @_translated
    def share_cube(self, cube: str, tenant: str) -> Cube:
        """Grant `tenant` read-only access to one of your cubes (by its id on their side)."""
        check_ident(tenant, field="tenant", required=True)
        if tenant == self._tenant:
            raise InvalidInput(
                "a cube cannot be shared with its owner", details={"field": "tenant"}
            )
        with self._engine.db.write() as s:
            row = self._find_cube(s, cube, write=True)
            repo.share_cube(s, row.pk, repo.ensure_tenant(s, tenant).pk)
        with self._engine.db.read() as s:
            return self._cube_out(s, row, "owner")

    # ---- writes --------------------------------------------------------------------------------

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
    ) -> list[MemoryRecord]:
        """Store text (one record per string) or chat messages (one episode per message).

        `timestamp` is when it happened (the event time; default now); a message's own
        `timestamp` wins over it. `pinned` records never fade. A record that states a newer
        value of a fact an older one states ("I moved to Berlin" after "I live in Paris")
        closes the older one (memsvc/supersession.py). Returns the created records in input
        order.
        """
        if not isinstance(pinned, bool):
            raise InvalidInput("pinned must be true or false", details={"field": "pinned"})
        s = self._engine.settings
        check_ident(user_id, field="user_id", required=True)
        check_ident(agent_id, field="agent_id")
        check_ident(session_id, field="session_id")
        when = to_utc(timestamp, field="timestamp")
        meta = check_metadata(metadata)
        tag_list = check_tags(tags)
        imp = check_importance(importance)
        if kind is not None and (not isinstance(kind, str) or not 0 < len(kind) <= 32):
            raise InvalidInput("kind must be 1-32 characters", details={"field": "kind"})
        if (text is None) == (messages is None):
            raise InvalidInput("give exactly one of text or messages", details={"field": "text"})

        items: list[dict[str, Any]] = []
        if text is not None:
            texts = [text] if isinstance(text, str | bytes | bytearray) else list(text)
            if not texts:
                raise InvalidInput("text list is empty", details={"field": "text"})
            for i, t in enumerate(texts):
                field = "text" if len(texts) == 1 else f"text[{i}]"
                content = check_text(t, field=field, max_bytes=s.max_text_bytes)
                items.append(
                    {"content": content, "kind": kind or "fact", "source": {}, "event_time": when}
                )
        else:
            if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
                raise InvalidInput("messages must be a list", details={"field": "messages"})
            if not messages:
                raise InvalidInput("messages is empty", details={"field": "messages"})
            for i, raw in enumerate(messages):
                msg = check_message(raw, i)
                content = check_text(
                    msg.content, field=f"messages[{i}].content", max_bytes=s.max_text_bytes
                )
                source = {"role": msg.role, "speaker": msg.name or msg.role, "message_index": i}
                items.append(
                    {
                        "content": content,
                        "kind": kind or "episode",
                        "source": source,
                        "event_time": to_utc(msg.timestamp, field=f"messages[{i}].timestamp")
                        or when,
                        "meta": {**meta, **msg.metadata},
                    }
                )
        if len(items) > s.max_batch_records:
            raise InvalidInput(
                f"{len(items)} records in one add; the limit is {s.max_batch_records}",
                details={"field": "text" if text is not None else "messages"},
            )

        # An explicitly named cube must exist: fail before the (slow) embedding.
        cube_row = self._cube_for(cube=cube, user_id=user_id, create=False, write=True)
        if cube_row is not None:
            self._check_model(cube_row)
        contexts: list[list[str]] = [[] for _ in items]
        if messages is not None:
            earlier: list[tuple[str, dict[str, Any]]] = []
            if cube_row is not None and session_id is not None:
                with self._engine.db.read() as db:
                    earlier = session_before(db, cube_row.pk, session_id, user_id)
            contexts = batch_contexts(earlier, [(it["content"], it["source"]) for it in items])
        vectors = self._engine.embedder.encode(
            [
                embedding_text(it["content"], it["source"], it["event_time"], ctx)
                for it, ctx in zip(items, contexts, strict=True)
            ]
        )
        now = self._engine.clock.now()
        fields = []
        mentions = []
        for it, vec in zip(items, vectors, strict=True):
            event_time = it["event_time"]
            ents = extract_entities(it["content"], speaker=speaker_of(it["source"]))
            mentions.append([(e.name, e.normalized, e.type) for e in ents])
            fields.append(
                {
                    "kind": it["kind"],
                    "content": it["content"],
                    "source": it["source"],
                    "user_id": user_id,
                    "agent_id": agent_id,
                    "session_id": session_id,
                    "event_time": event_time,
                    "valid_from": event_time or now,
                    "created_at": now,
                    "tags": tag_list,
                    "importance": imp,
                    "embedding": vec.tobytes(),
                    "meta": it.get("meta", meta),
                    "entities": list(dict.fromkeys(e[1] for e in mentions[-1])),
                    "pinned": pinned,
                    "fact_key": key_of(it["content"], it["source"], user_id),
                }
            )
        if cube_row is None:  # the user's default cube, made now with this model
            cube_row = self._cube_for(cube=None, user_id=user_id, create=True)
            assert cube_row is not None
            self._check_model(cube_row)
        with self._engine.db.write() as db:
            rows = repo.insert_records(db, cube_row, fields)
            seqs = db.info.pop("change_seqs", None)
            repo.link_entities(
                db, cube_row.pk, [(r.pk, m) for r, m in zip(rows, mentions, strict=True) if m]
            )
            if resolve_records(
                db,
                cube_row,
                [r.pk for r, f in zip(rows, fields, strict=True) if f["fact_key"]],
                now,
            ):
                seqs = None  # older records changed too: the index catches up from the log
            if messages is not None and len(rows) > 1:
                db.add_all(
                    repo.graph_edge(cube_row.pk, "follows", a.pk, b.pk, now)
                    for a, b in itertools.pairwise(rows)
                )
        self._engine.indexes.apply_write(
            cube_row,
            seqs,
            np.fromiter((r.pk for r in rows), np.int64, len(rows)),
            vectors,
            rows=rows,
        )
        return [record_model(r, cube_row) for r in rows]

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
        changes: dict[str, Any] = {}
        if pinned is not None:
            if not isinstance(pinned, bool):
                raise InvalidInput("pinned must be true or false", details={"field": "pinned"})
            changes["pinned"] = pinned
        if text is not None:
            changes["content"] = check_text(
                text, field="text", max_bytes=self._engine.settings.max_text_bytes
            )
        if metadata is not None:
            changes["meta"] = check_metadata(metadata)
        if tags is not None:
            changes["tags"] = check_tags(tags)
        if importance is not None:
            changes["importance"] = check_importance(importance)
        if kind is not None:
            if not isinstance(kind, str) or not 0 < len(kind) <= 32:
                raise InvalidInput("kind must be 1-32 characters", details={"field": "kind"})
            changes["kind"] = kind
        for name, value in (
            ("event_time", event_time),
            ("valid_from", valid_from),
            ("valid_to", valid_to),
        ):
            if value is not None:
                changes[name] = to_utc(value, field=name)
        if not changes:
            raise InvalidInput("nothing to update: give at least one field", details={})
        vec = None
        if "content" in changes:
            with self._engine.db.read() as s:
                old = self._get_row(s, id)
                source, when = dict(old.source or {}), changes.get("event_time", old.event_time)
                context = context_of(s, old, changes["content"])
            text_in = embedding_text(changes["content"], source, when, context)
            vec = self._engine.embedder.encode([text_in])[0]
            ents = extract_entities(changes["content"], speaker=speaker_of(source))
            changes["entities"] = list(dict.fromkeys(e.normalized for e in ents))
            changes["fact_key"] = key_of(changes["content"], source, old.user_id)
        with self._engine.db.write() as s:
            row = self._row_for_write(s, id)
            if row.status == "deleted":
                raise Conflict(f"record {id} is deleted", details={"id": id})
            if "content" in changes:
                self._check_model(row.cube)
            now = self._engine.clock.now()
            for attr, value in changes.items():
                setattr(row, attr, value)
            if vec is not None:
                row.embedding, row.embedding_precision = vec.tobytes(), "float32"
            vf, vt = row.valid_from, row.valid_to
            if vf is not None and vt is not None and vt <= vf:
                raise InvalidInput(
                    "valid_to must be after valid_from", details={"field": "valid_to"}
                )
            repo.new_version(s, row, "update", now)
            if "content" in changes:
                repo.link_entities(
                    s, row.cube_pk, [(row.pk, [(e.name, e.normalized, e.type) for e in ents])]
                )
            cube_row = row.cube
            if "content" in changes or "valid_from" in changes or "event_time" in changes:
                resolve_records(s, cube_row, [row.pk], now)
        self._engine.indexes.get(cube_row)
        return self.get(id)

    @_translated
    def delete(self, id: str, *, hard: bool = False) -> None:
        """Soft delete (default): kept with status `deleted`, excluded from recall, listed on
        request, visible in history. `hard=True` purges the record, its history, its graph
        edges and its index entries."""
        with self._engine.db.write() as s:
            row = self._row_for_write(s, id)
            cube_row = row.cube
            if hard:
                repo.hard_delete_record(s, row)
            elif row.status != "deleted":
                now = self._engine.clock.now()
                row.status = "deleted"
                repo.new_version(s, row, "delete", now, op="delete")
        self._tier_files_gone(row)
        self._engine.indexes.get(cube_row)

    # ---- reads ----------------------------------------------------------------------------------

    def _get_row(self, s: Any, id: str, *, write: bool = False) -> RecordRow:
        if not isinstance(id, str) or not id or len(id) > 64:
            raise InvalidInput("id must be a record id string", details={"field": "id"})
        # no id holds a NUL (and PostgreSQL cannot even compare one): simply not found
        found = repo.get_record(s, self._tenant_pk, id) if "\x00" not in id else None
        if found is None:
            raise RecordNotFound(f"record {id} not found", details={"id": id})
        if write and found[1] != "owner":
            raise PermissionDenied(
                f"record {id} is in a cube shared with you read-only", details={"id": id}
            )
        return found[0]

    def _row_for_write(self, s: Any, id: str) -> RecordRow:
        """`_get_row` in a write transaction: the cube's change-log lock first (see
        `repo.lock_cube_changes`), then the row as the last writer left it."""
        row = self._get_row(s, id, write=True)
        repo.lock_cube_changes(s, row.cube_pk)
        if not self._engine.db.is_sqlite:  # read before the lock: another writer may have won
            s.refresh(row)
        return row

    @_translated
    def get(self, id: str) -> MemoryRecord:
        with self._engine.db.read() as s:
            return record_model(self._get_row(s, id))

    @_translated
    def lineage(self, id: str) -> list[MemoryRecord]:
        """The supersession chain through a record, oldest first: each record was closed
        (valid_to) by the next ("I live in Paris" -> "I moved to Berlin" -> ...)."""
        with self._engine.db.read() as s:
            row = self._get_row(s, id)
            pks = chain_pks(s, row.cube_pk, row.pk)
            rows = repo.records_by_pks(s, pks)
            return [record_model(rows[pk]) for pk in pks if pk in rows]

    @_translated
    def restore(self, id: str) -> MemoryRecord:
        """Bring back an archived (faded or merged) or soft-deleted record: active again,
        retention reset to 1 as if just recalled, its vector re-embedded at full precision."""
        with self._engine.db.read() as s:
            row = self._get_row(s, id, write=True)
            if row.status == "active":
                return record_model(row)
            if row.tier != "plaintext":
                return self._restore_tier(row)
            text_in = embedding_text(row.content, row.source, row.event_time, context_of(s, row))
        vec = self._engine.embedder.encode([text_in])[0]
        with self._engine.db.write() as s:
            row = self._row_for_write(s, id)
            self._check_model(row.cube)
            if row.status != "active":
                now = self._engine.clock.now()
                row.status = "active"
                row.embedding, row.embedding_precision = vec.tobytes(), "float32"
                row.last_recalled_at = now
                repo.new_version(s, row, "restore", now)
            cube_row = row.cube
        self._engine.indexes.get(cube_row)
        return self.get(id)

    @_translated
    def history(self, id: str) -> list[RecordVersion]:
        """Every version of a record, oldest first (version 1 is the record as created)."""
        with self._engine.db.read() as s:
            row = self._get_row(s, id)
            return [version_model(row.id, v) for v in repo.versions_for(s, row.pk)]

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
        plan = self._plan_recall(
            query, user_id=user_id, k=k, filters=filters, at=at, cube=cube, recipe=recipe
        )
        return self._recall_with(plan, encode_queries(self._engine.embedder, [plan.query])[0])

    @_translated
    async def _recall_async(self, **kwargs: Any) -> list[Hit]:
        """`recall` for an event loop (the HTTP layer): the query embedding is awaited, not
        waited on by a pool thread, and the search itself is a few milliseconds of work."""
        plan = self._plan_recall(**kwargs)
        emb = self._engine.embedder
        if isinstance(emb, SentenceTransformerEmbedder):
            vecs = await asyncio.wrap_future(emb.submit([plan.query], query=True))
        else:  # an embedder without a queue of its own
            loop = asyncio.get_running_loop()
            vecs = await loop.run_in_executor(None, encode_queries, emb, [plan.query])
        return self._recall_with(plan, vecs[0])

    def _plan_recall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: Filters | dict[str, Any] | None = None,
        at: datetime | str | float | None = None,
        cube: str | None = None,
        recipe: str | dict[str, Any] | Recipe | None = None,
    ) -> _RecallPlan:
        """Every check that needs no database, so bad input fails before any embedding."""
        st = self._engine.settings
        query = check_text(query, field="query", max_bytes=st.max_text_bytes)
        check_ident(user_id, field="user_id", required=True)
        k = check_k(k, max_k=st.max_k)
        rq = self._record_query(filters)
        rq.valid_at = to_utc(at, field="at") or self._engine.clock.now()
        if cube is not None and (not isinstance(cube, str) or not cube or len(cube) > 300):
            raise InvalidInput("cube must be a cube name or id", details={"field": "cube"})
        try:
            chosen = parse_recipe(recipe if recipe is not None else st.recall_recipe)
        except RecipeError as exc:
            raise InvalidInput(str(exc), details={"field": "recipe"}) from exc
        return _RecallPlan(query=query, user_id=user_id, k=k, rq=rq, cube=cube, recipe=chosen)

    def _recall_with(self, plan: _RecallPlan, qvec: np.ndarray) -> list[Hit]:
        """One read transaction: the cube, the index catch-up, the search and the records."""
        with self._engine.db.read() as s:
            if plan.cube is not None:
                cube_row = self._engine.recall_cube(s, self._tenant_pk, plan.cube, by_name=False)
                if cube_row is None:
                    raise CubeNotFound(f"cube {plan.cube!r} not found", details={"cube": plan.cube})
            else:
                name = default_cube_name(plan.user_id)
                cube_row = self._engine.recall_cube(s, self._tenant_pk, name, by_name=True)
                if cube_row is None:
                    return []
            self._check_model(cube_row)
            found = retrieval.recall(
                s,
                self._engine.indexes,
                cube_row,
                qvec,
                k=plan.k,
                rq=plan.rq,
                recipe=plan.recipe,
                query=plan.query,
                at=plan.rq.valid_at or self._engine.clock.now(),
                policy=self._engine.policy,
            )
            hits = [
                Hit(record=record_model(c.row, cube_row), score=c.score, explain=c.explain)
                for c in found
            ]
        if found and plan.reinforce:
            self._engine.reinforcer.note([c.row.pk for c in found], self._engine.clock.now())
        return hits

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
        touch; pass `next_cursor` back for the next page."""
        kinds = browse.check_types(types)
        limit = check_k(limit, max_k=self._engine.settings.max_k)
        with self._engine.db.read() as s:
            row = self._find_cube(s, cube)
            return browse.graph_page(s, row.pk, types=kinds, limit=limit, cursor=cursor)

    @_translated
    def neighbors(
        self, id: str, *, types: Sequence[str] | str | None = None, depth: int = 1
    ) -> list[Neighbor]:
        """Records and entities within `depth` (1-3) hops of a record, nearest first."""
        kinds = browse.check_types(types)
        depth = browse.check_depth(depth)
        with self._engine.db.read() as s:
            row = self._get_row(s, id)
            return browse.neighbors(s, row.cube_pk, row.pk, types=kinds, depth=depth)

    @_translated
    def maintain(self, cube: str | None = None) -> list[MaintenanceRun]:
        """Run maintenance now on one cube (by name or id), or on every cube this tenant
        owns: supersession, organization (topic tree, follows / related edges, duplicate
        merge), forgetting (demote, archive) and index catch-up. Idempotent: a second run
        right after changes nothing."""
        with self._engine.db.read() as s:
            if cube is not None:
                cubes = [self._find_cube(s, cube, write=True)]
            else:
                cubes = repo.list_cubes(s, self._tenant_pk)
        return [_run_model(maintain_cube(self._engine, c, trigger="manual")) for c in cubes]

    @_translated
    def maintain_all(self) -> list[MaintenanceRun]:
        """Maintenance of every cube of every tenant (an admin call: the scheduler's job in
        `memsvc serve`); a cube that fails is logged and the others still run."""
        with self._engine.db.read() as s:
            cubes = repo.all_cubes(s)
        out = []
        for c in cubes:
            try:
                out.append(_run_model(maintain_cube(self._engine, c, trigger="scheduled")))
            except Exception:  # recorded in its run row; the next tick tries again
                log.exception("maintenance of cube %s failed", c.id)
        return out

    @_translated
    def maintenance_runs(self, cube: str | None = None) -> list[MaintenanceRun]:
        """The latest finished maintenance run of one cube, or of each of this tenant's
        cubes (cubes never maintained are left out)."""
        with self._engine.db.read() as s:
            rows = [self._find_cube(s, cube)] if cube else repo.list_cubes(s, self._tenant_pk)
            cubes = {c.pk: c.name for c in rows}
            runs = last_runs(s, list(cubes))
            return [
                MaintenanceRun(
                    cube=cubes[pk],
                    trigger=r.trigger,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    counts=r.counts or {},
                    error=r.error,
                )
                for pk, r in sorted(runs.items())
            ]

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
        check_ident(user_id, field="user_id")
        limit = check_k(limit, max_k=self._engine.settings.max_k)
        if status not in ("active", "archived", "deleted", "all"):
            raise InvalidInput(f"unknown status {status!r}", details={"field": "status"})
        rq = self._record_query(filters)
        rq.statuses = () if status == "all" else (status,)
        after = decode_cursor(cursor)
        cube_row = self._cube_for(cube=cube, user_id=user_id, create=False)
        if cube_row is None:
            return Page(items=[])
        with self._engine.db.read() as s:
            rows = repo.query_records(s, cube_row.pk, rq, after_pk=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].pk) if more and rows else None
        return Page(items=[record_model(r) for r in rows], next_cursor=nxt)

    # ---- export / import ------------------------------------------------------------------------

    @_translated
    def export_cube(
        self, cube: str, path: str | Path, *, progress: Progress | None = None
    ) -> dict[str, int]:
        """Write the cube (records, versions, embeddings, entities, edges) to one file."""
        path = Path(path)
        with self._engine.db.read() as s:
            row = self._find_cube(s, cube)
            total = sum(repo.cube_record_counts(s, [row.pk])[row.pk].values())
        header = {
            "format_version": portable.FORMAT_VERSION,
            "exported_at": utcnow().isoformat(),
            "cube": {
                "id": row.id,
                "name": row.name,
                "description": row.description,
                "owner_user_id": row.owner_user_id,
                "created_at": row.created_at.isoformat(),
                "metadata": row.meta or {},
                "search_mode": row.search_mode,
            },
            "embedding": {
                "model": row.embedding_model,
                "dim": row.embedding_dim,
                "dtype": "float32",
            },
            "records": total,
        }
        lines = transfer.export_lines(
            self._engine.db, row, total, progress, self._engine.tiers.blobs
        )
        return portable.write(path, header, lines)

    @_translated
    def import_cube(
        self,
        path: str | Path,
        *,
        cube: str | None = None,
        progress: Progress | None = None,
    ) -> Cube:
        """Load a cube file as a new cube (named `cube`, default the exported name).

        Record ids are kept; `Conflict` if the cube name or any record id already exists
        here. All or nothing: one transaction. Embeddings made by another model are redone.
        """
        header, lines = portable.read_lines(Path(path))
        meta = header.get("cube") or {}
        emb = header.get("embedding") or {}
        name = check_cube_name(cube or meta.get("name"))
        embedder = self._engine.embedder
        same_model = emb.get("model") == embedder.model_id and emb.get("dim") == embedder.dim
        total = header.get("records")
        with self._engine.db.read() as s:
            if repo.find_cube(s, self._tenant_pk, name=name) is not None:
                raise Conflict(f"cube {name!r} already exists", details={"cube": name})
        written: list[str] = []
        try:
            with self._engine.db.write() as s:
                row = repo.create_cube(
                    s,
                    self._tenant_pk,
                    name=name,
                    description=meta.get("description"),
                    owner_user_id=meta.get("owner_user_id"),
                    meta=meta.get("metadata") or {},
                    embedding_model=embedder.model_id,
                    embedding_dim=embedder.dim,
                    search_mode=meta.get("search_mode")
                    if meta.get("search_mode") in MODES
                    else None,
                )
                transfer.import_items(
                    s,
                    embedder,
                    row,
                    lines,
                    same_model,
                    int(emb.get("dim") or 0),
                    total,
                    progress,
                    blobs=self._engine.tiers.blobs,
                    written=written,
                )
        except BaseException as exc:
            for rel in written:  # nothing half-written: the files go with the transaction
                self._engine.tiers.blobs.remove(rel)
            if isinstance(exc, StoreConflict):
                raise Conflict(f"import clashes with existing data: {exc}") from exc
            raise
        self._engine.indexes.get(row)
        return self.get_cube(row.id)

    # ---- operations -----------------------------------------------------------------------------

    @_translated
    def index_info(self, cube: str) -> IndexInfo:
        with self._engine.db.read() as s:
            row = self._find_cube(s, cube)
        st = self._engine.indexes.state(row)
        return IndexInfo(
            cube=row.name,
            vectors=st.vectors,
            seq=st.seq,
            db_seq=st.db_seq,
            file=st.file,
            file_exists=st.file_exists,
            last_rebuild_reason=st.last_rebuild_reason,
            mode=st.mode,
        )

    @_translated
    def rebuild_index(self, cube: str) -> IndexInfo:
        """Rebuild a cube's vector index from the database."""
        with self._engine.db.read() as s:
            row = self._find_cube(s, cube)
        self._engine.indexes.rebuild(row)
        return self.index_info(cube)

    @_translated
    def cube_stats(self) -> list[dict[str, Any]]:
        """Every cube of every tenant: record counts by status and loaded index size (for
        metrics; an admin view, not tenant-scoped)."""
        with self._engine.db.read() as s:
            cubes = repo.all_cubes(s)
            counts = repo.cube_record_counts(s, [c.pk for c in cubes])
            tenants = {c.pk: c.tenant.name for c in cubes}
            n_runs = run_counts(s, [c.pk for c in cubes])
            latest = last_runs(s, [c.pk for c in cubes])
        loaded = self._engine.indexes.loaded_counts()
        return [
            {
                "cube_id": c.id,
                "tenant": tenants[c.pk],
                "records": counts[c.pk],
                "index_vectors": loaded.get(c.pk),
                "maintenance": {
                    "runs": n_runs.get(c.pk, 0),
                    "last": None
                    if c.pk not in latest
                    else {
                        "finished_at": latest[c.pk].finished_at,
                        "counts": latest[c.pk].counts or {},
                    },
                },
            }
            for c in cubes
        ]

    @_translated
    def load_indexes(self) -> int:
        """Load (and catch up) every cube's vector index now; returns how many."""
        with self._engine.db.read() as s:
            cubes = repo.all_cubes(s)
        for c in cubes:
            self._engine.indexes.get(c)
        return len(cubes)

    def flush(self) -> None:
        """Save every vector index with unsaved changes now."""
        try:
            self._engine.indexes.flush()
        except (StoreError, IndexFileError, OSError) as exc:
            raise StorageError(f"index flush failed: {exc}") from exc

    # ---- input helpers --------------------------------------------------------------------------

    def _check_model(self, cube: CubeRow) -> None:
        emb = self._engine.embedder
        if cube.embedding_model != emb.model_id or cube.embedding_dim != emb.dim:
            raise Conflict(
                f"cube {cube.name!r} was embedded with {cube.embedding_model} "
                f"({cube.embedding_dim}d); this service uses {emb.model_id} ({emb.dim}d)",
                details={"cube": cube.name},
            )

    @staticmethod
    def _record_query(filters: Filters | dict[str, Any] | None) -> repo.RecordQuery:
        if filters is None:
            return repo.RecordQuery()
        if isinstance(filters, dict):
            try:
                filters = Filters.model_validate(filters)
            except ValueError as exc:
                raise InvalidInput(
                    "bad filters: " + brief(exc, prefix="filters"), details={"field": "filters"}
                ) from exc
        if not isinstance(filters, Filters):
            raise InvalidInput("filters must be a Filters or a dict", details={"field": "filters"})
        return repo.RecordQuery(
            user_id=filters.user_id,
            agent_id=filters.agent_id,
            session_id=filters.session_id,
            kinds=tuple(filters.kinds),
            tiers=tuple(filters.tiers),
            tags=tuple(filters.tags),
            since=to_utc(filters.since, field="filters.since"),
            until=to_utc(filters.until, field="filters.until"),
            metadata=dict(filters.metadata),
        )
