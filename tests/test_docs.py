"""The README stays true: its opening commands, every CLI command, SDK method and setting."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from memsvc import Memory, Settings
from memsvc.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_exactly_the_two_commands() -> None:
    first_block = re.search(r"```(?:sh|bash)?\n(.*?)```", README, re.S)
    assert first_block is not None
    assert first_block.group(1).split("\n")[:2] == ["make serve", "make test"]
    assert first_block.group(1).strip().splitlines() == ["make serve", "make test"]
    assert README.index(first_block.group(0)) < README.index("##")


def test_every_cli_command_is_documented() -> None:
    for cmd in app.registered_commands:
        name = cmd.name or cmd.callback.__name__
        assert f"`memsvc {name}`" in README, name
    for group in app.registered_groups:
        for cmd in group.typer_instance.registered_commands:
            assert f"`memsvc {group.name} {cmd.name}`" in README, cmd.name


def test_every_public_sdk_method_is_documented() -> None:
    public = [n for n, f in inspect.getmembers(Memory, inspect.isfunction) if not n.startswith("_")]
    assert {"add", "recall", "get", "update", "delete", "history", "list"} <= set(public)
    for name in public:
        assert f"`{name}(" in README, name


def test_every_setting_is_documented() -> None:
    for field in Settings.model_fields:
        assert f"MEMSVC_{field.upper()}" in README, field
