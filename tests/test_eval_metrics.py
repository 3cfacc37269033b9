"""Benchmark metrics and loaders pinned on small hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsvc.evals import longmemeval as lme
from memsvc.evals.locomo import LocomoError, load_locomo, parse_session_date, repair_evidence
from memsvc.evals.metrics import (
    dcg,
    locomo_evidence_recall,
    ndcg_any,
    recall_all,
    recall_any,
    turn_to_session_metrics,
)
from memsvc.evals.qa_metrics import bleu1, locomo_f1, normalize_answer, set_f1

FIXTURE = Path(__file__).parent / "fixtures" / "longmemeval_fixture.json"

# ---- LoCoMo evidence recall -----------------------------------------------------------------


def test_locomo_recall_counts_evidence_as_written() -> None:
    assert locomo_evidence_recall(["D1:1", "D2:3"], []) == 1.0  # empty evidence: 1.0
    assert locomo_evidence_recall(["D1:1", "D2:3"], ["D1:1", "D1:2"]) == 0.5
    assert locomo_evidence_recall(["D1:1"], ["D1:1", "D1:1"]) == 1.0  # duplicates as written
    # a malformed entry can never be retrieved, so it counts against recall
    assert locomo_evidence_recall(["D8:6", "D9:17"], ["D8:6; D9:17"]) == 0.0
    assert locomo_evidence_recall([], ["D1:1"]) == 0.0


def test_repaired_evidence_splits_normalizes_and_drops_unknown_turns() -> None:
    known = {"D8:6", "D9:17", "D11:26", "D30:5", "D1:1"}
    assert repair_evidence(["D8:6; D9:17"], known) == ["D8:6", "D9:17"]
    assert repair_evidence(["D:11:26"], known) == ["D11:26"]
    assert repair_evidence(["D30:05"], known) == ["D30:5"]
    assert repair_evidence(["D", "D10:19"], known) == []  # no turn id / a turn that is not there
    assert repair_evidence(["D1:1", "D1:1", "D8:6"], known) == ["D1:1", "D8:6"]


def test_session_dates_parse_and_unknown_formats_are_named() -> None:
    assert parse_session_date("1:56 pm on 8 May, 2023").isoformat() == "2023-05-08T13:56:00+00:00"
    assert parse_session_date("10:37 am on 27 June, 2023").hour == 10
    with pytest.raises(LocomoError, match="unrecognized session date"):
        parse_session_date("sometime in spring")


def _write(tmp_path: Path, data: object, name: str = "l.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def _conv(**over: object) -> dict:
    conv = {
        "sample_id": "c1",
        "conversation": {
            "speaker_a": "Ann",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a cat."},
                {
                    "speaker": "Bo",
                    "dia_id": "D1:2",
                    "text": "Cute!",
                    "img_url": ["x"],
                    "blip_caption": "a photo of a kitten",
                },
            ],
            "session_2_date_time": "2:00 pm on 9 May, 2023",  # a date without a session
        },
        "qa": [
            {
                "question": "What did Ann adopt?",
                "answer": "a cat",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {"question": "How many?", "answer": 1, "evidence": ["D1:1"], "category": 1},
            {"question": "Why?", "answer": "fun; she likes cats", "evidence": [], "category": 3},
            {
                "question": "What did Bo adopt?",
                "adversarial_answer": "a cat",
                "evidence": ["D:1:1"],
                "category": 5,
            },
        ],
    }
    conv.update(over)
    return conv


def test_locomo_loader_survives_the_quirks(tmp_path: Path) -> None:
    [conv] = load_locomo(_write(tmp_path, [_conv()]))
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D1:2"]
    assert conv.turns[1].document == "Bo: Cute! [shares a photo of a kitten]"
    assert conv.turns[0].time is not None and conv.turns[0].time.day == 8
    qs = conv.questions
    assert qs[1].answer == "1"  # integer answers become strings
    assert qs[3].answer == "a cat" and qs[3].category_name == "adversarial"
    assert qs[3].evidence == ["D:1:1"] and qs[3].repaired_evidence == ["D1:1"]
    assert qs[2].evidence == [] and qs[2].repaired_evidence == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ([{"sample_id": "c1", "qa": []}], "missing key 'conversation'"),
        ([_conv(qa=[{"question": "q", "category": 9}])], "unknown category 9"),
        ([_conv(qa=[{"question": "q", "category": "x"}])], "category 'x'"),
        ([_conv(conversation={"session_1": [{"text": "hi"}]})], "lacks dia_id or speaker"),
        ([_conv(conversation={"speaker_a": "A"})], "no sessions with turns"),
    ],
)
def test_broken_locomo_files_are_clear_errors(
    tmp_path: Path, content: object, message: str
) -> None:
    with pytest.raises(LocomoError, match=message):
        load_locomo(_write(tmp_path, content))


def test_unknown_conversation_ids_are_named(tmp_path: Path) -> None:
    with pytest.raises(LocomoError, match="no conversation conv-99"):
        load_locomo(_write(tmp_path, [_conv()]), ["conv-99"])


# ---- LongMemEval metrics ----------------------------------------------------------------------


def test_recall_any_and_all() -> None:
    ranked = ["a", "g1", "b", "g2"]
    assert recall_any(ranked, ["g1", "g2"], 1) == 0.0
    assert recall_any(ranked, ["g1", "g2"], 2) == 1.0
    assert recall_all(ranked, ["g1", "g2"], 2) == 0.0
    assert recall_all(ranked, ["g1", "g2"], 4) == 1.0


def test_ndcg_uses_the_official_discount() -> None:
    # official DCG: rel_1 + sum_{i>=2} rel_i / log2(i): rank 2 is not discounted
    assert dcg([0, 1, 0, 1], 4) == pytest.approx(1 + 1 / 2)
    corpus = ["a", "g1", "b", "g2", "c"]
    # ideal: [1, 1, 0, ...] -> 2.0; actual 1.5
    assert ndcg_any(["a", "g1", "b", "g2"], ["g1", "g2"], corpus, 4) == pytest.approx(0.75)
    assert ndcg_any(["g1", "g2"], ["g1", "g2"], corpus, 2) == 1.0
    assert ndcg_any(["a", "b"], ["g1"], corpus, 2) == 0.0
    assert ndcg_any(["a"], [], corpus, 1) == 0.0  # no relevant document at all


def test_turn_to_session_grows_the_cutoff_to_k_distinct_sessions() -> None:
    corpus = ["s1_1", "s1_3", "s2_2", "s3_1", "answer_x_2"]
    ranked = ["s1_1", "s1_3", "answer_x_2", "s2_2", "s3_1"]
    # k=2: the top 2 turns are one session, so the cut-off grows to 3 turns (s1, answer_x)
    ra, rl, nd = turn_to_session_metrics(ranked, ["answer_x_2"], corpus, 2)
    assert (ra, rl) == (1.0, 1.0)
    # session-level ndcg at the effective cut-off 3: [0, 0, 1] -> 1/log2(3); ideal 1
    assert nd == pytest.approx(1 / __import__("math").log2(3))
    ra, rl, _ = turn_to_session_metrics(ranked, ["answer_x_2"], corpus, 1)
    assert (ra, rl) == (0.0, 0.0)


def test_longmemeval_documents_follow_the_official_ids() -> None:
    qs = lme.load_longmemeval(FIXTURE)
    q1 = qs[0]
    ids, texts, _ = lme.documents(q1, "session")
    assert ids == ["s_garden", "answer_fx1_a", "s_movie", "s_cook"]
    assert texts[1].startswith("Hi! I just got a dog") and "Congratulations" not in texts[1]
    ids, _, _ = lme.documents(q1, "turn")
    # 1-based positions among all turns; an evidence session's user turn without has_answer
    # is renamed noans
    assert "answer_fx1_a_1" in ids and "noans_fx1_a_3" in ids and "answer_fx1_a_2" not in ids
    assert [lme.scored(q) for q in qs] == [True, True, True, False, False]
    ids, _, _ = lme.documents(qs[4], "session")  # evidence only on the assistant side
    assert "noans_fx5_a" in ids


def test_longmemeval_file_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ident = lme.identify_file(FIXTURE)
    assert ident.official is None and "not one of the official" in ident.describe()
    monkeypatch.setitem(lme.KNOWN_FILES, "longmemeval_oracle.json", (ident.bytes, ident.sha256[:4]))
    assert lme.identify_file(FIXTURE).official == "longmemeval_oracle.json"
    bad = _write(tmp_path, [{"question_id": "q"}])
    with pytest.raises(lme.LongMemEvalError, match="missing question_type"):
        lme.load_longmemeval(bad)
    raw = json.loads(FIXTURE.read_text())
    raw[0]["haystack_dates"] = raw[0]["haystack_dates"][:1]
    with pytest.raises(lme.LongMemEvalError, match="differ in length"):
        lme.load_longmemeval(_write(tmp_path, raw, "x.json"))


# ---- QA scores --------------------------------------------------------------------------------


def test_official_locomo_f1() -> None:
    assert normalize_answer("The Cat, and the Dog!") == "cat dog"
    assert locomo_f1("cat dog", "The Cat, and the Dog!", 4) == 1.0
    assert locomo_f1("she was running", "runs", 2) == pytest.approx(2 * (1 / 3) / (1 + 1 / 3))
    assert locomo_f1("Paris", "Paris; she grew up there", 3) == 1.0
    # multi-hop: gold parts split on commas, best predicted part per gold part, averaged
    assert locomo_f1("painting, hiking", "hiking, painting, camping", 1) == pytest.approx(2 / 3)
    assert locomo_f1("Not mentioned in the conversation", "anything", 5) == 1.0
    assert locomo_f1("a cat", "anything", 5) == 0.0


def test_mem0_style_scores() -> None:
    assert set_f1("the red car", "red car") == pytest.approx(0.8)
    assert set_f1("", "x") == 0.0
    assert bleu1("red car", "red car") == pytest.approx(1.0)
    assert 0 < bleu1("a red car today", "red car") < 1


def test_synthetic_scale_file_has_the_longmemeval_shape(tmp_path: Path) -> None:
    from memsvc.evals.lme_scale import main

    out = tmp_path / "s.json"
    main(["--questions", "3", "--pool", "10", "--out", str(out)])
    qs = lme.load_longmemeval(out)
    assert len(qs) == 3 and all(lme.scored(q) for q in qs)
    assert lme.identify_file(out).official is None
    ids, texts, _ = lme.documents(qs[0], "turn")
    assert any(i.startswith("answer_") for i in ids) and all(texts)
