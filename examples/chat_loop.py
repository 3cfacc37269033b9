"""A chat agent with long-term memory, fully offline: the bundled SmolLM2 answers, memsvc
remembers. The same loop runs through the Python SDK or through MCP (the agent starts
`memsvc mcp` and talks to it with the `mcp` package's client), so it shows both ways an
agent can plug in.

    python examples/chat_loop.py                  # type lines; an empty line ends
    python examples/chat_loop.py --via mcp        # the same, through the MCP tools
    python examples/chat_loop.py --demo           # a scripted conversation

Each turn: recall the few memories relevant to the line, answer with them in the prompt,
then remember the line. Memories outlive the process (default data dir ./.memsvc-chat).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from memsvc import Memory, Settings
from memsvc.lm import LocalLM

DEMO = [
    "Hi! I'm Dana and I keep two beehives on my roof in Leeds.",
    "My sister Priya moved to Lisbon last spring.",
    "What do I keep on my roof?",
]

# (query, k) -> [memory text]; (text) -> None
Recall = Callable[[str, int], Awaitable[list[str]]]
Remember = Callable[[str], Awaitable[None]]


def answer(lm: LocalLM, memories: list[str], line: str, max_tokens: int) -> str:
    """The LM's reply with the memories as context (memsvc's own prompt layout)."""
    ids = lm.preamble_ids()
    for text in memories:
        ids += lm.memory_ids(text)
    ids += lm.tail_ids(line)
    return lm.generate(ids, max_new_tokens=max_tokens).text


@asynccontextmanager
async def via_sdk(home: Path, user: str) -> AsyncIterator[tuple[Recall, Remember]]:
    with Memory(settings=Settings(home=home)) as mem:

        async def recall(query: str, k: int) -> list[str]:
            return [h.record.content for h in mem.recall(query, user_id=user, k=k)]

        async def remember(text: str) -> None:
            mem.add(messages=[{"role": "user", "content": text}], user_id=user)

        yield recall, remember


@asynccontextmanager
async def via_mcp(home: Path, user: str) -> AsyncIterator[tuple[Recall, Remember]]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memsvc.cli", "mcp"],
        env={**os.environ, "MEMSVC_HOME": str(home)},
    )
    async with Client(server, read_timeout_seconds=120) as client:

        async def call(tool: str, args: dict[str, Any]) -> Any:
            result = await client.call_tool(tool, args)
            if result.is_error:
                raise RuntimeError(result.content[0].text)
            return (result.structured_content or {}).get("result")

        async def recall(query: str, k: int) -> list[str]:
            hits = await call("recall", {"query": query, "user_id": user, "k": k})
            return [h["content"] for h in hits]

        async def remember(text: str) -> None:
            await call("add_memory", {"user_id": user, "messages": [{"content": text}]})

        yield recall, remember


def _lines(demo: bool) -> Iterable[str]:
    if demo:
        for line in DEMO:
            print(f"you> {line}")
            yield line
        return
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            return
        if not line:
            return
        yield line


async def chat(via: str, home: Path, user: str, k: int, max_tokens: int, demo: bool) -> None:
    lm = LocalLM()
    connect = via_mcp if via == "mcp" else via_sdk
    async with connect(home, user) as (recall, remember):
        for line in _lines(demo):
            memories = await recall(line, k)
            for text in memories:
                print(f"  [memory] {text}")
            print(f"bot> {answer(lm, memories, line, max_tokens)}")
            await remember(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--via", choices=["sdk", "mcp"], default="sdk")
    p.add_argument("--data-dir", type=Path, default=Path(".memsvc-chat"))
    p.add_argument("--user", default="me")
    p.add_argument("-k", type=int, default=3, help="memories recalled per turn")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--demo", action="store_true", help="play a scripted conversation")
    a = p.parse_args()
    asyncio.run(chat(a.via, a.data_dir, a.user, a.k, a.max_tokens, a.demo))


if __name__ == "__main__":
    main()
