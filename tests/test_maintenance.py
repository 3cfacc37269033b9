"""Maintenance on demand and on a schedule: REST, both clients, the CLI, /metrics, and a
real `memsvc serve` whose background scheduler runs by itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from memsvc import AsyncMemoryClient, MemoryClient, RecordNotFound
from memsvc.cli import app
from memsvc.maintenance import Scheduler
from tests.conftest import Served, serving

runner = CliRunner()


def test_scheduler_runs_on_interval_and_survives_a_failing_job() -> None:
    ran = threading.Event()
    calls = []

    def job() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first tick fails")
        ran.set()

    sched = Scheduler(job, 0.05).start()
    assert ran.wait(5)
    sched.stop()
    assert sched.failures == 1 and sched.runs >= 1


def test_maintain_all_over_http_reaches_cubes_whose_names_hold_a_slash(served: Served) -> None:
    """A default cube is named after its user id, which may contain '/': a path segment
    cannot carry that name, so the clients address every cube by id when they run all."""
    with MemoryClient(served.url, served.keys["globex"]) as client:
        client.add("The team/alpha standup is at nine.", user_id="team/alpha")
        assert "user:team/alpha" in {r.cube for r in client.maintain()}
        assert "user:team/alpha" in {r.cube for r in client.maintenance_runs()}

    async def run() -> None:
        async with AsyncMemoryClient(served.url, served.keys["globex"]) as aclient:
            assert "user:team/alpha" in {r.cube for r in await aclient.maintenance_runs()}

    asyncio.run(run())


def test_maintain_restore_lineage_and_metrics_over_http(served: Served) -> None:
    key = served.keys["acme"]
    with MemoryClient(served.url, key) as client:
        a = client.add("I live in Oslo.", user_id="mx", timestamp="2024-01-01T00:00:00Z")[0]
        b = client.add("I moved to Bergen.", user_id="mx", timestamp="2024-06-01T00:00:00Z")[0]
        client.add("Water the plants on Fridays.", user_id="mx", pinned=True)
        assert [r.id for r in client.lineage(a.id)] == [a.id, b.id]
        assert client.get(a.id).valid_to == b.valid_from
        run = client.maintain("user:mx")[0]
        assert run.counts["topics_rebuilt"] == 1 and run.counts["placed"] == 3
        again = client.maintain("user:mx")[0]
        assert again.counts["placed"] == 0 and again.counts["topics_rebuilt"] == 0
        assert client.maintenance_runs("user:mx")[0].counts == again.counts
        assert any(r.cube == "user:mx" for r in client.maintenance_runs())
        assert client.list(user_id="mx").items[-1].pinned
        client.delete(b.id)
        assert client.restore(b.id).status == "active"
        with pytest.raises(RecordNotFound):
            client.restore("no-such-record")
        page = client.graph("user:mx", types="part_of")
        assert {n.kind for n in page.nodes} == {"record", "topic"}
    # A tenant's key sees only totals over all tenants; the per-cube maintenance series are
    # the operator's (tests/test_hostile_api.py::test_operator_token_guards_per_cube_figures).
    metrics = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    assert "memsvc_maintenance_runs_finished " in metrics
    assert "memsvc_maintenance_runs{" not in metrics and "user:mx" not in metrics


def test_async_client_maintains(served: Served) -> None:
    async def scenario() -> None:
        async with AsyncMemoryClient(served.url, served.keys["globex"]) as client:
            await client.add("I work at Initech.", user_id="amx")
            runs = await client.maintain()
            assert "user:amx" in [r.cube for r in runs]
            done = {r.cube: r for r in await client.maintenance_runs()}
            assert done["user:amx"].counts == next(r for r in runs if r.cube == "user:amx").counts

    asyncio.run(scenario())


def test_serve_runs_maintenance_in_the_background(tmp_path: Path) -> None:
    home = tmp_path / "bg"
    env = {
        **os.environ,
        "MEMSVC_HOME": str(home),
        "MEMSVC_MAINTAIN_SECONDS": "1",
        "MEMSVC_AUTH": "false",
    }
    with serving(env, "--no-auth") as url, MemoryClient(url) as client:
        client.add(["Tea with lemon.", "Coffee, black.", "Cocoa at night."], user_id="bg")
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline:
            runs = client.maintenance_runs("user:bg")
            if any(r.finished_at and r.counts.get("placed") for r in runs):
                break  # a scheduled run has placed them (a cube is maintained again only
                # when due, so no second run need follow)
            time.sleep(0.5)
        assert runs and all(r.trigger == "scheduled" for r in runs)
        assert sum(r.counts.get("placed", 0) for r in runs) == 3
        tree = client.graph("user:bg", types="part_of")
        assert sum(e.source.startswith("record:") for e in tree.edges) == 3


def test_cli_maintain_graph_info_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSVC_HOME", str(tmp_path / "data"))
    out = json.loads(
        runner.invoke(
            app, ["add", "I live in Lima.", "--user", "cl", "--json"], catch_exceptions=False
        ).stdout
    )
    rid = out[0]["id"]
    runner.invoke(app, ["add", "Lima has great ceviche.", "--user", "cl"])
    res = runner.invoke(app, ["maintain", "user:cl", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["counts"]["placed"] == 2
    res = runner.invoke(app, ["maintain"])
    assert res.exit_code == 0 and "nothing to do" in res.stdout
    page = tmp_path / "g.html"
    res = runner.invoke(app, ["graph", "user:cl", "--out", str(page)])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    # offline: nothing is loaded from elsewhere (the inlined library's licence comments name
    # web addresses; tests/test_graph_page.py checks in a browser that no request leaves)
    assert html.startswith("<!doctype html>")
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", html
    )
    assert "default-src 'none'" in html  # and the page's own policy forbids any fetch
    data = html.split('type="application/json">', 1)[1].split("</script>", 1)[0]
    nodes = json.loads(data)["nodes"]
    assert {n["kind"] for n in nodes} >= {"record", "topic"}
    info = json.loads(runner.invoke(app, ["info", "--json"]).stdout)
    assert info["cubes"][0]["last_maintenance"]["trigger"] == "manual"
    runner.invoke(app, ["delete", rid])
    res = runner.invoke(app, ["restore", rid])
    assert res.exit_code == 0 and "restored" in res.stdout


def test_maintain_unknown_cube_is_404(served: Served) -> None:
    r = httpx.post(
        f"{served.url}/v1/cubes/nope/maintain",
        headers={"Authorization": f"Bearer {served.keys['acme']}"},
    )
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
