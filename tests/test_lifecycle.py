"""Memory that stays current as time passes (simulated with a ManualClock): supersession,
forgetting (reinforce, demote, archive, restore, pin), organization and idempotent
maintenance, through the real SDK, model and database."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from memsvc import InvalidInput, ManualClock, Memory
from memsvc.retrieval.facts import find_fact, same_value
from memsvc.retrieval.retention import ForgetPolicy, reinforced, retention, target_state
from memsvc.store.precision import decode_stored, encode_stored, stored_bytes

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def aged(open_memory: Callable[..., Memory], clock: ManualClock) -> Memory:
    """Strength 30 days at importance 0.5; reinforcement written at once."""
    return open_memory(clock=clock, forget_base_days=30, reinforce_flush_seconds=0)


# ---- pure parts ---------------------------------------------------------------------------


def test_retention_formula_and_spaced_reinforcement() -> None:
    p = ForgetPolicy(base_days=30)

    class Row:
        pinned = False
        importance = 0.5
        strength = 1.0
        last_recalled_at = None
        created_at = T0

    at = datetime(2024, 1, 31, tzinfo=UTC)
    assert retention(Row, at, p) == pytest.approx(math.exp(-1))
    Row.importance = 1.0  # S doubles
    assert retention(Row, at, p) == pytest.approx(math.exp(-0.5))
    Row.pinned = True
    assert retention(Row, at, p) == 1.0
    assert reinforced(1.0, 1.0, p) == 1.0  # recalled again at once: no gain
    assert reinforced(1.0, 0.0, p) == pytest.approx(2.5)  # nearly forgotten: x (1 + growth)
    assert [target_state(r, p) for r in (0.9, 0.3, 0.05, 0.001)] == [
        "float32",
        "int8",
        "binary",
        "archive",
    ]
    with pytest.raises(ValueError):
        ForgetPolicy(int8_below=0.1, binary_below=0.5)


def test_stored_precisions_round_trip() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=384).astype(np.float32)
    v /= np.linalg.norm(v)
    for precision, floor in (("float32", 0.99999), ("int8", 0.999), ("binary", 0.7)):
        data = encode_stored(v, precision)
        assert len(data) == stored_bytes(384, precision)
        back = decode_stored(data, precision, 384)
        assert float(back @ v) / float(np.linalg.norm(back)) > floor
    assert stored_bytes(384, "binary") == 52
    with pytest.raises(ValueError):
        decode_stored(b"xx", "int8", 384)


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("I live in Paris.", "ana|residence", "paris"),
        ("I just moved to Berlin last week!", "ana|residence", "berlin"),
        ("Alice lives in Rome now", "alice|residence", "rome"),
        ("My favourite colour is now green", "ana|favorite color", "green"),
        ("I work at Acme Corp as an engineer", "ana|employer", "acme corp"),
        ("I turned 35 today", "ana|age", "35"),
    ],
)
def test_facts_found(text: str, key: str, value: str) -> None:
    f = find_fact(text, speaker="Ana")
    assert f is not None and (f.key, f.value) == (key, value)


@pytest.mark.parametrize(
    "text",
    [
        "I'm thinking about moving to Berlin",
        "I no longer live in Paris",
        "Do you live in Paris?",
        "I visited Berlin last week",
        "My point is that we should go",
        "She moved to Rome",
    ],
)
def test_no_fact_in_plans_negations_questions(text: str) -> None:
    assert find_fact(text, speaker="Ana") is None


def test_same_value() -> None:
    assert same_value("paris", "paris france")
    assert not same_value("paris", "berlin")


# ---- supersession ------------------------------------------------------------------------


def test_fact_updated_three_times_answers_for_each_time(aged: Memory, clock: ManualClock) -> None:
    said = []
    for days, text in (
        (0, "I live in Paris."),
        (40, "I moved to Berlin."),
        (80, "I relocated to Rome."),
    ):
        clock.set(T0)
        clock.advance(days=days)
        said.append(aged.add(text, user_id="ana")[0])
    aged.add("I love baking bread on Sundays.", user_id="ana")

    def top(at: datetime | None = None) -> str:
        hits = aged.recall("Where does Ana live?", user_id="ana", k=1, at=at)
        return hits[0].record.content

    assert top() == "I relocated to Rome."
    assert top(datetime(2024, 1, 20, tzinfo=UTC)) == "I live in Paris."
    assert top(datetime(2024, 3, 1, tzinfo=UTC)) == "I moved to Berlin."
    assert top(datetime(2024, 4, 1, tzinfo=UTC)) == "I relocated to Rome."
    chain = aged.lineage(said[0].id)
    assert [r.content for r in chain] == [r.content for r in said]
    assert chain[0].valid_to == said[1].valid_from and chain[1].valid_to == said[2].valid_from
    hist = aged.history(said[0].id)
    assert [v.change for v in hist] == ["create", "supersede"]
    assert hist[-1].cause_id == said[1].id
    edges = aged.graph("user:ana", types="supersedes").edges
    assert len(edges) == 2
    # nothing was deleted: every statement is still listed
    assert len(aged.list(user_id="ana").items) == 4


def test_restating_or_other_subjects_supersede_nothing(aged: Memory, clock: ManualClock) -> None:
    a = aged.add("I live in Paris.", user_id="ana")[0]
    clock.advance(days=5)
    aged.add("I still live in Paris, France.", user_id="ana")
    aged.add("Bob lives in Berlin.", user_id="ana")
    aged.add("I'm thinking about moving to Berlin.", user_id="ana")
    assert aged.get(a.id).valid_to is None


# ---- forgetting --------------------------------------------------------------------------


def test_unused_memory_fades_demotes_archives_while_recalled_one_stays(
    aged: Memory, clock: ManualClock
) -> None:
    kept = aged.add("The wifi password at the cabin is maple42.", user_id="u")[0]
    faded = aged.add("The plumber came on Tuesday to fix the sink.", user_id="u")[0]
    pinned = aged.add("My blood type is O negative.", user_id="u", pinned=True)[0]
    states = []
    for _ in range(12):  # a recall of the password every 15 days, 180 days in all
        clock.advance(days=15)
        hits = aged.recall("cabin wifi password", user_id="u", k=1)
        assert hits[0].record.id == kept.id
        aged.maintain("user:u")
        states.append((aged.get(faded.id).embedding_precision, aged.get(faded.id).status))
    # S = 30 days: int8 once R < 0.5 (day 21), 1-bit below 0.1 (day 69), archived below 0.01
    assert states[0] == ("float32", "active")
    assert states[1] == ("int8", "active")
    assert ("binary", "active") in states
    assert states[-1][1] == "archived"
    k = aged.get(kept.id)
    assert (k.status, k.embedding_precision) == ("active", "float32")
    assert k.recall_count == 12 and k.strength > 1
    p = aged.get(pinned.id)
    assert (p.status, p.embedding_precision) == ("active", "float32")
    # archived: not recalled by default, still listed, restorable
    assert faded.id not in {h.record.id for h in aged.recall("plumber sink", user_id="u")}
    assert [r.id for r in aged.list(user_id="u", status="archived").items] == [faded.id]
    back = aged.restore(faded.id)
    assert (back.status, back.embedding_precision) == ("active", "float32")
    assert aged.recall("plumber sink", user_id="u", k=1)[0].record.id == faded.id
    assert [v.change for v in aged.history(faded.id)][-2:] == ["archive", "restore"]


def test_retention_rescoring_is_in_explain(aged: Memory, clock: ManualClock) -> None:
    aged.add("Old note: the garage code is 1234.", user_id="u")
    clock.advance(days=20)
    hits = aged.recall("garage code", user_id="u", k=1)
    assert hits[0].explain["retention"]["score"] == pytest.approx(math.exp(-20 / 30), rel=1e-3)


def test_pinned_validated(aged: Memory) -> None:
    with pytest.raises(InvalidInput):
        aged.add("x", user_id="u", pinned="yes")  # type: ignore[arg-type]
    r = aged.add("x", user_id="u")[0]
    assert aged.update(r.id, pinned=True).pinned


# ---- organization and maintenance --------------------------------------------------------

GROUPS = {
    "cooking": [
        "I baked sourdough bread with a new starter.",
        "The lasagna recipe needs more garlic and basil.",
        "We roasted vegetables and made a tomato soup.",
        "My pasta sauce simmered for three hours.",
        "I tried a new curry recipe with coconut milk.",
        "Baking cookies with brown butter is the best.",
    ],
    "running": [
        "I ran ten kilometres along the river this morning.",
        "My marathon training plan has four runs a week.",
        "New running shoes helped my knee pain on long runs.",
        "I jogged a half marathon in under two hours.",
        "Interval sprints on the track left me exhausted.",
        "The trail run up the hill was muddy but fun.",
    ],
    "code": [
        "The Python service crashed with a null pointer in the parser.",
        "I refactored the database migration scripts today.",
        "Our unit tests failed after the compiler upgrade.",
        "Debugging the memory leak in the server took all day.",
        "I wrote a SQL query to join the orders and users tables.",
        "The API endpoint returns a 500 error on empty input.",
    ],
}


def test_topic_tree_groups_what_belongs_together(aged: Memory) -> None:
    ids = {}
    for group, texts in GROUPS.items():
        for r in aged.add(texts, user_id="u", kind="note"):
            ids[r.id] = group
    aged.maintain("user:u")
    page = aged.graph("user:u", types="part_of", limit=1000)
    subtopic_of = {
        e.source.removeprefix("record:"): e.target
        for e in page.edges
        if e.source.startswith("record:")
    }
    parent = {e.source: e.target for e in page.edges if e.source.startswith("topic:")}
    topic_of = {rid: parent[sub] for rid, sub in subtopic_of.items()}
    assert set(topic_of) == set(ids)
    # each topic is (almost) pure: the records of one group share a topic
    for group in GROUPS:
        tops = [topic_of[r] for r, g in ids.items() if g == group]
        assert max(tops.count(t) for t in set(tops)) >= 5, (group, tops)
    labels = {n.label for n in page.nodes if n.kind == "topic"}
    assert all(labels)


def test_maintenance_twice_changes_nothing_the_second_time(
    aged: Memory, clock: ManualClock
) -> None:
    aged.add(
        messages=[
            {"name": "Ana", "content": "I moved to Lisbon in spring."},
            {"name": "Bo", "content": "Lisbon is lovely, the trams are great."},
        ],
        user_id="u",
        session_id="s1",
    )
    clock.advance(days=1)
    aged.add(
        messages=[{"name": "Ana", "content": "Lisbon trams are lovely indeed."}],
        user_id="u",
        session_id="s1",
    )
    aged.add(["Remember to renew the passport.", "Remember to renew the passport!"], user_id="u")
    clock.advance(days=40)
    first = aged.maintain("user:u")[0]
    assert first.counts["follows"] == 1  # the turn added by a later call joins its session
    assert first.counts["merged"] == 1
    assert first.counts["topics_rebuilt"] == 1
    assert first.counts["demoted_int8"] >= 1
    second = aged.maintain("user:u")[0]
    changed = {k: v for k, v in second.counts.items() if v and k != "index_vectors"}
    assert changed == {}
    runs = aged.maintenance_runs()
    assert runs[0].counts == second.counts
    dup = aged.list(user_id="u", status="archived").items
    assert len(dup) == 1 and dup[0].content == "Remember to renew the passport!"
    survivor = next(r for r in aged.list(user_id="u").items if r.content.startswith("Remember"))
    assert survivor.source["merged"][0]["id"] == dup[0].id


def test_topic_namer_hook_names_topics(
    open_memory: Callable[..., Memory], clock: ManualClock, tmp_path
) -> None:
    seen: list[int] = []

    def namer(texts: list[str]) -> str | None:  # what an LLM namer would be handed
        seen.append(len(texts))
        return "running" if any("marathon" in t for t in texts) else None

    from memsvc import Settings

    mem = Memory(
        settings=Settings(home=tmp_path / "named"),
        embedder=open_memory().embedder,
        clock=clock,
        topic_namer=namer,
    )
    try:
        mem.add(GROUPS["running"] + GROUPS["code"], user_id="u", kind="note")
        mem.maintain("user:u")
        labels = {n.label for n in mem.graph("user:u", types="part_of").nodes if n.kind == "topic"}
        assert "running" in labels and len(labels) > 1 and seen
    finally:
        mem.close()


def test_maintenance_is_safe_beside_concurrent_writes(aged: Memory) -> None:
    errors: list[BaseException] = []
    added: list[str] = []

    def writer() -> None:
        try:
            for i in range(20):
                recs = aged.add([f"Note {i}: {t}" for t in GROUPS["code"][:3]], user_id="u")
                added.extend(r.id for r in recs)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    aged.add(GROUPS["cooking"], user_id="u")
    t = threading.Thread(target=writer)
    t.start()
    for _ in range(3):
        aged.maintain("user:u")
    t.join()
    assert not errors
    aged.maintain("user:u")  # places whatever arrived during the last run
    assert aged.maintain("user:u")[0].counts["placed"] == 0
    tree = aged.graph("user:u", types="part_of", limit=1000)
    placed = {
        e.source.removeprefix("record:") for e in tree.edges if e.source.startswith("record:")
    }
    active = {r.id for r in aged.list(user_id="u", limit=1000).items}
    assert set(added) <= {r.id for r in aged.list(user_id="u", status="all", limit=1000).items}
    assert placed == active


def test_a_due_reinforcement_write_runs_beside_the_recall_not_in_it(aged: Memory) -> None:
    """The recall that finds the buffered reinforcement due hands the write to a thread of its
    own: it returns while that write is still waiting for the database; `flush` waits for
    it, so nothing buffered is lost."""
    from memsvc.forgetting import Reinforcer

    rec = aged.add("Zora keeps bees on the roof.", user_id="z")[0]
    engine = aged._engine
    gate, entered = threading.Event(), threading.Event()
    real = engine.db.writing

    def slow_writing() -> object:
        entered.set()
        assert gate.wait(30)
        return real()

    reinforcer = Reinforcer(engine.db, engine.policy, flush_seconds=0.001)
    engine.db.writing = slow_writing  # type: ignore[method-assign]
    try:
        reinforcer._flushed -= 1  # due
        with engine.db.reading() as tx:
            pk = tx.records.get(engine.tenant_pk(aged.tenant), rec.id)[0].pk
        reinforcer.note([pk], engine.now())
        assert entered.wait(30)  # the write began on its own thread and waits
        reinforcer.note([pk], engine.now())  # a second note neither waits nor starts another
        gate.set()
        reinforcer.flush()
    finally:
        engine.db.writing = real  # type: ignore[method-assign]
    assert aged.get(rec.id).recall_count == 2


def test_two_workers_reinforcing_one_record_both_count(aged: Memory, clock: ManualClock) -> None:
    """Each worker buffers its own recalls; their flushes add to the stored count in SQL, so
    neither overwrites the other's, and every flush logs a recall event and strengthens."""
    from memsvc.forgetting import Reinforcer

    rec = aged.add("Ilse rows on the lake at dawn.", user_id="i")[0]
    other = aged.add("Ilse's boat is green.", user_id="i")[0]
    engine = aged._engine
    with engine.db.reading() as tx:
        pk = tx.records.get(engine.tenant_pk(aged.tenant), rec.id)[0].pk
    first, second = (Reinforcer(engine.db, engine.policy, flush_seconds=3600) for _ in range(2))
    clock.advance(days=20)  # retention well below 1: a recall strengthens
    first.note([pk, pk], engine.now())
    second.note([pk], engine.now())
    assert first.flush() == 1 and second.flush() == 1
    got = aged.get(rec.id)
    assert got.recall_count == 3 and got.strength > rec.strength
    assert got.last_recalled_at == engine.now()
    assert aged.get(other.id).recall_count == 0  # only the noted record
    with engine.db.reading() as tx:  # the events the activation tier promotes from
        cube_pk = tx.records.get(engine.tenant_pk(aged.tenant), rec.id)[0].cube_pk
        assert tx.tiers.hot_records(cube_pk, T0, recalls=3) == [pk]
        assert tx.tiers.hot_records(cube_pk, T0, recalls=4) == []
