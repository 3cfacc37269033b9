"""The own-words booster: a first-person question lifts what the user said over the
assistant's replies; a question in the third person, or a cube of one role, is unchanged."""

from __future__ import annotations

from memsvc import Memory

BASE = "dense=1+keyword=0.5"


def _chat(mem: Memory) -> None:
    mem.create_cube("o")
    mem.add(
        messages=[
            {"role": "user", "content": "I edit my videos in Premiere Pro these days."},
            {
                "role": "assistant",
                "content": "Great! Some resources to learn video editing: online video "
                "editing courses, video editing tutorials and video editing forums.",
            },
        ],
        user_id="u", session_id="s1", cube="o",
    )  # fmt: skip
    mem.add(  # unrelated turns: scores are normalized over the candidates
        messages=[
            {"role": "user", "content": "I baked sourdough bread this weekend."},
            {"role": "assistant", "content": "Sourdough needs a lively starter and time."},
            {"role": "user", "content": "My sister runs marathons in the spring."},
        ],
        user_id="u", session_id="s2", cube="o",
    )  # fmt: skip


def test_a_first_person_question_lifts_the_users_own_words(mem: Memory) -> None:
    _chat(mem)
    query = "Which resources for learning video editing would suit me?"
    plain = mem.recall(query, user_id="u", cube="o", k=5, recipe=f"{BASE}|weighted")
    assert plain[0].record.source["role"] == "assistant"  # the long reply matches best
    boosted = mem.recall(query, user_id="u", cube="o", k=5, recipe=f"{BASE}+own=1|weighted")
    assert boosted[0].record.source["role"] == "user"
    assert "own" in boosted[0].explain
    assert all("own" not in h.explain for h in boosted if h.record.source["role"] != "user")


def test_a_third_person_question_is_left_alone(mem: Memory) -> None:
    _chat(mem)
    query = "Which resources for learning video editing are there?"
    plain = mem.recall(query, user_id="u", cube="o", k=5, recipe=f"{BASE}|weighted")
    boosted = mem.recall(query, user_id="u", cube="o", k=5, recipe=f"{BASE}+own=1|weighted")
    assert [h.record.id for h in plain] == [h.record.id for h in boosted]
    assert all("own" not in h.explain for h in boosted)


def test_one_role_everywhere_keeps_the_order(mem: Memory) -> None:
    mem.create_cube("p")
    mem.add(
        messages=[
            {"role": "user", "name": "Ann", "content": "I adopted a cat named Miso."},
            {"role": "user", "name": "Bob", "content": "My dog Rex loves the park."},
            {"role": "user", "name": "Ann", "content": "I painted a sunrise last week."},
        ],
        user_id="u", session_id="s", cube="p",
    )  # fmt: skip
    query = "what did I name my pet"
    plain = mem.recall(query, user_id="u", cube="p", k=3, recipe=f"{BASE}|weighted")
    boosted = mem.recall(query, user_id="u", cube="p", k=3, recipe=f"{BASE}+own=1|weighted")
    assert [h.record.id for h in plain] == [h.record.id for h in boosted]
