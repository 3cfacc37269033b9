"""Cube-affinity routing at a real load balancer: Debian's nginx running deploy/nginx/memsvc.conf
in front of two real `memsvc serve` workers on one PostgreSQL database, driven by the real
clients. nginx's access log (the config's `memsvc` format) says which worker served each
request."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from memsvc import AsyncMemoryClient, MemoryClient
from memsvc.client._base import ROUTE_HEADER, route_key
from memsvc.errors import NotFound, StorageError
from memsvc.evals.pg_cluster import PgCluster
from memsvc.keys import KeyManager
from memsvc.store.database import Database
from tests.conftest import free_port, wait_ready

CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "memsvc.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")

# One line of the config's `memsvc` log format.
LOG_LINE = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d+) \d+ '
    r"cube=(?P<cube>\S+) upstream=(?P<upstream>.+?) rt="
)


@dataclass
class Entry:
    method: str
    path: str  # without the query
    status: int
    cube: str  # the routing token, "-" when the request carried none
    upstream: str  # the worker's address, as in the config's upstream ("a, b": a failed)


def log_entries(path: Path, since: int = 0) -> list[Entry]:
    """The requests nginx logged in `path` from byte `since` on."""
    out = []
    for line in path.read_bytes()[since:].decode().splitlines():
        m = LOG_LINE.search(line)
        assert m is not None, f"not the config's log format: {line}"
        path = m["path"].split("?", 1)[0]
        out.append(Entry(m["method"], path, int(m["status"]), m["cube"], m["upstream"]))
    return out


@dataclass
class Balanced:
    url: str  # nginx
    workers: dict[str, str]  # upstream address -> the worker's own URL
    key: str  # tenant acme
    other_key: str  # tenant globex
    access_log: Path
    worker_logs: dict[str, Path]

    def mark(self) -> int:
        return self.access_log.stat().st_size

    def entries(
        self, since: int = 0, *, count: int = 0, path: str | None = None, cube: str | None = None
    ) -> list[Entry]:
        """The requests logged since byte `since` (to `path`, for `cube` if given), once
        there are `count`: nginx writes a request's line just after its answer, so the last
        may lag."""
        deadline = time.monotonic() + 5
        while True:
            found = [
                e
                for e in log_entries(self.access_log, since)
                if path in (None, e.path) and (cube is None or e.cube == route_key(cube))
            ]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"nginx logged {len(found)} of {count}"
            time.sleep(0.02)

    def worker_of(self, cube: str) -> str:
        """The worker nginx sent `cube`'s requests to (asserted to be one)."""
        seen = {e.upstream for e in self.entries(count=1, cube=cube)}
        assert len(seen) == 1, f"{cube}: {seen}"
        return seen.pop()


def render(conf: str, *, port: int, workers: list[int], access_log: Path) -> str:
    """deploy/nginx/memsvc.conf with this test's ports and log path; each replaced line must
    be found exactly once, so the test follows the file's shape."""
    swaps = {
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "server 127.0.0.1:8001 ": f"server 127.0.0.1:{workers[0]} ",
        "server 127.0.0.1:8002 ": f"server 127.0.0.1:{workers[1]} ",
        "/var/log/nginx/memsvc.access.log": str(access_log),
    }
    for old, new in swaps.items():
        assert conf.count(old) == 1, f"{CONF} no longer has exactly one {old!r}"
        conf = conf.replace(old, new)
    return conf


def nginx_conf(root: Path, include: Path) -> str:
    """A main nginx.conf that keeps every file under `root` (pid, logs, temp files): nginx
    runs as the test's user, in the foreground."""
    # as root, nginx's workers would run as nobody, who cannot reach the test's temp dir
    user = "user root;" if os.geteuid() == 0 else ""
    temps = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
