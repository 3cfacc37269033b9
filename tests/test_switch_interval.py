"""A served worker's interpreter switch interval: short while it serves, restored after, and
left alone by an app that embeds a caller's Memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from memsvc import Memory, Settings
from memsvc.api.app import create_app


def test_a_served_worker_switches_threads_sooner_and_restores_the_interval(
    tmp_path: Path,
) -> None:
    before = sys.getswitchinterval()
    app = create_app(settings=Settings(home=tmp_path, switch_interval_ms=0.5))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == before


def test_an_app_over_a_callers_memory_keeps_the_callers_interval(mem: Memory) -> None:
    before = sys.getswitchinterval()
    with TestClient(create_app(mem)) as client:
        assert client.get("/healthz").status_code == 200
        assert sys.getswitchinterval() == before


@pytest.mark.parametrize("ms", [0.0, -1.0, 1000.0])
def test_an_interval_out_of_range_is_refused(tmp_path: Path, ms: float) -> None:
    with pytest.raises(ValidationError, match="switch_interval_ms"):
        Settings(home=tmp_path, switch_interval_ms=ms)
