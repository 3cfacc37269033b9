"""Several servers on one PostgreSQL database, and acknowledged writes through SIGKILL:
real `memsvc serve` processes, real clients."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from memsvc import Memory, MemoryClient
from memsvc.evals.pg_cluster import PgCluster
from tests.conftest import free_port, run_cli, serving, wait_ready


def _key(env: dict[str, str]) -> str:
    return json.loads(run_cli("keys", "create", "--tenant", "acme", "--json", env=env))["key"]


def test_two_servers_on_one_postgresql_see_each_others_writes_within_1s(
    pg: PgCluster, tmp_path: Path
) -> None:
    url = pg.new_database()
    envs = [
        {**os.environ, "MEMSVC_HOME": str(tmp_path / f"w{i}"), "MEMSVC_DATABASE_URL": url}
        for i in (1, 2)
    ]
    key = _key(envs[0])
    with serving(envs[0]) as url1, serving(envs[1]) as url2:
        a, b = MemoryClient(url1, key), MemoryClient(url2, key)
        # The cube exists and the second worker holds its index in memory before the clock
        # starts: a cold cube's first load is not the propagation lag measured here.
        a.add("Warm-up note about nothing much.", user_id="w")
        deadline = time.monotonic() + 30
        while not b.recall("warm-up note", user_id="w", k=1):
            assert time.monotonic() < deadline, "the second worker never saw the cube"
            time.sleep(0.05)
        lags = []
        for i, text in enumerate(
            ["Nadia repairs vintage typewriters.", "Oskar breeds axolotls in his garage."]
        ):
            rec = a.add(text, user_id="w")[0]
            t0 = time.monotonic()
            while True:
                hits = b.recall(text, user_id="w", k=3)
                if hits and hits[0].record.id == rec.id:
                    break
                assert time.monotonic() - t0 < 1.0, f"write {i} not seen by the other worker"
                time.sleep(0.02)
            lags.append(time.monotonic() - t0)
            b.delete(rec.id)  # and the other way round
            t0 = time.monotonic()
            while any(h.record.id == rec.id for h in a.recall(text, user_id="w", k=3)):
                assert time.monotonic() - t0 < 1.0
                time.sleep(0.02)
        assert max(lags) < 1.0


def _start(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_mid_stream_loses_no_acknowledged_add(tmp_path: Path) -> None:
    env = {**os.environ, "MEMSVC_HOME": str(tmp_path / "crash")}
    key = _key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(env, port)
    wait_ready(url, proc)
    acked: list[tuple[str, str]] = []  # (id, text) of every add answered 201
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            i = 0
            while not stop.is_set():
                text = f"crash note {i}: the heron counted {i * 7} reeds"
                try:
                    r = http.post("/v1/memories", json={"text": text, "user_id": "k"})
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 201:
                    acked.append((r.json()[0]["id"], text))
                i += 1

    writer = threading.Thread(target=stream)
    writer.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stop.set()
    writer.join(timeout=30)
    assert len(acked) >= 40

    proc = _start(env, port)
    try:
        wait_ready(url, proc)
        with MemoryClient(url, key) as c:
            ids = []
            cursor = None
            while True:
                page = c.list(user_id="k", limit=1000, cursor=cursor)
                ids += [r.id for r in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert len(ids) == len(set(ids))  # nothing twice
            assert {i for i, _ in acked} <= set(ids)  # every 201 is there
            for rid, text in acked[-5:] + acked[:3]:  # and found by recall: indexes repaired
                assert rid in [h.record.id for h in c.recall(text, user_id="k", k=5)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _records_in(url: str, key: str, cube: str) -> list[str]:
    with MemoryClient(url, key) as c:
        ids, cursor = [], None
        while True:
            page = c.list(cube=cube, limit=1000, cursor=cursor)
            ids += [r.id for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return ids


def test_sigkill_during_import_and_maintenance_leaves_nothing_half_done(
    tmp_path: Path, open_memory: Callable[..., Memory]
) -> None:
    from memsvc.evals.corpus import generated_sentences

    # enough records that the import and the maintenance run are still in flight 0.4 s in
    # (both were, at 1,500, where 3,000 had cost the suite 35 s more of embedding)
    n = 1500
    sentences = generated_sentences(n, seed=8)
    elsewhere = open_memory(tmp_path / "elsewhere")  # the files come from another service
    for cube, texts in (("imp", generated_sentences(n, seed=7)), ("src", sentences)):
        elsewhere.create_cube(cube)
        elsewhere.add(texts, user_id="k", cube=cube)
        elsewhere.export_cube(cube, tmp_path / f"{cube}.memcube")

    env = {**os.environ, "MEMSVC_HOME": str(tmp_path / "k2"), "MEMSVC_MAINTAIN_SECONDS": "0"}
    key = _key(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(env, port)
    wait_ready(url, proc)
    with MemoryClient(url, key, timeout=300) as c:  # the file's vectors: nothing to embed
        c.import_cube(tmp_path / "src.memcube", cube="src")
    body = (tmp_path / "imp.memcube").read_bytes()

    def kill_during(send: Callable[[], None]) -> None:
        nonlocal proc
        worker = threading.Thread(target=send)
        worker.start()
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        worker.join(timeout=60)
        proc = _start(env, port)
        wait_ready(url, proc)

    def do_import() -> None:
        with contextlib.suppress(httpx.HTTPError):  # killed: never acknowledged
            httpx.post(
                f"{url}/v1/cubes/import?cube=copy",
                content=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )

    def do_maintain() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{url}/v1/cubes/src/maintain",
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )

    try:
        kill_during(do_import)
        with MemoryClient(url, key, timeout=300) as c:
            names = {cube.name for cube in c.list_cubes()}
            if "copy" in names:  # committed before the kill: then all of it
                assert len(_records_in(url, key, "copy")) == n
                c.delete_cube("copy")
            c.import_cube(tmp_path / "imp.memcube", cube="copy")  # a retry works
            assert len(_records_in(url, key, "copy")) == n

        kill_during(do_maintain)
        with MemoryClient(url, key, timeout=300) as c:
            assert len(_records_in(url, key, "src")) == n
            run = c.maintain("src")[0]  # a later run completes
            assert run.error is None and run.finished_at is not None
            assert c.maintain("src")[0].counts.get("placed", 0) == 0  # and is idempotent
            probe = sentences[1234]
            assert c.recall(probe, user_id="k", cube="src", k=3)[0].record.content == probe
    finally:
        proc.terminate()
        proc.wait(timeout=30)
