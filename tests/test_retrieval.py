"""Recall channels, fusion, recipes, filters, `at` and explain, on small constructed cubes with
the real embedding model and real SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import bm25s
import numpy as np
import pytest

from memsvc import InvalidInput, Memory
from memsvc.embedder import SentenceTransformerEmbedder, encode_queries
from memsvc.retrieval import PRESETS, Recipe, RecipeError, parse_recipe
from memsvc.retrieval.analyze import CONTEXT_MAX_WORDS, embedding_text, turn_line
from memsvc.retrieval.channels.near import near
from memsvc.retrieval.entities import extract_entities, query_names
from memsvc.retrieval.fusion import rrf, weighted_sum
from memsvc.retrieval.timeexpr import asks_when, find_times
from memsvc.store.text_index import CubeTextIndex, TextDoc, keyword_terms
from memsvc.turn_context import batch_contexts

FILLER = [
    "The printer on the third floor is out of toner.",
    "We watched a documentary about deep sea creatures.",
    "The recipe calls for two cups of flour.",
    "Football practice is cancelled because of the rain.",
    "The laptop battery lasts about six hours.",
    "My neighbour repainted the fence green.",
    "The train to the airport leaves every twenty minutes.",
    "She bought a new umbrella at the market.",
]


def _channels(hit) -> set[str]:  # type: ignore[no-untyped-def]
    return set(hit.explain) - {"fused", "retention"}  # retention rescores, finds nothing


def _contents(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.record.content for h in hits]


# ---- channels on constructed cases ---------------------------------------------------------


def test_paraphrase_only_dense_finds(mem: Memory) -> None:
    mem.add([*FILLER, "The kitten climbed up onto the roof of the shed."], user_id="u")
    q = "Where did the cat go?"
    assert mem.recall(q, user_id="u", k=3, recipe="keyword=1") == []  # no shared word
    hits = mem.recall(q, user_id="u", k=3)
    assert hits[0].record.content.startswith("The kitten")
    assert _channels(hits[0]) == {"dense"}


def test_rare_name_found_by_keyword_and_entity(mem: Memory) -> None:
    target = "Zorblax Quenteroth ordered the usual at the counter."
    mem.add([*FILLER, "Someone ordered the usual at the counter.", target], user_id="u")
    q = "What did Zorblax order?"
    kw = mem.recall(q, user_id="u", k=3, recipe="keyword=1")
    assert _contents(kw) == [target, "Someone ordered the usual at the counter."]  # rare first
    ent = mem.recall(q, user_id="u", k=3, recipe="entity=1")
    assert _contents(ent)[0] == target
    deep = mem.recall(q, user_id="u", k=3, recipe="deep")
    assert deep[0].record.content == target
    assert {"dense", "keyword", "entity"} <= _channels(deep[0])


def test_dated_event_found_by_temporal(mem: Memory) -> None:
    for month in (3, 5, 7):
        mem.add(
            "We spent the afternoon at the science museum.",
            user_id="u",
            timestamp=datetime(2023, month, 12, 15, tzinfo=UTC),
        )
    mem.add(FILLER, user_id="u", timestamp=datetime(2023, 5, 20, tzinfo=UTC))
    q = "Where did we go in May 2023?"
    temporal = mem.recall(q, user_id="u", k=20, recipe="temporal=1")
    months = {h.record.event_time.month for h in temporal}
    assert months == {5}  # only May records, the museum visit first
    assert temporal[0].record.content.startswith("We spent")
    hits = mem.recall(q, user_id="u", k=3)
    assert hits[0].record.event_time == datetime(2023, 5, 12, 15, tzinfo=UTC)
    assert "temporal" in hits[0].explain
    # dense alone cannot tell the three identical visits apart
    dense = mem.recall(q, user_id="u", k=3, recipe="fast")
    assert len({h.score for h in dense if h.record.content.startswith("We spent")}) == 1


def test_relative_time_is_read_from_at(mem: Memory) -> None:
    mem.add("I ran a half marathon.", user_id="u", timestamp="2023-06-06T10:00:00Z")
    mem.add("I ran a half marathon.", user_id="u", timestamp="2023-06-20T10:00:00Z")
    at = datetime(2023, 6, 14, tzinfo=UTC)  # a Wednesday: last week is 5-11 June
    hits = mem.recall("What did I do last week?", user_id="u", k=5, recipe="temporal=1", at=at)
    assert [h.record.event_time.day for h in hits] == [6]  # the 20th is not valid yet either


def test_when_question_prefers_records_that_name_a_time(mem: Memory) -> None:
    msgs = [
        {"name": "Caroline", "content": "The support group has been great for me."},
        {"name": "Caroline", "content": "I went to the support group yesterday."},
        {"name": "Melanie", "content": "The support group sounds lovely."},
    ]
    mem.add(messages=msgs, user_id="u", session_id="s", timestamp="2023-05-08T13:56:00Z")
    q = "When did Caroline go to the support group?"
    assert asks_when(q)
    temporal = mem.recall(q, user_id="u", k=5, recipe="temporal=1")
    assert _contents(temporal) == ["I went to the support group yesterday."]
    hits = mem.recall(q, user_id="u", k=3)
    assert hits[0].record.content == "I went to the support group yesterday."
    # an assistant's reply names times as knowledge: only the user's words anchor a record
    chat = [
        {"role": "user", "content": "I visited the old castle in Prague yesterday."},
        {"role": "assistant", "content": "The castle in Prague was rebuilt in 1990."},
    ]
    mem.add(messages=chat, user_id="w", session_id="s", timestamp="2023-05-08T13:56:00Z")
    temporal = mem.recall("When did I visit the castle?", user_id="w", k=5, recipe="temporal=1")
    assert _contents(temporal) == [chat[0]["content"]]
    in_1990 = mem.recall("the castle in 1990", user_id="w", k=5, recipe="temporal=1")
    assert in_1990 == []  # the reply was said in 2023; 1990 is not when anything happened


def test_two_hop_question_needs_entity_expansion(mem: Memory) -> None:
    mem.add(
        [*FILLER, "Alice has a younger sister called Beth.", "Beth has a flat in Oslo now."],
        user_id="u",
    )
    q = "Where does Alice's sister live?"
    ent = mem.recall(q, user_id="u", k=5, recipe="entity=1")
    assert _contents(ent)[:2] == [
        "Alice has a younger sister called Beth.",  # one hop: mentions Alice
        "Beth has a flat in Oslo now.",  # two hops: Alice -> Beth -> this record
    ]
    kw = mem.recall(q, user_id="u", k=5, recipe="keyword=1")
    assert "Beth has a flat in Oslo now." not in _contents(kw)  # no query word in it
    deep = mem.recall(q, user_id="u", k=3, recipe="deep")
    assert "Beth has a flat in Oslo now." in _contents(deep)
    oslo = next(h for h in deep if h.record.content.startswith("Beth"))
    assert "entity" in oslo.explain


def test_session_booster_follows_a_question_to_its_answer(mem: Memory) -> None:
    mem.add(FILLER, user_id="u")
    answer = (  # over 30 words: embedded without the question before it
        "They were scared but we reassured them. We sat on the sofa with cocoa, talked it "
        "through twice, and by dinner they were arguing about cartoons again. Tough kids, "
        "honestly, tougher than me."
    )
    msgs = [
        {"name": "Caroline", "content": "The kids look so cute! How did they handle the accident?"},
        {"name": "Melanie", "content": answer},
    ]
    mem.add(messages=msgs, user_id="u", session_id="s1", timestamp="2023-10-20T10:00:00Z")
    hits = mem.recall("How did Melanie's children handle the accident?", user_id="u", k=2)
    assert hits[0].record.content.startswith("They were scared")
    assert "session" in hits[0].explain and "speaker" in hits[0].explain
    dense = mem.recall("How did Melanie's children handle the accident?", user_id="u", k=2,
                       recipe="fast")  # fmt: skip
    assert dense[0].record.content.startswith("The kids")  # the question itself wins alone


def test_near_booster_lifts_the_turns_around_a_hit_by_distance() -> None:
    """Each of the best hits passes its score, divided by the distance, to the turns up to
    two places before and after it in its session; a turn near two hits keeps the larger;
    nothing crosses a session, a filtered-out turn gets nothing, and an assistant's reply
    takes no part."""
    idx = CubeTextIndex()
    docs = [TextDoc(pk=p, text=f"turn {p}", session="a") for p in range(1, 7)]
    idx.upsert(
        [*docs, TextDoc(pk=7, text="turn 7", session="b"), TextDoc(pk=8, text="x", session="b")]
    )
    assert idx.around(3, 2) == [(1, 2), (2, 1), (4, 1), (5, 2)]
    assert idx.around(1, 2) == [(2, 1), (3, 2)] and idx.around(99, 2) == []
    ctx = SimpleNamespace(text=idx, allowed=None)
    got = dict(near(ctx, {3: 2.0, 6: 3.0, 7: 0.5}))  # type: ignore[arg-type]
    assert got == {1: 1.0, 2: 2.0, 4: 2.0, 5: 3.0, 8: 0.5}  # 4: 2.0 from 3 beats 3.0 / 2
    assert 6 not in got and 7 not in got  # a hit is nobody's neighbour here
    ctx = SimpleNamespace(text=idx, allowed=np.array([2, 8]))
    assert dict(near(ctx, {3: 2.0, 7: 0.5})) == {2: 2.0, 8: 0.5}  # type: ignore[arg-type]
    chat = [
        TextDoc(pk=p, text="t", session="c", role=r) for p, r in ((9, "user"), (10, "assistant"))
    ]
    idx.upsert([*chat, TextDoc(pk=11, text="t", session="c", role="user")])
    ctx = SimpleNamespace(text=idx, allowed=None)
    # an assistant's reply neither passes a lift on nor takes one
    assert dict(near(ctx, {10: 5.0, 9: 1.0})) == {11: 0.5}  # type: ignore[arg-type]


def test_an_assistants_question_passes_no_session_boost(mem: Memory) -> None:
    """A user's question lifts the assistant's reply; the assistant's closing question ("Would
    you like more ideas?") lifts nothing: the user's next turn is a new request, not its
    answer (LongMemEval dev, turn level: recall_any@1 0.526 -> 0.590)."""
    mem.add(FILLER, user_id="u")
    msgs = [
        {"role": "user", "content": "Can you suggest a gift for my sister who loves pottery?"},
        {
            "role": "assistant",
            "content": "A wheel-throwing class or a set of glazes would delight a potter. "
            "Would you like more gift ideas?",
        },
        {"role": "user", "content": "Sure, and which board games suit a family evening?"},
    ]
    mem.add(messages=msgs, user_id="u", session_id="s1", timestamp="2024-03-02T10:00:00Z")
    hits = {h.record.content: h for h in mem.recall("pottery gift for my sister", user_id="u")}
    assert "session" in hits[msgs[1]["content"]].explain  # the reply to the user's question
    assert "session" not in hits[msgs[2]["content"]].explain


def test_short_reply_is_embedded_with_the_turns_it_answers(
    mem: Memory, embedder: SentenceTransformerEmbedder
) -> None:
    mem.add(FILLER, user_id="u")
    when = datetime(2023, 5, 8, 10, 0, tzinfo=UTC)
    ask = {"name": "Caroline", "content": "What did you end up naming the new puppy?"}
    reply = {"name": "Melanie", "content": "Coco, after my grandma!"}
    mem.add(messages=[ask], user_id="u", session_id="s1", timestamp=when)
    mem.add(messages=[reply], user_id="u", session_id="s1", timestamp=when)  # a later call
    mem.add(messages=[reply], user_id="v", timestamp=when)  # the same words, alone
    q = "What is the name of Melanie's puppy?"
    hits = mem.recall(q, user_id="u", k=3, recipe="fast")
    assert hits[0].record.content == reply["content"]
    qv = encode_queries(embedder, [q])[0]
    expected = embedding_text(
        reply["content"],
        {"role": "user", "speaker": "Melanie"},
        when,
        ["Caroline: What did you end up naming the new puppy?"],
    )
    assert expected.endswith("(replying to Caroline: What did you end up naming the new puppy?)")
    assert hits[0].score == pytest.approx(float(qv @ embedder.encode([expected])[0]), abs=1e-4)
    alone = mem.recall(q, user_id="v", k=1, recipe="fast")[0]
    assert alone.record.content == reply["content"]
    assert hits[0].score > alone.score + 0.1  # the question it answers says what "Coco" is

    # an edit is embedded again with the same context
    mem.update(hits[0].record.id, text="Coco, after my grandmother!")
    edited = mem.recall(q, user_id="u", k=1, recipe="fast")[0]
    again = embedding_text(
        "Coco, after my grandmother!",
        {"role": "user", "speaker": "Melanie"},
        when,
        ["Caroline: What did you end up naming the new puppy?"],
    )
    assert edited.score == pytest.approx(float(qv @ embedder.encode([again])[0]), abs=1e-4)


def test_turn_context_rules() -> None:
    src = {"role": "user", "speaker": "Ann"}
    when = datetime(2023, 5, 8, tzinfo=UTC)
    assert embedding_text("Yes!", src, when, ["Bo: Did it rain?"]) == (
        "Ann (8 May 2023): Yes!\n(replying to Bo: Did it rain?)"
    )
    # only chat turns, only short ones, at most CONTEXT_TURNS earlier turns
    assert embedding_text("Yes!", {}, when, ["Bo: Did it rain?"]) == "Yes!"
    long = " ".join(["word"] * (CONTEXT_MAX_WORDS + 1))
    assert "replying" not in embedding_text(long, src, when, ["Bo: Did it rain?"])
    three = embedding_text("Yes!", src, None, ["a", "b", "c"])
    assert three == "Ann: Yes!\n(replying to b / c)"
    assert turn_line("x" * 500, src) == "Ann: " + "x" * 200 + "..."
    # within one call without a session, each message follows the ones before it
    items = [("Hi", src), ("Hello", {"role": "user", "speaker": "Bo"}), ("Note", {})]
    assert batch_contexts([], items) == [[], ["Ann: Hi"], []]
    assert batch_contexts([("Old", src), ("Older?", src), ("Last", src)], items[:1]) == [
        ["Ann: Older?", "Ann: Last"]
    ]


# ---- filters, `at`, explain -----------------------------------------------------------------


def test_filters_apply_to_every_channel_before_ranking(mem: Memory) -> None:
    mem.add("Zorblax ordered tea.", user_id="u", session_id="a")
    for i in range(30):
        mem.add(f"Zorblax ordered coffee number {i}.", user_id="u", session_id="b")
    for recipe in ("balanced", "deep", "keyword=1", "temporal=1+dense=1"):
        hits = mem.recall(
            "What did Zorblax order?", user_id="u", k=5, filters={"session_id": "a"}, recipe=recipe
        )
        assert _contents(hits) == ["Zorblax ordered tea."], recipe


def test_at_returns_what_was_valid_then_in_every_preset(mem: Memory) -> None:
    old = mem.add("I live in Paris.", user_id="u", timestamp="2020-01-01T00:00:00Z")[0]
    new = mem.add("I live in Berlin.", user_id="u", timestamp="2023-01-01T00:00:00Z")[0]
    mem.update(old.id, valid_to="2023-01-01T00:00:00Z")
    for recipe in PRESETS:
        now = mem.recall("Where do I live?", user_id="u", k=5, recipe=recipe)
        assert _contents(now) == ["I live in Berlin."], recipe
        then = mem.recall("Where do I live?", user_id="u", k=5, recipe=recipe, at="2021-06-01")
        assert [h.record.id for h in then] == [old.id], recipe
    assert new.id


def test_explain_carries_rank_and_score_per_channel(mem: Memory) -> None:
    mem.add([*FILLER, "Biscuit the golden retriever loves the beach."], user_id="u")
    hits = mem.recall("Which dog loves the beach?", user_id="u", k=4, recipe="deep")
    top = hits[0]
    assert top.record.content.startswith("Biscuit")
    for name, info in top.explain.items():
        assert set(info) == {"rank", "score"}, name
        assert isinstance(info["rank"], int) and info["rank"] >= 1
    assert top.explain["fused"]["rank"] == 1 and top.score == top.explain["fused"]["score"]
    assert top.explain["dense"]["score"] == pytest.approx(float(top.explain["dense"]["score"]))
    assert [h.explain["fused"]["rank"] for h in hits] == [1, 2, 3, 4]


def test_deleted_and_updated_records_stay_consistent_in_the_side_index(mem: Memory) -> None:
    a, b = mem.add(["Zorblax ordered tea.", "Quentin ordered coffee."], user_id="u")
    assert _contents(mem.recall("Zorblax", user_id="u", recipe="keyword=1")) == [a.content]
    mem.delete(a.id)
    assert mem.recall("Zorblax", user_id="u", recipe="keyword=1") == []
    mem.update(b.id, text="Zorblax took over the coffee order.")
    assert [h.record.id for h in mem.recall("Zorblax", user_id="u", recipe="keyword=1")] == [b.id]
    assert mem.recall("Quentin", user_id="u", recipe="keyword=1") == []
    assert "zorblax" in mem.get(b.id).entities


def test_bad_recipes_are_clear_errors(mem: Memory) -> None:
    mem.add("hello", user_id="u")
    for bad, words in (
        ("turbo", "unknown recipe"),
        ("dense=1+psychic=2", "unknown channel"),
        ("session=1", "needs one of"),
        ({"channels": {"dense": -1}}, "weight"),
        ({"preset": "nope"}, "unknown preset"),
        ("dense=1|rrf0", "rrf_k"),
    ):
        with pytest.raises(InvalidInput, match=words) as err:
            mem.recall("hi", user_id="u", recipe=bad)  # type: ignore[arg-type]
        assert err.value.details == {"field": "recipe"}


# ---- recipes, fusion, analysis (no model) ---------------------------------------------------


def test_recipe_forms() -> None:
    assert parse_recipe(None) is PRESETS["balanced"]
    assert parse_recipe("fast").dense_only
    r = parse_recipe("dense=1+keyword=0.5+session=0.3|rrf30|n80|k7")
    assert r.channels == {"dense": 1.0, "keyword": 0.5, "session": 0.3}
    assert (r.fusion, r.rrf_k, r.candidates, r.k) == ("rrf", 30, 80, 7)
    assert r.generators() == ["dense", "keyword"] and r.boosters() == ["session"]
    d = parse_recipe({"preset": "deep", "candidates": 200})
    assert d.channels == PRESETS["deep"].channels and d.candidates == 200
    assert parse_recipe(d.to_dict()) == d
    assert parse_recipe("keyword=1|weighted").fusion == "weighted"
    with pytest.raises(RecipeError):
        Recipe(channels={"dense": 1.0}, fusion="max")


def test_fusion_orders() -> None:
    rankings = {"a": [(1, 0.9), (2, 0.8), (3, 0.1)], "b": [(3, 9.0), (2, 5.0)]}
    fused = rrf(rankings, {"a": 1.0, "b": 1.0}, k=10)
    assert sorted(fused, key=lambda p: -fused[p]) == [3, 2, 1]  # in both lists beats one top
    assert fused[2] == pytest.approx(1 / 12 + 1 / 12) and fused[3] == pytest.approx(1 / 13 + 1 / 11)
    heavy_a = rrf(rankings, {"a": 20.0, "b": 1.0}, k=10)
    assert max(heavy_a, key=lambda p: heavy_a[p]) == 1
    ws = weighted_sum(rankings, {"a": 1.0, "b": 1.0})
    assert ws[1] == pytest.approx(1.0) and ws[3] == pytest.approx(1.0)  # min-max per channel
    assert ws[2] == pytest.approx(0.7 / 0.8 + 0.0)


def test_bm25_matches_bm25s_on_the_same_tokens() -> None:
    docs = [
        "Caroline went to the LGBTQ support group yesterday.",
        "Melanie painted a sunset over the lake.",
        "The support group meets every week at the centre.",
        "Painting sunsets is Melanie's favourite hobby; she paints weekly.",
        "Nothing here matches.",
    ]
    idx = CubeTextIndex()
    idx.upsert([TextDoc(pk=10 + i, text=t) for i, t in enumerate(docs)])
    q = "Which sunsets has Melanie painted?"
    ours = dict(idx.bm25(q, 10))
    ref = bm25s.BM25(k1=1.2, b=0.75)  # method "lucene": the same idf and tf normalisation
    ref.index([keyword_terms(t) for t in docs], show_progress=False)
    want = ref.get_scores(keyword_terms(q))
    for i, score in enumerate(want):
        assert ours.get(10 + i, 0.0) == pytest.approx(float(score), rel=1e-5)
    idx.remove([11, 13])
    assert 11 not in dict(idx.bm25(q, 10)) and idx.count == 3
    idx.remove([10, 12])  # more than half dead: compacted, still answers
    assert [p for p, _ in idx.bm25("nothing", 5)] == [14]
    assert np.array_equal(idx.anchored(), np.empty(0, np.int64))


def test_time_expressions() -> None:
    ref = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday

    def spans(text: str) -> list[tuple[str, str]]:
        return [
            (s.start.date().isoformat(), s.end.date().isoformat()) for s in find_times(text, ref)
        ]

    assert spans("I went yesterday") == [("2023-05-07", "2023-05-08")]
    assert spans("last week was busy") == [("2023-05-01", "2023-05-08")]
    assert spans("on 8 May, 2023 and May 9, 2023") == [
        ("2023-05-08", "2023-05-09"),
        ("2023-05-09", "2023-05-10"),
    ]
    assert spans("in May 2022") == [("2022-05-01", "2022-06-01")]
    assert spans("2 days ago") == [("2023-05-06", "2023-05-07")]
    # "N units ago" is as loose as its unit: centred on the day N units back
    assert spans("5 days ago") == [("2023-05-02", "2023-05-05")]
    assert spans("two weeks ago") == [("2023-04-21", "2023-04-28")]
    assert spans("a month ago") == [("2023-03-24", "2023-04-24")]
    # said on a Wednesday, "two weeks ago" reaches the Sunday 17 days back (the calendar
    # week two weeks back does not)
    # a stretch back to now: "the past N units", up to the end of the reference day
    assert spans("in the past three months") == [("2023-02-08", "2023-05-09")]
    assert spans("over the last few days") == [("2023-05-05", "2023-05-09")]
    assert spans("my previous 2 years") == [("2021-05-08", "2023-05-09")]
    assert spans("last week") == [("2023-05-01", "2023-05-08")]  # one unit: the calendar week
    (wed,) = find_times("two weeks ago", datetime(2023, 2, 1, 8, 41, tzinfo=UTC))
    assert wed.start <= datetime(2023, 1, 15, 13, 43, tzinfo=UTC) < wed.end
    assert spans("last Friday") == [("2023-05-05", "2023-05-06")]
    assert spans("in 2021") == [("2021-01-01", "2022-01-01")]
    assert spans("in June") == [("2022-06-01", "2022-07-01")]  # the latest June not ahead
    assert spans("2023-02-30 is no date") == []
    assert spans("nothing timely here") == []
    # matched on the lower-cased text, spans and words taken from the original
    shouted = find_times("LAST FRIDAY, and 8 MAY 2023", ref)
    assert [s.text for s in shouted] == ["LAST FRIDAY", "8 MAY 2023"]
    # a letter whose lower case is two characters ("İ") must not shift the spans after it
    (turkish,) = find_times("İİİstanbul trip on 8 May 2023.", ref)
    assert turkish.text == "8 May 2023" and turkish.start.date().isoformat() == "2023-05-08"
    assert asks_when("How long ago did she move?") and not asks_when("What did she move?")


def test_everyday_time_expressions() -> None:
    """What people say beside calendar dates: each is a span a "when" question can find."""
    ref = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday

    def spans(text: str) -> list[tuple[str, str, str]]:
        return [
            (s.text, s.start.date().isoformat(), s.end.date().isoformat())
            for s in find_times(text, ref)
        ]

    # a date or a month without its year: the latest one not ahead
    assert spans("on June 5th") == [("June 5th", "2022-06-05", "2022-06-06")]
    assert spans("the 8th of May") == [("8th of May", "2023-05-08", "2023-05-09")]
    assert spans("in early May") == [("early May", "2023-05-01", "2023-05-11")]
    assert spans("Mid-June") == [("Mid-June", "2022-06-11", "2022-06-21")]
    assert spans("late March 2022") == [("late March 2022", "2022-03-21", "2022-04-01")]
    assert spans("at the end of April")[0][1:] == ("2023-04-21", "2023-05-01")
    assert spans("on Feb 29th")[0][1:] == ("2020-02-29", "2020-03-01")  # the latest one
    # dates typed as numbers, month first; without a year only after a word that takes a date
    assert spans("since I started on 2/15")[0][1:] == ("2023-02-15", "2023-02-16")
    assert spans("on 12/25/2022 and 7/4/23")[0][1:] == ("2022-12-25", "2022-12-26")
    assert spans("due 7/4/23")[0][1:] == ("2023-07-04", "2023-07-05")
    assert spans("add 1/2 cup, we won 3/4 games") == [] and spans("on 13/45") == []
    # "may" and "march" are words too: without a year only the capitalised name counts
    assert spans("you may 2x it") == [] and spans("we march 3 miles") == []
    # seasons: the one over, the one begun, the next
    assert spans("last summer") == [("last summer", "2022-06-01", "2022-09-01")]
    assert spans("over the summer")[0][1:] == ("2022-06-01", "2022-09-01")
    assert spans("in the spring")[0][1:] == ("2023-03-01", "2023-06-01")  # this one, begun
    assert spans("this winter")[0][1:] == ("2023-12-01", "2024-03-01")
    assert spans("next fall")[0][1:] == ("2023-09-01", "2023-12-01")
    assert spans("summer 2021")[0][1:] == ("2021-06-01", "2021-09-01")
    # distances in weekends and fortnights, and ahead
    assert spans("two weekends ago") == [("two weekends ago", "2023-04-28", "2023-05-01")]
    assert spans("a fortnight ago")[0][1:] == ("2023-04-21", "2023-04-28")
    assert spans("in two weeks")[0][1:] == ("2023-05-19", "2023-05-26")
    assert spans("3 days from now")[0][1:] == ("2023-05-10", "2023-05-13")
    # how long something has lasted: from then up to today
    assert spans("I've had them for 3 years now")[0][1:] == ("2019-11-08", "2023-05-09")
    assert spans("Seven years now")[0][1:] == ("2015-11-08", "2023-05-09")
    # days said in words
    assert spans("this morning")[0][1:] == ("2023-05-08", "2023-05-09")
    assert spans("the day before yesterday")[0][1:] == ("2023-05-06", "2023-05-07")
    assert spans("the other day")[0][1:] == ("2023-05-01", "2023-05-08")
    assert spans("over the weekend")[0][1:] == ("2023-05-06", "2023-05-08")
    # what was just done: the few days before the message (cue words of their own, not digits)
    assert spans("I just got back")[0][1:] == ("2023-05-05", "2023-05-09")
    assert spans("we recently moved")[0][1:] == ("2023-05-05", "2023-05-09")
    assert spans("just 5 of us") == []
    saturday = datetime(2023, 5, 13, 10, tzinfo=UTC)
    (now,) = find_times("over the weekend", saturday)  # the weekend under way
    assert now.start.date().isoformat() == "2023-05-13"
    assert spans("at 5 pm on a day like any other") == []
    # weekdays shortened, capitalised only ("sun", "sat", "wed" are words too)
    assert spans("Last Fri I took the kids") == [("Last Fri", "2023-05-05", "2023-05-06")]
    assert spans("on Tues we met")[0][1:] == ("2023-05-02", "2023-05-03")
    assert spans("lying on sun loungers") == [] and spans("we wed last sat") == []
    # a day of the month said alone: the latest one not ahead, not an ordinal of a thing
    assert spans("back with the team on the 15th") == [("on the 15th", "2023-04-15", "2023-04-16")]
    assert spans("on the 8th")[0][1:] == ("2023-05-08", "2023-05-09")
    assert spans("on the 31st")[0][1:] == ("2023-03-31", "2023-04-01")  # April has no 31st
    assert spans("on the 3rd floor") == [] and spans("on the 2nd try") == []


def test_a_message_dense_with_dates_resolves_every_one() -> None:
    """A 32 KB message of back-to-back dates (what a hostile tenant can send) gets every span,
    each once: overlaps are checked against a character mask, linear in the text, where the
    list of earlier spans made it quadratic (1 s of one core for this message; README)."""
    ref = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    text = "May 5 " * (32768 // 6)
    found = find_times(text, ref)
    assert len(found) == 32768 // 6
    assert {(s.text, s.start.date().isoformat()) for s in found} == {("May 5", "2023-05-05")}
    # overlapping forms still go to the earlier, more specific pattern once
    assert [s.text for s in find_times("on June 5th, 2022 and June 5th", ref)] == [
        "June 5th, 2022",
        "June 5th",
    ]


def test_entities_without_a_model() -> None:
    ents = extract_entities(
        "Thanks Caroline! We visited Rome with Jon and met people from Stanford University.",
        speaker="Melanie",
    )
    got = {(e.normalized, e.type) for e in ents}
    assert got == {
        ("melanie", "person"),
        ("caroline", "name"),
        ("rome", "place"),
        ("jon", "name"),
        ("stanford university", "org"),
    }
    known = {"caroline", "stanford university"}
    assert query_names("what did CAROLINE study at stanford university?", known.__contains__) == [
        "caroline",
        "stanford university",
    ]


def test_side_index_follows_writes_from_another_engine(open_memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "shared"
    writer = open_memory(home, index_sync_seconds=0)
    reader = open_memory(home, index_sync_seconds=0)
    a = writer.add("Zorblax ordered tea.", user_id="u")[0]
    assert _contents(reader.recall("Zorblax", user_id="u", recipe="keyword=1")) == [a.content]
    b = writer.add("Quentin ordered coffee.", user_id="u")[0]  # the reader's side index exists
    assert _contents(reader.recall("Quentin", user_id="u", recipe="keyword=1")) == [b.content]
    writer.update(a.id, text="Zorblax switched to lemonade.")
    writer.delete(b.id)
    assert reader.recall("Quentin", user_id="u", recipe="keyword=1") == []
    got = reader.recall("lemonade", user_id="u", recipe="keyword=1")
    assert [h.record.id for h in got] == [a.id]


def test_an_assistant_turn_is_embedded_from_its_opening(
    mem: Memory, embedder: SentenceTransformerEmbedder
) -> None:
    """The dense channel sees a long assistant reply's opening; the record keeps the whole
    text, and the keyword channel finds words from its end."""
    from memsvc.retrieval.analyze import ASSISTANT_EMBED_CHARS, opening

    body = "Here is how to care for a sourdough starter at home. " + "Feed it daily. " * 80
    reply = body + "Finally, store the starter in the refrigerator."
    assert len(reply) > 2 * ASSISTANT_EMBED_CHARS
    src = {"role": "assistant", "speaker": "assistant"}
    cut = embedding_text(reply, src, None)
    assert cut == opening(reply, ASSISTANT_EMBED_CHARS) and reply.startswith(cut)
    assert len(cut) <= ASSISTANT_EMBED_CHARS and not cut.endswith(" ")
    assert embedding_text(reply, {"role": "user"}, None) == reply  # a user's words stay whole
    mem.add(messages=[{"role": "assistant", "content": reply}], user_id="u", session_id="s")
    q = "how do I care for a sourdough starter"
    hit = mem.recall(q, user_id="u", k=1, recipe="fast")[0]
    assert hit.record.content == reply
    qv = encode_queries(embedder, [q])[0]
    assert hit.score == pytest.approx(float(qv @ embedder.encode([cut])[0]), abs=1e-4)
    found = mem.recall("refrigerator", user_id="u", k=1, recipe="keyword=1")
    assert found and found[0].record.content == reply


def test_weighted_fusion_scales_at_a_fixed_depth() -> None:
    short = {"a": [(1, 0.9), (2, 0.5), (3, 0.4)], "b": [(2, 3.0), (1, 1.0), (3, 0.5)]}
    deeper = {"a": [*short["a"], (4, 0.1), (5, 0.05)], "b": [*short["b"], (6, 0.2)]}
    w = {"a": 1.0, "b": 1.0}
    got, longer = weighted_sum(short, w, 3), weighted_sum(deeper, w, 3)
    # the hits both lists hold score alike; what lies below the depth counts nothing
    assert {pk: longer[pk] for pk in got} == pytest.approx(got)
    assert longer[4] == longer[5] == longer[6] == 0.0
    # a list no longer than the depth (a channel that found only so much) scales to its end
    assert weighted_sum({"b": short["b"][:2]}, {"b": 1}, 3) == {2: 1.0, 1: 0.0}


def test_a_shorter_recall_is_the_head_of_a_longer_one(mem) -> None:  # type: ignore[no-untyped-def]
    """Asking for more hits must not reorder the first ones: a larger k runs each channel's
    list deeper, and the weighted fusion scaled each list to its own end (4 of these 5
    queries failed so)."""
    pets = ["dog", "cat", "parrot", "hamster", "goldfish", "rabbit", "turtle", "gecko"]
    towns = ["Oslo", "Lyon", "Porto", "Graz", "Turin", "Leeds", "Ghent", "Bergen", "Split"]
    did = ["bought {n} books", "ate {n} waffles", "met {n} friends", "walked {n} miles",
           "saw a film", "lost my keys"]  # fmt: skip
    texts = [
        f"On day {i} I took my {pets[i % 8]} to {towns[i % 9]} and "
        + did[i % 6].format(n=i % 7 + 1)
        + "."
        for i in range(150)
    ]
    mem.add(texts, user_id="u")
    for q in (
        "How many books did I buy in Porto?",
        "walking the dog",
        "films with the cat",
        "Ghent waffles with goldfish",
        "Where did I take my parrot?",
    ):
        head = [h.record.id for h in mem.recall(q, user_id="u", k=10)]
        longer = [h.record.id for h in mem.recall(q, user_id="u", k=90)]
        assert longer[:10] == head, q
