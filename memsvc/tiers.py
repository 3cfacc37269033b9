"""The activation and parametric tiers: building, checking, using and evicting their records.

A tier record is a `memory_records` row (tier "activation" or "parametric") whose content
describes it and whose `source` names its file and the plaintext records (ids and versions)
it was built from; the file itself lives in a `BlobStore`. Tier records carry no embedding,
so recall never returns them; `list(filters={"tiers": [...]})` does.

- Activation: `build_activation` prefills a group of memories into a KV cache. A cache is
  stale when a source record changed version or left the active set, or when the model or
  tokenizer differs; `fresh_cache` rebuilds a stale one on use, maintenance rebuilds the
  rest. `evict` keeps each cube's caches within a byte budget, least recently used first.
  `promote_hot` gives records recalled `promote_recalls` times within the window a cache.
- Parametric: `consolidate` trains a LoRA adapter on plaintext memories (memsvc/parametric.py)
  and stores it with its provenance, settings and loss curve.

A tier file's path is derived from its record's cube id and record id (`BlobStore`), never
from `source["blob"]`, which only shows it. Files are written before the row that names
them and removed after the row is gone, so a crash leaves at worst an orphan file, which
maintenance sweeps, with the folders of deleted cubes. Adapter files are checked against
the base model before they are loaded (`LocalLM.load_adapter`). LM work started by requests
goes through a bounded `JobQueue` (memsvc/services/tiers.py). The SQL is in the store
(`tx.tiers`, memsvc/store/repos/tiers.py); records change through `tx.records`. The SDK
methods over this (`generate`, `promote`, ...) are `memsvc.services.tiers.TierService`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from memsvc.activation import build_cache, cache_from_tensors, context_ids
from memsvc.jobqueue import JobQueue
from memsvc.lm import RANK_CEILING, AdapterRejected, LocalLM
from memsvc.parametric import LoraSettings, TrainedAdapter, train_adapter, training_pairs
from memsvc.store.blobs import BlobError, BlobStore
from memsvc.store.data import CubeData, RecordData, new_id
from memsvc.store.database import Database
from memsvc.store.tx import Tx

__all__ = ["CacheUse", "JobQueue", "TierError", "Tiers", "source_ids"]

log = logging.getLogger(__name__)
TIER_KINDS = {"activation": "kv_cache", "parametric": "lora_adapter"}
CUBE_SWEEP_SECONDS = 600.0  # folders of deleted cubes are looked for at most this often


class TierError(RuntimeError):
    """A tier operation cannot be done (nothing to build from, a file gone, a bad setting)."""


@dataclass(frozen=True)
class CacheUse:
    """The cache chosen for a generation: its record, the memories it covers, in order."""

    row: RecordData
    covered: list[str]  # plaintext record ids, in the cache's order
    cache: Any  # a DynamicCache, or None when recomputing
    tokens: int
    rebuilt: bool


def _sources(rows: Sequence[RecordData]) -> list[dict[str, Any]]:
    return [{"id": r.id, "version": r.version} for r in rows]


def source_ids(row: RecordData) -> list[str]:
    """The plaintext record ids a tier record was built from, in order."""
    return [str(x["id"]) for x in (row.source or {}).get("records", [])]


class Tiers:
    def __init__(
        self,
        db: Database,
        home: Path,
        *,
        lm_path: str | None,
        lm_threads: int | None,
        budget_bytes: int,
        max_tokens: int,
    ) -> None:
        self.db = db
        self.blobs = BlobStore(home / "tiers")
        self.lm_path = lm_path
        self.lm_threads = lm_threads
        self.budget_bytes = budget_bytes
        self.max_tokens = max_tokens
        self._lm: LocalLM | None = None
        self.generated: set[int] = set()  # cubes `generate` ran on in this process
        self._queues: dict[str, JobQueue] = {}
        self._guard = threading.Lock()
        self._cubes_swept_at: float | None = None

    def queue(self, name: str, *, slots: int, waiting: int) -> JobQueue:
        """The process's queue `name`, made with these sizes on first use (the settings of
        the engine that owns these tiers)."""
        with self._guard:
            q = self._queues.get(name)
            if q is None:
                q = self._queues[name] = JobQueue(name, slots, waiting)
            return q

    @property
    def lm(self) -> LocalLM:
        if self._lm is None:
            self._lm = LocalLM(self.lm_path, threads=self.lm_threads)
        return self._lm

    # ---- reading -----------------------------------------------------------------------------

    def lm_unload(self, name: str) -> None:
        """Take an adapter off the model if this process loaded one (no model load)."""
        if self._lm is not None:
            self._lm.unload_adapter(name)

    @staticmethod
    def cube_id(tx: Tx, row: RecordData) -> str | None:
        """The id of a record's own cube: the folder of its file."""
        cube = tx.cubes.by_pk(row.cube_pk)
        return None if cube is None else cube.id

    def has_file(self, tx: Tx, row: RecordData) -> bool:
        cube_id = self.cube_id(tx, row)
        return cube_id is not None and self.blobs.has(cube_id, row.id)

    def drop_file(self, tx: Tx, row: RecordData) -> bool:
        """Remove a tier record's own file (its row is gone or deleted)."""
        cube_id = self.cube_id(tx, row)
        return cube_id is not None and self.blobs.delete(cube_id, row.id)

    def stale_reason(self, tx: Tx, row: RecordData) -> str | None:
        """Why a tier record no longer matches what it was built from, or None."""
        src = row.source or {}
        if src.get("model_id") != self.lm.model_id:
            return "model changed"
        if src.get("tokenizer_hash") != self.lm.tokenizer_hash:
            return "tokenizer changed"
        cube_id = self.cube_id(tx, row)
        if cube_id is None or not self.blobs.has(cube_id, row.id):
            return "file missing"
        try:  # a crash between a rebuild's commit and its rename leaves the older file
            header = self.blobs.header(cube_id, row.id)
            built_from = json.loads(header.get("records", "null"))
        except (BlobError, ValueError):
            return "file unreadable"
        if built_from != src.get("records"):
            return "file out of date"
        if row.tier == "parametric":
            return None  # an adapter keeps what it learnt; its provenance says from what
        wanted = {str(x["id"]): int(x["version"]) for x in src.get("records", [])}
        current = tx.tiers.active_versions(list(wanted))
        for rid, version in wanted.items():
            if rid not in current:
                return "source record gone"
            if current[rid] != version:
                return "source record changed"
        return None

    # ---- activation ----------------------------------------------------------------------------

    @staticmethod
    def _plain_rows(tx: Tx, cube: CubeData, ids: Sequence[str]) -> list[RecordData]:
        rows = tx.tiers.by_ids(ids)
        out = []
        for rid in ids:
            r = rows.get(rid)
            if r is None or r.cube_pk != cube.pk:
                raise TierError(f"record {rid} is not in cube {cube.name}")
            if r.tier != "plaintext":
                raise TierError(f"record {r.id} is a {r.tier} record; caches hold plaintext ones")
            if r.status != "active":
                raise TierError(f"record {r.id} is {r.status}")
            out.append(r)
        return out

    def build_activation(
        self,
        cube: CubeData,
        ids: Sequence[str],
        now: datetime,
        *,
        replace: str | None = None,
    ) -> str:
        """A KV cache of the records `ids` (in that order) as a new activation record, or
        rebuilt into record `replace`; returns the activation record's id."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise TierError("give at least one record to cache")
        with self.db.reading() as tx:
            rows = self._plain_rows(tx, cube, ids)
            texts = [r.content for r in rows]
            sources = _sources(rows)
            user = rows[0].user_id
        n_tokens = len(context_ids(self.lm, texts))
        if n_tokens > self.max_tokens:
            raise TierError(
                f"the context is {n_tokens} tokens; the limit is {self.max_tokens} "
                "(MEMSVC_ACTIVATION_MAX_TOKENS)"
            )
        built = build_cache(self.lm, texts, sources)
        rec_id = replace or new_id()
        rel = self.blobs.relpath(cube.id, rec_id)
        staged = self.blobs.stage(cube.id, rec_id, built.tensors, built.header)
        if replace is None:  # a new record's file is in place before its row
            self.blobs.commit(staged)
        size = staged.size
        source = {
            "records": sources,
            "model_id": self.lm.model_id,
            "tokenizer_hash": self.lm.tokenizer_hash,
            "blob": rel,
            "tokens": built.tokens,
            "bytes": size,
            "dtype": "float32",
        }
        content = "\n".join(f"- {t}" for t in texts)
        try:
            with self.db.writing() as tx:
                if replace is None:
                    tx.records.insert(
                        cube,
                        [
                            {
                                "id": rec_id,
                                "tier": "activation",
                                "kind": TIER_KINDS["activation"],
                                "content": content,
                                "source": source,
                                "user_id": user,
                                "created_at": now,
                                "valid_from": now,
                                "last_recalled_at": now,
                                "meta": {},
                            }
                        ],
                    )
                else:
                    row = tx.tiers.by_id(replace)
                    if row is None or row.status != "active":
                        raise TierError(f"activation record {replace} is gone")
                    tx.records.change(
                        row.pk,
                        {"content": content, "source": source},
                        change="rebuild",
                        at=now,
                        op=None,
                    )
        except BaseException:
            if replace is None:
                self.blobs.delete(cube.id, rec_id)
            else:
                self.blobs.discard(staged)
            raise
        if replace is not None:  # the row names the new file only once committed
            self.blobs.commit(staged)
        return rec_id

    def fresh_cache(
        self, cube: CubeData, row: RecordData, now: datetime, *, load: bool
    ) -> CacheUse:
        """The cache of an activation record, rebuilt first if stale."""
        with self.db.reading() as tx:
            reason = self.stale_reason(tx, row)
        rebuilt = False
        if reason is not None:
            log.info("activation %s is stale (%s): rebuilding", row.id, reason)
            with self.db.reading() as tx:
                live = tx.tiers.active_ids(cube.pk, source_ids(row))
            alive = [rid for rid in source_ids(row) if rid in live]
            if not alive:
                self.remove(row.id, now, change="evict")
                raise TierError(f"activation {row.id}: its records are gone")
            self.build_activation(cube, alive, now, replace=row.id)
            rebuilt = True
            with self.db.reading() as tx:
                fresh = tx.tiers.by_id(row.id)
            if fresh is None:  # removed since the rebuild committed
                raise TierError(f"activation {row.id}: it is gone")
            row = fresh
        covered = source_ids(row)
        cache = None
        tokens = int(row.source["tokens"])
        if load:
            tensors, header = self.blobs.load(cube.id, row.id)
            if header.get("model_id") != self.lm.model_id:
                raise BlobError(f"cache file of {row.id} was built for another model")
            try:
                cache = cache_from_tensors(self.lm, tensors, tokens=tokens)
            except ValueError as exc:  # a file that is not this model's cache of the row
                raise BlobError(f"cache file of {row.id}: {exc}") from exc
        return CacheUse(row, covered, cache, tokens, rebuilt)

    def choose_cache(self, cube: CubeData, hit_ids: Sequence[str]) -> RecordData | None:
        """The activation record covering the most recalled memories and nothing else."""
        wanted = set(hit_ids)
        best: tuple[int, int, RecordData] | None = None
        with self.db.reading() as tx:
            for row in tx.tiers.of_tier(cube.pk, "activation"):
                cov = source_ids(row)
                if cov and set(cov) <= wanted:
                    key = (len(cov), row.pk)
                    if best is None or key > best[:2]:
                        best = (*key, row)
        return best[2] if best else None

    def touch(self, rec_id: str, now: datetime) -> None:
        """A cache was used: recalled now, once more (no new version)."""
        with self.db.writing() as tx:
            row = tx.tiers.by_id(rec_id)
            if row is not None:
                tx.records.set_recalled([row.pk], now)

    def remove(self, rec_id: str, now: datetime, *, change: str = "delete") -> bool:
        """Delete a tier record (kept in history as deleted) and then its file."""
        with self.db.writing() as tx:
            row = tx.tiers.for_write(rec_id)
            if row is None or row.status == "deleted":
                return False
            cube_id = self.cube_id(tx, row)
            tx.records.change(row.pk, {"status": "deleted"}, change=change, at=now, op=None)
        if cube_id is not None:
            self.blobs.delete(cube_id, row.id)
        return True

    @staticmethod
    def covering(tx: Tx, cube_pk: int, record_id: str) -> list[str]:
        """Ids of the active caches built from plaintext record `record_id`."""
        return [r.id for r in tx.tiers.of_tier(cube_pk, "activation") if record_id in source_ids(r)]

    def evict(self, cube: CubeData, now: datetime) -> int:
        """Delete the least recently used caches until the cube is within its byte budget."""
        with self.db.reading() as tx:
            rows = tx.tiers.of_tier(cube.pk, "activation")
            used = sum(int((r.source or {}).get("bytes", 0)) for r in rows)
            order = sorted(rows, key=lambda r: (r.last_recalled_at or r.created_at, r.pk))
            plan = []
            for r in order:
                if used <= self.budget_bytes:
                    break
                plan.append(r.id)
                used -= int((r.source or {}).get("bytes", 0))
        return sum(self.remove(rid, now, change="evict") for rid in plan)

    def hot_records(
        self, cube: CubeData, now: datetime, *, recalls: int, window_hours: float
    ) -> list[int]:
        """Pks of the records recalled `recalls` times within the last `window_hours`."""
        since = now - timedelta(hours=window_hours)
        with self.db.reading() as tx:
            return tx.tiers.hot_records(cube.pk, since, recalls)

    def maintain(
        self, cube: CubeData, now: datetime, *, recalls: int, window_hours: float
    ) -> dict[str, int]:
        """Scheduler pass: promote hot records, rebuild stale caches, evict, sweep files,
        and drop recall events older than the window."""
        counts = {"kv_promoted": 0, "kv_rebuilt": 0, "kv_evicted": 0, "tier_files_swept": 0}
        with self.db.reading() as tx:
            has_tier = tx.tiers.count_tiered(cube.pk)
        # Promotion loads the LM: only where generation is in use, never in a cube that
        # is only ever recalled from.
        if recalls > 0 and (has_tier or cube.pk in self.generated):
            for pk in self.hot_records(cube, now, recalls=recalls, window_hours=window_hours):
                with self.db.reading() as tx:
                    r = tx.records.by_pks([pk]).get(pk)
                    if r is None or r.status != "active" or r.tier != "plaintext":
                        continue
                    rid = r.id
                    if any(source_ids(c) == [rid] for c in tx.tiers.of_tier(cube.pk, "activation")):
                        continue
                try:
                    self.build_activation(cube, [rid], now)
                    counts["kv_promoted"] += 1
                except TierError as exc:
                    log.info("not promoting %s: %s", pk, exc)
        if has_tier or counts["kv_promoted"]:
            with self.db.reading() as tx:
                rows = tx.tiers.of_tier(cube.pk, "activation")
            for row in rows:
                with self.db.reading() as tx:
                    stale = self.stale_reason(tx, row)
                if stale is not None:
                    try:
                        self.fresh_cache(cube, row, now, load=False)
                        counts["kv_rebuilt"] += 1
                    except TierError:
                        counts["kv_evicted"] += 1
            counts["kv_evicted"] += self.evict(cube, now)
        with self.db.reading() as tx:
            keep = [
                r.id
                for tier in ("activation", "parametric")
                for r in tx.tiers.of_tier(cube.pk, tier)
            ]
        counts["tier_files_swept"] = self.blobs.sweep(cube.id, keep) + self.sweep_cubes()
        cutoff = now - timedelta(hours=window_hours)
        with self.db.writing() as tx:
            tx.tiers.drop_recall_events(cube.pk, cutoff)
        return counts

    def sweep_cubes(self) -> int:
        """Files of deleted cubes (a crash between a cube's row and its folder), looked for
        at most every CUBE_SWEEP_SECONDS in this process."""
        now = time.monotonic()
        with self._guard:
            if self._cubes_swept_at is not None and now - self._cubes_swept_at < CUBE_SWEEP_SECONDS:
                return 0
            self._cubes_swept_at = now
        with self.db.reading() as tx:
            live = [c.id for c in tx.cubes.all()]
        return self.blobs.sweep_cubes(live)

    # ---- parametric ----------------------------------------------------------------------------

    def consolidate(
        self,
        cube: CubeData,
        ids: Sequence[str],
        now: datetime,
        settings: LoraSettings,
        *,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> str:
        """Train a LoRA adapter on the records `ids` and store it as a parametric record."""
        with self.db.reading() as tx:
            rows = self._plain_rows(tx, cube, ids)
            memories = [(r.content, list(r.entities or [])) for r in rows]
            sources = _sources(rows)
            user = rows[0].user_id if rows else None
        if not memories:
            raise TierError("no active plaintext records to consolidate")
        pairs = training_pairs(memories)
        trained: TrainedAdapter = train_adapter(self.lm, pairs, settings, progress=progress)
        rec_id = new_id()
        rel = self.blobs.relpath(cube.id, rec_id)
        header = {
            "format": "memsvc.lora.v1",
            "model_id": self.lm.model_id,
            "tokenizer_hash": self.lm.tokenizer_hash,
            "peft_config": json.dumps(trained.config),
            "records": json.dumps(sources),
        }
        size = self.blobs.save(cube.id, rec_id, trained.weights, header)
        source = {
            "records": sources,
            "model_id": self.lm.model_id,
            "tokenizer_hash": self.lm.tokenizer_hash,
            "blob": rel,
            "bytes": size,
            "peft_config": trained.config,
        }
        meta = {
            "training": {**trained.settings, "examples": trained.examples},
            "seconds": trained.seconds,
            "loss_curve": trained.loss_curve,
        }
        try:
            with self.db.writing() as tx:
                tx.records.insert(
                    cube,
                    [
                        {
                            "id": rec_id,
                            "tier": "parametric",
                            "kind": TIER_KINDS["parametric"],
                            "content": f"LoRA adapter over {len(sources)} memories",
                            "source": source,
                            "user_id": user,
                            "created_at": now,
                            "valid_from": now,
                            "meta": meta,
                        }
                    ],
                )
        except BaseException:
            self.blobs.delete(cube.id, rec_id)
            raise
        return rec_id

    def load_adapter(self, row: RecordData, *, max_rank: int = RANK_CEILING) -> str:
        """Put a parametric record's adapter on the LM (once); returns its adapter name.
        The file may come from an import: its config and tensors are checked against the
        base model first (`LocalLM.load_adapter`), and refused as a `TierError`."""
        if row.id in self.lm.loaded_adapters():
            return row.id
        with self.db.reading() as tx:
            reason = self.stale_reason(tx, row)
            cube_id = self.cube_id(tx, row)
        if reason == "file missing" or cube_id is None:  # trained elsewhere, or lost
            raise BlobError(f"adapter {row.id} cannot be used here: its file is missing")
        if reason is not None:
            raise TierError(f"adapter {row.id} cannot be used: {reason}")
        weights, header = self.blobs.load(cube_id, row.id)
        try:
            if header.get("format") != "memsvc.lora.v1":
                raise AdapterRejected(f"format {header.get('format')!r} is not memsvc.lora.v1")
            try:
                config = json.loads(header.get("peft_config", ""))
            except ValueError as exc:
                raise AdapterRejected("its peft_config is not JSON") from exc
            self.lm.load_adapter(row.id, config, weights, max_rank=max_rank)
        except AdapterRejected as exc:
            raise TierError(f"adapter {row.id} was refused: {exc}") from exc
        return row.id
