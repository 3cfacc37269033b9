"""A server's index cache seen from the client and `memsvc info --url`: the answering worker's
figures read from its `/metrics` by a real uvicorn server on a thread (real model, real
SQLite), and what happens when the server keeps `/metrics` for its operator."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from typer.testing import CliRunner

from memsvc import (
    AsyncMemoryClient,
    AuthError,
    Memory,
    MemoryClient,
    MemsvcError,
    SentenceTransformerEmbedder,
)
from memsvc.api.app import create_app
from memsvc.cli import NOT_COMMANDS, app
from memsvc.config import Settings
from tests.conftest import app_in_thread

BUDGET = 48 * 2**20
OPERATOR = "op-token-larkspur"
TENANT = "tenant-wisteria"
NO_TARGET_ENV = {"MEMSVC_URL": None, "MEMSVC_API_KEY": None, "MEMSVC_OPERATOR_TOKEN": None}
runner = CliRunner()


@dataclass
class Server:
    url: str
    key: str
    mem: Memory


def _serve(
    embedder: SentenceTransformerEmbedder,
    tmp_path_factory: pytest.TempPathFactory,
    wrap: Callable[[Any], Any] = lambda app: app,
    **settings: object,
) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("served")
    mem = Memory(
        settings=Settings(home=home, maintain_seconds=0, index_memory_bytes=BUDGET, **settings),
        embedder=embedder,
    )
    try:
        _, key = mem.keys.create(TENANT)
        with app_in_thread(wrap(create_app(mem))) as url:
            with MemoryClient(url, key) as client:  # one add and one recall: a cube loaded
                client.add("Alice moved to Berlin in March.", user_id="alice")
                assert client.recall("where does alice live", user_id="alice")
            yield Server(url, key, mem)
    finally:
        mem.close()


@pytest.fixture(scope="module")
def open_server(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """No operator token: /metrics shows its tenant-free totals to anyone."""
    yield from _serve(embedder, tmp_path_factory)


def _older(inner: Any) -> Any:
    """The app as a server from before the index cache: its /metrics has no index series."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await PlainTextResponse("memsvc_cubes 1.0\n")(scope, receive, send)
        else:
            await inner(scope, receive, send)

    return app


