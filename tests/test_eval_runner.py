"""The eval runner end to end: the real CLI on one LoCoMo conversation for all three systems
(what CI runs), memsvc over HTTP, LongMemEval on the project's fixture, the embedding cache,
and QA with the local SmolLM2 model."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from memsvc import SentenceTransformerEmbedder
from memsvc.evals.corpus import default_locomo
from memsvc.evals.embed_cache import CachedEmbedder
from memsvc.evals.llm import OpenAIChatModel
from memsvc.evals.locomo import CATEGORIES
from memsvc.evals.runner import EvalConfig, run_locomo, run_longmemeval

LOCOMO = default_locomo()
FIXTURE = Path(__file__).parent / "fixtures" / "longmemeval_fixture.json"
needs_locomo = pytest.mark.skipif(not LOCOMO.exists(), reason="../shared/data/locomo missing")


@pytest.fixture(scope="module")
def conv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the tests that ingest conv-26: its turns are embedded once per
    module (the first test fills it through the CLI), not once per system and test."""
    return tmp_path_factory.mktemp("conv26-embeddings")


@pytest.fixture
def cached(embedder: SentenceTransformerEmbedder, conv_cache: Path) -> CachedEmbedder:
    return CachedEmbedder(embedder, conv_cache)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memsvc.cli", "eval", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@needs_locomo
