"""Durability: reopening, index rebuilds from the database, and schema migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from memsvc import Memory
from memsvc.errors import CubeNotFound
from memsvc.store.database import Database
from memsvc.store.orm import Base

TEXTS = [
    "Alice moved to Berlin in May.",
    "Bob is allergic to peanuts.",
    "The project deadline is March 3rd.",
    "Carol's favourite band is Radiohead.",
    "Dave drives a red bicycle to work.",
]


def _snapshot(mem: Memory) -> list[tuple[str, float]]:
    hits = mem.recall("who lives where and likes what", user_id="u", k=10)
    return [(h.record.id, round(h.score, 5)) for h in hits]


def _index_file(mem: Memory) -> Path:
    return Path(mem.index_info("user:u").file)


def test_reopen_gives_identical_results(open_memory, tmp_path: Path) -> None:
    mem = open_memory(tmp_path / "d", index_file_min_vectors=0)
    mem.add(TEXTS, user_id="u")
    before, records = _snapshot(mem), mem.list(user_id="u").items
    mem.close()
    again = open_memory(tmp_path / "d", index_file_min_vectors=0)
    assert _snapshot(again) == before
    # recalls reinforce what they return (strength, count, time): the rest is identical
    lifecycle = {"strength", "recall_count", "last_recalled_at"}
    assert [r.model_dump(exclude=lifecycle) for r in again.list(user_id="u").items] == [
        r.model_dump(exclude=lifecycle) for r in records
    ]


def test_missing_index_file_is_rebuilt(open_memory, tmp_path: Path) -> None:
    mem = open_memory(tmp_path / "d", index_file_min_vectors=0)
    mem.add(TEXTS, user_id="u")
    before, path = _snapshot(mem), _index_file(mem)
    mem.close()
    path.unlink()
    again = open_memory(tmp_path / "d", index_file_min_vectors=0)
    assert _snapshot(again) == before
    assert path.exists()


def test_corrupt_index_file_is_rebuilt(open_memory, tmp_path: Path) -> None:
    mem = open_memory(tmp_path / "d", index_file_min_vectors=0)
    mem.add(TEXTS, user_id="u")
    before, path = _snapshot(mem), _index_file(mem)
    mem.close()
    data = bytearray(path.read_bytes())
    data[-100:] = b"\x00" * 100
    path.write_bytes(bytes(data))
    again = open_memory(tmp_path / "d", index_file_min_vectors=0)
    assert _snapshot(again) == before
    info = again.index_info("user:u")
    assert "corrupt" in (info.last_rebuild_reason or "")
    path.write_bytes(b"garbage")
    third = open_memory(tmp_path / "d", index_file_min_vectors=0)
    assert _snapshot(third) == before


def test_stale_index_catches_up_from_change_log(open_memory, tmp_path: Path) -> None:
    """An index saved before later writes (a crash before flush) is caught up, not trusted."""
    mem = open_memory(tmp_path / "d", index_flush_seconds=3600, index_file_min_vectors=0)
    mem.add(TEXTS[:2], user_id="u")
    mem.flush()
    path = _index_file(mem)
    saved = path.read_bytes()
    late = mem.add(TEXTS[2:], user_id="u")
    mem.delete(mem.list(user_id="u").items[0].id)
    before = _snapshot(mem)
    mem.close()
    path.write_bytes(saved)  # as if the process died before saving the newer index
    again = open_memory(tmp_path / "d", index_file_min_vectors=0)
    assert _snapshot(again) == before
    assert {r.id for r in late} <= {rid for rid, _ in before}
    info = again.index_info("user:u")
    assert info.seq == info.db_seq and info.vectors == 4


def test_writes_from_another_handle_are_seen(open_memory, tmp_path: Path) -> None:
    """Two independent handles on one data dir (as two processes): the reader catches up.
    (`index_sync_seconds=0`: every recall checks the change log.)"""
    a = open_memory(tmp_path / "d", index_sync_seconds=0)
    b = open_memory(tmp_path / "d", index_sync_seconds=0)
    a.add(TEXTS[:2], user_id="u")
    assert len(b.recall("anything", user_id="u")) == 2
    rec = b.add("Erin collects vintage stamps.", user_id="u")[0]
    assert a.recall("stamp collecting hobby", user_id="u", k=1)[0].record.id == rec.id
    b.delete(rec.id)
    assert rec.id not in {h.record.id for h in a.recall("stamps", user_id="u")}
    # b writes, then a writes: a's index is not at the change before its own write, so it
    # must catch up (b's record included) instead of just appending its own vectors.
    other = b.add("Frank restores old clocks.", user_id="u")[0]
    a.add("Gina grows tomatoes.", user_id="u")
    info = a.index_info("user:u")
    assert info.seq == info.db_seq and info.vectors == 4
    assert a.recall("clock repair", user_id="u", k=1)[0].record.id == other.id


def test_schema_matches_models_and_migration_is_idempotent(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    db.migrate()
    with db.write_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    db.dispose()


@pytest.mark.sqlite_only
def test_existing_data_directory_survives_upgrade(open_memory, tmp_path: Path) -> None:
    mem = open_memory(tmp_path / "d", index_file_min_vectors=0)
    recs = mem.add(TEXTS, user_id="u")
    mem.close()
    db = Database(f"sqlite:///{tmp_path / 'd' / 'memsvc.db'}")
    with db.write_engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version is not None
    db.migrate()  # an upgrade on an up-to-date directory changes nothing
    db.dispose()
    again = open_memory(tmp_path / "d", index_file_min_vectors=0)
    assert [r.id for r in again.list(user_id="u").items] == [r.id for r in recs]


def test_other_processes_writes_show_within_the_sync_bound(open_memory, tmp_path: Path) -> None:
    """With a sync bound, another handle's writes may take up to that long to show in
    recall; this handle's own writes, deletes and cube deletions show at once."""
    import time

    a = open_memory(tmp_path / "d", index_sync_seconds=0.3)
    b = open_memory(tmp_path / "d", index_sync_seconds=0.3)
    a.add(TEXTS[:2], user_id="u")
    assert len(a.recall("anything", user_id="u")) == 2  # own write: at once
    rec = b.add("Erin collects vintage stamps.", user_id="u")[0]
    written = time.monotonic()
    while rec.id not in {h.record.id for h in a.recall("stamps", user_id="u")}:
        assert time.monotonic() - written < 0.3 + 0.2, "not visible within the sync bound"
        time.sleep(0.02)
    own = a.add("Erin also restores old clocks.", user_id="u")[0]
    assert a.recall("clock restoration", user_id="u", k=1)[0].record.id == own.id
    a.delete(own.id)
    assert own.id not in {h.record.id for h in a.recall("clock restoration", user_id="u")}
    # a deleted record never comes back, even from a stale index: rows are re-read
    b.delete(rec.id)
    assert rec.id not in {h.record.id for h in a.recall("stamps", user_id="u")}
    a.create_cube("notes")
    a.add("a note about ferns", cube="notes", user_id="u")
    assert len(a.recall("ferns", cube="notes", user_id="u")) == 1
    a.delete_cube("notes")
    with pytest.raises(CubeNotFound):
        a.recall("ferns", cube="notes", user_id="u")


def test_small_cubes_keep_no_index_file(open_memory, tmp_path: Path) -> None:
    """Below `index_file_min_vectors` the database is the only copy: nothing is written on a
    load or a flush, a file left from when the cube was bigger goes, and results match."""
    mem = open_memory(tmp_path / "d", index_file_min_vectors=3)
    mem.add(TEXTS[:2], user_id="u")
    mem.flush()
    assert not list((tmp_path / "d" / "indexes").glob("*.faiss"))
    mem.add(TEXTS[2:], user_id="u")
    mem.flush()
    path = _index_file(mem)
    assert path.exists()
    for r in mem.list(user_id="u").items[:3]:
        mem.delete(r.id)
    mem.flush()
    assert not path.exists()
    before = _snapshot(mem)
    mem.close()
    again = open_memory(tmp_path / "d", index_file_min_vectors=3)
    assert _snapshot(again) == before and len(before) == 2
    assert not path.exists()
