"""QA mode: an answer model reads a system's retrieved memories and answers; scores follow.

Prompts are data files in evals/prompts/, the same for every system. LoCoMo gets the official
token F1 (all categories) and, labelled separately, the mem0-style protocol (category 5
skipped, set F1, BLEU-1, LLM judge CORRECT/WRONG). LongMemEval gets its judge protocol: a
yes/no check per question type (off-by-one day counts forgiven for temporal questions, old +
updated information accepted for knowledge updates, a rubric for preferences, and "cannot be
answered" for abstention questions).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memsvc.evals.llm import ChatModel, LocalChatModel, OpenAIChatModel
from memsvc.evals.locomo import CATEGORIES, LocomoQuestion
from memsvc.evals.longmemeval import LongMemEvalQuestion
from memsvc.evals.qa_metrics import bleu1, locomo_f1, set_f1

if TYPE_CHECKING:
    from memsvc.evals.runner import EvalConfig
    from memsvc.evals.systems import Doc

__all__ = ["QAEngine", "load_prompt", "locomo_qa_aggregates", "longmemeval_qa_aggregates"]

PROMPTS = Path(__file__).parent / "prompts"
_JUDGE_BY_TYPE = {
    "temporal-reasoning": "longmemeval_judge_temporal",
    "knowledge-update": "longmemeval_judge_update",
    "single-session-preference": "longmemeval_judge_preference",
}


def load_prompt(name: str) -> str:
    return (PROMPTS / f"{name}.txt").read_text()


def _date(doc: Doc) -> str:
    return doc.time.strftime("%d %B %Y") if doc.time else "unknown date"


@dataclass
class QAEngine:
    answer_model: ChatModel
    judge_model: ChatModel

    @classmethod
    def from_config(cls, cfg: EvalConfig) -> QAEngine:
        if cfg.llm_base_url:
            if not cfg.llm_model:
                raise ValueError("--llm-model is required with --llm-base-url")
            key = os.environ.get(cfg.llm_api_key_env)
            answer: ChatModel = OpenAIChatModel(cfg.llm_base_url, cfg.llm_model, api_key=key)
            judge: ChatModel = (
                OpenAIChatModel(cfg.llm_base_url, cfg.judge_model, api_key=key)
                if cfg.judge_model
                else answer
            )
        else:
            answer = LocalChatModel(cfg.llm_model)
            judge = LocalChatModel(cfg.judge_model) if cfg.judge_model else answer
        return cls(answer, judge)

    def describe(self) -> dict[str, Any]:
        return {
            "answer_model": self.answer_model.name,
            "judge_model": self.judge_model.name,
            "prompts": sorted(p.name for p in PROMPTS.glob("*.txt")),
        }

    def locomo(self, q: LocomoQuestion, context: Sequence[Doc]) -> dict[str, Any]:
        memories = "\n".join(f"[{_date(d)}] {d.text}" for d in context)
        prompt = load_prompt("locomo_answer").format(context=memories, question=q.question)
        prediction = self.answer_model.chat(prompt, max_tokens=48).split("\n")[0].strip()
        out: dict[str, Any] = {
            "prediction": prediction,
            "official_f1": locomo_f1(prediction, q.answer, q.category),
        }
        if q.category != 5:  # the mem0-style protocol skips adversarial questions
            verdict = self.judge_model.chat(
                load_prompt("mem0_judge").format(
                    question=q.question, gold=q.answer, prediction=prediction
                ),
                max_tokens=8,
            )
            out["mem0"] = {
                "f1": set_f1(prediction, q.answer),
                "bleu1": bleu1(prediction, q.answer),
                "judge": "CORRECT" in verdict.upper() and "WRONG" not in verdict.upper(),
                "judge_raw": verdict,
            }
        return out

    def longmemeval(
        self, q: LongMemEvalQuestion, context: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """`context`: (date, text) of the retrieved documents, best first."""
        history = "\n\n".join(f"[{date}]\n{text}" for date, text in context)
        prompt = load_prompt("longmemeval_answer").format(
            context=history, question=q.question, question_date=q.question_date
        )
        response = self.answer_model.chat(prompt, max_tokens=96)
        template = (
            "longmemeval_judge_abstention"
            if q.abstention
            else _JUDGE_BY_TYPE.get(q.question_type, "longmemeval_judge_default")
        )
        verdict = self.judge_model.chat(
            load_prompt(template).format(question=q.question, answer=q.answer, response=response),
            max_tokens=8,
        )
        return {
            "prediction": response,
            "judge": "yes" in verdict.lower(),
            "judge_raw": verdict,
            "judge_prompt": template,
        }


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def locomo_qa_aggregates(rows: list[dict]) -> dict[str, Any]:
    with_qa = [r for r in rows if "qa" in r]
    official = {"overall": _mean([r["qa"]["official_f1"] for r in with_qa])}
    for cat in CATEGORIES.values():
        vals = [r["qa"]["official_f1"] for r in with_qa if r["category_name"] == cat]
        if vals:
            official[cat] = _mean(vals)
    mem0 = [r["qa"]["mem0"] for r in with_qa if "mem0" in r["qa"]]
    return {
        "official_f1": official,
        "mem0_style": {
            "f1": _mean([m["f1"] for m in mem0]),
            "bleu1": _mean([m["bleu1"] for m in mem0]),
            "judge_accuracy": _mean([float(m["judge"]) for m in mem0]),
            "n": len(mem0),
        },
    }


def longmemeval_qa_aggregates(rows: list[dict]) -> dict[str, Any]:
    """Accuracy per question type, task-averaged, overall, and abstention accuracy."""
    with_qa = [r for r in rows if "qa" in r]
    normal = [r for r in with_qa if "_abs" not in r["question_id"]]
    by_type = {
        t: _mean([float(r["qa"]["judge"]) for r in normal if r["question_type"] == t])
        for t in sorted({r["question_type"] for r in normal})
    }
    typed = [v for v in by_type.values() if v is not None]
    return {
        "overall": _mean([float(r["qa"]["judge"]) for r in with_qa]),
        "task_averaged": _mean(typed),
        "by_type": by_type,
        "abstention": _mean(
            [float(r["qa"]["judge"]) for r in with_qa if "_abs" in r["question_id"]]
        ),
        "n": len(with_qa),
    }
