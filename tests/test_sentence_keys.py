"""Sentence keys: a remark inside a long turn finds its record, through every index path."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from memsvc import InvalidInput, Memory
from memsvc.retrieval.sentence_keys import MAX_KEYS, key_texts, sentences
from memsvc.store.vector_index import (
    KEY_BASE,
    CubeIndex,
    IndexFileError,
    read_index_file,
    write_index_file,
)


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---- what becomes a key ------------------------------------------------------------------------


def test_sentences_join_fragments_to_a_neighbour() -> None:
    text = "Hi! I need papers on social networks.\nBy the way, I have three sisters. Thanks."
    assert sentences(text) == [
        "Hi! I need papers on social networks.",
        "By the way, I have three sisters. Thanks.",
    ]
    assert sentences("Thanks!") == ["Thanks!"]
    assert sentences("") == []


def test_keys_for_what_a_person_says_at_length_only() -> None:
    long = (
        "I moved my old upright piano up to the attic last week because the living room "
        "was far too crowded. Now I finally want to learn the violin, and I am looking for "
        "a patient teacher nearby."
    )
    assert len(key_texts(long, {"role": "user"}, None)) == 2
    assert key_texts(long, {"role": "assistant"}, None) == []  # replies restate questions
    short = "I moved my piano to the attic. Now I want to learn the violin."
    assert key_texts(short, {"role": "user"}, None) == []  # one thought, embedded with context
    assert key_texts(long.replace(". ", ", "), {"role": "user"}, None) == []  # one sentence
    named = key_texts(long, {"role": "user", "speaker": "Caroline"}, datetime(2023, 5, 8))
    assert named[0].startswith("Caroline (8 May 2023): I moved my old upright piano")
    many = " ".join(f"Sentence number {i} is right here." for i in range(40))
    assert len(key_texts(many, None, None)) == MAX_KEYS  # one message costs a bounded amount


# ---- the index ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["Flat", "SQ8,Rescore10", "RBin,Rescore20"])
def test_keys_are_searched_apart_and_stand_for_their_record(spec: str) -> None:
    x = _unit(60, 16)
    idx = CubeIndex(16, "m", spec=spec)
    idx.upsert(np.arange(50), x[:50])
    before = idx.search(x[51], 5)
    idx.add_keys(np.array([7, 7, 9]), x[50:53])  # record 7's keys point away from it
    idx.add_keys(np.array([999]), x[53:54])  # no such record: skipped
    assert (idx.count, idx.keys) == (50, 3)
    after = idx.search(x[51], 5)  # the records' search is the same with keys
    assert np.array_equal(before[0], after[0]) and np.allclose(before[1], after[1])
    pks, scores = idx.search_keys(x[51], 5)
    assert list(pks) == [7, 9] and scores[0] == pytest.approx(1.0, abs=1e-2)
    assert (pks < KEY_BASE).all()
    assert list(idx.search_keys(x[52], 3, allowed=np.array([9, 11]))[0]) == [9]
    assert len(idx.search_keys(x[52], 3, allowed=np.array([11]))[0]) == 0
    # a rewrite of the record drops its keys; removing it drops them too
    idx.upsert(np.array([7]), x[7:8])
    assert idx.keys == 1 and list(idx.search_keys(x[51], 5)[0]) == [9]
    idx.remove(np.array([9]))
    assert (idx.count, idx.keys) == (49, 0) and len(idx.search_keys(x[52], 5)[0]) == 0


def test_keys_survive_the_index_file_and_a_spec_change(tmp_path: Path) -> None:
    x = _unit(30, 8)
    for spec in ("Flat", "SQ8,Rescore10"):
        idx = CubeIndex(8, "m", spec=spec)
        idx.upsert(np.arange(20), x[:20])
        idx.add_keys(np.array([3, 3]), x[20:22])
        write_index_file(tmp_path / "i", idx)
        back = read_index_file(tmp_path / "i")
        assert (back.count, back.keys) == (20, 2)
        assert back.search_keys(x[21], 1)[0][0] == 3
        back.set_spec("RBin,Rescore20" if spec == "Flat" else "Flat")
        assert (back.count, back.keys) == (20, 2) and back.search_keys(x[20], 1)[0][0] == 3


def test_a_file_with_keys_inside_keys_is_refused(tmp_path: Path) -> None:
    x = _unit(4, 8)
    inner = CubeIndex(8, "m")
    inner.upsert(np.array([1]), x[:1])
    inner.add_keys(np.array([1]), x[1:2])
    outer = CubeIndex(8, "m")
    outer.upsert(np.array([KEY_BASE + 64]), x[2:3])  # a "key index" that holds keys itself
    outer._keyidx, outer._nkeys = inner, {1: 1}
    with pytest.raises(IndexFileError, match="keys"):
        CubeIndex.from_bytes(outer.to_bytes())


# ---- end to end, with the real model -----------------------------------------------------------

ASIDE = (
    "Can you recommend some recent papers on community detection in social networks? "
    "I'm especially interested in overlapping communities and how they scale to large graphs. "
    "By the way, I come from a family with three sisters and we still talk every day. "
    "I'd like surveys as well as a few seminal methods papers, ideally with code."
)
OTHERS = [
    "What's a good recipe for a quick weeknight pasta with spinach?",
    "Can you explain how compound interest works on a savings account?",
    "I need tips for keeping my tomato plants healthy in a heat wave.",
    "Which hiking boots are best for wet, rocky trails in autumn?",
    "Help me plan a three-day itinerary for Lisbon in the spring.",
    "How do I set up a Python virtual environment on Windows?",
    # nearer the question as a whole than the long request around the remark (MiniLM)
    "What board games work well for a family of four on a rainy weekend?",
    "How should I split chores fairly among roommates?",
    "Can you suggest a good name for a family group chat?",
]
QUESTION = "How many siblings do I have?"


def _fill(m: Memory) -> None:
    when = datetime(2024, 3, 1, tzinfo=UTC)
    for i, text in enumerate([*OTHERS, ASIDE]):
        m.add(
            messages=[{"role": "user", "content": text}],
            user_id="u",
            session_id=f"s{i}",
            timestamp=when,
        )


def _sentence_hits(m: Memory, query: str) -> list:
    return m.recall(query, user_id="u", k=10, recipe="sentence=1")


def test_an_aside_is_found_by_its_sentence_and_after_a_reload(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    plain = open_memory(tmp_path / "plain", sentence_keys=False)
    _fill(plain)
    # nothing was keyed: every record stands by its own embedding, as in the dense ranking
    fast = [h.record.id for h in plain.recall(QUESTION, user_id="u", k=10, recipe="fast")]
    assert [h.record.id for h in _sentence_hits(plain, QUESTION)] == fast
    keyed = open_memory(tmp_path / "keyed")
    _fill(keyed)
    # the whole request is about papers: dense ranks the remark's record below others
    dense = [h.record.content for h in keyed.recall(QUESTION, user_id="u", k=10, recipe="fast")]
    assert dense.index(ASIDE) > 0
    hits = _sentence_hits(keyed, QUESTION)
    assert hits[0].record.content == ASIDE  # the one record long enough for keys
    assert hits[0].explain["sentence"]["score"] > 0.5
    # a question about someone else is not what a person's asides answer: no sentence ranking
    third = "How many siblings does Ann have?"
    assert keyed.recall(third, user_id="u", k=10, recipe="sentence=1") == []
    # the others keep the order of their own embeddings
    rest = [h.record.content for h in hits[1:]]
    assert rest == [c for c in dense if c != ASIDE]
    keyed.close()
    # a new process: the index loads from its file or the database, keys and all
    again = open_memory(tmp_path / "keyed")
    assert _sentence_hits(again, QUESTION)[0].record.content == ASIDE
    again.close()
    for idx_file in (tmp_path / "keyed").rglob("*.faiss"):
        idx_file.unlink()  # rebuilt from the records' stored keys
    rebuilt = open_memory(tmp_path / "keyed")
    assert _sentence_hits(rebuilt, QUESTION)[0].record.content == ASIDE


def test_an_update_rewrites_the_keys(open_memory: Callable[..., Memory]) -> None:
    m = open_memory()
    _fill(m)
    hit = _sentence_hits(m, QUESTION)[0]
    remark = "By the way, I come from a family with three sisters and we still talk every day."
    m.update(hit.record.id, text=ASIDE.replace(remark, "My laptop is old and slow on big graphs."))
    # the record keeps keys of what it says now, none of the remark it no longer holds
    again = {h.record.id: h for h in _sentence_hits(m, QUESTION)}
    assert again[hit.record.id].explain["sentence"]["score"] < 0.3
    assert next(iter(again)) != hit.record.id


def test_the_aside_booster_lifts_a_record_by_its_better_sentence(
    open_memory: Callable[..., Memory],
) -> None:
    m = open_memory()
    _fill(m)
    base = [
        h.record.content for h in m.recall(QUESTION, user_id="u", k=10, recipe="dense=1|weighted")
    ]
    hits = m.recall(QUESTION, user_id="u", k=10, recipe="dense=1+aside=1|weighted")
    assert base.index(ASIDE) > 0 and hits[0].record.content == ASIDE
    assert 0.3 < hits[0].explain["aside"]["score"] < 0.5  # its sentence's lead over the whole
    # records without keys keep their order
    rest = [h.record.content for h in hits[1:]]
    assert rest == [c for c in base if c != ASIDE]


def test_another_tenants_keys_are_never_searched(open_memory: Callable[..., Memory]) -> None:
    """Keys live in their record's cube: a second tenant asking the very remark finds none of
    the first tenant's records, by sentence or by aside, and its own long messages cannot
    crowd the first tenant's results (each cube has its own key index)."""
    m = open_memory()
    _fill(m)  # user "u": the remark about three sisters
    m.add(
        messages=[{"role": "user", "content": ASIDE.replace("three sisters", "two brothers")}],
        user_id="intruder",
    )
    for recipe in ("sentence=1", "balanced"):
        theirs = m.recall(QUESTION, user_id="intruder", k=10, recipe=recipe)
        assert theirs and all("three sisters" not in h.record.content for h in theirs)
        mine = m.recall(QUESTION, user_id="u", k=10, recipe=recipe)
        assert all("two brothers" not in h.record.content for h in mine)
    assert "three sisters" in _sentence_hits(m, QUESTION)[0].record.content


