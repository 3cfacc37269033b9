"""Two-stage search in the store: code scan + exact rescoring, kept consistent with writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from memsvc import Settings
from memsvc.evals.corpus import texts
from memsvc.store.index_spec import parse_index_spec
from memsvc.store.indexes import IndexManager
from memsvc.store.orm import CubeRow
from memsvc.store.two_stage import CodeTable
from memsvc.store.vector_index import CubeIndex, read_index_file


@pytest.fixture(scope="module")
def turns() -> list[str]:
    return list(dict.fromkeys(texts(1500)))[:1200]


def test_two_stage_recall_matches_exact_on_real_text(open_memory, tmp_path: Path, turns) -> None:
    exact = open_memory(tmp_path / "e", search_mode="exact")
    exact.add(turns, user_id="u")
    exact.flush()
    # the same data directory in two-stage mode: codes are derived from the stored vectors
    fast = open_memory(tmp_path / "e", search_mode="binary+rescore")  # default oversample 20
    assert fast.index_info("user:u").vectors == len(turns)
    queries = [t.split(":", 1)[-1][:60] for t in turns[::40]]
    found = 0
    for q in queries:
        a = exact.recall(q, user_id="u", k=10)
        b = fast.recall(q, user_id="u", k=10)
        assert a[0].record.id == b[0].record.id
        tenth = a[-1].score - 1e-5  # tie-aware: a hit counts when it scores like a true top 10
        found += sum(h.score >= tenth for h in b)
    assert found / (10 * len(queries)) >= 0.99  # 200 candidates of 1200 per query


def test_deletes_updates_and_reload_stay_consistent(open_memory, tmp_path: Path, turns) -> None:
    mem = open_memory(tmp_path / "d", search_mode="binary+rescore", search_oversample=2)
    recs = mem.add(turns[:300], user_id="u")
    target = recs[7]
    assert mem.recall(target.content, user_id="u", k=1)[0].record.id == target.id
    mem.delete(target.id)
    assert target.id not in {h.record.id for h in mem.recall(target.content, user_id="u", k=10)}
    changed = mem.update(recs[9].id, text="Zebra migration across the Serengeti plains")
    assert mem.recall("zebras migrating in Africa", user_id="u", k=1)[0].record.id == changed.id
    # filtered recall (an id selector) stays exact and correct in two-stage mode
    mine = mem.add("Zebra stripes puzzle biologists", user_id="u", tags=["zoo"])[0]
    hits = mem.recall("zebra", user_id="u", k=5, filters={"tags": ["zoo"]})
    assert [h.record.id for h in hits] == [mine.id]
    mem.close()
    again = open_memory(tmp_path / "d", search_mode="binary+rescore", search_oversample=2)
    assert again.recall("zebras migrating in Africa", user_id="u", k=1)[0].record.id == changed.id
    assert target.id not in {h.record.id for h in again.recall(target.content, user_id="u")}


def test_code_table_swap_remove_and_refit() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    table = CodeTable(32, "binary+rescore", oversample=4)
    table.upsert(np.arange(100), x[:100])
    assert table._fitted_at == 100
    table.upsert(np.arange(100, 500), x[100:])  # doubled: refitted on all rows
    assert table._fitted_at == 500
    table.remove(np.array([0, 250, 499, 12345]))
    assert table.n == 497 and set(table.row) == set(range(500)) - {0, 250, 499}
    assert all(int(table.pks[r]) == pk for pk, r in table.row.items())
    pks, scores = table.search(x[42], 5)
    assert pks[0] == 42 and scores[0] == pytest.approx(float(x[42] @ x[42]), rel=1e-5)
    int8 = CodeTable(32, "int8", oversample=4)
    int8.upsert(np.arange(500), x)
    assert int8.search(x[7], 3)[0][0] == 7
    with pytest.raises(ValueError, match="two-stage mode"):
        CodeTable(32, "exact")


def test_modes_are_checked() -> None:
    with pytest.raises(ValidationError):
        Settings(search_mode="hnsw")
    with pytest.raises(ValueError, match="unknown search mode"):
        CubeIndex(8, "m").set_mode("fast")


def test_two_stage_index_file_round_trip_and_mode_switches() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 24)).astype(np.float32)
    idx = CubeIndex(24, "m", seq=9)
    idx.upsert(np.arange(1000, 1400), x)
    exact = idx.search(x[3], 5)
    idx.set_mode("binary+rescore", oversample=10)
    assert idx._index is None and idx.count == 400  # one copy of the vectors: the table's
    idx.remove(np.array([1003]))
    data = idx.to_bytes()
    again = CubeIndex.from_bytes(data)
    assert again.count == 399 and again.seq == 9
    again.set_mode("binary+rescore", oversample=10)
    assert 1003 not in again.search(x[3], 5)[0]
    assert again.search(x[7], 1)[0][0] == 1007
    assert list(again.search(x[3], 3, allowed=np.array([1003, 1010, 1011]))[0]) in (
        [1010, 1011],
        [1011, 1010],
    )
    again.set_mode("exact")
    assert again.count == 399 and again._table is None
    top = again.search(x[3], 4)[0]
    assert np.array_equal(top, exact[0][exact[0] != 1003][:4])
    assert again.search(x[7], 1)[0][0] == 1007


def test_per_cube_search_mode(open_memory, tmp_path: Path) -> None:
    from memsvc.errors import InvalidInput

    mem = open_memory(tmp_path / "m", search_mode="binary+rescore")
    exact = mem.create_cube("exact-notes", search_mode="exact")
    default = mem.create_cube("notes")
    assert exact.search_mode == "exact" and default.search_mode is None
    mem.add("ferns like shade", cube="exact-notes", user_id="u")
    mem.add("ferns like shade", cube="notes", user_id="u")
    assert mem.index_info("exact-notes").mode == "exact"
    assert mem.index_info("notes").mode == "binary+rescore"
    assert (
        mem.recall("shade plants", cube="exact-notes", user_id="u")[0].record.cube == "exact-notes"
    )
    with pytest.raises(InvalidInput, match="search_mode"):
        mem.create_cube("bad", search_mode="hnsw")
    # the mode travels with an exported cube
    path = tmp_path / "exact.memcube"
    mem.export_cube("exact-notes", path)
    other = open_memory(tmp_path / "o")
    assert other.import_cube(path, cube="copy").search_mode == "exact"
    assert other.index_info("copy").mode == "exact"


def test_code_tables_take_specs_and_legacy_names_alike() -> None:
    a = CodeTable(32, "binary+rescore", oversample=4)
    b = CodeTable(32, "RBin,Rescore4")
    c = CodeTable(32, parse_index_spec("SQ8"))
    assert a.spec == b.spec and (a.mode, a.oversample) == ("binary+rescore", 4)
    assert (c.mode, c.oversample, c.codes.dtype) == ("int8", 1, np.int8)
    with pytest.raises(ValueError, match="two-stage mode"):
        CodeTable(32, "Flat")


def test_the_manager_builds_each_cube_from_its_spec(tmp_path: Path) -> None:
    no_db: Any = None  # spec_for reads only the cube row
    manager = IndexManager(no_db, tmp_path, search_mode="binary+rescore", oversample=7)
    spec = manager.spec_for
    assert spec(CubeRow(search_mode=None)).describe() == "RBin,Rescore7"  # service default
    assert spec(CubeRow(search_mode="int8")).describe() == "SQ8,Rescore7"  # legacy: service's
    assert spec(CubeRow(search_mode="SQ8,Rescore3")).describe() == "SQ8,Rescore3"  # its own
    assert spec(CubeRow(search_mode="exact")).describe() == "Flat"
    assert IndexManager(no_db, tmp_path, search_mode="SQ8").default_spec.describe() == "SQ8"


def test_each_index_file_records_its_cubes_spec(open_memory, tmp_path: Path) -> None:
    mem = open_memory(
        tmp_path / "s", search_mode="binary+rescore", search_oversample=2, index_file_min_vectors=0
    )
    mem.create_cube("exact-notes", search_mode="exact")
    mem.add("ferns like shade", user_id="u")
    mem.add("ferns like shade", cube="exact-notes", user_id="u")
    mem.flush()
    assert mem.index_info("user:u").mode == "binary+rescore"
    assert read_index_file(Path(mem.index_info("user:u").file)).spec.describe() == "RBin,Rescore2"
    assert read_index_file(Path(mem.index_info("exact-notes").file)).spec.describe() == "Flat"


@pytest.mark.sqlite_only
def test_a_spec_stored_with_the_cube_builds_its_index(open_memory, tmp_path: Path) -> None:
    import sqlite3

    mem = open_memory(tmp_path / "p", search_mode="binary+rescore", index_file_min_vectors=0)
    mem.create_cube("notes", search_mode="exact")
    recs = mem.add(["ferns like shade", "cacti like sun"], cube="notes", user_id="u")
    mem.close()
    with sqlite3.connect(tmp_path / "p" / "memsvc.db") as db:  # as the SDK will store one
        db.execute("UPDATE cubes SET search_mode = 'SQ8,Rescore5' WHERE name = 'notes'")
    again = open_memory(tmp_path / "p", search_mode="binary+rescore", index_file_min_vectors=0)
    assert again.index_info("notes").mode == "int8"
    assert again.recall("shade plants", cube="notes", user_id="u")[0].record.id == recs[0].id
    again.flush()
    assert read_index_file(Path(again.index_info("notes").file)).spec.describe() == "SQ8,Rescore5"