@pytest.fixture(scope="module")
def older_server(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _serve(embedder, tmp_path_factory, wrap=_older)


@pytest.fixture(scope="module")
def guarded_server(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """MEMSVC_OPERATOR_TOKEN set: /metrics answers 401 to anyone else."""
    yield from _serve(embedder, tmp_path_factory, operator_token=OPERATOR)


def test_the_client_reads_the_workers_index_cache(open_server: Server) -> None:
    with MemoryClient(open_server.url, open_server.key) as client:
        cache = client.index_cache()
    assert cache.cubes >= 1 and cache.misses >= 1 and cache.bytes > 0
    assert cache.budget_bytes == BUDGET
    assert cache.load_seconds >= 0
    # the server's own process: the figures are its Memory's (the test's, on a thread)
    now = open_server.mem.index_cache()
    assert (cache.cubes, cache.bytes, cache.budget_bytes) == (now.cubes, now.bytes, BUDGET)


def test_the_async_client_reads_the_same(open_server: Server) -> None:
    async def scenario() -> None:
        async with AsyncMemoryClient(open_server.url, open_server.key) as client:
            cache = await client.index_cache()
        assert cache.cubes >= 1 and cache.misses >= 1 and cache.bytes > 0
        assert cache.budget_bytes == BUDGET

    asyncio.run(scenario())


def test_info_url_prints_the_cache_line(open_server: Server) -> None:
    target = ["--url", open_server.url, "--api-key", open_server.key]
    res = runner.invoke(app, ["info", *target], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    assert f"server: {open_server.url}" in res.stdout
    assert "index cache: " in res.stdout and "of 48.0 MiB" in res.stdout
    assert "user:alice" in res.stdout
    res = runner.invoke(app, ["info", *target, "--json"], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    cache = data["index_cache"]
    assert cache["budget_bytes"] == BUDGET and cache["cubes"] >= 1 and cache["misses"] >= 1
    assert [c["name"] for c in data["cubes"]] == ["user:alice"]


def test_a_guarded_metrics_needs_the_operator_token(guarded_server: Server) -> None:
    with MemoryClient(guarded_server.url, guarded_server.key) as client:
        with pytest.raises(AuthError, match="needs its operator token") as info:
            client.index_cache()
        assert "operator_token=" in str(info.value)
        with pytest.raises(AuthError, match="refused the operator token given"):
            client.index_cache(operator_token="not-it")
        cache = client.index_cache(operator_token=OPERATOR)
        assert cache.cubes >= 1 and cache.misses >= 1 and cache.bytes > 0
        assert cache.budget_bytes == BUDGET
        # the token went with that call only: the API key still serves the tenant's calls
        assert [c.name for c in client.list_cubes()] == ["user:alice"]

    async def scenario() -> None:
        async with AsyncMemoryClient(guarded_server.url, guarded_server.key) as client:
            with pytest.raises(AuthError, match="needs its operator token"):
                await client.index_cache()
            assert (await client.index_cache(operator_token=OPERATOR)).budget_bytes == BUDGET

    asyncio.run(scenario())


def test_info_url_without_the_token_prints_the_rest_and_a_note(guarded_server: Server) -> None:
    target = ["--url", guarded_server.url, "--api-key", guarded_server.key]
    res = runner.invoke(app, ["info", *target], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    assert "user:alice" in res.stdout
    assert "index cache: not shown" in res.stdout and "--operator-token" in res.stdout
    res = runner.invoke(app, ["info", *target, "--json"], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["index_cache"] is None and [c["name"] for c in data["cubes"]] == ["user:alice"]
    # the token, as an option or from the environment, shows the figures
    res = runner.invoke(app, ["info", *target, "--operator-token", OPERATOR], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    assert "index cache: " in res.stdout and "of 48.0 MiB" in res.stdout
    env = {**NO_TARGET_ENV, "MEMSVC_OPERATOR_TOKEN": OPERATOR}
    res = runner.invoke(app, ["info", *target, "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["index_cache"]["budget_bytes"] == BUDGET


def test_index_cache_is_on_every_sdk_and_shown_by_info_not_a_command() -> None:
    want = inspect.signature(Memory.index_cache).parameters
    for cls in (MemoryClient, AsyncMemoryClient):
        got = inspect.signature(cls.index_cache).parameters
        assert list(got) == [*want, "operator_token"], cls.__name__
        assert got["operator_token"].kind is inspect.Parameter.KEYWORD_ONLY
        assert got["operator_token"].default is None
    assert inspect.iscoroutinefunction(AsyncMemoryClient.index_cache)
    assert "index_cache" in NOT_COMMANDS
    assert "index-cache" not in {c.name for c in app.registered_commands}
    info = next(c for c in app.registered_commands if c.name == "info")
    assert "operator_token" in inspect.signature(info.callback).parameters


def test_info_url_against_an_older_server_prints_the_rest_and_why(older_server: Server) -> None:
    """A /metrics without the index series is an error to the client (never an empty cache),
    and `info` still shows the tenant's cubes, saying why the cache line is missing."""
    with (
        MemoryClient(older_server.url, older_server.key) as client,
        pytest.raises(MemsvcError, match="no memsvc_index_memory_bytes"),
    ):
        client.index_cache()
    target = ["--url", older_server.url, "--api-key", older_server.key]
    res = runner.invoke(app, ["info", *target], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    assert "user:alice" in res.stdout
    assert "index cache: not shown (the server's /metrics has no" in res.stdout
    res = runner.invoke(app, ["info", *target, "--json"], env=NO_TARGET_ENV)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["index_cache"] is None and [c["name"] for c in data["cubes"]] == ["user:alice"]
