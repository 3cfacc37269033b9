"""The examples run as a user would run them: offline, with the real local LM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("via", ["sdk", "mcp"])
def test_chat_loop_remembers_across_turns(via: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "examples/chat_loop.py",
            *("--demo", "--via", via, "--data-dir", str(tmp_path / "data")),
            *("--max-tokens", "12"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    turns = out.split("you> ")[1:]
    assert len(turns) == 3 and all("bot> " in t for t in turns)
    assert "[memory]" not in turns[0]  # nothing to remember yet
    # the question about the roof comes with the beehives from two turns before
    assert "[memory] Hi! I'm Dana and I keep two beehives" in turns[2]