# ---- the cube file -------------------------------------------------------------------------------


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def _rewrite(path: Path, lines: list[dict]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    return path


def test_keys_travel_in_the_cube_file_or_are_made_on_import(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    m = open_memory(tmp_path / "a")
    _fill(m)
    m.export_cube("user:u", tmp_path / "a.memcube")
    lines = _lines(tmp_path / "a.memcube")
    keyed = [x for x in lines if x["type"] == "record" and "keys" in x]
    assert [x["record"]["content"] for x in keyed] == [ASIDE]  # only the long message
    # same model: the keys come with their record, byte for byte
    b = open_memory(tmp_path / "b")
    b.import_cube(tmp_path / "a.memcube", cube="copy")
    hits = b.recall(QUESTION, user_id="u", cube="copy", recipe="sentence=1")
    assert hits[0].record.content == ASIDE
    b.export_cube("copy", tmp_path / "b.memcube")
    again = [x["keys"] for x in _lines(tmp_path / "b.memcube") if "keys" in x]
    assert again == [keyed[0]["keys"]]
    # a file from before keys: they are made on import, as `add` makes them
    for x in lines:
        x.pop("keys", None)
    c = open_memory(tmp_path / "c")
    c.import_cube(_rewrite(tmp_path / "old.memcube", lines), cube="copy")
    hits = c.recall(QUESTION, user_id="u", cube="copy", recipe="sentence=1")
    assert hits[0].record.content == ASIDE


def _f32(rows: int, value: float = 0.1) -> str:
    return base64.b64encode(np.full((rows, 384), value, dtype=np.float32).tobytes()).decode()


@pytest.mark.parametrize(
    "bad",
    [
        base64.b64encode(b"\0" * 100).decode(),  # not whole rows
        _f32(MAX_KEYS + 1),  # more keys than a record ever has
        _f32(2, float("nan")),
        _f32(0),
        17,
        "not base64!",
    ],
    ids=["ragged", "too-many", "nan", "empty", "number", "not-base64"],
)
def test_bad_keys_in_a_cube_file_are_refused_and_nothing_is_written(
    open_memory: Callable[..., Memory], tmp_path: Path, bad: object
) -> None:
    m = open_memory(tmp_path / "a")
    _fill(m)
    m.export_cube("user:u", tmp_path / "a.memcube")
    lines = _lines(tmp_path / "a.memcube")
    next(x for x in lines if "keys" in x)["keys"] = bad
    other = open_memory(tmp_path / "b")
    with pytest.raises(InvalidInput) as err:
        other.import_cube(_rewrite(tmp_path / "bad.memcube", lines), cube="copy")
    assert err.value.details["field"] == "keys"
    assert [c.name for c in other.list_cubes() if c.name == "copy"] == []


def test_a_second_tenant_importing_keys_reaches_only_its_own_cube(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    """Tenant B imports a file that carries tenant A's keys (ids and all): the keys land in
    B's new cube only; A's recall, by sentence or by the default, never returns B's copy, and
    B's never returns A's records."""
    m = open_memory(tmp_path / "a")
    a, b = m.for_tenant("alpha"), m.for_tenant("beta")
    _fill(a)
    mine = {h.record.id for h in a.recall(QUESTION, user_id="u", k=10, recipe="sentence=1")}
    a.export_cube("user:u", tmp_path / "a.memcube")
    b.import_cube(tmp_path / "a.memcube", cube="copy")
    theirs = {h.record.id for h in b.recall(QUESTION, user_id="u", cube="copy", k=10)}
    assert theirs and not theirs & mine  # another tenant's ids: the copy got new ones
    for recipe in ("sentence=1", "balanced"):
        again = {h.record.id for h in a.recall(QUESTION, user_id="u", k=10, recipe=recipe)}
        assert again <= mine
    assert [c.name for c in a.list_cubes() if c.name == "copy"] == []
