"""Records store the time their own words name, resolved at write time (the `time_anchor`
column): a cold cube's side index takes it instead of running the time grammar over every
record, and a stored value that no longer matches its record is never believed."""

from __future__ import annotations

import base64
import gzip
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import undefer

from memsvc import Memory
from memsvc.retrieval import analyze
from memsvc.retrieval.analyze import stored_anchor, text_doc, time_anchor
from memsvc.store.orm import RecordRow
from memsvc.store.text_index import CubeTextIndex

WHEN = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
TURNS = [
    {"role": "user", "speaker": "Ana", "content": "I went to a support group yesterday."},
    {"role": "user", "speaker": "Ben", "content": "Last Friday I ran my first half marathon."},
    {"role": "user", "speaker": "Ana", "content": "That sounds wonderful, congratulations!"},
    {"role": "assistant", "content": "The tower was built in 1889."},
    {"role": "user", "speaker": "Ben", "content": "We moved here in May 2019, two years ago."},
]


def _rows(mem: Memory) -> list[RecordRow]:
    with mem._engine.db.read() as s:
        q = (
            select(RecordRow)
            .options(undefer(RecordRow.time_anchor))
            .where(RecordRow.status == "active")
            .order_by(RecordRow.pk)
        )
        return list(s.scalars(q).all())


def _anchors(mem: Memory) -> dict[str, tuple[float, float] | None]:
    """The side index's anchors, by record text, after a cold load in a fresh handle on
    `mem`'s data directory."""
    cold = Memory(settings=mem._engine.settings, embedder=mem._engine.embedder)
    try:
        cold.recall("when did Ana go to the support group?", user_id="u", k=3)
        (text,) = [c.text for c in cold._engine.indexes._cubes.values() if c.text is not None]
    finally:
        cold.close()
    assert isinstance(text, CubeTextIndex)
    arr = text._arrays()
    out = {}
    by_pk = {r.pk: r.content for r in _rows(mem)}
    for slot, rpk in enumerate(arr["pk"]):
        if arr["alive"][slot]:
            span = (float(arr["a0"][slot]), float(arr["a1"][slot]))
            out[by_pk[int(rpk)]] = span if arr["anchored"][slot] else None
    return out


@pytest.fixture
def added(open_memory: Callable[..., Memory]) -> Memory:
    mem = open_memory()
    mem.add(messages=TURNS, user_id="u", session_id="s1", timestamp=WHEN)
    return mem


