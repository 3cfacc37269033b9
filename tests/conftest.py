"""Shared fixtures: one real embedding model per test session, a fresh data dir per test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import torch

# No GPU here: Triton kernels run under Triton's interpreter, which must be chosen before any
# kernel is defined (tests/test_kernel_compile.py compiles them for real GPUs in a subprocess).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from memsvc import Clock, Memory, SentenceTransformerEmbedder, Settings
from memsvc.evals.pg_cluster import PgCluster, find_pg_bin
from memsvc.evals.serving import until_ready


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MEMSVC_TEST_BACKEND") == "postgresql":
        skip = pytest.mark.skip(reason="reads the SQLite file of a data directory directly")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    emb = SentenceTransformerEmbedder(threads=2)
    emb.encode(["warm up"])
    return emb


@pytest.fixture
def open_memory(
    embedder: SentenceTransformerEmbedder, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Memory]]:
    """Open a Memory on a data dir (default the test's tmp dir); all are closed at the end."""
    opened: list[Memory] = []

    def _open(path: Path | None = None, clock: Clock | None = None, **settings: object) -> Memory:
        home = path or tmp_path / "data"
        if os.environ.get("MEMSVC_TEST_BACKEND") == "postgresql" and "database_url" not in settings:
            # the whole suite on PostgreSQL: one fresh database per data directory
            urls = request.getfixturevalue("pg_databases")
            settings["database_url"] = urls.setdefault(
                home, request.getfixturevalue("pg").new_database()
            )
        mem = Memory(settings=Settings(home=home, **settings), embedder=embedder, clock=clock)
        opened.append(mem)
        return mem

    yield _open
    for mem in opened:
        mem.close()


@pytest.fixture
def mem(open_memory: Callable[..., Memory]) -> Memory:
    return open_memory()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_in_thread(app: object) -> Iterator[str]:
    """`app` under uvicorn on a thread of this process (its `Memory` and any tracing exporter
    are the test's); yields its URL once /readyz answers 200."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    assert until_ready(url, thread.is_alive, timeout=60, every=0.05), "the app did not get ready"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def run_cli(*args: str, env: dict[str, str]) -> str:
    """Run the real `memsvc` CLI in a subprocess; returns stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "memsvc.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Served:
    """A real `memsvc serve` process on a free loopback port, with one key per tenant."""

    url: str
    home: Path
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)


def wait_ready(
    url: str, proc: subprocess.Popen, timeout: float = 120, log: IO[bytes] | None = None
) -> None:
    if not until_ready(url, lambda: proc.poll() is None, timeout=timeout, every=0.2):
        proc.kill()
        if log is not None:
            log.seek(0)
        out = log.read() if log is not None else proc.stdout.read() if proc.stdout else b""
        pytest.fail(f"server did not become ready:\n{out.decode(errors='replace')}")


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[str]:
    """A real `memsvc serve` on a free loopback port (extra CLI `args`); yields its URL once
    ready and stops it on exit."""
    port = free_port()
    # The server's log goes to a file: an unread pipe fills up after some thousand requests
    # and the server would block writing its access log.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, log=log)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _served(home: Path, database_url: str | None = None) -> Iterator[Served]:
    # Cube figures at most a second old: /readyz (polled at start) caches them for the
    # interval, and a test reading /metrics soon after its writes would see the old ones.
    env = {**os.environ, "MEMSVC_HOME": str(home), "MEMSVC_METRICS_CACHE_SECONDS": "1"}
    if database_url:
        env["MEMSVC_DATABASE_URL"] = database_url
    keys = {
        tenant: json.loads(run_cli("keys", "create", "--tenant", tenant, "--json", env=env))["key"]
        for tenant in ("acme", "globex")
    }
    with serving(env) as url:
        yield Served(url=url, home=home, env=env, keys=keys)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(tmp_path_factory.mktemp("served"))


@pytest.fixture
def pg_databases() -> dict[Path, str]:
    return {}


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster for the session (`make test` installs the server)."""
    if find_pg_bin() is None:
        pytest.fail("PostgreSQL is not installed: run `make test` (it installs it) or apt-get")
    cluster = PgCluster(free_port()).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def served_pg(tmp_path_factory: pytest.TempPathFactory, pg: PgCluster) -> Iterator[Served]:
    """A real `memsvc serve` on PostgreSQL."""
    yield from _served(tmp_path_factory.mktemp("served-pg"), pg.new_database())
