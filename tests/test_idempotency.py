"""Idempotent adds (issue 24.3): the `Idempotency-Key` of `POST /v1/memories` and the
`idempotency_key=` of `add`, and cubes that refuse exact duplicates.

Embedded (`Memory` on SQLite: repeats, tenants, expiry and purge, atomicity with the write,
racing threads, reopening the data directory) and over HTTP against two workers on one
PostgreSQL database (racing repeats across the workers, both Python clients, a worker
restarted).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from typer.testing import CliRunner

from memsvc import (
    AsyncMemoryClient,
    DuplicateRecord,
    IdempotencyKeyReused,
    InvalidInput,
    ManualClock,
    Memory,
    MemoryClient,
    Message,
    Settings,
    StorageError,
)
from memsvc.api.app import create_app
from memsvc.cli import app as cli_app
from memsvc.cli import common as cli_common
from memsvc.evals.pg_cluster import PgCluster
from memsvc.services import ingest
from memsvc.store.errors import StoreError
from memsvc.store.orm import IdempotencyKeyRow
from tests.conftest import free_port, serving

BAD_KEYS = ["", "a b", "x" * 256, "caf\u00e9", "line\nbreak", "tab\tkey"]


def _ids(records: Any) -> list[str]:
    return [r.id for r in records]


def _keys_stored(mem: Memory) -> int:
    with mem._engine.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(IdempotencyKeyRow)) or 0)


# ---- embedded ------------------------------------------------------------------------------


def test_repeat_returns_the_first_records_and_writes_nothing(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    mem = open_memory(tmp_path / "d")
    first = mem.add(
        ["Ana keeps bees.", "Ana's hives are on the roof."], user_id="u", idempotency_key="k-1"
    )
    assert not first.replayed
    # the same request, spelled differently (defaults sent, tags as a tuple): a repeat
    again = mem.add(
        ["Ana keeps bees.", "Ana's hives are on the roof."],
        user_id="u",
        pinned=False,
        tags=(),
        idempotency_key="k-1",
    )
    assert again.replayed and again == first
    with pytest.raises(IdempotencyKeyReused) as err:
        mem.add("Ana keeps wasps.", user_id="u", idempotency_key="k-1")
    assert err.value.details == {"field": "idempotency_key"}
    with pytest.raises(IdempotencyKeyReused):  # another user is another request
        mem.add(
            ["Ana keeps bees.", "Ana's hives are on the roof."], user_id="v", idempotency_key="k-1"
        )
    # messages: a dict and a Message are the same request
    said = [
        {"role": "user", "content": "I moved to Oslo."},
        {"role": "assistant", "content": "Nice."},
    ]
    chat = mem.add(messages=said, user_id="u", session_id="s", idempotency_key="k-2")
    chat2 = mem.add(
        messages=[Message(**m) for m in said], user_id="u", session_id="s", idempotency_key="k-2"
    )
    assert chat2.replayed and _ids(chat2) == _ids(chat)
    assert len(mem.list(user_id="u").items) == 4
    # the replay shows the records as they are now; a hard-deleted one is left out
    mem.update(first[0].id, text="Ana keeps two hives of bees.")
    mem.delete(first[1].id, hard=True)
    now = mem.add(
        ["Ana keeps bees.", "Ana's hives are on the roof."], user_id="u", idempotency_key="k-1"
    )
    assert now.replayed and _ids(now) == [first[0].id] and now[0].version == 2
    # the key survives closing and reopening the data directory
    mem.close()
    reopened = open_memory(tmp_path / "d")
    back = reopened.add(messages=said, user_id="u", session_id="s", idempotency_key="k-2")
    assert back.replayed and _ids(back) == _ids(chat)
    assert len(reopened.list(user_id="u").items) == 3


def test_bad_keys_are_refused_naming_the_field(mem: Memory) -> None:
    for key in [*BAD_KEYS, 7, b"bytes"]:
        with pytest.raises(InvalidInput) as err:
            mem.add("Some text.", user_id="u", idempotency_key=key)  # type: ignore[arg-type]
        assert err.value.details == {"field": "idempotency_key"}, key
    assert mem.list(user_id="u").items == []
    assert not mem.add("Some text.", user_id="u", idempotency_key="~!x" * 85).replayed


def test_keys_belong_to_their_tenant(mem: Memory) -> None:
    acme, globex = mem.for_tenant("acme"), mem.for_tenant("globex")
    a = acme.add("Acme's secret plan.", user_id="u", idempotency_key="same")
    g = globex.add("Acme's secret plan.", user_id="u", idempotency_key="same")
    assert not g.replayed and set(_ids(a)).isdisjoint(_ids(g))
    g2 = globex.add("Globex's own note.", user_id="w", idempotency_key="other")
    with pytest.raises(IdempotencyKeyReused):  # globex's own key, not acme's
        globex.add("Something else.", user_id="w", idempotency_key="other")
    assert acme.add("Acme's secret plan.", user_id="u", idempotency_key="same") == a
    assert not acme.add("Globex's own note.", user_id="w", idempotency_key="other").replayed
    assert _ids(globex.add("Globex's own note.", user_id="w", idempotency_key="other")) == _ids(g2)


def test_keys_expire_and_maintenance_purges_them(open_memory: Callable[..., Memory]) -> None:
    clock = ManualClock()
    mem = open_memory(clock=clock, idempotency_ttl_seconds=60)
    first = mem.add("Bruno bakes rye bread.", user_id="u", idempotency_key="k")
    clock.advance(seconds=59)
    assert mem.add("Bruno bakes rye bread.", user_id="u", idempotency_key="k").replayed
    clock.advance(seconds=2)  # expired: the key is new again, and its old row is replaced
    second = mem.add("Bruno bakes rye bread.", user_id="u", idempotency_key="k")
    assert not second.replayed and _ids(second) != _ids(first)
    mem.add("Bruno sells at the market.", user_id="u", idempotency_key="k2")
    assert _keys_stored(mem) == 2
    clock.advance(seconds=61)
    mem.maintain_all()
    assert _keys_stored(mem) == 0
    # deleting a cube forgets its keys
    mem.create_cube("notes")
    mem.add("Cora draws maps.", user_id="u", cube="notes", idempotency_key="n")
    mem.delete_cube("notes")
    assert _keys_stored(mem) == 0
    mem.create_cube("notes")
    assert not mem.add("Cora draws maps.", user_id="u", cube="notes", idempotency_key="n").replayed


def test_the_key_commits_with_the_records_or_not_at_all(
    mem: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ingest._write

    def write_then_fail(*args: Any, **kw: Any) -> Any:
        real(*args, **kw)  # records, entities and edges written in the transaction...
        raise StoreError("the disk went away")  # ...which then fails

    monkeypatch.setattr(ingest, "_write", write_then_fail)
    with pytest.raises(StorageError):
        mem.add("Dario tunes pianos.", user_id="u", idempotency_key="k")
    assert _keys_stored(mem) == 0
    monkeypatch.setattr(ingest, "_write", real)
    assert mem.list(user_id="u").items == []
    retry = mem.add("Dario tunes pianos.", user_id="u", idempotency_key="k")
    assert not retry.replayed and len(mem.list(user_id="u").items) == 1


def test_racing_repeats_in_threads_write_once(mem: Memory) -> None:
    mem.add("Warm-up.", user_id="u")  # the default cube exists
    n = 4
    gate = threading.Barrier(n)
    out: list[Any] = [None] * n

    def go(i: int) -> None:
        gate.wait()
        out[i] = mem.add("Emil restores canoes.", user_id="u", idempotency_key="race")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({tuple(_ids(r)) for r in out}) == 1
    assert sum(not r.replayed for r in out) == 1
    assert len(mem.list(user_id="u").items) == 2


def test_a_cube_can_refuse_exact_duplicates(
    open_memory: Callable[..., Memory], tmp_path: Path
) -> None:
    mem = open_memory()
    assert not mem.create_cube("plain").refuse_duplicates
    cube = mem.create_cube("strict", refuse_duplicates=True)
    assert cube.refuse_duplicates and mem.get_cube("strict").refuse_duplicates
    with pytest.raises(InvalidInput):
        mem.create_cube("odd", refuse_duplicates="yes")  # type: ignore[arg-type]
    kept = mem.add("Fay runs on Sundays.", user_id="u", session_id="s", cube="strict")[0]
    with pytest.raises(DuplicateRecord) as err:
        mem.add(["Fay swims.", "Fay runs on Sundays."], user_id="u", session_id="s", cube="strict")
    assert err.value.details == {"field": "text[1]", "id": kept.id}
    with pytest.raises(DuplicateRecord) as err:
        mem.add(
            messages=[{"role": "user", "content": "Fay runs on Sundays."}],
            user_id="u",
            session_id="s",
            cube="strict",
        )
    assert err.value.details == {"field": "messages[0].content", "id": kept.id}
    assert [r.content for r in mem.list(cube="strict").items] == ["Fay runs on Sundays."]
    # another session, another user, a near duplicate: not refused
    mem.add("Fay runs on Sundays.", user_id="u", session_id="t", cube="strict")
    mem.add("Fay runs on Sundays.", user_id="w", session_id="s", cube="strict")
    mem.add("Fay runs on Sundays!", user_id="u", session_id="s", cube="strict")
    # a deleted record no longer counts; a repeat of a keyed add is a repeat, not a duplicate
    mem.delete(kept.id)
    keyed = mem.add(
        "Fay runs on Sundays.", user_id="u", session_id="s", cube="strict", idempotency_key="f"
    )
    again = mem.add(
        "Fay runs on Sundays.", user_id="u", session_id="s", cube="strict", idempotency_key="f"
    )
    assert again.replayed and _ids(again) == _ids(keyed)
    # off by default; the setting travels with the cube file
    mem.add("Gil naps.", user_id="u", cube="plain")
    mem.add("Gil naps.", user_id="u", cube="plain")
    mem.export_cube("strict", tmp_path / "strict.memcube")
    assert mem.for_tenant("other").import_cube(tmp_path / "strict.memcube").refuse_duplicates


def test_cli_add_with_a_key_and_a_strict_cube(
    open_memory: Callable[..., Memory],
    embedder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`memsvc add --idempotency-key` (a file's batches get KEY.N) and `create-cube
    --refuse-duplicates`, in this process on a data directory with the session's model."""
    monkeypatch.setattr(cli_common, "Memory", functools.partial(Memory, embedder=embedder))
    mem = open_memory(tmp_path / "d")
    where = ["--data-dir", str(tmp_path / "d")]
    if mem.settings.database_url:
        where += ["--database-url", mem.settings.database_url]

    def run(*args: str, code: int = 0) -> str:
        res = CliRunner().invoke(cli_app, [*args, *where], env={"MEMSVC_URL": None})
        assert res.exit_code == code, res.output
        return res.output

    notes = tmp_path / "notes.txt"
    notes.write_text("Oda brews cider.\nOda fixes fences.\nOda reads maps.\n", encoding="utf-8")
    first = json.loads(
        run(
            "add",
            "--file",
            str(notes),
            "--user",
            "u",
            "--batch",
            "2",
            "--idempotency-key",
            "imp",
            "--json",
        )
    )
    again = json.loads(
        run(
            "add",
            "--file",
            str(notes),
            "--user",
            "u",
            "--batch",
            "2",
            "--idempotency-key",
            "imp",
            "--json",
        )
    )
    assert [r["id"] for r in again] == [r["id"] for r in first] and len(first) == 3
    run("add", "Oda sails.", "--user", "u", "--idempotency-key", "a b", code=1)
    assert len(mem.list(user_id="u").items) == 3
    run("create-cube", "strict", "--refuse-duplicates")
    assert mem.get_cube("strict").refuse_duplicates
    run("add", "Oda sails.", "--user", "u", "--cube", "strict")
    assert "duplicate" in run("add", "Oda sails.", "--user", "u", "--cube", "strict", code=1)