def test_writes_store_the_anchor_and_a_cold_load_takes_it(
    added: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(added)
    assert all(r.time_anchor is not None for r in rows)
    expected = {r.content: time_anchor(r.content, r.source, r.event_time) for r in rows}
    assert expected["I went to a support group yesterday."] == (
        datetime(2023, 5, 7, tzinfo=UTC).timestamp(),
        datetime(2023, 5, 8, tzinfo=UTC).timestamp(),
    )
    assert expected["The tower was built in 1889."] is None  # an assistant's knowledge

    calls: list[str] = []
    resolve = analyze.first_time
    monkeypatch.setattr(analyze, "first_time", lambda t, ref: calls.append(t) or resolve(t, ref))
    assert _anchors(added) == expected
    assert calls == []  # every anchor came from the records, none from the grammar


def test_a_stale_or_damaged_stored_anchor_is_resolved_again(added: Memory) -> None:
    rows = _rows(added)
    expected = {r.content: time_anchor(r.content, r.source, r.event_time) for r in rows}
    yesterday, friday, _, _, may = rows
    good = stored_anchor(friday.content, friday.source, friday.event_time)
    assert good is not None
    version, checksum = struct.unpack_from("<BI", good)
    damaged = {
        yesterday.pk: stored_anchor("I went there today.", yesterday.source, WHEN),  # other words
        friday.pk: struct.pack("<BI", version + 1, checksum) + good[5:],  # another grammar
        may.pk: good[:9],  # cut short
    }
    with added._engine.db.write_engine.begin() as conn:
        for pk, value in damaged.items():
            conn.execute(update(RecordRow).where(RecordRow.pk == pk).values(time_anchor=value))
    assert _anchors(added) == expected


def test_an_update_refreshes_the_anchor(added: Memory) -> None:
    first = _rows(added)[0]
    added.update(first.id, text="I went to a support group last week.")
    added.update(_rows(added)[1].id, event_time=datetime(2023, 6, 20, tzinfo=UTC))
    rows = _rows(added)
    assert rows[0].time_anchor == stored_anchor(rows[0].content, rows[0].source, WHEN)
    assert rows[1].time_anchor is None  # resolved against its new time at load
    anchors = _anchors(added)
    said = "I went to a support group last week."
    assert anchors[said] is not None
    assert anchors[said] == time_anchor(said, rows[0].source, WHEN)
    assert anchors[rows[1].content] == time_anchor(
        rows[1].content, rows[1].source, datetime(2023, 6, 20, tzinfo=UTC)
    )


def test_an_import_resolves_anchors_itself(
    added: Memory, open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    added.export_cube("user:u", tmp_path / "a.memcube")
    other = open_memory(tmp_path / "other")
    other.import_cube(tmp_path / "a.memcube", cube="copy")
    rows = _rows(other)
    assert len(rows) == len(TURNS)
    assert [r.time_anchor for r in rows] == [
        stored_anchor(r.content, r.source, r.event_time) for r in rows
    ]


def test_a_record_without_an_event_time_has_no_anchor() -> None:
    text = "I went to a support group yesterday."
    assert stored_anchor(text, None, None) is None
    row = SimpleNamespace(
        pk=1, content=text, source=None, session_id=None, event_time=None, entities=[]
    )
    assert text_doc(row).anchor is None
    naive = SimpleNamespace(**{**vars(row), "event_time": WHEN.replace(tzinfo=None)})
    naive.time_anchor = stored_anchor(text, None, WHEN)  # stored aware, read back naive
    assert text_doc(naive).anchor == time_anchor(text, None, WHEN)


def test_maintenance_stores_the_anchors_records_lack(added: Memory) -> None:
    """Records from before the column (or whose event time changed) get their anchor from
    the next maintenance run, once."""
    with added._engine.db.write_engine.begin() as conn:
        conn.execute(update(RecordRow).values(time_anchor=None))
    (first,) = added.maintain(cube="user:u")
    assert first.counts["anchored"] == len(TURNS)
    rows = _rows(added)
    assert [r.time_anchor for r in rows] == [
        stored_anchor(r.content, r.source, r.event_time) for r in rows
    ]
    (second,) = added.maintain(cube="user:u")
    assert second.counts["anchored"] == 0


def test_an_add_to_a_loaded_cube_resolves_each_anchor_once(
    added: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write resolves it and stores it; the loaded side index takes that value."""
    added.recall("when did Ana go to the support group?", user_id="u", k=3)  # loaded
    calls: list[str] = []
    resolve = analyze.first_time
    monkeypatch.setattr(analyze, "first_time", lambda t, ref: calls.append(t) or resolve(t, ref))
    said = "We adopted a puppy last Sunday."
    added.add(
        messages=[{"role": "user", "speaker": "Ana", "content": said}],
        user_id="u",
        session_id="s2",
        timestamp=WHEN,
    )
    assert calls == [said]
    (text,) = [c.text for c in added._engine.indexes._cubes.values() if c.text is not None]
    (doc,) = [d for d in text.docs.values() if d.session == "s2"]
    assert doc.anchor == time_anchor(said, {"role": "user"}, WHEN) is not None


def test_an_uploaded_file_cannot_plant_an_anchor(
    added: Memory, open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    """A `.memcube` record carrying `time_anchor` (another text's, here) is not believed:
    the importing tenant's records get the anchor of their own words."""
    added.export_cube("user:u", tmp_path / "a.memcube")
    with gzip.open(tmp_path / "a.memcube", "rt") as fh:
        lines = [json.loads(line) for line in fh]
    planted = stored_anchor("I moved here in 1999.", {"role": "user"}, WHEN)
    assert planted is not None
    for line in lines:
        if line["type"] == "record":
            line["record"]["time_anchor"] = base64.b64encode(planted).decode()
    with gzip.open(tmp_path / "b.memcube", "wt") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    other = open_memory(tmp_path / "other")
    other.import_cube(tmp_path / "b.memcube", cube="copy")
    rows = _rows(other)
    assert len(rows) == len(TURNS)
    assert [r.time_anchor for r in rows] == [
        stored_anchor(r.content, r.source, r.event_time) for r in rows
    ]
    assert planted not in [r.time_anchor for r in rows]
