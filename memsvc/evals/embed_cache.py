"""An on-disk embedding cache: each distinct text is embedded once per model, across runs.

LongMemEval gives every question its own haystack, and haystack sessions repeat across
questions; with the cache a rerun (or another system in the same run) embeds nothing again.
Keys are sha256(model id, text); vectors are float32 blobs in one SQLite file.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memsvc.embedder import Embedder, encode_queries

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    """Wraps an `Embedder`; documents go through the cache, queries straight to the model."""

    def __init__(self, inner: Embedder, cache_dir: str | Path) -> None:
        self.inner = inner
        self.path = Path(cache_dir) / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\0{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._db.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        if todo:
            vecs = self.inner.encode([t for _, t in todo])
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                    [
                        (k, v.astype(np.float32).tobytes())
                        for (k, _), v in zip(todo, vecs, strict=True)
                    ],
                )
            found.update({k: v for (k, _), v in zip(todo, vecs, strict=True)})
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if not keys:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return encode_queries(self.inner, texts)

    def close(self) -> None:
        self._db.close()
