"""End to end through a real `memsvc serve` process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    home = tmp_path_factory.mktemp("served")
    env = {**os.environ, "MEMSVC_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode() if proc.stdout else ""
            proc.kill()
            pytest.fail(f"server did not start:\n{out}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    assert Path(home, "memsvc.db").exists()


def test_add_search_get_delete_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.post(
            "/v1/memories",
            json={
                "text": [
                    "The boiler is serviced every October.",
                    "Grandma's birthday is on June 2nd.",
                ],
                "user_id": "alice",
                "tags": ["home"],
            },
        )
        assert r.status_code == 201
        recs = r.json()
        assert recs[0]["content"].startswith("The boiler")
        r = http.post(
            "/v1/memories/search",
            json={"query": "when is the heating checked", "user_id": "alice", "k": 1},
        )
        assert r.status_code == 200
        hit = r.json()[0]
        assert hit["record"]["id"] == recs[0]["id"] and hit["explain"]["dense"]["rank"] == 1
        assert http.get(f"/v1/memories/{recs[1]['id']}").json()["tags"] == ["home"]
        assert http.delete(f"/v1/memories/{recs[1]['id']}").status_code == 204
        assert http.get(f"/v1/memories/{recs[1]['id']}").json()["status"] == "deleted"
        assert http.delete(f"/v1/memories/{recs[1]['id']}?hard=true").status_code == 204
        assert http.get("/healthz").json()["status"] == "ok"


def test_client_errors_are_4xx_json(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.get("/v1/memories/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "record_not_found"
        r = http.post("/v1/memories", json={"text": "  ", "user_id": "u"})
        assert r.status_code == 422 and "text is empty" in r.json()["error"]["message"]
        r = http.post("/v1/memories", json={"text": "x", "user_id": "u", "colour": "red"})
        assert (
            r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "colour"
        )
        r = http.post("/v1/memories/search", json={"query": "x", "user_id": "u", "k": 0})
        assert r.status_code == 422 and "k must be between" in r.json()["error"]["message"]
        r = http.post(
            "/v1/memories", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
        r = http.post("/v1/memories", json={"text": "x", "user_id": "u", "cube": "missing"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "cube_not_found"
