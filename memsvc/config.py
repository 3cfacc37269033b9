"""One settings object for the whole service, read from MEMSVC_* environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from memsvc.retrieval.retention import ForgetPolicy

__all__ = ["Settings", "get_settings"]


def _default_threads() -> int:
    # More threads than cores makes torch spin against any other busy process; 2 is the
    # measured sweet spot on small machines and never worse than 1 on larger ones.
    return max(1, min(2, os.cpu_count() or 1))


def _machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 4 * 1024**3
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
        break
    return total


def default_index_memory_bytes() -> int:
    # A quarter of the memory, at least 64 MiB: the model, the database's cache and the
    # request buffers need the rest. `memsvc serve --workers N` gives each worker 1/N of it.
    return max(64 * 1024**2, _machine_memory() // 4)


class Settings(BaseSettings):
    """Service configuration. Every field can be set as MEMSVC_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="MEMSVC_", extra="ignore")

    home: Path = Field(default=Path(".memsvc"), description="Data directory.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite under `home`."
    )
    embedding_model: str | None = Field(
        default=None,
        description="A sentence-transformers model directory; default is the bundled MiniLM.",
    )
    embed_threads: int = Field(
        default_factory=_default_threads, ge=1, description="torch threads for batches."
    )
    query_threads: int = Field(
        default=1, ge=1, description="torch threads for single queries (stable under load)."
    )
    search_threads: int = Field(
        default=1,
        ge=1,
        description="FAISS and numpy BLAS threads; 1 is fastest for single queries.",
    )
    embed_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto", description="ONNX Runtime (same embeddings, ~2x faster) or torch."
    )
    query_precision: Literal["int8", "fp32"] = Field(
        default="int8",
        description="Query embeddings on an int8 model copy (2.8x faster, same LoCoMo "
        "recall); documents are always fp32.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Exported models (default ~/.cache/memsvc)."
    )
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    max_text_bytes: int = Field(default=32 * 1024, ge=1)
    sentence_keys: bool = Field(
        default=True,
        description="Also index each sentence of a person's multi-sentence message, so a "
        "remark inside a long turn is found (retrieval.sentence_keys; up to 16 a message).",
    )
    chunk_bytes: int = Field(
        default=32 * 1024,
        ge=64,
        description="add stores a longer text or message as linked chunk records of this size.",
    )
    max_add_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Bytes of text and metadata one add may store (batch metadata: per record).",
    )
    max_batch_records: int = Field(default=10_000, ge=1)
    idempotency_ttl_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="How long an add's idempotency key is kept: a repeat within it returns "
        "the first add's records instead of writing again.",
    )
    max_k: int = Field(default=1000, ge=1)
    index_flush_seconds: float = Field(
        default=5.0, ge=0, description="Save a changed vector index at most this often."
    )
    index_file_min_vectors: int = Field(
        default=2000,
        ge=0,
        description="Cubes with fewer vectors keep no index file: they load from the database "
        "as fast as from a file, and saving one (an fsync'd write) doubled a small cube's "
        "first recall. 0: every cube keeps one.",
    )
    index_sync_seconds: float = Field(
        default=0.1,
        ge=0,
        le=1.0,
        description="Recall may use an index checked against the change log this long ago: "
        "writes by other processes show within it, this process's own writes at once.",
    )
    index_memory_bytes: int = Field(
        default_factory=default_index_memory_bytes,
        ge=1,
        description="Bytes of cube indexes (vector codes, rescoring vectors, side indexes) "
        "each worker keeps in memory; past it the least recently used cubes are evicted and "
        "load again on their next use. Default: a quarter of the machine's memory (of its "
        "cgroup limit if lower), split between `serve --workers`.",
    )
    search_mode: Literal["exact", "int8", "binary+rescore"] = Field(
        default="binary+rescore",
        description="Vector search: exact, or two-stage (int8 or rotated 1-bit codes scanned "
        "for k x oversample candidates, then rescored exactly).",
    )
    search_oversample: int = Field(default=20, ge=1, le=1000)
    recall_recipe: str = Field(
        default="balanced",
        description="Recall recipe when a call names none: a preset (fast, balanced, deep) or a "
        "compact string such as 'dense=1+keyword=1|rrf20'.",
    )
    auth: bool = Field(
        default=True, description="Require API keys on /v1 routes (off only on loopback)."
    )
    auth_cache_seconds: float = Field(
        default=1.0, ge=0, description="How long a verified API key is trusted without a read."
    )
    operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the per-cube figures of /metrics and /readyz; when set, "
        "/metrics answers 401 without it; when not, /metrics shows only tenant-free totals.",
    )
    metrics_cache_seconds: float = Field(
        default=15.0,
        ge=1,
        le=3600,
        description="/metrics and /readyz read the per-cube figures (a scan of every record) "
        "at most this often, however often they are asked.",
    )
    otel_capture_query: bool = Field(
        default=False,
        description="Put the query text on recall spans (memsvc/tracing.py): off, traces "
        "carry no memory content.",
    )
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024, description="Body size limit.")
    max_import_bytes: int = Field(
        default=1024**3, ge=1024, description="Body size limit for cube file uploads."
    )
    workers: int = Field(default=1, ge=1, le=64, description="API worker processes.")
    request_threads: int = Field(
        default=8, ge=1, le=256, description="Threads serving requests in each worker."
    )
    gc_freeze: bool = Field(
        default=True,
        description="A served worker exempts its start-up objects from full garbage "
        "collections (gc.freeze): a full pass over them stalled every request ~0.3 s.",
    )
    switch_interval_ms: float = Field(
        default=0.5,
        ge=0.05,
        le=100.0,
        description="A served worker's interpreter switch interval (sys.setswitchinterval): "
        "how long a thread back from the database, FAISS or the model may wait for one "
        "running Python, such as a cold cube's side-index build, to yield (Python's own is "
        "5 ms; README, index memory budget).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    forget_base_days: float = Field(
        default=180.0,
        gt=0,
        description="Memory strength in days at importance 0.5 (x2 at importance 1, /2 at 0).",
    )
    forget_growth: float = Field(
        default=1.5, ge=0, description="How much a recall grows strength (spacing-weighted)."
    )
    forget_int8_below: float = Field(
        default=0.5, ge=0, le=1, description="Retention under which a vector is stored int8."
    )
    forget_binary_below: float = Field(
        default=0.1, ge=0, le=1, description="Retention under which a vector is stored 1-bit."
    )
    forget_archive_below: float = Field(
        default=0.01, ge=0, le=1, description="Retention under which a record is archived."
    )
    reinforce_flush_seconds: float = Field(
        default=2.0, ge=0, description="How often recall reinforcement is written (0: at once)."
    )
    forgetting: bool = Field(
        default=True, description="Demote and archive records as their retention falls."
    )
    maintain_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Interval of background maintenance in `memsvc serve` (0: only on demand).",
    )
    maintain_idle_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="A scheduled tick maintains only cubes with a record change or a recall "
        "since their last run, or whose last run is this old (forgetting is time-based, so an "
        "idle cube is still swept now and then); 0: every cube on every tick.",
    )
    related_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Cosine above which records get `related` edges."
    )
    duplicate_threshold: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Cosine above which facts with nearly the same words merge as duplicates.",
    )

    rate_limit_per_second: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second per API key on /v1 routes (0: unlimited); beyond "
        "it the answer is 429 with Retry-After.",
    )
    rate_limit_burst: int = Field(
        default=20, ge=1, description="Requests a key may make at once before the rate applies."
    )
    rate_limit_shared: bool = Field(
        default=False,
        description="Keep the rate-limit buckets in the database, so a key's rate holds "
        "across every worker and replica (one upsert per request; meant for PostgreSQL).",
    )
    lm_path: str | None = Field(
        default=None,
        description="Local LM for the activation and parametric tiers: a GGUF file or a "
        "transformers model directory (default: the bundled SmolLM2-135M-Instruct).",
    )
    lm_threads: int | None = Field(
        default=None, ge=1, le=256, description="Torch threads for the local LM (default: torch's)."
    )
    activation_budget_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=0,
        description="KV-cache bytes per cube; least recently used caches are evicted beyond it.",
    )
    activation_max_tokens: int = Field(
        default=4096, ge=16, description="Longest memory context one KV cache may hold."
    )
    promote_recalls: int = Field(
        default=5,
        ge=0,
        description="Recalls within the window that promote a record to a KV cache (0: never).",
    )
    promote_window_hours: float = Field(
        default=24.0, gt=0, description="The window in which promote_recalls are counted."
    )
    lm_context_tokens: int | None = Field(
        default=None,
        ge=64,
        description="Prompt plus answer of one generation, in tokens (default: the model's "
        "context window); memories that do not fit are cut or left out.",
    )
    lm_queue_size: int = Field(
        default=4,
        ge=0,
        le=1024,
        description="LM jobs (generate, cache builds) that may wait behind the running one in "
        "each process; beyond it the answer is 429 `busy` with Retry-After.",
    )
    lm_training_jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Adapter trainings at once in each process (each holds a model copy); "
        "beyond it 429 `busy`.",
    )
    lora_max_steps: int = Field(default=500, ge=1, le=5000, description="Most training steps.")
    lora_max_rank: int = Field(
        default=64, ge=1, le=256, description="Highest LoRA rank trained or loaded."
    )
    lora_max_records: int = Field(
        default=500, ge=1, le=2000, description="Most memories one adapter is trained on."
    )
    lora_max_example_tokens: int = Field(
        default=256, ge=16, le=4096, description="Tokens of one training example (cut beyond)."
    )

    @field_validator("recall_recipe", mode="after")
    @classmethod
    def _known_recipe(cls, value: str) -> str:
        from memsvc.retrieval.recipe import RecipeError, parse_recipe

        try:
            parse_recipe(value)
        except RecipeError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Settings:
        try:
            self.forget_policy()
        except ValueError as exc:
            raise ValueError(f"forget_* settings: {exc}") from exc
        return self

    def forget_policy(self) -> ForgetPolicy:
        return ForgetPolicy(
            base_days=self.forget_base_days,
            growth=self.forget_growth,
            int8_below=self.forget_int8_below,
            binary_below=self.forget_binary_below,
            archive_below=self.forget_archive_below,
        )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'memsvc.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead."""
    return Settings()
