"""The activation and parametric tiers as a service: `generate`, `promote`, `demote` and
`consolidate` (the SDK methods `Memory` delegates to), and the two hooks the lifecycle
calls when a tier record is deleted (`files_gone`) or restored (`restore`).

memsvc/tiers.py (`engine.tiers`) does the work: building, checking and evicting caches and
adapters. This module checks the caller's input and access (through `CubeService`) and turns
tier failures into the public errors. `get` and `recall` are the facade's own methods, passed
in so that nothing here imports `Memory`.

LM work is bounded here, where requests start it: a generation's prompt fits the model's
context (memories cut or left out, see `generate`); generations and cache builds share one
queue of MEMSVC_LM_QUEUE_SIZE waiting jobs and trainings one of MEMSVC_LM_TRAINING_JOBS
running ones, beyond which a call gets `Busy` (429, Retry-After) at once; training settings
are capped by the MEMSVC_LORA_* settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from memsvc.activation import context_ids
from memsvc.errors import Conflict, CubeNotFound, InvalidInput, ModelUnavailable
from memsvc.jobqueue import JobQueue
from memsvc.lm import LMError, LocalLM
from memsvc.models import Filters, Generation, Hit, MemoryRecord
from memsvc.parametric import LoraSettings
from memsvc.retrieval.recipe import Recipe
from memsvc.store.blobs import BlobError
from memsvc.store.data import CubeData, RecordData
from memsvc.store.tx import Tx
from memsvc.tiers import TierError, Tiers
from memsvc.validation import check_text

if TYPE_CHECKING:
    from memsvc.services.cubes import CubeService
    from memsvc.services.engine import Engine

__all__ = ["MAX_NEW_TOKENS", "MIN_MEMORY_PIECE", "TierName", "TierService"]

TierName = Literal["activation", "parametric"]
MAX_NEW_TOKENS = 1024
MIN_MEMORY_PIECE = 16  # tokens: a memory cut shorter than this is left out instead


def _tier_error(exc: Exception) -> Exception:
    if isinstance(exc, LMError):
        return ModelUnavailable(str(exc))
    if isinstance(exc, BlobError):
        return Conflict(str(exc))
    return InvalidInput(str(exc))


def _cube_of(tx: Tx, record: RecordData) -> CubeData:
    cube = tx.cubes.by_pk(record.cube_pk)
    if cube is None:  # cannot happen inside one transaction: a record's cube outlives it
        raise CubeNotFound(f"the cube of record {record.id} is gone", details={"id": record.id})
    return cube


class TierService:
    """The tier methods of one tenant's `Memory`."""

    def __init__(
        self,
        cubes: CubeService,
        get: Callable[[str], MemoryRecord],
        recall: Callable[..., list[Hit]],
    ) -> None:
        self._cubes = cubes
        self._engine: Engine = cubes.engine
        self._get = get
        self._recall = recall

    @property
    def _tiers(self) -> Tiers:
        return self._engine.tiers

    def queue(self, kind: Literal["lm", "training"]) -> JobQueue:
        """The process's queue of LM work ("lm": generations and cache builds, one at a
        time as the model runs them; "training": adapter trainings, none waiting)."""
        st = self._engine.settings
        if kind == "lm":
            return self._tiers.queue("lm", slots=1, waiting=st.lm_queue_size)
        return self._tiers.queue("training", slots=st.lm_training_jobs, waiting=0)

    @property
    def local_lm(self) -> LocalLM:
        """The local LM of the tiers (loaded on first use): for measuring, e.g. `nll`."""
        return self._engine.tiers.lm

    def _now(self) -> datetime:
        return self._engine.now()

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

        Prompt and answer fit the model's context window (or MEMSVC_LM_CONTEXT_TOKENS):
        memories go in by rank while they fit; the first that does not is cut to the room
        left (left out if under MIN_MEMORY_PIECE tokens) and the rest are left out.
        `memories` lists those in the prompt. A prompt that does not fit with `max_tokens`
        on its own is InvalidInput. Beyond MEMSVC_LM_QUEUE_SIZE waiting calls, `Busy`.
        """
        started = time.perf_counter()
        st = self._engine.settings
        prompt = check_text(prompt, field="prompt", max_bytes=st.max_text_bytes)
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= 50:
            raise InvalidInput("k must be an integer from 0 to 50", details={"field": "k"})
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(
                f"max_tokens must be 1-{MAX_NEW_TOKENS}", details={"field": "max_tokens"}
            )
        if not isinstance(use_cache, bool):
            raise InvalidInput("use_cache must be true or false", details={"field": "use_cache"})
        with self.queue("lm").slot():
            return self._generate_queued(
                prompt,
                user_id=user_id,
                cube=cube,
                k=k,
                use_cache=use_cache,
                adapter=adapter,
                max_tokens=max_tokens,
                filters=filters,
                recipe=recipe,
                started=started,
            )

    def _generate_queued(
        self,
        prompt: str,
        *,
        user_id: str,
        cube: str | None,
        k: int,
        use_cache: bool,
        adapter: str | None,
        max_tokens: int,
        filters: Filters | dict[str, Any] | None,
        recipe: str | dict[str, Any] | Recipe | None,
        started: float,
    ) -> Generation:
        hits = (
            self._recall(prompt, user_id=user_id, k=k, filters=filters, cube=cube, recipe=recipe)
            if k
            else []
        )
        cube_data = self._cubes.cube_for(cube=cube, user_id=user_id, create=False)
        adapter_name = None
        if adapter is not None:
            with self._engine.db.reading() as tx:
                arec = self._cubes.record(tx, adapter)
            if arec.tier != "parametric" or arec.status != "active":
                raise InvalidInput(
                    f"{adapter} is not an active parametric record",
                    details={"field": "adapter"},
                )
            try:
                adapter_name = self._tiers.load_adapter(
                    arec, max_rank=self._engine.settings.lora_max_rank
                )
            except (TierError, LMError, BlobError) as exc:
                raise _tier_error(exc) from exc
        try:
            return self._generate(
                prompt,
                hits,
                cube_data,
                use_cache=use_cache,
                adapter=adapter_name,
                max_tokens=max_tokens,
                started=started,
            )
        except LMError as exc:
            raise ModelUnavailable(str(exc)) from exc

    def _generate(
        self,
        prompt: str,
        hits: list[Hit],
        cube: CubeData | None,
        *,
        use_cache: bool,
        adapter: str | None,
        max_tokens: int,
        started: float,
    ) -> Generation:
        """`ttft_s` and `total_s` count from `started` (the call): recall, choosing and
        loading a cache, tokenizing, and the forward passes."""
        tiers, now = self._tiers, self._now()
        lm = tiers.lm
        tail_prompt = lm.tail_ids(prompt)
        pieces, whole = self._fit(lm, hits, tail_prompt, max_tokens)
        hits = [h for h in hits if h.record.id in pieces]
        by_id = {h.record.id: h for h in hits}
        use = None
        # A reader of a shared cube recomputes: using the owner's cache would mark it used
        # (eviction order), rebuild a stale one and make the cube one promotion runs in.
        if cube is not None and hits and adapter is None and self._cubes.owns(cube):
            tiers.generated.add(cube.pk)
            choice = tiers.choose_cache(cube, whole)  # only memories that are in uncut
            if choice is not None:
                try:
                    use = tiers.fresh_cache(cube, choice, now, load=use_cache)
                except (TierError, BlobError):  # its records are gone, or a bad file
                    use = None
        covered = [by_id[i] for i in use.covered if i in by_id] if use else []
        if use is not None and len(covered) != len(use.covered):
            use = None  # a rebuild dropped or changed what the recall returned
            covered = []
        rest = [h for h in hits if h not in covered]
        head = context_ids(lm, [h.record.content for h in covered])
        if use is not None and len(head) != use.tokens:
            use = None  # the cache holds other tokens: recompute rather than guess
        tail: list[int] = []
        for h in rest:
            tail += pieces[h.record.id]
        tail += tail_prompt
        before = time.perf_counter() - started
        if use is not None and use.cache is not None:
            gen = lm.generate(tail, cache=use.cache, max_new_tokens=max_tokens)
        else:
            gen = lm.generate(head + tail, max_new_tokens=max_tokens, adapter=adapter)
        if use is not None:
            tiers.touch(use.row.id, now)
        return Generation(
            text=gen.text,
            memories=covered + rest,
            cache_id=use.row.id if use and use.cache is not None else None,
            cache_rebuilt=bool(use and use.rebuilt),
            cached_tokens=use.tokens if use and use.cache is not None else 0,
            prompt_tokens=len(head) + len(tail),
            adapter_id=adapter,
            ttft_s=round(before + gen.ttft_s, 4),
            total_s=round(before + gen.total_s, 4),
        )

    def _fit(
        self, lm: LocalLM, hits: list[Hit], tail_prompt: list[int], max_tokens: int
    ) -> tuple[dict[str, list[int]], list[str]]:
        """The token ids of each memory that goes into the prompt (by record id), and the
        ids of those that go in uncut: what fits beside the preamble, the prompt and the
        answer in the context window (see `generate`)."""
        st = self._engine.settings
        window = lm.context_tokens
        if st.lm_context_tokens is not None:
            window = min(window, st.lm_context_tokens)
        room = window - max_tokens - len(lm.preamble_ids()) - len(tail_prompt)
        if room < 0:
            raise InvalidInput(
                f"the prompt is {len(tail_prompt)} tokens: with max_tokens={max_tokens} it "
                f"does not fit the model's context of {window} tokens",
                details={"field": "prompt"},
            )
        newline = lm.encode("\n")[-1:]
        pieces: dict[str, list[int]] = {}
        whole: list[str] = []
        for h in hits:
            ids = lm.memory_ids(h.record.content)
            if len(ids) <= room:
                pieces[h.record.id] = ids
                whole.append(h.record.id)
                room -= len(ids)
                continue
            if room >= MIN_MEMORY_PIECE:
                pieces[h.record.id] = ids[: room - len(newline)] + newline
            break
        return pieces, whole

    def _ids_in_one_cube(
        self, ids: str | Sequence[str], *, write: bool
    ) -> tuple[CubeData, list[str]]:
        ids = [ids] if isinstance(ids, str) else list(ids)
        if not ids or not all(isinstance(i, str) for i in ids):
            raise InvalidInput("give one or more record ids", details={"field": "id"})
        with self._engine.db.reading() as tx:
            recs = [self._cubes.record(tx, i, write=write) for i in ids]
            cubes = {r.cube_pk for r in recs}
            if len(cubes) != 1:
                raise InvalidInput("the records are in different cubes", details={"field": "id"})
            return _cube_of(tx, recs[0]), [r.id for r in recs]

    def promote(self, id: str | Sequence[str], *, tier: TierName = "activation") -> MemoryRecord:
        """Move memories up a tier: "activation" builds one KV cache of the records (in the
        given order); "parametric" consolidates them into a LoRA adapter. Returns the new
        tier record; the plaintext records stay as they are."""
        if tier not in ("activation", "parametric"):
            raise InvalidInput("tier must be activation or parametric", details={"field": "tier"})
        if tier == "parametric":
            cube, ids = self._ids_in_one_cube(id, write=True)
            return self.consolidate(cube.id, record_ids=ids)
        cube, ids = self._ids_in_one_cube(id, write=True)
        try:
            with self.queue("lm").slot():
                rec_id = self._tiers.build_activation(cube, ids, self._now())
            self._tiers.evict(cube, self._now())
        except (TierError, LMError, BlobError) as exc:
            raise _tier_error(exc) from exc
        return self._get(rec_id)

    def demote(self, id: str) -> list[str]:
        """Move down a tier: an activation or parametric record is deleted with its file
        (listed as deleted, kept in history); for a plaintext record, the caches built from
        it are. Returns the ids of the tier records removed."""
        with self._engine.db.reading() as tx:
            rec = self._cubes.record(tx, id, write=True)
            targets = (
                [rec.id]
                if rec.tier != "plaintext"
                else self._tiers.covering(tx, rec.cube_pk, rec.id)
            )
        now = self._now()
        removed = [t for t in targets if self._tiers.remove(t, now, change="demote")]
        for t in removed:
            self._tiers.lm_unload(t)
        return removed

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
        cube, at most MEMSVC_LORA_MAX_RECORDS) and store it as a parametric record with its
        provenance, training settings and loss curve. Takes minutes on a CPU for about 100
        facts; `progress(step, steps, loss)` reports each step. Steps and rank are capped
        by MEMSVC_LORA_MAX_STEPS and MEMSVC_LORA_MAX_RANK; beyond MEMSVC_LM_TRAINING_JOBS
        trainings at once, `Busy`."""
        st = self._engine.settings
        defaults = LoraSettings()
        steps = min(defaults.steps, st.lora_max_steps) if steps is None else steps
        rank = min(defaults.rank, st.lora_max_rank) if rank is None else rank
        caps = (("steps", steps, st.lora_max_steps), ("rank", rank, st.lora_max_rank))
        for field, value, cap in caps:
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= cap:
                raise InvalidInput(f"{field} must be 1-{cap}", details={"field": field})
        try:
            settings = LoraSettings(
                steps=steps,
                rank=rank,
                alpha=2 * rank,
                learning_rate=defaults.learning_rate if learning_rate is None else learning_rate,
                max_example_tokens=st.lora_max_example_tokens,
            ).check()
        except (TypeError, ValueError) as exc:
            raise InvalidInput(str(exc), details={"field": "learning_rate"}) from exc
        most = st.lora_max_records
        cube_data = self._cubes.cube_for(cube=cube, user_id=user_id, create=False, write=True)
        if cube_data is None:
            raise InvalidInput("the user has no memories yet", details={"field": "user_id"})
        if record_ids is None:
            with self._engine.db.reading() as tx:
                recs = tx.tiers.plain_active(cube_data.pk, most + 1)
            if len(recs) > most:
                raise InvalidInput(
                    f"the cube has over {most} memories: pass record_ids",
                    details={"field": "record_ids"},
                )
            ids = [r.id for r in recs]
        else:
            if isinstance(record_ids, str) or not all(isinstance(i, str) for i in record_ids):
                raise InvalidInput(
                    "record_ids must be a list of ids", details={"field": "record_ids"}
                )
            ids = list(dict.fromkeys(record_ids))
            if len(ids) > most:
                raise InvalidInput(f"at most {most} records", details={"field": "record_ids"})
        if not ids:
            raise InvalidInput("no memories to consolidate", details={"field": "record_ids"})
        try:
            with self.queue("training").slot():
                rec_id = self._tiers.consolidate(
                    cube_data, ids, self._now(), settings, progress=progress
                )
        except (TierError, LMError, BlobError, ValueError) as exc:
            raise _tier_error(exc) from exc
        return self._get(rec_id)

    # ---- hooks of the lifecycle ---------------------------------------------------------------

    def files_gone(self, record: RecordData) -> None:
        """After a tier record was deleted: its own file goes (found by its ids, whatever
        its row says), and its adapter off the model."""
        if record.tier != "plaintext":
            with self._engine.db.reading() as tx:
                self._tiers.drop_file(tx, record)
            self._tiers.lm_unload(record.id)

    def restore(self, record: RecordData) -> MemoryRecord:
        """An activation record comes back with its cache rebuilt; an adapter only while
        its file is still there (training again is `consolidate`). A rebuild waits for the
        LM queue before anything changes, so `Busy` leaves the record as it was."""
        now = self._now()
        with self._engine.db.reading() as tx:
            has_file = self._tiers.has_file(tx, record)
        if record.tier == "parametric" and not has_file:
            raise Conflict(
                f"adapter {record.id} has no file any more: consolidate again",
                details={"id": record.id},
            )
        rebuild = record.tier == "activation"
        with self.queue("lm").slot() if rebuild else nullcontext():
            with self._engine.db.writing() as tx:
                live = self._cubes.record_for_write(tx, record.id)
                live = tx.records.change(
                    live.pk, {"status": "active"}, change="restore", at=now, op=None
                )
                cube = _cube_of(tx, live)
            if rebuild:
                try:
                    self._tiers.fresh_cache(cube, live, now, load=False)
                except (TierError, LMError, BlobError) as exc:
                    raise _tier_error(exc) from exc
        return self._get(record.id)