# ---- over HTTP: two workers on one PostgreSQL database --------------------------------------
#
# Worker A is a real `memsvc serve` process; worker B is the app under uvicorn on a thread of
# this process, with its own `Memory` (own engine, connection pool and indexes) and the
# session's embedding model, so it starts, and restarts, in a fraction of a second (a served
# process spends about 10 CPU-seconds loading the model).


class _ThreadWorker:
    """The app on a thread of this process; `restart` drops it all and opens it anew."""

    def __init__(self, settings: Settings, embedder: Any) -> None:
        self.settings = settings
        self.embedder = embedder
        self.url = ""

    def start(self) -> _ThreadWorker:
        self.mem = Memory(settings=self.settings, embedder=self.embedder)
        port = free_port()
        config = uvicorn.Config(
            create_app(self.mem), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no server"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.mem.close()

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class _Workers:
    a: str  # the served process's URL
    b: _ThreadWorker
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def workers(
    pg: PgCluster, embedder: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Workers]:
    url = pg.new_database()
    home = tmp_path_factory.mktemp("idem")
    settings = Settings(home=home / "b", database_url=url, maintain_seconds=0)
    b = _ThreadWorker(settings, embedder).start()  # migrates the database
    tokens = {t: b.mem.keys.create(t)[1] for t in ("acme", "globex")}
    env = {
        **os.environ,
        "MEMSVC_HOME": str(home / "a"),
        "MEMSVC_DATABASE_URL": url,
        "MEMSVC_MAINTAIN_SECONDS": "0",
    }
    try:
        with serving(env) as a:
            yield _Workers(a, b, tokens)
    finally:
        b.stop()


def _post(url: str, token: str, body: dict[str, Any], key: str | bytes | None) -> httpx.Response:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{url}/v1/memories", json=body, headers=headers, timeout=60)


def _race(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls at the same moment, one thread each."""
    gate = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def go(i: int) -> None:
        gate.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_http_header_on_two_workers(workers: _Workers) -> None:
    a, b, acme = workers.a, workers.b.url, workers.tokens["acme"]
    body = {"text": "Hana grows peppers.", "user_id": "h1"}
    first = _post(a, acme, body, "h-1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = _post(b, acme, {**body, "pinned": False}, "h-1")  # the other worker
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = _post(b, acme, {**body, "text": "Hana grows chilies."}, "h-1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.json()["error"]["details"] == {"field": "Idempotency-Key"}
    for bad in ["a b", "x" * 256, "caf\u00e9".encode()]:
        r = _post(a, acme, body, bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["details"] == {"field": "Idempotency-Key"}, bad
    theirs = _post(a, workers.tokens["globex"], body, "h-1")  # another tenant's key
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json()[0]["id"] != first.json()[0]["id"]
    with MemoryClient(a, acme) as c:
        assert _ids(c.list(user_id="h1").items) == [first.json()[0]["id"]]

    # racing repeats, spread over both workers: one write, every answer its records
    ivo = {"text": "Ivo paints boats.", "user_id": "h2"}
    answers = _race([lambda u=u: _post(u, acme, ivo, "h-2") for u in (a, b, a, b, a, b)])
    assert [r.status_code for r in answers] == [201] * 6
    assert len({r.json()[0]["id"] for r in answers}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in answers) == 1
    # racing different requests under one key: one writes, the other is refused
    answers = _race(
        [
            lambda: _post(a, acme, {"text": "Jo likes figs.", "user_id": "h3"}, "h-3"),
            lambda: _post(b, acme, {"text": "Jo likes dates.", "user_id": "h3"}, "h-3"),
        ]
    )
    assert sorted(r.status_code for r in answers) == [201, 409]
    with MemoryClient(b, acme) as c:
        assert len(c.list(user_id="h2").items) == 1
        assert len(c.list(user_id="h3").items) == 1


def test_both_clients_and_refused_duplicates(workers: _Workers) -> None:
    a, b, acme = workers.a, workers.b.url, workers.tokens["acme"]
    with MemoryClient(a, acme) as sync:
        first = sync.add("Kai fixes clocks.", user_id="c", idempotency_key="c-1")
        assert not first.replayed
        with pytest.raises(InvalidInput) as err:  # refused before sending
            sync.add("Kai fixes clocks.", user_id="c", idempotency_key="a b")
        assert err.value.details == {"field": "idempotency_key"}
        sync.create_cube("strict", refuse_duplicates=True)
        kept = sync.add("Lea sings.", user_id="c", session_id="s", cube="strict")[0]
        with pytest.raises(DuplicateRecord) as dup:
            sync.add("Lea sings.", user_id="c", session_id="s", cube="strict")
        assert dup.value.details == {"field": "text", "id": kept.id}

    async def remote() -> None:
        async with AsyncMemoryClient(b, acme) as aio:
            again = await aio.add("Kai fixes clocks.", user_id="c", idempotency_key="c-1")
            assert again.replayed and again == first
            with pytest.raises(IdempotencyKeyReused):
                await aio.add("Kai fixes watches.", user_id="c", idempotency_key="c-1")
            assert (await aio.get_cube("strict")).refuse_duplicates
            with pytest.raises(DuplicateRecord):
                await aio.add("Lea sings.", user_id="c", session_id="s", cube="strict")

    asyncio.run(remote())
    # the same new text through both workers at once, in a cube that refuses duplicates
    body = {"text": "Mo plays chess.", "user_id": "c", "session_id": "s", "cube": "strict"}
    answers = _race([lambda: _post(a, acme, body, None), lambda: _post(b, acme, body, None)])
    assert sorted(r.status_code for r in answers) == [201, 409]
    refused = next(r for r in answers if r.status_code == 409).json()["error"]
    written = next(r for r in answers if r.status_code == 201).json()[0]
    assert refused["code"] == "duplicate_record" and refused["details"]["id"] == written["id"]


def test_a_key_survives_a_worker_restart(workers: _Workers) -> None:
    a, acme = workers.a, workers.tokens["acme"]
    body = {"messages": [{"content": "Nils sold his boat."}], "user_id": "r", "session_id": "x"}
    first = _post(workers.b.url, acme, body, "r-1")
    assert first.status_code == 201
    workers.b.restart()  # a new Memory, engine and server on the same database
    for url in (workers.b.url, a):
        again = _post(url, acme, body, "r-1")
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    with MemoryClient(a, acme) as c:
        assert len(c.list(user_id="r").items) == 1
