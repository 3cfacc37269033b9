"""A cube file is input from a stranger: importing one reaches nothing of another tenant (no
topic labels, no tier files, no hint that an id exists elsewhere), passes the checks of
`add`, stays within bounded memory however it decompresses, never blocks other writers while
it embeds, and leaves nothing behind when it fails (issue 22: 1, 2, 5, 8, 11, 12)."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from memsvc import Conflict, InvalidInput, Memory, portable
from memsvc.services import importer
from tests.conftest import Served

OTHER_MODEL = {"model": "someone-else/another-model", "dim": 8, "dtype": "float32"}


def record(content: str = "a plain fact", **over: Any) -> dict[str, Any]:
    rec = {
        "id": str(uuid.uuid4()),
        "tier": "plaintext",
        "kind": "fact",
        "content": content,
        "user_id": "u",
        "version": 1,
        "status": "active",
        "created_at": "2024-01-01T00:00:00+00:00",
        "updated_at": "2024-01-01T00:00:00+00:00",
    }
    rec.update(over)
    return rec


def rec_item(rec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "record": rec, "versions": [], **extra}


def edge(kind: str, src: list[Any], dst: list[Any]) -> dict[str, Any]:
    return {"type": "edge", "edge": {"type": kind, "src": src, "dst": dst, "weight": 1.0}}


def cube_file(path: Path, items: Iterable[dict[str, Any]], *, name: str = "imported") -> Path:
    """A cube file written by hand (format 1, as an older memsvc wrote it), embedded with a
    model this service does not run, so every record is embedded again on import."""
    items = list(items)
    counts = {
        k: sum(i["type"] == t for i in items)
        for k, t in (("records", "record"), ("entities", "entity"), ("edges", "edge"))
    }
    header = {
        "type": "header",
        "format": portable.FORMAT,
        "format_version": 1,
        "cube": {"name": name},
        "embedding": OTHER_MODEL,
        "records": counts["records"],
    }
    with gzip.open(path, "wb", compresslevel=1) as fh:
        for line in [header, *items, {"type": "footer", **counts}]:
            fh.write(json.dumps(line).encode() + b"\n")
    return path


def _labels(page_or_neighbors: Any) -> set[str]:
    if hasattr(page_or_neighbors, "nodes"):
        return {n.label for n in page_or_neighbors.nodes}
    return {n.node.label for n in page_or_neighbors}


def _http(served: Served, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=served.url,
        timeout=120,
        headers={"Authorization": f"Bearer {served.keys[tenant]}"},
    )


SECRETS = [
    "Bob is allergic to peanuts.",
    "Bob's sister is allergic to cats.",
    "Alice moved to Berlin last year.",
    "Alice likes Berlin in spring.",
]


# ---- 1: another tenant's topic labels, entities and records ------------------------------------


def test_browse_looks_up_nodes_in_the_cube_only(mem: Memory) -> None:
    """Edges already stored with ends in another tenant's cube (as an import before the fix
    wrote them) show none of that tenant's labels, names or text."""
    mem.create_cube("secret")
    secret = mem.add(SECRETS, user_id="u", cube="secret")
    mem.maintain("secret")
    theirs = mem.graph("secret", limit=1000)
    topic_pks = [int(n.id.split(":")[1]) for n in theirs.nodes if n.kind == "topic"]
    entity_pks = [int(n.id.split(":")[1]) for n in theirs.nodes if n.kind == "entity"]
    assert topic_pks and entity_pks
    foreign = _labels(theirs)

    intruder = mem.for_tenant("intruder")
    intruder.create_cube("mine")
    mine = intruder.add("hello there", user_id="u", cube="mine")[0]
    engine = mem._engine
    with engine.db.reading() as tx:
        own_pk = intruder._cubes.located(tx, mine.id)[0].pk
        cube_pk = intruder._cubes.find(tx, "mine").pk
        their_pk = mem._cubes.located(tx, secret[0].id)[0].pk
    ends = (
        [("topic", pk) for pk in topic_pks]
        + [("entity", pk) for pk in entity_pks]
        + [("record", their_pk)]
    )
    with engine.db.writing() as tx:
        for kind, pk in ends:
            tx.graph.add_edge(cube_pk, "part_of", own_pk, pk, engine.now(), dst_kind=kind)

    page = intruder.graph("mine", limit=1000)
    near = intruder.neighbors(mine.id, depth=2)
    assert not (_labels(page) | _labels(near)) & foreign
    assert {n.kind for n in page.nodes} <= {"record"} and not near


