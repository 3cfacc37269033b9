"""The embedded SDK end to end with the real model and a real SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memsvc import Conflict, CubeNotFound, Memory, RecordNotFound

DISTRACTORS = [
    "The team meeting moved to Thursday afternoon.",
    "I bought a new pair of running shoes yesterday.",
    "The cat knocked the vase off the shelf.",
    "Our quarterly revenue grew by twelve percent.",
    "She is learning to play the cello.",
    "The train to Munich was delayed by an hour.",
    "He prefers tea over coffee in the morning.",
    "The garden needs watering twice a week in summer.",
    "We watched a documentary about deep sea creatures.",
    "The printer on the third floor is out of toner.",
    "My sister started a new job at the hospital.",
    "The recipe calls for two cups of flour.",
    "They are planning a hiking trip in the Alps.",
    "The laptop battery lasts about six hours.",
    "Football practice is cancelled because of the rain.",
]


def test_recall_finds_the_right_memory_among_distractors(mem: Memory) -> None:
    mem.add(DISTRACTORS, user_id="alice")
    target = mem.add("Alice's dog is a golden retriever named Biscuit.", user_id="alice")[0]
    hits = mem.recall("What breed is Alice's pet?", user_id="alice", k=3)
    assert hits[0].record.id == target.id
    assert hits[0].explain["dense"]["rank"] == 1
    assert hits[0].score == pytest.approx(hits[0].explain["fused"]["score"])
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    fast = mem.recall("What breed is Alice's pet?", user_id="alice", k=3, recipe="fast")
    assert fast[0].record.id == target.id and set(fast[0].explain) == {"dense"}
    assert fast[0].score == pytest.approx(fast[0].explain["dense"]["score"])  # the cosine


def test_recall_returns_at_most_k_and_all_when_fewer(mem: Memory) -> None:
    mem.add(DISTRACTORS[:4], user_id="u")
    assert len(mem.recall("anything", user_id="u", k=2)) == 2
    assert len(mem.recall("anything", user_id="u", k=50)) == 4


def test_users_are_isolated(mem: Memory) -> None:
    mem.add("Alice's locker code is 4812.", user_id="alice")
    mem.add(DISTRACTORS[:3], user_id="bob")
    for hit in mem.recall("locker code", user_id="bob", k=10):
        assert hit.record.user_id == "bob"
        assert "4812" not in hit.record.content
    assert mem.recall("locker code", user_id="carol") == []
    assert mem.list(user_id="bob").items[0].user_id == "bob"


def test_tenants_are_isolated(mem: Memory) -> None:
    rec = mem.add("tenant one secret", user_id="alice")[0]
    other = mem.for_tenant("other")
    assert other.recall("secret", user_id="alice") == []
    with pytest.raises(RecordNotFound):
        other.get(rec.id)
    with pytest.raises(CubeNotFound):
        other.get_cube("user:alice")


def test_messages_become_episodes_with_speaker_and_time(mem: Memory) -> None:
    t0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    recs = mem.add(
        messages=[
            {"role": "user", "content": "I adopted a kitten today!", "name": "Caroline"},
            {"role": "assistant", "content": "Congratulations, what is its name?"},
            {"role": "user", "content": "Her name is Mochi.", "timestamp": t0 + timedelta(1)},
        ],
        user_id="caroline",
        session_id="s1",
        timestamp=t0,
    )
    assert [r.kind for r in recs] == ["episode"] * 3
    assert recs[0].source == {"role": "user", "speaker": "Caroline", "message_index": 0}
    assert recs[1].source["speaker"] == "assistant"
    assert recs[0].event_time == t0 and recs[2].event_time == t0 + timedelta(1)
    assert all(r.session_id == "s1" for r in recs)
    hit = mem.recall("Who is Mochi?", user_id="caroline", k=1)[0]
    assert hit.record.id == recs[2].id


def test_update_keeps_history_and_reembeds(mem: Memory) -> None:
    rec = mem.add("Alice lives in Paris.", user_id="alice", tags=["home"])[0]
    mem.add(DISTRACTORS[:5], user_id="alice")
    new = mem.update(rec.id, text="Alice lives in Berlin.", metadata={"source": "chat"})
    assert new.version == 2 and new.content == "Alice lives in Berlin."
    assert new.metadata == {"source": "chat"} and new.tags == ["home"]
    history = mem.history(rec.id)
    assert [(v.version, v.change, v.content) for v in history] == [
        (1, "create", "Alice lives in Paris."),
        (2, "update", "Alice lives in Berlin."),
    ]
    assert mem.recall("Which city is Berlin?", user_id="alice", k=1)[0].record.id == rec.id
    assert mem.get(rec.id).content == "Alice lives in Berlin."


def test_soft_delete_hides_from_recall_but_keeps_record(mem: Memory) -> None:
    rec = mem.add("The wifi password is hunter2.", user_id="alice")[0]
    mem.add(DISTRACTORS[:3], user_id="alice")
    mem.delete(rec.id)
    assert rec.id not in {h.record.id for h in mem.recall("wifi password", user_id="alice")}
    got = mem.get(rec.id)
    assert got.status == "deleted" and got.version == 2
    assert [v.change for v in mem.history(rec.id)] == ["create", "delete"]
    assert [r.id for r in mem.list(user_id="alice", status="deleted").items] == [rec.id]
    mem.delete(rec.id)  # idempotent
    assert mem.get(rec.id).version == 2
    with pytest.raises(Conflict):
        mem.update(rec.id, text="changed")


def test_hard_delete_purges_everything(mem: Memory) -> None:
    rec = mem.add(messages=[{"content": "one"}, {"content": "secret two"}], user_id="alice")
    mem.delete(rec[1].id, hard=True)
    with pytest.raises(RecordNotFound):
        mem.get(rec[1].id)
    with pytest.raises(RecordNotFound):
        mem.history(rec[1].id)
    assert [h.record.id for h in mem.recall("secret two", user_id="alice")] == [rec[0].id]
    info = mem.index_info("user:alice")
    assert info.vectors == 1
    path = mem.settings.home / "x.memcube"
    assert mem.export_cube("user:alice", path) == {"records": 1, "entities": 0, "edges": 0}


def test_list_paginates_with_cursor_and_filters(mem: Memory) -> None:
    texts = [f"note number {i}" for i in range(23)]
    mem.add(texts[:10], user_id="u", tags=["a"])
    mem.add(texts[10:], user_id="u", session_id="s2", metadata={"src": "x"})
    seen, cursor = [], None
    while True:
        page = mem.list(user_id="u", limit=5, cursor=cursor)
        seen += [r.content for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == texts
    assert len(mem.list(user_id="u", filters={"tags": ["a"]}, limit=100).items) == 10
    assert len(mem.list(user_id="u", filters={"session_id": "s2"}, limit=100).items) == 13
    assert len(mem.list(user_id="u", filters={"metadata": {"src": "x"}}, limit=100).items) == 13


def test_recall_filters_are_applied_before_ranking(mem: Memory) -> None:
    mem.add(DISTRACTORS, user_id="u", session_id="other")
    wanted = mem.add("Unrelated words about spreadsheets.", user_id="u", session_id="s1")[0]
    hits = mem.recall("hiking trip in the Alps", user_id="u", filters={"session_id": "s1"})
    assert [h.record.id for h in hits] == [wanted.id]
    old = datetime(2020, 1, 1, tzinfo=UTC)
    dated = mem.add("An old memory about hiking.", user_id="u", timestamp=old)[0]
    hits = mem.recall("hiking", user_id="u", filters={"until": "2021-01-01T00:00:00Z"})
    assert [h.record.id for h in hits] == [dated.id]


def test_at_returns_what_was_valid_then(mem: Memory) -> None:
    rec = mem.add("The office is on Elm Street.", user_id="u", timestamp="2022-01-01T00:00:00Z")[0]
    mem.update(rec.id, valid_to="2023-01-01T00:00:00Z")
    assert mem.recall("office address", user_id="u") == []
    hits = mem.recall("office address", user_id="u", at="2022-06-01T00:00:00Z")
    assert [h.record.id for h in hits] == [rec.id]
    assert mem.recall("office address", user_id="u", at="2021-06-01T00:00:00Z") == []


def test_named_cubes(mem: Memory) -> None:
    cube = mem.create_cube("team-notes", description="shared")
    with pytest.raises(Conflict):
        mem.create_cube("team-notes")
    mem.add("Deploys happen on Tuesdays.", user_id="alice", cube="team-notes")
    mem.add("Alice's own note.", user_id="alice")
    hits = mem.recall("when do we deploy", user_id="bob", cube="team-notes")
    assert hits[0].record.cube == "team-notes"
    assert {c.name: c.records for c in mem.list_cubes()} == {"team-notes": 1, "user:alice": 1}
    assert mem.get_cube(cube.id).name == "team-notes"
    mem.delete_cube("team-notes")
    assert [c.name for c in mem.list_cubes()] == ["user:alice"]
    with pytest.raises(CubeNotFound):
        mem.recall("deploy", user_id="alice", cube="team-notes")
