"""Each CLI command, invoked as a user would, then checked through the SDK."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc import Memory, SentenceTransformerEmbedder
from memsvc.cli import app, common

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_model(monkeypatch: pytest.MonkeyPatch, embedder: SentenceTransformerEmbedder) -> None:
    """The CLI's embedded `Memory` uses the session's loaded model: one load, not one per
    command (what a command does with it is unchanged)."""
    monkeypatch.setattr(common, "Memory", functools.partial(Memory, embedder=embedder))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMSVC_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.sqlite_only
def test_add_recall_get_delete(home: Path, open_memory) -> None:
    out = json.loads(
        run(
            "add",
            "Alice moved to Berlin",
            "--user",
            "alice",
            "--tag",
            "home",
            "--metadata",
            '{"src": "cli"}',
            "--json",
        )
    )
    rid = out[0]["id"]
    run("add", "Bob likes sushi", "--user", "alice")
    hits = json.loads(run("recall", "where does alice live", "--user", "alice", "--json"))
    assert hits[0]["record"]["id"] == rid and "dense" in hits[0]["explain"]
    assert "Berlin" in run("recall", "where does alice live", "-u", "alice")
    fast = json.loads(
        run("recall", "where does alice live", "-u", "alice", "--recipe", "fast", "--json")
    )
    assert fast[0]["record"]["id"] == rid and set(fast[0]["explain"]) == {"dense"}
    assert json.loads(run("get", rid))["metadata"] == {"src": "cli"}
    run("delete", rid)
    assert json.loads(run("get", rid, "--history"))[-1]["change"] == "delete"
    mem = open_memory(home)
    assert mem.get(rid).status == "deleted"
    assert [r.content for r in mem.list(user_id="alice").items] == ["Bob likes sushi"]


@pytest.mark.sqlite_only
def test_bulk_file_messages_list_and_info(home: Path, tmp_path: Path, open_memory) -> None:
    lines = tmp_path / "notes.txt"
    lines.write_text("\n".join(f"note {i}" for i in range(7)) + "\n\n")
    run("add", "--file", str(lines), "--user", "u", "--batch", "3")
    msgs = tmp_path / "chat.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "hi", "name": "Ann"}]))
    run("add", "--messages", str(msgs), "--user", "u", "--session", "s1")
    page = json.loads(run("list", "--user", "u", "--limit", "5", "--json"))
    assert len(page["items"]) == 5 and page["next_cursor"]
    rest = json.loads(run("list", "--user", "u", "--cursor", page["next_cursor"], "--json"))
    assert [r["content"] for r in rest["items"]] == ["note 5", "note 6", "hi"]
    info = json.loads(run("info", "--json"))
    assert info["cubes"][0]["records"] == 8 and info["cubes"][0]["index"]["vectors"] == 8
    assert open_memory(home).list(user_id="u").items[-1].source["speaker"] == "Ann"


@pytest.mark.sqlite_only
def test_export_import(home: Path, tmp_path: Path, open_memory) -> None:
    run("add", "exported memory", "--user", "u")
    path = tmp_path / "u.memcube"
    assert "exported 1 records" in run("export", "user:u", str(path))
    other = tmp_path / "other"
    out = run("import", str(path), "--cube", "restored", "--data-dir", str(other))
    assert "imported cube 'restored' (1 records)" in out
    assert open_memory(other).recall("exported", user_id="x", cube="restored")


def test_errors_are_one_line_and_exit_nonzero(home: Path) -> None:
    result = runner.invoke(app, ["get", "no-such-id"])
    assert result.exit_code == 1 and "record no-such-id not found" in result.output
    result = runner.invoke(app, ["add", "   ", "--user", "u"])
    assert result.exit_code == 1 and "text is empty" in result.output
    result = runner.invoke(app, ["add", "--user", "u"])
    assert result.exit_code == 2
    assert runner.invoke(app, ["recall", "x", "-u", "u", "-k", "0"]).exit_code == 1
    bad = runner.invoke(app, ["recall", "x", "-u", "u", "--recipe", "dense=1+psychic=1"])
    assert bad.exit_code == 1 and "unknown channel psychic" in bad.output


def test_every_command_has_help_with_an_example() -> None:
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert set(names) >= {
        "serve",
        "add",
        "recall",
        "list",
        "get",
        "delete",
        "export",
        "import",
        "info",
    }
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, name