def test_imported_edges_to_topics_reach_no_other_tenant_over_http(served: Served) -> None:
    name = f"topics-{uuid.uuid4().hex[:8]}"
    with _http(served, "acme") as acme:
        assert acme.post("/v1/cubes", json={"name": name}).status_code == 201
        r = acme.post("/v1/memories", json={"text": SECRETS, "user_id": "u", "cube": name})
        assert r.status_code == 201, r.text
        assert acme.post(f"/v1/cubes/{name}/maintain").status_code == 200
        theirs = acme.get(f"/v1/cubes/{name}/graph", params={"limit": 1000}).json()
    foreign = {n["label"] for n in theirs["nodes"]}
    top = max(int(n["id"].split(":")[1]) for n in theirs["nodes"] if n["kind"] == "topic")

    own = record("hello from globex")
    items = [rec_item(own)]
    items += [edge("part_of", ["record", own["id"]], ["topic", pk]) for pk in range(1, top + 1)]
    body = cube_file(Path(f"/tmp/{name}.memcube"), items, name=f"probe-{name}").read_bytes()
    with _http(served, "globex") as globex:
        r = globex.post("/v1/cubes/import", content=body)
        assert r.status_code == 201, r.text
        cube = r.json()["id"]
        page = globex.get(f"/v1/cubes/{cube}/graph", params={"limit": 1000}).json()
        near = globex.get(f"/v1/memories/{own['id']}/neighbors", params={"depth": 2}).json()
    seen = {n["label"] for n in page["nodes"]} | {n["node"]["label"] for n in near}
    assert not seen & foreign
    assert all(n["kind"] == "record" for n in page["nodes"]) and page["edges"] == []


# ---- 2: tier file paths come from our ids, never from the file ------------------------------


def test_import_takes_no_tier_file_path_from_the_file(mem: Memory, tmp_path: Path) -> None:
    blobs = mem._engine.tiers.blobs
    owner_cube = mem.create_cube("owner")
    owner_rel = blobs.relpath(owner_cube.id, str(uuid.uuid4()))
    blobs.write_bytes(owner_rel, b"OWNER-SECRET-ADAPTER")

    intruder = mem.for_tenant("intruder")
    named = record(
        "an adapter",
        tier="parametric",
        kind="lora_adapter",
        source={"blob": owner_rel, "records": []},
    )
    carried = record(
        "another adapter",
        tier="parametric",
        kind="lora_adapter",
        source={"blob": "../../memsvc.db", "records": []},
    )
    path = cube_file(
        tmp_path / "f.memcube",
        [rec_item(named), rec_item(carried, blob=base64.b64encode(b"MINE").decode())],
    )
    cube = intruder.import_cube(path)
    got = {r.id: r for r in intruder.list(cube=cube.id, status="all", limit=10).items}
    for rid in (named["id"], carried["id"]):
        assert got[rid].source["blob"] == blobs.relpath(cube.id, rid)
    assert got[named["id"]].status == "archived"  # its file did not travel
    assert blobs.read_bytes(got[carried["id"]].source["blob"]) == b"MINE"
    with pytest.raises(Conflict, match="no file"):
        intruder.restore(named["id"])

    out = tmp_path / "out.memcube"
    intruder.export_cube(cube.id, out)
    assert b"OWNER-SECRET" not in gzip.decompress(out.read_bytes())
    assert base64.b64encode(b"OWNER-SECRET-ADAPTER")[:16] not in gzip.decompress(out.read_bytes())
    intruder.delete(named["id"], hard=True)
    intruder.delete_cube(cube.id)
    assert blobs.read_bytes(owner_rel) == b"OWNER-SECRET-ADAPTER"


def test_a_path_in_a_record_id_is_refused_naming_the_field(served: Served, tmp_path: Path) -> None:
    for extra in ({"blob": base64.b64encode(b"x").decode()}, {}):
        rec = record(
            "a tier file", id="../../../etc/passwd", tier="parametric", kind="lora_adapter"
        )
        body = cube_file(tmp_path / "p.memcube", [rec_item(rec, **extra)]).read_bytes()
        with _http(served, "globex") as globex:
            r = globex.post(
                "/v1/cubes/import", params={"cube": f"p-{uuid.uuid4().hex[:6]}"}, content=body
            )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["field"] == "record.id"


