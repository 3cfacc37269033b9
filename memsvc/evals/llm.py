"""Chat models for QA mode: the bundled SmolLM2-135M-Instruct (or any local model directory)
through transformers, or any OpenAI-compatible endpoint over HTTP. Both answer greedily."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import httpx

from memsvc.lm import LOCK, LocalLM, bundled_lm_path

__all__ = ["ChatModel", "LocalChatModel", "OpenAIChatModel", "bundled_lm_path"]


class ChatModel(Protocol):
    name: str

    def chat(self, prompt: str, *, max_tokens: int = 64) -> str: ...


class LocalChatModel:
    """A causal LM on the CPU through `memsvc.lm.LocalLM` (the weights the activation and
    parametric tiers use, loaded once per process). Greedy decoding, so runs are repeatable."""

    def __init__(self, path: str | Path | None = None, *, threads: int | None = None) -> None:
        self._lm = LocalLM(path, threads=threads)
        self.path = self._lm.path
        self.name = self._lm.name
        self._lock = LOCK

    def _load(self) -> tuple[Any, Any]:
        return self._lm.load()

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
