"""The commands for every SDK method, each run both ways: on a data directory (typer's runner,
in this process) and with `--url` against a real `memsvc serve` (the session's one server),
then checked through the Python SDK (`Memory` on the directory, `MemoryClient` on the server).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memsvc import CubeNotFound, Memory, MemoryClient, SentenceTransformerEmbedder
from memsvc.cli import app, common

runner = CliRunner()
NO_TARGET_ENV = {"MEMSVC_URL": None, "MEMSVC_API_KEY": None}


@dataclass
class Cli:
    """`memsvc` aimed at one target, and the SDK handle that sees the same data."""

    target: list[str]
    sdk: Memory | MemoryClient
    remote: bool

    def __call__(self, *args: str, code: int = 0) -> str:
        res = runner.invoke(app, [*args, *self.target], env=NO_TARGET_ENV)
        assert res.exit_code == code, res.output
        return res.stdout if code == 0 else res.output

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))


@pytest.fixture
def shared_model(monkeypatch: pytest.MonkeyPatch, embedder: SentenceTransformerEmbedder) -> None:
    """The CLI's embedded `Memory` uses the session's loaded model: one load, not one per
    command (what a command does with it is unchanged)."""
    monkeypatch.setattr(common, "Memory", functools.partial(Memory, embedder=embedder))


def on_data_dir(open_memory: Callable[..., Memory], home: Path) -> Cli:
    mem = open_memory(home)
    target = ["--data-dir", str(home)]
    if mem.settings.database_url:  # the suite on PostgreSQL: the same database as `mem`
        target += ["--database-url", mem.settings.database_url]
    return Cli(target, mem, remote=False)


@pytest.fixture(params=["data-dir", "url"])
def cli(
    request: pytest.FixtureRequest, tmp_path: Path, open_memory: Callable[..., Memory]
) -> Iterator[Cli]:
    if request.param == "data-dir":
        request.getfixturevalue("shared_model")
        yield on_data_dir(open_memory, tmp_path / "data")
        return
    served = request.getfixturevalue("served")
    key = served.keys["acme"]
    with MemoryClient(served.url, key) as client:
        yield Cli(["--url", served.url, "--api-key", key], client, remote=True)


def uid() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def dumped(value: Any) -> Any:
    return [v.model_dump(mode="json") for v in value]


def test_update_history_lineage_neighbors_graph(cli: Cli) -> None:
    u = uid()
    paris = cli.json("add", "I live in Paris.", "-u", u, "--timestamp", "2024-01-01T00:00:00Z")
    berlin = cli.json(
        "add", "I moved to Berlin.", "--user-id", u, "--timestamp", "2024-02-10T00:00:00Z"
    )
    first, second = paris[0]["id"], berlin[0]["id"]

    chain = cli.json("lineage", first)
    assert [r["id"] for r in chain] == [first, second] == [r.id for r in cli.sdk.lineage(first)]
    assert "I moved to Berlin." in cli("lineage", first)

    near = cli.json("neighbors", first, "--types", "supersedes", "--depth", "2")
    assert near == dumped(cli.sdk.neighbors(first, types="supersedes", depth=2))
    assert [(n["node"]["id"], n["direction"]) for n in near] == [(f"record:{second}", "in")]
    assert "supersedes" in cli("neighbors", first)
    page = cli.json("graph", f"user:{u}", "--types", "supersedes")
    assert [e["source"] for e in page["edges"]] == [f"record:{second}"]
    assert page["edges"] == dumped(cli.sdk.graph(f"user:{u}", types="supersedes").edges)

    changed = cli.json(
        "update",
        second,
        "--text",
        "I moved to Munich.",
        "--tag",
        "home",
        "--importance",
        "0.9",
        "--metadata",
        '{"src": "cli"}',
        "--valid-from",
        "2024-02-10T00:00:00Z",
        "--pinned",
    )
    rec = cli.sdk.get(second)
    assert changed == rec.model_dump(mode="json") and rec.version == 2
    assert (rec.content, rec.tags, rec.importance, rec.metadata, rec.pinned) == (
        "I moved to Munich.",
        ["home"],
        0.9,
        {"src": "cli"},
        True,
    )
    assert "(version 3)" in cli("update", second, "--unpinned", "--kind", "fact")
    assert not cli.sdk.get(second).pinned

    versions = cli.json("history", second)
    assert [v["change"] for v in versions] == ["create", "update", "update"]
    assert versions == dumped(cli.sdk.history(second))
    assert "Munich" in cli("history", second)


def test_cube_commands_and_the_cube_file(cli: Cli, tmp_path: Path) -> None:
    name = f"t-{uuid.uuid4().hex[:6]}"
    made = cli.json(
        "create-cube",
        name,
        "--description",
        "what the team knows",
        "--owner-user-id",
        "ann",
        "--metadata",
        '{"team": 7}',
        "--search-mode",
        "exact",
    )
    cube = cli.sdk.get_cube(name)
    assert made == cube.model_dump(mode="json")
    assert (cube.description, cube.owner_user_id, cube.metadata) == (
        "what the team knows",
        "ann",
        {"team": 7},
    )
    cli("add", "The team meets on Mondays.", "-u", "ann", "--cube", name)
    assert cli.json("get-cube", name)["records"] == 1
    assert name in [c["name"] for c in cli.json("list-cubes")]
    assert name in cli("list-cubes")

    assert cli.json("share-cube", name, "globex")["shared_with"] == ["globex"]
    assert cli.sdk.get_cube(name).shared_with == ["globex"]

    path = tmp_path / "team.memcube"
    assert "exported 1 records" in cli("export-cube", name, str(path))
    assert "exported 1 records" in cli("export", name, str(tmp_path / "again.memcube"))
    assert f"deleted cube {name}" in cli("delete-cube", name)
    with pytest.raises(CubeNotFound):
        cli.sdk.get_cube(name)
    assert "not found" in cli("get-cube", name, code=1)

    back = cli.json("import-cube", str(path), "--cube", name)
    assert back["records"] == 1 and cli.sdk.get_cube(name).id == back["id"]
    hits = cli.sdk.recall("when does the team meet", user_id="ann", cube=name)
    assert hits[0].record.content == "The team meets on Mondays."


def test_maintenance_and_info(cli: Cli) -> None:
    u = uid()
    cli("add", "I live in Lima.", "-u", u)
    cli("add", "Lima has great ceviche.", "-u", u)
    assert cli.json("maintain", f"user:{u}")[0]["counts"]["placed"] == 2
    runs = cli.json("maintenance-runs", f"user:{u}")
    assert [r["trigger"] for r in runs] == ["manual"]
    assert runs == dumped(cli.sdk.maintenance_runs(f"user:{u}"))
    assert f"user:{u}" in cli("maintenance-runs", f"user:{u}")

    info = cli.json("info")
    mine = next(c for c in info["cubes"] if c["name"] == f"user:{u}")
    assert mine["records"] == 2 and mine["last_maintenance"]["trigger"] == "manual"
    if cli.remote:  # what the API reports: no files, no index state
        assert info["url"] == cli.target[1] and mine["index"] is None
        assert "server: " in cli("info")
    else:
        assert mine["index"]["vectors"] == 2 and "data_dir" in info
        assert "data dir: " in cli("info")


def test_tier_commands_reach_the_target_without_the_lm(cli: Cli) -> None:
    """The tier commands go to the same target (the LM itself is tested in test_tiers)."""
    rid = cli.json("add", "Alice's dog is called Rufus.", "-u", uid())[0]["id"]
    assert "removed 0 tier records" in cli("demote", rid)
    assert "tier" in cli("promote", rid, "--tier", "lukewarm", code=1)
    assert "error" in cli("generate", "dog?", "-u", "x", "-k", "99", code=1)
    assert "error" in cli("consolidate", "--user", uid(), code=1)


def test_errors_are_one_line_from_both_targets(cli: Cli) -> None:
    assert "record no-such-id not found" in cli("get", "no-such-id", code=1)
    assert "not found" in cli("history", "no-such-id", code=1)
    assert "not found" in cli("update", "no-such-id", "--text", "x", code=1)
    assert "error:" in cli("recall", "x", "-u", "u", "-k", "0", code=1)
    assert "not JSON" in cli("update", "no-such-id", "--metadata", "{", code=2)


EMBEDDED_ONLY = [
    ["keys", "create", "--tenant", "t"],
    ["keys", "list"],
    ["keys", "revoke", "k"],
    ["maintain-all"],
    ["index-info", "user:u"],
    ["rebuild-index", "user:u"],
    ["cube-stats"],
    ["load-indexes"],
]


@pytest.mark.parametrize("args", EMBEDDED_ONLY, ids=lambda a: " ".join(a[:2]))
def test_data_directory_commands_refuse_url(args: list[str]) -> None:
    res = runner.invoke(app, [*args, "--url", "http://127.0.0.1:9"], env=NO_TARGET_ENV)
    assert res.exit_code == 2 and "needs a data directory" in res.output
    assert f"memsvc {' '.join(args[:2] if args[0] == 'keys' else args[:1])}" in res.output


def test_data_directory_commands(
    open_memory: Callable[..., Memory], tmp_path: Path, shared_model: None
) -> None:
    cli = on_data_dir(open_memory, tmp_path / "data")
    cli("add", "Ops are boring, which is good.", "-u", "ops")
    assert cli.json("index-info", "user:ops")["vectors"] == 1
    assert cli.json("rebuild-index", "user:ops")["vectors"] == 1
    stats = cli.json("cube-stats")
    assert stats[0]["records"] == {"active": 1} and stats[0]["tenant"] == "local"
    assert "loaded 1 indexes" in cli("load-indexes")
    assert [r["cube"] for r in cli.json("maintain-all")] == ["user:ops"]
    assert cli.sdk.maintenance_runs("user:ops")[0].trigger == "scheduled"
    # MEMSVC_URL in the environment does not move these commands off the data directory,
    # and a data directory typed on the command line wins over it for the others too
    env = {"MEMSVC_URL": "http://127.0.0.1:9"}
    res = runner.invoke(app, ["keys", "list", "--json", *cli.target], env=env)
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    res = runner.invoke(app, ["list", "-u", "ops", "--json", *cli.target], env=env)
    assert res.exit_code == 0 and len(json.loads(res.stdout)["items"]) == 1


def test_target_options_are_checked() -> None:
    both = ["list-cubes", "--url", "http://127.0.0.1:9", "--data-dir", "somewhere"]
    res = runner.invoke(app, both, env=NO_TARGET_ENV)
    assert res.exit_code == 2 and "not both" in res.output
    res = runner.invoke(app, ["list-cubes", "--api-key", "msk_x"], env=NO_TARGET_ENV)
    assert res.exit_code == 2 and "--api-key goes with --url" in res.output
    res = runner.invoke(app, ["list-cubes", "--url", "http://127.0.0.1:9"], env=NO_TARGET_ENV)
    assert res.exit_code == 1 and "cannot reach memsvc at http://127.0.0.1:9" in res.output


def test_info_hides_the_database_password() -> None:
    from memsvc.cli.output import redact

    url = "postgresql+psycopg://memsvc:s3cret@db.internal:5432/memsvc"
    assert redact(url) == "postgresql+psycopg://memsvc:***@db.internal:5432/memsvc"
    assert redact("sqlite:////data/memsvc.db") == "sqlite:////data/memsvc.db"


def test_every_sdk_method_has_a_command_of_its_name() -> None:
    import inspect

    from memsvc.cli import NOT_COMMANDS

    methods = {n for n, _ in inspect.getmembers(Memory, inspect.isfunction) if n[0] != "_"}
    commands = {c.name for c in app.registered_commands}
    assert {n.replace("_", "-") for n in methods - NOT_COMMANDS} <= commands