def test_cli_locomo_one_conversation_all_systems(tmp_path: Path, conv_cache: Path) -> None:
    out = tmp_path / "run"
    done = _cli(
        "locomo",
        "--data",
        str(LOCOMO),
        "--conversations",
        "conv-26",
        "--out",
        str(out),
        "--cache-dir",
        str(conv_cache),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "memsvc-eval/1" and res["benchmark"] == "locomo"
    assert res["dataset"]["conversations"] == ["conv-26"] and len(res["dataset"]["sha256"]) == 64
    agg = res["aggregates"]
    assert set(agg) == {"memsvc", "bm25", "dense"}
    for name, a in agg.items():
        assert a["questions"] == 199
        for k in (5, 10, 25, 50):
            table = a[f"recall@{k}"]
            assert set(CATEGORIES.values()) <= set(table)
            assert all(0 <= table[c] <= 1 for c in ["overall", *CATEGORIES.values()])
            assert a[f"repaired_recall@{k}"]["n"] <= a[f"recall@{k}"]["n"]
        assert a["recall@50"]["overall"] >= a["recall@5"]["overall"]
        lat = res["latency"][name]
        assert lat["recall_p50_ms"] > 0 and lat["recall_p95_ms"] >= lat["recall_p50_ms"]
    # the default recipe fuses channels: well above either plain baseline on categories 1-4
    best_plain = max(agg[b]["recall@10"]["overall_1_4"] for b in ("bm25", "dense"))
    assert agg["memsvc"]["recall@10"]["overall_1_4"] > best_plain + 0.1
    assert agg["bm25"]["recall@10"]["overall"] > 0.3
    row = next(r for r in res["rows"] if r["system"] == "memsvc")
    assert len(row["retrieved"]) == 50 and row["retrieved"][0].startswith("D")
    assert row["context_tokens"]["10"] > 0 and len(row["scores"]) == 50
    report = (out / "report.md").read_text()
    assert "| memsvc |" in report and "repaired evidence" in report
    assert (out / "recall_at_k.png").stat().st_size > 10_000
    assert (out / "latency.png").stat().st_size > 5_000
    assert "recall@10 overall" in done.stdout


def test_cli_reports_broken_input_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = _cli("locomo", "--data", str(bad), "--out", str(tmp_path / "o"), "--quiet")
    assert done.returncode == 1 and "not valid JSON" in done.stderr
    done = _cli(
        "locomo", "--data", str(bad), "--out", str(tmp_path / "o"), "--system", "nope", "--quiet"
    )
    assert done.returncode == 1 and "unknown system" in done.stderr
    done = _cli("longmemeval", "--data", str(tmp_path / "missing.json"), "--out", str(tmp_path))
    assert done.returncode == 1 and "no such file" in done.stderr


@needs_locomo
def test_memsvc_over_http_gives_the_same_ranking(
    served, cached: CachedEmbedder, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MEMSVC_API_KEY", served.keys["acme"])
    common = dict(data=LOCOMO, conversations=["conv-26"], systems=["memsvc"], max_questions=8)
    remote = run_locomo(
        EvalConfig(out=tmp_path / "r", server=served.url, progress=False, **common), cached
    )
    local = run_locomo(EvalConfig(out=tmp_path / "l", progress=False, **common), cached)
    assert len(remote["rows"]) == 8
    for a, b in zip(remote["rows"], local["rows"], strict=True):
        assert a["retrieved"][:10] == b["retrieved"][:10]


@needs_locomo
def test_forgetting_system_lives_through_the_sessions(
    cached: CachedEmbedder, tmp_path: Path
) -> None:
    """`memsvc+forgetting` ingests at the sessions' dates and maintains after each: records
    age (some vectors are demoted), and recall still ranks like `memsvc` on the head."""
    common = dict(data=LOCOMO, conversations=["conv-26"], max_questions=8, progress=False)
    out = run_locomo(
        EvalConfig(out=tmp_path / "f", systems=["memsvc", "memsvc+forgetting"], **common),
        cached,
    )
    assert set(out["aggregates"]) == {"memsvc", "memsvc+forgetting"}
    on = out["aggregates"]["memsvc+forgetting"]["recall@10"]["overall"]
    off = out["aggregates"]["memsvc"]["recall@10"]["overall"]
    assert on >= off - 0.15  # 8 questions: a coarse guard; the dev-set figure is in the README


def test_longmemeval_fixture_both_granularities_and_cache(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    cached = CachedEmbedder(embedder, tmp_path / "cache")
    res = run_longmemeval(
        EvalConfig(data=FIXTURE, out=tmp_path / "s", granularity="session", progress=False),
        cached,
    )
    assert res["dataset"]["official"] is None and res["dataset"]["scored_questions"] == 3
    for name in ("memsvc", "bm25", "dense"):
        a = res["aggregates"][name]
        assert a["questions"] == 3
        assert a["session"]["recall_all@5"] == 1.0  # every haystack has at most 4 sessions
        assert a["session"]["recall_any@50"] == 1.0
        assert "turn" not in a
        assert a["ingest_seconds_per_question"] > 0
    first_misses = cached.misses
    assert first_misses > 0
    res = run_longmemeval(
        EvalConfig(data=FIXTURE, out=tmp_path / "t", granularity="turn", progress=False), cached
    )
    for a in res["aggregates"].values():
        assert set(a["turn"]) >= {"recall_all@1", "recall_any@5", "ndcg_any@10"}
        assert a["session"]["recall_all@50"] == 1.0  # mapped from turns
    row = res["rows"][0]
    assert row["gold"] == ["answer_fx1_a_1"] and row["metrics"]["turn"]["recall_any@50"] == 1.0
    # a rerun embeds nothing new: every document comes from the on-disk cache
    again = CachedEmbedder(embedder, tmp_path / "cache")
    run_longmemeval(
        EvalConfig(
            data=FIXTURE, out=tmp_path / "t2", granularity="turn", systems=["dense"], progress=False
        ),
        again,
    )
    assert again.misses == 0 and again.hits > 0
    assert "recall_all" in (tmp_path / "t" / "report.md").read_text()


@needs_locomo
def test_qa_mode_with_the_local_model(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    res = run_locomo(
        EvalConfig(
            data=LOCOMO,
            out=tmp_path / "qa",
            conversations=["conv-26"],
            systems=["bm25"],
            mode="qa",
            max_questions=2,
            progress=False,
        ),
        embedder,
    )
    assert res["qa_config"]["answer_model"].startswith("SmolLM2")
    for row in res["rows"]:
        assert isinstance(row["qa"]["prediction"], str)
        assert 0 <= row["qa"]["official_f1"] <= 1
        if row["category"] != 5:
            assert isinstance(row["qa"]["mem0"]["judge"], bool)
    qa = res["aggregates"]["bm25"]["qa"]
    assert qa["official_f1"]["overall"] is not None and qa["mem0_style"]["n"] == 2
    assert "mem0-style protocol" in (tmp_path / "qa" / "report.md").read_text()
    lres = run_longmemeval(
        EvalConfig(
            data=FIXTURE, out=tmp_path / "lqa", systems=["bm25"], mode="qa", limit=2, progress=False
        ),
        embedder,
    )
    assert all(isinstance(r["qa"]["judge"], bool) for r in lres["rows"])
    assert lres["aggregates"]["bm25"]["qa"]["n"] == 2


def test_openai_compatible_backend_speaks_chat_completions() -> None:
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            status = 500 if body["model"] == "broken" else 200
            payload = {"choices": [{"message": {"content": " CORRECT "}}]}
            data = json.dumps(payload if status == 200 else {"error": "boom"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/v1"
        model = OpenAIChatModel(base, "judge-1", api_key="sk-test")
        assert model.chat("Is it right?", max_tokens=5) == "CORRECT"
        assert seen[0]["path"] == "/v1/chat/completions" and seen[0]["auth"] == "Bearer sk-test"
        assert seen[0]["temperature"] == 0 and seen[0]["max_tokens"] == 5
        assert seen[0]["messages"] == [{"role": "user", "content": "Is it right?"}]
        with pytest.raises(RuntimeError, match="answered 500"):
            OpenAIChatModel(base, "broken").chat("x")
    finally:
        server.shutdown()


class _FailingEmbedder:
    """The real model that stops working after `ok` calls, as a model load or an OOM would."""

    def __init__(self, inner: SentenceTransformerEmbedder, ok: int) -> None:
        self.inner, self.ok = inner, ok
        self.model_id, self.dim = inner.model_id, inner.dim

    def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
        if self.ok <= 0:
            raise RuntimeError("model exploded")
        self.ok -= 1
        return self.inner.encode(texts, **kw)


def test_a_failing_system_is_reported_by_the_exception_that_failed_it(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    """The error names the first failure (type and message), not a clean-up's follow-on."""
    from memsvc.evals.runner import EvalSystemError

    broken = _FailingEmbedder(embedder, ok=0)
    with pytest.raises(
        EvalSystemError, match="system 'memsvc' failed: RuntimeError: model exploded"
    ):
        run_longmemeval(
            EvalConfig(data=FIXTURE, out=tmp_path / "x", systems=["memsvc"], progress=False),
            broken,  # type: ignore[arg-type]
        )


def test_a_failing_clean_up_is_a_note_not_the_error() -> None:
    from memsvc.evals.runner import EvalSystemError, _running

    class Closing:
        def close(self) -> None:
            raise KeyError("cube 'eval-1' not found")

    with pytest.raises(EvalSystemError) as info, _running(Closing(), "memsvc"):  # type: ignore[arg-type]
        raise ValueError("bad vector")
    assert str(info.value) == "system 'memsvc' failed: ValueError: bad vector"
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    assert any("KeyError" in n and "not found" in n for n in cause.__notes__)


def test_cli_names_the_failing_exception(tmp_path: Path) -> None:
    """Through the real CLI: an unreadable embedding cache directory fails the run."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    done = _cli(
        "longmemeval",
        "--data",
        str(FIXTURE),
        "--out",
        str(tmp_path / "o"),
        "--system",
        "memsvc",
        "--cache-dir",
        str(blocker / "cache"),
        "--quiet",
    )
    assert done.returncode == 1
    assert "error: NotADirectoryError: [Errno 20] Not a directory" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_empty_turns_are_skipped_but_stay_documents(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    """Real LongMemEval sessions hold empty turns: the runner stores none of them (an empty
    message is bad input to `add`) but counts them as documents of the haystack, as the
    official scorer does."""
    data = json.loads(FIXTURE.read_text())
    q = data[0]
    q["haystack_sessions"][0].insert(0, {"role": "user", "content": ""})
    q["haystack_sessions"][0].append({"role": "user", "content": "   "})
    path = tmp_path / "empty_turns.json"
    path.write_text(json.dumps(data))
    plain = run_longmemeval(
        EvalConfig(data=FIXTURE, out=tmp_path / "a", granularity="turn", progress=False),
        embedder,
    )
    res = run_longmemeval(
        EvalConfig(data=path, out=tmp_path / "b", granularity="turn", progress=False), embedder
    )
    for name in ("memsvc", "bm25", "dense"):
        before = next(r for r in plain["rows"] if r["system"] == name)
        row = next(r for r in res["rows"] if r["system"] == name)
        assert row["question_id"] == q["question_id"]
        assert row["documents"] == before["documents"] + 2 and row["empty_documents"] == 2
        assert row["metrics"]["turn"]["recall_any@50"] == 1.0


def test_one_command_runs_both_granularities_with_long_turns(tmp_path: Path) -> None:
    """`--granularity both` writes a session run and a turn run; a pasted document over the
    text limit is stored as chunks and ranked as the one turn it is; the report gives the
    official metrics by question type and the first recall's cost apart."""
    data = json.loads(FIXTURE.read_text())
    session = data[0]["haystack_sessions"][0]
    session.append({"role": "user", "content": "Here is the contract. " + "Clause text. " * 3500})
    session.append({"role": "assistant", "content": "Thanks, noted."})
    path = tmp_path / "long_turns.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "run"
    done = _cli(
        "longmemeval", "--data", str(path), "--out", str(out), "--granularity", "both",
        "--system", "memsvc,dense", "--cache-dir", str(tmp_path / "cache"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for level in ("session", "turn"):
        res = json.loads((out / level / "results.json").read_text())
        assert res["config"]["granularity"] == level
        for name in ("memsvc", "dense"):
            a = res["aggregates"][name]
            assert a["questions"] == 3 and a["session"]["recall_any@50"] == 1.0
            lat = res["latency"][name]
            assert lat["first_recall_p95_ms"] > 0 and lat["recall_p95_ms"] > 0
        ranked = next(r for r in res["rows"] if r["system"] == "memsvc")["retrieved"]
        assert len(ranked) == len(set(ranked))  # chunks of one turn are one document
        report = (out / level / "report.md").read_text()
        assert f"{level} level by question type" in report
        assert "first recall p95 ms" in report


def test_memsvc_is_given_rounds_filed_under_the_official_documents() -> None:
    """Assistant turns go to memsvc under the user turn they answer (turn level) or their
    session (session level); every turn lands in an official document, none is invented."""
    from memsvc.evals import longmemeval as lme

    for q in lme.load_longmemeval(FIXTURE):
        for level in ("turn", "session"):
            ids, _, _ = lme.documents(q, level)
            conv = lme.conversation(q, level)
            assert {doc for doc, *_ in conv} == set(ids)
            assert any(role == "assistant" for _, _, role, _, _ in conv)
        conv = lme.conversation(q, "turn")
        for (doc, sid, _, _, _), nxt in itertools.pairwise(conv):
            if nxt[2] == "assistant" and nxt[1] == sid:
                assert nxt[0] == doc  # an answer is filed under the turn before it


def test_memsvc_recipes_share_one_ingest_and_rank_as_alone(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    """Recipes compared in one run read the first memsvc system's store: each question's
    haystack is ingested once, and each recipe ranks exactly as it does in a run of its own."""
    systems = ["memsvc", "memsvc:fast", "memsvc:dense=1+keyword=0.5|weighted"]
    res = run_longmemeval(
        EvalConfig(
            data=FIXTURE, out=tmp_path / "a", granularity="turn", systems=systems, progress=False
        ),
        embedder,
    )
    assert "ingest_shared_with" not in res["latency"]["memsvc"]
    for name in systems[1:]:
        assert res["latency"][name]["ingest_shared_with"] == "memsvc"
        assert res["latency"][name]["add_calls"] == 0  # it wrote nothing
    assert res["latency"]["memsvc"]["add_calls"] > 0
    alone = run_longmemeval(
        EvalConfig(
            data=FIXTURE, out=tmp_path / "b", granularity="turn", systems=["memsvc:fast"],
            progress=False,
        ),
        embedder,
    )  # fmt: skip
    shared = [r["retrieved"] for r in res["rows"] if r["system"] == "memsvc:fast"]
    assert shared == [r["retrieved"] for r in alone["rows"]]


def test_a_longmemeval_question_is_asked_after_its_whole_history() -> None:
    """At its `question_date`, unless the file dates a session later (it does, on the
    question's own day, for 34 of the 250 dev questions): then at that session's time, so
    recall `at` it does not leave out what the user said."""
    from datetime import UTC, datetime

    from memsvc.evals.longmemeval import LongMemEvalQuestion
    from memsvc.evals.runner import asked_at

    def question(asked: str, dates: list[str]) -> LongMemEvalQuestion:
        return LongMemEvalQuestion(
            "q1", "temporal-reasoning", "Which came first?", "x", asked,
            [f"s{i}" for i in range(len(dates))], dates, [[] for _ in dates], [],
        )  # fmt: skip

    before = ["2023/05/20 (Sat) 10:00", "2023/05/25 (Thu) 09:30"]
    assert asked_at(question("2023/05/26 (Fri) 00:18", before)) == datetime(
        2023, 5, 26, 0, 18, tzinfo=UTC
    )
    later = [*before, "2023/05/26 (Fri) 23:57"]
    assert asked_at(question("2023/05/26 (Fri) 00:18", later)) == datetime(
        2023, 5, 26, 23, 57, tzinfo=UTC
    )
    assert asked_at(question("", later)) is None  # no date: recall at no time, as before
