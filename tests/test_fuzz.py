"""Schemathesis against the OpenAPI schema of a live `memsvc serve`: generated requests
(boundary values, random bodies, stateful sequences through the links it finds) must never
get a server error. The LM-bound tier routes are left out: a random `consolidate` may ask
for thousands of training steps (their input checks are tested in tests/test_tiers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Served


def test_schemathesis_finds_no_server_error(served: Served) -> None:
    st = Path(sys.executable).parent / "st"
    done = subprocess.run(
        [
            str(st),
            "run",
            f"{served.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {served.keys['acme']}",
            "--max-examples",
            "15",
            "--checks",
            "not_a_server_error",
            "--phases",
            "coverage,fuzzing,stateful",
            "--exclude-path-regex",
            "generate|promote|demote|consolidate|import",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "passed" in done.stdout