# ---- 12: absurd nesting ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_deeply_nested_line_is_refused_naming_the_field(
    served: Served, tmp_path: Path, depth: int
) -> None:
    path = tmp_path / "n.memcube"
    rec = json.dumps(record("nested"))
    rec = rec[:-1] + ', "metadata": {"a": ' + "[" * depth + "]" * depth + "}}"
    header = {
        "type": "header",
        "format": portable.FORMAT,
        "format_version": 1,
        "cube": {"name": "n"},
        "embedding": OTHER_MODEL,
    }
    footer = {"type": "footer", "records": 1, "entities": 0, "edges": 0}
    with gzip.open(path, "wb") as fh:
        fh.write(json.dumps(header).encode() + b"\n")
        fh.write(b'{"type": "record", "versions": [], "record": ' + rec.encode() + b"}\n")
        fh.write(json.dumps(footer).encode() + b"\n")
    with _http(served, "globex") as globex:
        r = globex.post(
            "/v1/cubes/import",
            params={"cube": f"n-{uuid.uuid4().hex[:6]}"},
            content=path.read_bytes(),
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["field"] == "record.metadata"
        assert globex.get("/v1/cubes").status_code == 200


# ---- 5: a gzip bomb ----------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_in_bounded_memory(mem: Memory, tmp_path: Path) -> None:
    """96 MiB of one line from a 100 KB file: refused having held at most about one line's
    bound of it (a reader of whole lines held 96 MiB twice over)."""
    path = tmp_path / "bomb.memcube"
    header = {
        "type": "header",
        "format": portable.FORMAT,
        "format_version": 1,
        "cube": {"name": "bomb"},
        "embedding": OTHER_MODEL,
    }
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(json.dumps(header).encode() + b"\n")
        fh.write(b'{"type": "record", "record": {"content": "')
        block = b"x" * (1 << 20)
        for _ in range(96):
            fh.write(block)
        fh.write(b'"}}\n')
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="line 2 is longer than") as err:
            mem.import_cube(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.details == {"field": "line", "line": 2, "limit": portable.MAX_LINE_BYTES}
    assert peak < 2.5 * portable.MAX_LINE_BYTES, f"peak {peak / 2**20:.0f} MiB"
    assert mem.list_cubes() == []


def test_the_decompressed_total_is_bounded(open_memory, tmp_path: Path) -> None:
    mem = open_memory(max_import_bytes=1024)  # a file may grow to 16x this
    items = [rec_item(record(f"fact number {i} " + "y" * 500)) for i in range(60)]
    path = cube_file(tmp_path / "big.memcube", items)
    assert path.stat().st_size < 16 * 1024 < len(gzip.decompress(path.read_bytes()))
    with pytest.raises(InvalidInput, match="decompresses to more than"):
        mem.import_cube(path)
    assert mem.list_cubes() == []


# ---- 8: embedding outside the write lock, batches, all or nothing ------------------------------


def test_import_does_not_hold_the_write_lock_while_it_embeds(
    open_memory: Callable[..., Memory], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_RECORDS", 64)  # several batches from few records
    mem = open_memory()
    other = mem.for_tenant("other")
    other.add("warm the other tenant's cube", user_id="o")
    n = 256
    path = cube_file(
        tmp_path / "many.memcube",
        [
            rec_item(record(f"Imported fact {i}: the sky over town {i % 17} was grey."))
            for i in range(n)
        ],
    )
    started = threading.Event()
    timing: dict[str, float] = {}

    def progress(done: int, total: int | None) -> None:
        if done == 32:
            started.set()

    def do_import() -> None:
        mem.import_cube(path, cube="many", progress=progress)
        timing["import_done"] = time.monotonic()

    worker = threading.Thread(target=do_import)
    worker.start()
    assert started.wait(60)
    t0 = time.monotonic()
    other.add("written while the import embeds", user_id="o")
    timing["add_done"] = time.monotonic()
    worker.join(300)
    add_s = timing["add_done"] - t0
    assert timing["add_done"] < timing["import_done"], "the add waited for the whole import"
    assert add_s < 5.0, f"the other tenant's add took {add_s:.1f} s"
    assert mem.get_cube("many").records == n
    assert len(mem.recall("sky over town 3", user_id="u", cube="many")) > 0


def test_a_failed_import_leaves_nothing(
    mem: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_RECORDS", 16)  # batches written before the failure
    good = [rec_item(record(f"good fact {i}")) for i in range(40)]
    tier = record("an adapter", tier="parametric", kind="lora_adapter")
    good.append(rec_item(tier, blob=base64.b64encode(b"adapter bytes").decode()))
    bad = rec_item(record("bad", kind="k" * 100))
    path = cube_file(tmp_path / "bad.memcube", [*good, bad])
    with mem._engine.db.reading() as tx:
        cubes_before = len(tx.cubes.all())
    with pytest.raises(InvalidInput, match="kind"):
        mem.import_cube(path)
    assert mem.list_cubes() == []
    with mem._engine.db.reading() as tx:
        assert len(tx.cubes.all()) == cubes_before  # no staging cube left either
    tiers = mem.settings.home / "tiers"
    assert not tiers.exists() or not any(p.is_file() for p in tiers.rglob("*"))
    # the same records import afterwards, keeping their ids
    cube = mem.import_cube(cube_file(tmp_path / "good.memcube", good))
    ids = {r.id for r in mem.list(cube=cube.id, status="all", limit=1000).items}
    assert ids == {g["record"]["id"] for g in good}


# ---- 11: imported records pass the checks of add -----------------------------------------------

BAD_RECORDS = [
    ("record.content", {"content": "x" * 200_000}),
    ("record.content", {"content": "nul \x00 inside"}),
    ("record.content", {"content": "   "}),
    ("record.status", {"status": "weird"}),
    ("record.kind", {"kind": "k" * 100}),
    ("record.tier", {"tier": "weird"}),
    ("record.user_id", {"user_id": "bad\nid"}),
    ("record.user_id", {"user_id": "half a pair \ud800"}),
    ("record.kind", {"kind": "\udfff"}),
    ("record.tags", {"tags": ["ok", "\ud800"]}),
    ("record.tags", {"tags": [1, 2]}),
    ("record.importance", {"importance": 7}),
    ("record.strength", {"strength": float("nan")}),
    ("record.recall_count", {"recall_count": -1}),
    ("record.version", {"version": 0}),
    ("record.embedding_precision", {"embedding_precision": "float99"}),
    ("record.metadata", {"metadata": "not an object"}),
    ("record.source", {"source": ["not", "an", "object"]}),
    ("record.id", {"id": "x" * 100}),
    ("record.created_at", {"created_at": "yesterday-ish"}),
    ("record.source.tokens", {"tier": "activation", "kind": "kv_cache", "source": {}}),
    (
        "record.source.records",
        {"tier": "parametric", "kind": "lora_adapter", "source": {"records": [{"id": 1}]}},
    ),
]


@pytest.mark.parametrize(("field", "bad"), BAD_RECORDS, ids=[f for f, _ in BAD_RECORDS])
def test_imported_records_pass_the_checks_of_add(
    mem: Memory, tmp_path: Path, field: str, bad: dict[str, Any]
) -> None:
    path = cube_file(tmp_path / "b.memcube", [rec_item(record()), rec_item(record(**bad))])
    with pytest.raises(InvalidInput) as err:
        mem.import_cube(path)
    assert err.value.details["field"] == field, err.value.message
    assert mem.list_cubes() == []


def test_bad_versions_entities_and_edges_are_refused(mem: Memory, tmp_path: Path) -> None:
    rec = record()
    version = {
        "version": 1,
        "change": "create",
        "content": "nul \x00",
        "kind": "fact",
        "status": "active",
        "importance": 0.5,
        "changed_at": "2024-01-01T00:00:00Z",
    }
    cases = [
        ("versions[0].content", [{**rec_item(rec), "versions": [version]}]),
        (
            "entity.name",
            [
                rec_item(rec),
                {"type": "entity", "key": 1, "entity": {"name": "", "normalized": "x"}},
            ],
        ),
        ("edge.type", [rec_item(rec), edge("likes", ["record", rec["id"]], ["record", rec["id"]])]),
        ("edge.dst", [rec_item(rec), edge("related", ["record", rec["id"]], ["record", "nope"])]),
        ("record.id", [rec_item(rec), rec_item(record(id=rec["id"]))]),
    ]
    for field, items in cases:
        with pytest.raises(InvalidInput) as err:
            mem.import_cube(cube_file(tmp_path / "v.memcube", items))
        assert err.value.details["field"] == field, err.value.message
    assert mem.list_cubes() == []


def test_bad_records_over_http_are_422_and_the_tenant_keeps_working(
    served: Served, tmp_path: Path
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    for bad in ({"content": "x" * 200_000}, {"status": "weird"}, {"kind": "k" * 100}):
        body = cube_file(tmp_path / "b.memcube", [rec_item(record(**bad))], name=name)
        with _http(served, "globex") as globex:
            r = globex.post("/v1/cubes/import", content=body.read_bytes())
            assert r.status_code == 422, r.text
            assert r.json()["error"]["details"]["field"].startswith("record.")
            listed = globex.get("/v1/cubes")
            assert listed.status_code == 200
            assert name not in {c["name"] for c in listed.json()}


def test_an_import_says_nothing_about_other_tenants_ids(mem: Memory, tmp_path: Path) -> None:
    mem.create_cube("notes")
    recs = mem.add(
        messages=[{"content": "Dana booked the flight."}, {"content": "To Lisbon, in May."}],
        user_id="u",
        cube="notes",
        session_id="s",
    )
    path = tmp_path / "notes.memcube"
    mem.export_cube("notes", path)

    other = mem.for_tenant("other")
    cube = other.import_cube(path)  # the same ids exist in another tenant: new ids here
    theirs = other.list(cube=cube.id, limit=10).items
    assert sorted(r.content for r in theirs) == sorted(r.content for r in recs)
    assert not {r.id for r in theirs} & {r.id for r in recs}
    follows = other.graph(cube.id, types="follows")
    assert len(follows.edges) == 1 and {n.label for n in follows.nodes} == {r.content for r in recs}
    again = other.import_cube(path, cube="again")  # and again: still fine
    assert again.records == 2

    with pytest.raises(Conflict) as err:  # the caller's own ids: named, nothing more
        mem.import_cube(path, cube="copy")
    text = err.value.message.lower()
    assert recs[0].id in err.value.message or recs[1].id in err.value.message
    assert "unique" not in text and "constraint" not in text and "other" not in text


# ---- the file format keeps every line bounded --------------------------------------------------


def test_large_tier_files_and_long_histories_travel_in_bounded_lines(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    src = open_memory(tmp_path / "a")
    payload = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several parts
    tier = record("an adapter", tier="parametric", kind="lora_adapter")
    rec = record("version 1")
    history = [
        {
            "version": v,
            "change": "create" if v == 1 else "update",
            "content": f"version {v} " + "z" * 30_000,  # 4.5 MB of history
            "kind": "fact",
            "status": "active",
            "importance": 0.5,
            "changed_at": "2024-01-01T00:00:00Z",
        }
        for v in range(1, 151)
    ]
    rec["version"] = 150
    items = [
        {**rec_item(rec), "versions": history},
        rec_item(tier, blob=base64.b64encode(payload).decode()),
    ]
    cube = src.import_cube(cube_file(tmp_path / "in.memcube", items, name="big"))
    out = tmp_path / "out.memcube"
    src.export_cube(cube.id, out)
    with gzip.open(out, "rb") as fh:
        lines = [(len(line), json.loads(line)["type"]) for line in fh]
    assert max(n for n, _ in lines) < portable.LINE_BUDGET + (64 << 10)
    kinds = [k for _, k in lines]
    assert kinds.count("versions") >= 1 and kinds.count("blob") == -(-len(payload) // (1 << 20))

    dst = open_memory(tmp_path / "b")
    moved = dst.import_cube(out)
    assert len(dst.history(rec["id"])) == 150
    blob = dst.get(tier["id"]).source["blob"]
    assert blob.startswith(moved.id) and dst._engine.tiers.blobs.read_bytes(blob) == payload


def test_staging_cubes_are_no_tenants_cubes(mem: Memory) -> None:
    """A cube an import is still building is no one's yet: scheduled maintenance and the
    per-cube figures leave it alone."""
    mem.add("one memory", user_id="u")
    staging = mem._transfer._stage({})
    assert all(s["cube_id"] != staging.id for s in mem.cube_stats())
    assert [s["cube_id"] for s in mem.cube_stats()] == [c.id for c in mem.list_cubes()]
    runs = mem.maintain_all()
    assert runs and all(run.cube not in (staging.id, staging.name) for run in runs)
