"""Eval runs: ingest each corpus into every system the same way, query, score, write results.

`run_locomo` and `run_longmemeval` return the results dict that `results.json` holds
(schema in evals/README.md) and write it, `report.md` and the plots into `out`. The module
is longer than 500 lines because both benchmarks' loops share its config, progress bars,
system life cycle, latency figures and results writer.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memsvc import Settings
from memsvc.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.evals import locomo as lc
from memsvc.evals import longmemeval as lme
from memsvc.evals.embed_cache import CachedEmbedder
from memsvc.evals.metrics import (
    locomo_evidence_recall,
    ndcg_any,
    recall_all,
    recall_any,
    turn_to_session_metrics,
)
from memsvc.evals.systems import (
    SYSTEMS,
    Doc,
    MemsvcSystem,
    RetrievalSystem,
    check_system,
    make_system,
)

__all__ = ["EvalConfig", "run_locomo", "run_longmemeval"]

SCHEMA = "memsvc-eval/1"
LOCOMO_KS = [5, 10, 25, 50]
LME_KS = [1, 3, 5, 10, 30, 50]
console = Console(stderr=True)
T = TypeVar("T")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass
class EvalConfig:
    data: Path
    out: Path
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    ks: list[int] = field(default_factory=list)  # default: the benchmark's usual cut-offs
    mode: str = "retrieval"  # or "qa"
    server: str | None = None
    conversations: list[str] = field(default_factory=list)  # LoCoMo
    granularity: str = "session"  # LongMemEval
    limit: int | None = None  # LongMemEval
    rounds: bool = True  # LongMemEval: memsvc is given assistant turns too (baselines never)
    cache_dir: Path | None = None
    qa_k: int = 10
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key_env: str = "OPENAI_API_KEY"
    judge_model: str | None = None
    max_questions: int | None = None  # per conversation, for quick QA runs
    progress: bool = True

    def __post_init__(self) -> None:
        for name in self.systems:
            check_system(name)
        if self.mode not in ("retrieval", "qa"):
            raise ValueError("mode must be 'retrieval' or 'qa'")
        if any(k < 1 for k in self.ks):
            raise ValueError("k values must be positive integers")
        if self.granularity not in ("session", "turn"):
            raise ValueError("granularity must be 'session' or 'turn'")

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"], d["out"] = str(self.data), str(self.out)
        d["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        return d


def count_tokens(text: str) -> int:
    """Word and punctuation tokens (the official LoCoMo tokenizer's rule, without Unicode
    classes): a model-independent measure of how much context a system hands on."""
    return len(_TOKEN.findall(text))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _embedder(cfg: EvalConfig) -> CachedEmbedder:
    cache = cfg.cache_dir or Path.home() / ".cache" / "memsvc" / "eval"
    # Bulk embedding on every core, as the service does (Settings.embed_threads): the
    # embedder's own default is one thread.
    return CachedEmbedder(SentenceTransformerEmbedder(threads=Settings().embed_threads), cache)


class _Bars:
    """rich progress bars, or silence (tests, --quiet)."""

    def __init__(self, enabled: bool) -> None:
        self.progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            if enabled
            else None
        )

    def __enter__(self) -> _Bars:
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.__exit__(*exc)

    def track(self, items: Sequence[T], description: str) -> Iterator[T]:
        if self.progress is None:
            yield from items
            return
        task = self.progress.add_task(description, total=len(items))
        for item in items:
            yield item
            self.progress.advance(task)
        self.progress.remove_task(task)


class EvalSystemError(RuntimeError):
    """A system failed mid-run; the message names the exception that failed it."""


@contextmanager
def _running(system: RetrievalSystem, name: str) -> Iterator[None]:
    """Close the system after its run. When the run fails, the error that failed it is the one
    reported: a clean-up that fails too (say, dropping a cube that was never made) is only a
    note on it, never a replacement."""
    try:
        yield
    except Exception as exc:
        try:
            system.close()
        except Exception as cleanup:
            exc.add_note(
                f"closing {name} afterwards failed too: {type(cleanup).__name__}: {cleanup}"
            )
        raise EvalSystemError(f"system {name!r} failed: {type(exc).__name__}: {exc}") from exc
    system.close()


@contextmanager
def _failing(name: str) -> Iterator[None]:
    """A system's failure, named: the systems are closed by the caller."""
    try:
        yield
    except Exception as exc:
        raise EvalSystemError(f"system {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _close_all(systems: dict[str, RetrievalSystem]) -> None:
    """Close every system, those that share another's store first; a failure to close
    is logged, never raised over the error that ended the run."""
    order = sorted(systems.items(), key=lambda kv: getattr(kv[1], "owner", None) is None)
    for name, system in order:
        try:
            system.close()
        except Exception as exc:
            console.print(f"closing {name} failed: {type(exc).__name__}: {exc}")


def _pct(values: Iterable[float], q: float) -> float | None:
    arr = np.asarray(list(values), dtype=np.float64)
    return float(np.percentile(arr, q)) if arr.size else None


def _latency(system: RetrievalSystem, recall_s: list[float], ingest_s: list[float]) -> dict:
    ms = 1000.0
    return {
        "add_calls": len(system.add_latencies),
        "add_p50_ms": _pct((x * ms for x in system.add_latencies), 50),
        "add_p95_ms": _pct((x * ms for x in system.add_latencies), 95),
        "recall_p50_ms": _pct((x * ms for x in recall_s), 50),
        "recall_p95_ms": _pct((x * ms for x in recall_s), 95),
        "ingest_seconds_total": float(sum(ingest_s)),
        "recall_ms": [round(x * ms, 3) for x in recall_s],
    }


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


# ---- LoCoMo ---------------------------------------------------------------------------------


def _locomo_docs(conv: lc.LocomoConversation) -> list[Doc]:
    return [
        Doc(
            t.dia_id,
            t.document,
            t.time,
            session=f"{conv.sample_id}-S{t.session}",
            speaker=t.speaker,
            body=t.text,
        )
        for t in conv.turns
    ]


def run_locomo(cfg: EvalConfig, embedder: Embedder | None = None) -> dict[str, Any]:
    convs = lc.load_locomo(cfg.data, cfg.conversations or None)
    ks = sorted(cfg.ks or LOCOMO_KS)
    emb = embedder or _embedder(cfg)
    depth = max(max(ks), cfg.qa_k)
    rows: list[dict[str, Any]] = []
    latency: dict[str, Any] = {}
    answerer = None
    if cfg.mode == "qa":
        from memsvc.evals.qa import QAEngine

        answerer = QAEngine.from_config(cfg)
    with _Bars(cfg.progress) as bars:
        for name in cfg.systems:
            system = make_system(name, emb, server=cfg.server)
            recall_s: list[float] = []
            ingest_s: list[float] = []
            with _running(system, name):
                for conv in bars.track(convs, f"{name}: conversations"):
                    docs = _locomo_docs(conv)
                    by_id = {d.id: d for d in docs}
                    t = time.perf_counter()
                    system.load(docs)
                    ingest_s.append(time.perf_counter() - t)
                    questions = conv.questions[: cfg.max_questions]
                    for q in bars.track(questions, f"{name}: {conv.sample_id} questions"):
                        t = time.perf_counter()
                        ranked = system.search(q.question, depth)
                        recall_s.append(time.perf_counter() - t)
                        ids = [i for i, _ in ranked]
                        row: dict[str, Any] = {
                            "system": name,
                            "conversation": conv.sample_id,
                            "qa_index": q.index,
                            "category": q.category,
                            "category_name": q.category_name,
                            "question": q.question,
                            "answer": q.answer,
                            "evidence": q.evidence,
                            "repaired_evidence": q.repaired_evidence,
                            "retrieved": ids,
                            "scores": [round(s, 6) for _, s in ranked],
                            "recall_ms": round(recall_s[-1] * 1000, 3),
                            "context_tokens": {
                                str(k): sum(count_tokens(by_id[i].text) for i in ids[:k])
                                for k in ks
                            },
                            "recall": {
                                str(k): locomo_evidence_recall(ids[:k], q.evidence) for k in ks
                            },
                            "repaired_recall": {
                                str(k): locomo_evidence_recall(ids[:k], q.repaired_evidence)
                                for k in ks
                            }
                            if q.repaired_evidence
                            else None,
                        }
                        if answerer is not None:
                            context = [by_id[i] for i in ids[: cfg.qa_k]]
                            row["qa"] = answerer.locomo(q, context)
                        rows.append(row)
            latency[name] = _latency(system, recall_s, ingest_s)
    results = {
        "schema": SCHEMA,
        "benchmark": "locomo",
        "created_at": datetime.now(UTC).isoformat(),
        "config": cfg.public(),
        "dataset": {
            "path": str(cfg.data),
            "sha256": _sha256(Path(cfg.data)),
            "conversations": [c.sample_id for c in convs],
            "turns": sum(len(c.turns) for c in convs),
            "questions": sum(len(c.questions[: cfg.max_questions]) for c in convs),
        },
        "embedding_cache": _cache_stats(emb),
        "latency": latency,
        "ks": ks,
        "aggregates": locomo_aggregates(rows, cfg.systems, ks),
        "rows": rows,
    }
    if answerer is not None:
        results["qa_config"] = answerer.describe()
    _write(cfg.out, results)
    return results


def locomo_aggregates(rows: list[dict], systems: Sequence[str], ks: Sequence[int]) -> dict:
    """aggregates[system]["recall@10"]["overall" | category name], the same for
    "repaired_recall@10" (questions with valid evidence only), and QA metrics when present."""
    out: dict[str, Any] = {}
    for name in systems:
        mine = [r for r in rows if r["system"] == name]
        agg: dict[str, Any] = {"questions": len(mine)}
        for k in ks:
            for key in ("recall", "repaired_recall"):
                scored = [r for r in mine if r[key] is not None]
                table = {
                    "overall": _mean([r[key][str(k)] for r in scored]),
                    # categories 1-4: the questions that have evidence to find (issue 6's target)
                    "overall_1_4": _mean([r[key][str(k)] for r in scored if r["category"] != 5]),
                }
                for cat in lc.CATEGORIES.values():
                    vals = [r[key][str(k)] for r in scored if r["category_name"] == cat]
                    if vals:
                        table[cat] = _mean(vals)
                table["n"] = len(scored)
                agg[f"{key}@{k}"] = table
            agg[f"context_tokens@{k}"] = _mean([r["context_tokens"][str(k)] for r in mine])
        if any("qa" in r for r in mine):
            from memsvc.evals.qa import locomo_qa_aggregates

            agg["qa"] = locomo_qa_aggregates(mine)
        out[name] = agg
    return out


# ---- LongMemEval ----------------------------------------------------------------------------


def _lme_time(date: str) -> datetime | None:
    """ "2023/05/30 (Tue) 23:40" -> datetime (UTC)."""
    m = re.match(r"(\d{4})/(\d{2})/(\d{2})(?: \(\w+\))? (\d{2}):(\d{2})", date)
    if not m:
        return None
    y, mo, d, h, mi = (int(x) for x in m.groups())
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def asked_at(q: lme.LongMemEvalQuestion) -> datetime | None:
    """When a question is asked: its `question_date`, or its newest session's time where the
    file dates sessions after it. The benchmark's premise is that a question follows its
    whole history, but 34 of the 250 dev questions have sessions timed later on the
    question's own day (up to 23.7 h; evidence in 18), and recall `at` the question's time
    leaves out what was said after it (one question got no hit at all)."""
    asked = _lme_time(q.question_date)
    said = [t for t in (_lme_time(d) for d in q.dates) if t is not None]
    return max([asked, *said]) if asked is not None and said else asked


def run_longmemeval(cfg: EvalConfig, embedder: Embedder | None = None) -> dict[str, Any]:
    ident = lme.identify_file(cfg.data)
    console.print(ident.describe())
    questions = lme.load_longmemeval(cfg.data, cfg.limit)
    ks = sorted(cfg.ks or LME_KS)
    emb = embedder or _embedder(cfg)
    rows: list[dict[str, Any]] = []
    latency: dict[str, Any] = {}
    answerer = None
    if cfg.mode == "qa":
        from memsvc.evals.qa import QAEngine

        answerer = QAEngine.from_config(cfg)
    # Questions outside, systems inside: each question's haystack is built once, and memsvc
    # systems that differ only in recipe read one ingest (the first one's store).
    systems: dict[str, RetrievalSystem] = {}
    owner: MemsvcSystem | None = None
    recall_s: dict[str, list[float]] = {n: [] for n in cfg.systems}
    first_s: dict[str, list[float]] = {n: [] for n in cfg.systems}
    ingest_s: dict[str, list[float]] = {n: [] for n in cfg.systems}
    try:
        for name in cfg.systems:
            systems[name] = make_system(name, emb, server=cfg.server, share=owner)
            made = systems[name]
            if owner is None and isinstance(made, MemsvcSystem) and made.clock is None:
                owner = made
        with _Bars(cfg.progress) as bars:
            for q in bars.track(questions, "questions"):
                ids, texts, dates = lme.documents(q, cfg.granularity)
                # Empty turns (real users send them) are not stored, but they stay documents
                # of the haystack, as the official scorer counts them.
                docs = [
                    Doc(
                        i,
                        t,
                        _lme_time(d),
                        session=i if cfg.granularity == "session" else "_".join(i.split("_")[:-1]),
                    )
                    for i, t, d in zip(ids, texts, dates, strict=True)
                    if t.strip()
                ]
                whole = [  # the whole conversation, for memsvc (--rounds)
                    Doc(i, t, _lme_time(d), session=sid, role=role)
                    for i, sid, role, t, d in lme.conversation(q, cfg.granularity)
                    if t.strip()
                ]
                for name, system in systems.items():
                    with _failing(name):
                        given = whole if cfg.rounds and name.startswith("memsvc") else docs
                        rows.append(
                            _lme_question(
                                cfg, ks, q, name, system, given, docs, (ids, texts, dates),
                                answerer, recall_s[name], first_s[name], ingest_s[name],
                            )
                        )  # fmt: skip
    finally:
        _close_all(systems)
    for name, system in systems.items():
        latency[name] = _latency(system, recall_s[name], ingest_s[name])
        latency[name]["first_recall_p50_ms"] = _pct((x * 1000 for x in first_s[name]), 50)
        latency[name]["first_recall_p95_ms"] = _pct((x * 1000 for x in first_s[name]), 95)
        if isinstance(system, MemsvcSystem) and system.owner is not None:
            latency[name]["ingest_shared_with"] = system.owner.name
    results = {
        "schema": SCHEMA,
        "benchmark": "longmemeval",
        "created_at": datetime.now(UTC).isoformat(),
        "config": cfg.public(),
        "dataset": {
            "path": str(cfg.data),
            "sha256": ident.sha256,
            "bytes": ident.bytes,
            "official": ident.official,
            "questions": len(questions),
            "scored_questions": sum(lme.scored(q) for q in questions),
        },
        "embedding_cache": _cache_stats(emb),
        "latency": latency,
        "ks": ks,
        "aggregates": longmemeval_aggregates(rows, cfg.systems),
        "rows": rows,
    }
    if answerer is not None:
        results["qa_config"] = answerer.describe()
    _write(cfg.out, results)
    return results


def _lme_question(
    cfg: EvalConfig,
    ks: Sequence[int],
    q: lme.LongMemEvalQuestion,
    name: str,
    system: RetrievalSystem,
    given: list[Doc],
    docs: list[Doc],
    haystack: tuple[list[str], list[str], list[str]],
    answerer: Any,
    recall_s: list[float],
    first_s: list[float],
    ingest_s: list[float],
) -> dict[str, Any]:
    """Load one question's haystack into `system`, rank it, and score the ranking."""
    ids, texts, dates = haystack
    t0 = time.perf_counter()
    system.load(given)
    ingest_s.append(time.perf_counter() - t0)
    at = asked_at(q)
    if docs:  # an agent's recall (k=10), the cube's first and then warm
        t0 = time.perf_counter()
        system.search(q.question, 10, at=at)
        first_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        system.search(q.question, 10, at=at)
        recall_s.append(time.perf_counter() - t0)
    # the whole ranking, for the metrics (session-level ones need it deep)
    found = system.search(q.question, min(len(docs), 1000), at=at) if docs else []
    ranked = [i for i, _ in found]
    gold = sorted({i for i in ids if "answer" in i})
    metrics: dict[str, dict[str, float]] = {"session": {}, "turn": {}}
    for k in ks:
        level = metrics[cfg.granularity]
        level[f"recall_any@{k}"] = recall_any(ranked, gold, k)
        level[f"recall_all@{k}"] = recall_all(ranked, gold, k)
        level[f"ndcg_any@{k}"] = ndcg_any(ranked, gold, ids, k)
        if cfg.granularity == "turn":
            ra, rl, nd = turn_to_session_metrics(ranked, gold, ids, k)
            metrics["session"].update(
                {f"recall_any@{k}": ra, f"recall_all@{k}": rl, f"ndcg_any@{k}": nd}
            )
    row: dict[str, Any] = {
        "system": name,
        "question_id": q.question_id,
        "question_type": q.question_type,
        "question": q.question,
        "answer": q.answer,
        "scored": lme.scored(q),
        "gold": gold,
        "retrieved": ranked[: max(max(ks), cfg.qa_k)],
        "documents": len(ids),
        "empty_documents": len(ids) - len(docs),
        "ingest_seconds": round(ingest_s[-1], 4),
        "query_seconds": round(recall_s[-1], 4) if docs else 0.0,
        "context_tokens": sum(count_tokens(texts[ids.index(i)]) for i in ranked[: cfg.qa_k]),
        "metrics": metrics,
    }
    if answerer is not None:
        text_of = dict(zip(ids, zip(texts, dates, strict=True), strict=True))
        context = [(text_of[i][1], text_of[i][0]) for i in ranked[: cfg.qa_k]]
        row["qa"] = answerer.longmemeval(q, context)
    return row


def longmemeval_aggregates(rows: list[dict], systems: Sequence[str]) -> dict:
    """aggregates[system]["session" | "turn"]["recall_all@5"] over the scored questions, and
    the same per question type under "by_type"."""
    out: dict[str, Any] = {}
    for name in systems:
        mine = [r for r in rows if r["system"] == name and r["scored"]]
        agg: dict[str, Any] = {"questions": len(mine), "by_type": {}}
        for level in ("session", "turn"):
            keys = sorted({k for r in mine for k in r["metrics"][level]})
            if keys:
                agg[level] = {k: _mean([r["metrics"][level][k] for r in mine]) for k in keys}
                for qt in sorted({r["question_type"] for r in mine}):
                    of_type = [r for r in mine if r["question_type"] == qt]
                    agg["by_type"].setdefault(qt, {})[level] = {
                        k: _mean([r["metrics"][level][k] for r in of_type]) for k in keys
                    }
        agg["ingest_seconds_per_question"] = _mean(
            [r["ingest_seconds"] for r in rows if r["system"] == name]
        )
        agg["query_seconds_per_question"] = _mean(
            [r["query_seconds"] for r in rows if r["system"] == name]
        )
        if any("qa" in r for r in rows if r["system"] == name):
            from memsvc.evals.qa import longmemeval_qa_aggregates

            agg["qa"] = longmemeval_qa_aggregates([r for r in rows if r["system"] == name])
        out[name] = agg
    return out


def _cache_stats(emb: Embedder) -> dict[str, Any] | None:
    if isinstance(emb, CachedEmbedder):
        return {"path": str(emb.path), "hits": emb.hits, "misses": emb.misses}
    return None


def _write(out: Path, results: dict[str, Any]) -> None:
    from memsvc.evals.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_report(out, results)
