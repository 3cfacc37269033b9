"""Agent integrations driven by clients memsvc did not write: the `mcp` package's own client
over stdio (`memsvc mcp`) and over streamable HTTP (`/mcp` of a real `memsvc serve`), and
mem0's own `MemoryClient` against the `/mem0` surface of a real server."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import Served

# Before mem0 is imported: it would phone home, and it writes its config under ~/.mem0.
os.environ["MEM0_TELEMETRY"] = "false"
os.environ.setdefault("MEM0_DIR", tempfile.mkdtemp(prefix="mem0-"))

TOOLS = {
    "add_memory",
    "recall",
    "get_memory",
    "update_memory",
    "delete_memory",
    "memory_history",
    "list_cubes",
}


def _data(result: Any) -> Any:
    """A tool's structured result (lists come wrapped as {"result": [...]})."""
    assert not result.is_error, result.content[0].text
    content = result.structured_content or {}
    return content["result"] if set(content) == {"result"} else content


async def _round_trip(client: Client, user: str) -> None:
    """The same conversation over either transport: every tool, and the ways to misuse them."""
    listed = await client.list_tools()
    assert {t.name for t in listed.tools} == TOOLS
    for tool in listed.tools:  # written for a model to read
        assert tool.description and len(tool.description) > 30
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    recall = next(t for t in listed.tools if t.name == "recall")
    assert set(recall.input_schema["required"]) == {"query", "user_id"}

    added = _data(
        await client.call_tool(
            "add_memory", {"user_id": user, "text": "Alice is allergic to peanuts."}
        )
    )
    assert len(added) == 1 and set(added[0]) == {"id", "content", "time"}
    mid = added[0]["id"]
    _data(
        await client.call_tool(
            "add_memory",
            {
                "user_id": user,
                "messages": [
                    {"role": "user", "content": "I adopted a greyhound called Biscuit."},
                    {"role": "assistant", "content": "Congratulations on Biscuit!"},
                ],
                "session_id": "s1",
            },
        )
    )
    hits = _data(await client.call_tool("recall", {"user_id": user, "query": "food allergy"}))
    assert hits[0]["id"] == mid and set(hits[0]) == {"id", "content", "time", "score"}
    hits = _data(
        await client.call_tool(
            "recall",
            {"user_id": user, "query": "dog", "k": 1, "filters": {"session_id": "s1"}},
        )
    )
    assert len(hits) == 1 and "Biscuit" in hits[0]["content"]

    got = _data(await client.call_tool("get_memory", {"id": mid}))
    assert got["content"] == "Alice is allergic to peanuts." and got["user_id"] == user
    _data(
        await client.call_tool(
            "update_memory", {"id": mid, "text": "Alice is allergic to peanuts and cashews."}
        )
    )
    history = _data(await client.call_tool("memory_history", {"id": mid}))
    assert [h["change"] for h in history] == ["create", "update"]
    assert history[-1]["content"].endswith("cashews.")
    cubes = _data(await client.call_tool("list_cubes", {}))
    assert {"name": f"user:{user}", "records": 3, "access": "owner"} in cubes
    _data(await client.call_tool("delete_memory", {"id": mid}))
    hits = _data(await client.call_tool("recall", {"user_id": user, "query": "peanuts"}))
    assert mid not in {h["id"] for h in hits}

    # misuse is a tool error the model can read, never a crash: the session goes on
    bad = await client.call_tool("recall", {"query": "peanuts"})  # no user_id
    assert bad.is_error and "user_id" in bad.content[0].text
    bad = await client.call_tool("recall", {"user_id": user, "query": "x", "k": 0})
    assert bad.is_error and "k" in bad.content[0].text
    bad = await client.call_tool("get_memory", {"id": "no-such-id"})
    assert bad.is_error and "not_found" in bad.content[0].text
    bad = await client.call_tool("add_memory", {"user_id": user})  # neither text nor messages
    assert bad.is_error and "text" in bad.content[0].text
    bad = await client.call_tool("update_memory", {"id": mid})
    assert bad.is_error
    bad = await client.call_tool("recall", {"user_id": user, "query": "x", "recipe": "nope"})
    assert bad.is_error and "recipe" in bad.content[0].text
    assert _data(await client.call_tool("list_cubes", {}))


def test_mcp_over_stdio_with_the_mcp_client(tmp_path: Path) -> None:
    env = {**os.environ, "MEMSVC_HOME": str(tmp_path / "data")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memsvc.cli", "mcp", "--tenant", "acme"], env=env
    )

    async def run() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            await _round_trip(client, "alice")

    asyncio.run(run())


