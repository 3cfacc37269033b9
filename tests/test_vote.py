"""The session vote booster: hits of one session back each other; a lone hit gets nothing."""

from __future__ import annotations

from memsvc import Memory


def test_a_session_with_several_hits_outranks_a_lone_better_hit(mem: Memory) -> None:
    mem.create_cube("v")
    mem.add(
        messages=[
            {"role": "user", "content": "We booked the cabin by the lake for the trip."},
            {"role": "user", "content": "The lake trip needs a canoe and life vests."},
            {"role": "user", "content": "For the lake trip we bring a tent too."},
        ],
        user_id="u", session_id="trip", cube="v",
    )  # fmt: skip
    mem.add(
        messages=[{"role": "user", "content": "Planning the lake trip details with my friends."}],
        user_id="u", session_id="other", cube="v",
    )  # fmt: skip
    query = "what do we need for the lake trip"
    plain = mem.recall(query, user_id="u", cube="v", k=4, recipe="dense=1+keyword=0.5|weighted")
    voted = mem.recall(
        query, user_id="u", cube="v", k=4, recipe="dense=1+keyword=0.5+vote=1|weighted"
    )
    assert {h.record.id for h in plain} == {h.record.id for h in voted}
    lone = next(h for h in voted if h.record.session_id == "other")
    assert "vote" not in lone.explain  # a session with one hit casts no vote
    backed = [h for h in voted if h.record.session_id == "trip"]
    assert all("vote" in h.explain for h in backed)
    assert voted[-1].record.session_id == "other"  # three backed hits rank above it
