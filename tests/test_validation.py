"""Every bad input raises a typed error with a clear message, and nothing is written."""

from __future__ import annotations

import re
from typing import Any

import pytest

from memsvc import CubeNotFound, InvalidInput, Memory, RecordNotFound


def _state(mem: Memory) -> tuple[list[tuple[str, int]], int]:
    cubes = [(c.name, c.records) for c in mem.list_cubes()]
    return cubes, sum(n for _, n in cubes)


BAD_ADDS: list[tuple[dict[str, Any], str]] = [
    ({"text": ""}, "text is empty"),
    ({"text": "   \n\t "}, "text is empty"),
    ({"text": "x" * (4 * 1024 * 1024 + 1)}, "limit is 4194304"),
    ({"text": "é" * (2 * 1024 * 1024 + 1)}, "limit is 4194304"),  # bytes, not characters
    ({"text": b"caf\xe9 latin-1"}, "not valid UTF-8"),
    ({"text": "lone \udcff surrogate"}, "not valid UTF-8"),
    ({"text": "nul \x00 inside"}, "contains a NUL character"),
    ({"text": ["fine", ""]}, "text[1] is empty"),
    ({"text": []}, "text list is empty"),
    ({"text": None}, "exactly one of text or messages"),
    ({"text": "a", "messages": [{"content": "b"}]}, "exactly one of text or messages"),
    ({"messages": []}, "messages is empty"),
    ({"messages": [{"content": "ok"}, {"content": " "}]}, "messages[1].content is empty"),
    ({"messages": [{"content": "ok", "bogus": 1}]}, "messages[0].bogus: Extra inputs"),
    ({"messages": ["just a string"]}, "messages[0] must be an object"),
    ({"text": "a", "user_id": ""}, "user_id must be a non-empty string"),
    ({"text": "a", "user_id": None}, "user_id is required"),
    ({"text": "a", "metadata": {"k": object()}}, "metadata must be JSON-serializable"),
    ({"text": "a", "metadata": [1]}, "metadata must be an object"),
    ({"text": "a", "importance": 2}, "importance must be within"),
    ({"text": "a", "tags": "notalist"}, "tags must be a list"),
    ({"text": "a", "timestamp": "yesterday-ish"}, "timestamp is not an ISO 8601"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ADDS, ids=[m for _, m in BAD_ADDS])
def test_bad_add_raises_and_writes_nothing(mem: Memory, kwargs: dict[str, Any], message: str):
    mem.add("existing memory", user_id="alice")
    before = _state(mem)
    kwargs = {"user_id": "alice", **kwargs}
    with pytest.raises(InvalidInput, match=re.escape(message)):
        mem.add(**kwargs)
    assert _state(mem) == before


def test_text_size_limit_is_configurable(open_memory) -> None:
    mem = open_memory(max_add_bytes=1024)
    mem.add("0123456789", user_id="u")
    with pytest.raises(InvalidInput, match="limit is 1024"):
        mem.add("x" * 1025, user_id="u")


def test_unknown_cube_raises_and_creates_nothing(mem: Memory) -> None:
    with pytest.raises(CubeNotFound, match="nope"):
        mem.add("text", user_id="alice", cube="nope")
    with pytest.raises(CubeNotFound):
        mem.recall("text", user_id="alice", cube="nope")
    with pytest.raises(CubeNotFound):
        mem.list(cube="nope")
    with pytest.raises(CubeNotFound):
        mem.delete_cube("nope")
    assert mem.list_cubes() == []


@pytest.mark.parametrize("bad_id", ["no-such-id", "0" * 36])
def test_unknown_ids_raise_not_found(mem: Memory, bad_id: str) -> None:
    mem.add("something", user_id="u")
    for call in (mem.get, mem.history, mem.delete):
        with pytest.raises(RecordNotFound, match=bad_id):
            call(bad_id)
    with pytest.raises(RecordNotFound):
        mem.update(bad_id, text="x")


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (0, "between 1 and 1000"),
        (-3, "between"),
        (10**9, "between"),
        (2.5, "integer"),
        (True, "integer"),
    ],
)
def test_bad_k(mem: Memory, k: Any, message: str) -> None:
    mem.add("something", user_id="u")
    with pytest.raises(InvalidInput, match=message):
        mem.recall("something", user_id="u", k=k)


def test_bad_recall_and_list_arguments(mem: Memory) -> None:
    mem.add("something", user_id="u")
    with pytest.raises(InvalidInput, match="query is empty"):
        mem.recall("  ", user_id="u")
    with pytest.raises(InvalidInput, match="bad filters"):
        mem.recall("x", user_id="u", filters={"colour": "red"})
    with pytest.raises(InvalidInput, match="at is not"):
        mem.recall("x", user_id="u", at="not a date")
    with pytest.raises(InvalidInput, match="invalid cursor"):
        mem.list(user_id="u", cursor="!!garbage!!")
    with pytest.raises(InvalidInput, match="unknown status"):
        mem.list(user_id="u", status="gone")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="give user_id or cube"):
        mem.list()


def test_bad_update_writes_nothing(mem: Memory) -> None:
    rec = mem.add("original", user_id="u")[0]
    with pytest.raises(InvalidInput, match="nothing to update"):
        mem.update(rec.id)
    with pytest.raises(InvalidInput, match="text is empty"):
        mem.update(rec.id, text="")
    with pytest.raises(InvalidInput, match="valid_to must be after"):
        mem.update(rec.id, valid_from="2024-01-02T00:00:00Z", valid_to="2024-01-01T00:00:00Z")
    assert mem.get(rec.id).version == 1
    assert len(mem.history(rec.id)) == 1


@pytest.mark.parametrize("name", ["", "../etc", "has space", "a/b", "x" * 200, ".hidden"])
def test_bad_cube_names(mem: Memory, name: str) -> None:
    with pytest.raises(InvalidInput, match="cube name"):
        mem.create_cube(name)
    assert mem.list_cubes() == []