daemon off;
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
{temps}
    include {include};
}}
"""


@contextmanager
def running_nginx(root: Path, workers: list[int]) -> Iterator[tuple[str, Path]]:
    """nginx on deploy/nginx/memsvc.conf in front of `workers` (ports), as the test's user,
    every file under `root`; yields its URL and its access log once it answers."""
    if NGINX is None:
        pytest.skip("nginx is not installed: `make test` installs it (Debian package nginx)")
    root.mkdir()
    port, access_log = free_port(), root / "access.log"
    conf = root / "memsvc.conf"
    conf.write_text(render(CONF.read_text(), port=port, workers=workers, access_log=access_log))
    main = root / "nginx.conf"
    main.write_text(nginx_conf(root, conf))
    proc = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(main)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)  # any answer: nginx is up
                break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                error_log = root / "error.log"
                why = error_log.read_text() if error_log.exists() else ""
                pytest.fail(f"nginx did not start on {CONF}:\n{why}")
            time.sleep(0.05)
        yield url, access_log
    finally:
        proc.terminate()
        _wait(proc)


def _start_worker(env: dict[str, str], port: int, log: IO[bytes]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def lb(pg: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    if NGINX is None:  # before the workers start
        pytest.skip("nginx is not installed: `make test` installs it (Debian package nginx)")
    root = tmp_path_factory.mktemp("routing")
    env = {
        **os.environ,
        "MEMSVC_DATABASE_URL": pg.new_database(),
        "MEMSVC_MAINTAIN_SECONDS": "0",
    }
    # the schema and a key first (in-process: no model needed), then the workers side by side
    db = Database(env["MEMSVC_DATABASE_URL"])
    db.migrate()
    keys = [KeyManager(db).create(tenant)[1] for tenant in ("acme", "globex")]
    db.write_engine.dispose()
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen] = []
    logs = {f"127.0.0.1:{p}": root / f"worker-{p}.log" for p in ports}
    handles = [open(path, "w+b") for path in logs.values()]  # noqa: SIM115
    try:
        for i, (port, log) in enumerate(zip(ports, handles, strict=True)):
            home = {"MEMSVC_HOME": str(root / f"w{i + 1}")}
            procs.append(_start_worker({**env, **home}, port, log))
        for port, proc, log in zip(ports, procs, handles, strict=True):
            wait_ready(f"http://127.0.0.1:{port}", proc, log=log)
        with running_nginx(root / "nginx", ports) as (url, access_log):
            workers = {f"127.0.0.1:{p}": f"http://127.0.0.1:{p}" for p in ports}
            yield Balanced(url, workers, *keys, access_log, logs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            _wait(proc)
        for h in handles:
            h.close()


def test_each_cube_lands_on_one_worker_and_cubes_spread_over_both(lb: Balanced) -> None:
    users = [f"route-{i}" for i in range(16)]
    since = lb.mark()
    with MemoryClient(lb.url, lb.key) as client:
        ids = []
        for u in users:
            ids.append(client.add(f"{u} keeps a notebook about rivers.", user_id=u)[0].id)
            assert client.recall("notebook about rivers", user_id=u, k=1)[0].record.id == ids[-1]
            assert [r.id for r in client.list(user_id=u).items] == [ids[-1]]
            assert client.get_cube(f"user:{u}").records == 1
        # calls by record id name no cube: they carry no header
        for rec_id in ids[:4]:
            assert client.get(rec_id).id == rec_id
    # the last call's line first: a count alone was met early once, by a line logged late
    # from before `since`, and the last call by id was missing from the entries read
    lb.entries(since, count=1, path=f"/v1/memories/{ids[3]}")
    entries = lb.entries(since, count=len(users) * 4 + 4)
    owners = set()
    for u in users:
        mine = [e for e in entries if e.cube == route_key(f"user:{u}")]
        assert len(mine) == 4 and all(e.status < 400 for e in mine), mine
        assert len({e.upstream for e in mine}) == 1, f"{u}'s requests went to {mine}"
        owners.add(mine[0].upstream)
    assert owners == set(lb.workers), "16 cubes all hashed to one worker"
    # without the header nginx balances round robin: the 4 calls by id reach both workers
    by_id = [e for e in entries if e.path in {f"/v1/memories/{i}" for i in ids[:4]}]
    assert [e.cube for e in by_id] == ["-"] * 4
    assert {e.upstream for e in by_id} == set(lb.workers)


def test_a_write_through_one_worker_is_read_through_the_other(lb: Balanced) -> None:
    cube = "user:crossing"
    with MemoryClient(lb.url, lb.key) as balanced:
        rec = balanced.add("Ilse restores carousel horses.", user_id="crossing")[0]
        home = lb.worker_of(cube)
        (other,) = set(lb.workers) - {home}
        with MemoryClient(lb.workers[other], lb.key) as direct:
            assert direct.get(rec.id).content == rec.content
            deadline = time.monotonic() + 10
            while not any(
                h.record.id == rec.id for h in direct.recall(rec.content, user_id="crossing", k=3)
            ):
                assert time.monotonic() < deadline, "the other worker never found the write"
                time.sleep(0.05)
            # and back: written on the other worker, recalled through the cube's own
            back = direct.add("Ilse's workshop smells of linseed oil.", user_id="crossing")[0]
        deadline = time.monotonic() + 10
        while not any(
            h.record.id == back.id for h in balanced.recall(back.content, user_id="crossing", k=3)
        ):
            assert time.monotonic() < deadline, "the cube's worker never caught up"
            time.sleep(0.05)
    assert lb.worker_of(cube) == home


def test_streams_limits_and_the_client_address_pass_through(lb: Balanced, tmp_path: Path) -> None:
    with MemoryClient(lb.url, lb.key) as client:
        client.add(["Pavel tunes pianos.", "Pavel lives by the harbour."], user_id="streamer")
        since = lb.mark()
        counts = client.export_cube("user:streamer", tmp_path / "c.memcube")
        assert counts["records"] == 2
    with MemoryClient(lb.url, lb.other_key) as other:  # the same records, another tenant
        copy = other.import_cube(tmp_path / "c.memcube", cube="streamer-copy")
        assert copy.records == 2
        assert other.get_cube("streamer-copy").records == 2
    (export,) = lb.entries(since, count=1, path="/v1/cubes/user:streamer/export")
    assert export.cube == route_key("user:streamer")
    assert export.upstream == lb.worker_of("user:streamer")  # where its add went
    (imported,) = lb.entries(since, count=1, path="/v1/cubes/import")
    (got,) = lb.entries(since, count=1, path="/v1/cubes/streamer-copy")
    assert imported.cube == got.cube == route_key("streamer-copy")
    assert imported.upstream == got.upstream
    headers = {"Authorization": f"Bearer {lb.key}"}
    # an add over memsvc's 1 MiB request limit: refused by nginx, in memsvc's JSON shape
    big = httpx.post(
        f"{lb.url}/v1/memories",
        headers={**headers, "Content-Type": "application/json"},
        content=b'{"user_id": "x", "text": "' + b"a" * (1 << 20) + b'"}',
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    # an upload of 2 MiB passes nginx (its limit there is memsvc's import limit) and is
    # streamed to memsvc, which reads it and finds no cube file in it
    junk = httpx.post(
        f"{lb.url}/v1/cubes/import",
        headers={**headers, "Content-Type": "application/gzip", ROUTE_HEADER: route_key("junk")},
        content=iter([b"\0" * (1 << 20), b"\0" * (1 << 20)]),
        timeout=60,
    )
    assert junk.status_code == 422, junk.text
    assert "not a memsvc cube file" in junk.json()["error"]["message"]
    # the client's address reaches the worker (X-Forwarded-For, which uvicorn believes from
    # 127.0.0.1), so the worker logs 203.0.113.7 and not nginx's address
    since = lb.mark()
    r = httpx.get(f"{lb.url}/v1/cubes", headers={**headers, "X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 200
    (entry,) = lb.entries(since, count=1, path="/v1/cubes")
    deadline = time.monotonic() + 5
    while "203.0.113.7" not in lb.worker_logs[entry.upstream].read_text(errors="replace"):
        assert time.monotonic() < deadline, "the worker did not see the client's address"
        time.sleep(0.05)


def test_a_cube_whose_worker_is_down_is_served_by_the_other(lb: Balanced, tmp_path: Path) -> None:
    live = next(iter(lb.workers))
    dead = free_port()  # nothing listens there
    with (
        running_nginx(tmp_path / "half", [int(live.rsplit(":", 1)[1]), dead]) as (url, log),
        MemoryClient(url, lb.key) as client,
    ):
        for i in range(8):  # about half of them hash to the dead worker
            user = f"failover-{i}"
            rec = client.add("Tove paints lighthouses.", user_id=user)[0]
            assert client.recall("lighthouses", user_id=user, k=1)[0].record.id == rec.id
        entries = log_entries(log)
    assert all(e.status < 400 and e.upstream.split(", ")[-1] == live for e in entries), entries
    # no worker at all: memsvc's error shape, raised as StorageError by the client
    with (
        running_nginx(tmp_path / "none", [dead, free_port()]) as (url, _),
        MemoryClient(url, lb.key) as client,
        pytest.raises(StorageError, match="no memsvc worker"),
    ):
        client.recall("lighthouses", user_id="failover-0")


def test_both_python_clients_send_the_token_on_calls_that_name_a_cube(tmp_path: Path) -> None:
    """A narrow check of the header alone (every call answered 404 by a stand-in transport),
    for the async client too; the tests above see it arrive at nginx."""
    assert route_key("user:alice") == "dabd1db8d35ab131"  # as the TypeScript client's
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get(ROUTE_HEADER)))
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    file = tmp_path / "c.memcube"
    file.write_bytes(b"\x1f\x8b")
    calls = [
        ("add", ("x",), {"user_id": "ana"}),
        ("recall", ("x",), {"user_id": "ana", "cube": "notes"}),
        ("list", (), {"user_id": "ana"}),
        ("generate", ("x",), {"user_id": "ana"}),
        ("graph", ("notes",), {}),
        ("consolidate", (), {"user_id": "ana"}),
        ("maintain", ("notes",), {}),
        ("get_cube", ("notes",), {}),
        ("share_cube", ("notes", "globex"), {}),
        ("export_cube", ("notes", tmp_path / "out"), {}),
        ("import_cube", (file,), {"cube": "notes"}),
        ("get", ("rec-1",), {}),
        ("delete", ("rec-1",), {}),
        ("list_cubes", (), {}),
    ]
    ana, notes = route_key("user:ana"), route_key("notes")
    want = [ana, notes, ana, ana, notes, ana, notes, notes, notes, notes, notes, None, None, None]
    transport = httpx.MockTransport(answer)
    with MemoryClient("http://lb", "k", transport=transport) as client:
        for name, args, kw in calls:
            with pytest.raises(NotFound):
                getattr(client, name)(*args, **kw)
    assert [token for _, token in seen] == want, seen

    async def run_async() -> None:
        async with AsyncMemoryClient("http://lb", "k", transport=transport) as client:
            for name, args, kw in calls:
                with pytest.raises(NotFound):
                    await getattr(client, name)(*args, **kw)

    seen.clear()
    asyncio.run(run_async())
    assert [token for _, token in seen] == want, seen