def _http_client(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = streamable_http_client(
        f"{url}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=60)
    )
    return Client(transport)


def test_mcp_over_http_behind_api_keys(served: Served) -> None:
    user = f"mcp-{uuid.uuid4().hex[:6]}"

    async def run() -> None:
        async with _http_client(served.url, served.keys["acme"]) as client:
            await _round_trip(client, user)
            kept = _data(
                await client.call_tool("add_memory", {"user_id": user, "text": "Acme secret: X-7"})
            )
        # another tenant's key sees none of it
        async with _http_client(served.url, served.keys["globex"]) as other:
            hits = _data(await other.call_tool("recall", {"user_id": user, "query": "secret"}))
            assert hits == []
            bad = await other.call_tool("get_memory", {"id": kept[0]["id"]})
            assert bad.is_error and "not_found" in bad.content[0].text

    asyncio.run(run())
    # no key, a wrong key: refused before MCP sees the request
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"Authorization": "Bearer msk_000000000000_" + "x" * 40}):
        r = httpx.post(f"{served.url}/mcp", json=init, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_mem0_client_round_trip_filters_and_tenant_isolation(served: Served) -> None:
    from mem0 import MemoryClient
    from mem0.exceptions import MemoryNotFoundError

    host = f"{served.url}/mem0"
    client = MemoryClient(host=host, api_key=served.keys["acme"])
    assert client.org_id == "acme" and client.project_id == "memsvc"
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"

    added = client.add(
        [
            {"role": "user", "content": "I'm vegetarian and I love hiking in the Alps."},
            {"role": "assistant", "content": "Noted: vegetarian, hiking in the Alps."},
        ],
        user_id=alice,
        metadata={"source": "chat"},
    )
    assert [r["event"] for r in added["results"]] == ["ADD", "ADD"]
    client.add("My favourite food is sushi.", user_id=bob, agent_id="helper")

    found = client.search("What does she eat?", filters={"user_id": alice}, top_k=5)
    assert found["results"] and all(r["user_id"] == alice for r in found["results"])
    top = found["results"][0]
    assert "vegetarian" in top["memory"] and isinstance(top["score"], float)
    assert top["metadata"] == {"source": "chat"}
    assert set(top) >= {"id", "memory", "user_id", "agent_id", "metadata", "created_at"}
    # filters by user: bob's memory is not alice's
    assert all("sushi" not in r["memory"] for r in found["results"])
    only_bob = client.search("food", filters={"AND": [{"user_id": bob}, {"agent_id": "helper"}]})
    assert [r["memory"] for r in only_bob["results"]] == ["My favourite food is sushi."]

    mine = next(r for r in found["results"] if r["memory"].startswith("I'm vegetarian"))
    mid = mine["id"]
    got = client.get(mid)
    assert got["id"] == mid and got["memory"] == mine["memory"] and got["user_id"] == alice
    client.update(mid, text="I'm vegan and I love hiking in the Alps.")
    assert client.get(mid)["memory"].startswith("I'm vegan")
    history = client.history(mid)
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert history[1]["old_memory"].startswith("I'm vegetarian")
    assert history[1]["new_memory"].startswith("I'm vegan")

    listing = client.get_all(filters={"user_id": alice})
    assert listing["count"] == 2 and len(listing["results"]) == 2
    assert client.get_all(filters={"user_id": alice}, page=2, page_size=1)["count"] == 2

    # another tenant through the same surface sees nothing of acme's
    other = MemoryClient(host=host, api_key=served.keys["globex"])
    assert other.org_id == "globex"
    assert other.search("vegan", filters={"user_id": alice})["results"] == []
    with pytest.raises(MemoryNotFoundError):
        other.get(mid)
    with pytest.raises(MemoryNotFoundError):
        other.delete(mid)

    client.delete(mid)
    with pytest.raises(MemoryNotFoundError):
        client.get(mid)
    assert [h["event"] for h in client.history(mid)][-1] == "DELETE"
    client.delete_all(user_id=alice)
    assert client.get_all(filters={"user_id": alice})["count"] == 0
    assert client.get_all(filters={"user_id": bob})["count"] == 1  # untouched


def test_mem0_surface_errors_are_clear(served: Served) -> None:
    from mem0 import MemoryClient
    from mem0.exceptions import ValidationError

    with pytest.raises(ValueError, match=r"API key|Token|invalid|key"):
        MemoryClient(host=f"{served.url}/mem0", api_key="not-a-key")
    client = MemoryClient(host=f"{served.url}/mem0", api_key=served.keys["acme"])
    with pytest.raises(ValidationError, match="user_id"):
        client.add("no scope at all")
    with pytest.raises(ValidationError, match="unsupported filter"):
        client.search("x", filters={"OR": [{"user_id": "a"}, {"user_id": "b"}]})
    # an agent-only scope is its own, and reads back without a user
    # (any id will do: this one could not be a cube name)
    added = client.add("Deploys go out on Tuesdays.", agent_id=f"ops team/{uuid.uuid4().hex[:6]}")
    rec = added["results"][0]
    assert rec["user_id"] is None and rec["agent_id"].startswith("ops team/")
    hits = client.search("when are deploys", filters={"agent_id": rec["agent_id"]})["results"]
    assert hits[0]["id"] == rec["id"] and hits[0]["user_id"] is None
