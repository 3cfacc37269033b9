"""Scheduled maintenance visits only the cubes that are due (memsvc/maintenance.py `is_due`):
never maintained, changed or recalled since their last run, failed last time, or idle for
`maintain_idle_seconds`. A user's `maintain_all` still maintains every cube."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memsvc import ManualClock, Memory

T0 = datetime(2024, 1, 1, tzinfo=UTC)
IDLE = 86400.0
ALL = ["user:ana", "user:ben", "user:cy"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def three(open_memory: Callable[..., Memory], clock: ManualClock) -> Memory:
    mem = open_memory(clock=clock, reinforce_flush_seconds=0, maintain_idle_seconds=IDLE)
    mem.add("Ana keeps bees on her balcony.", user_id="ana")
    mem.add("Ben repairs old radios.", user_id="ben")
    mem.add("Cy swims in the lake every morning.", user_id="cy")
    return mem


def tick(mem: Memory, clock: ManualClock) -> list[str]:
    """One scheduled tick (what `memsvc serve`'s scheduler runs), a second later."""
    clock.advance(seconds=1)
    return sorted(r.cube for r in mem._admin.maintain_all(only_due=True))


def test_a_tick_maintains_only_what_changed_was_recalled_or_idled(
    three: Memory, clock: ManualClock
) -> None:
    mem = three
    assert tick(mem, clock) == ALL  # a process's first tick: every cube
    assert tick(mem, clock) == []  # nothing happened since
    mem.add("Ana also grows tomatoes.", user_id="ana")
    assert tick(mem, clock) == ["user:ana"]
    assert tick(mem, clock) == []
    assert [h.record.content for h in mem.recall("radios", user_id="ben", k=1)] == [
        "Ben repairs old radios."
    ]
    assert tick(mem, clock) == ["user:ben"]  # a recall event since its last run
    assert tick(mem, clock) == []
    mem.add("Dee paints ships.", user_id="dee")  # a new cube: never maintained
    assert tick(mem, clock) == ["user:dee"]
    clock.advance(seconds=IDLE * 0.75 - 10)  # before every cube's idle deadline
    assert tick(mem, clock) == []
    clock.advance(seconds=IDLE * 0.25 + 10)  # past every one
    assert tick(mem, clock) == [*ALL, "user:dee"]
    assert tick(mem, clock) == []


def test_a_manual_run_counts_and_maintain_all_still_runs_every_cube(
    three: Memory, clock: ManualClock
) -> None:
    mem = three
    assert tick(mem, clock) == ALL
    mem.add("Cy dislikes cold water.", user_id="cy")
    assert [r.cube for r in mem.maintain("user:cy")] == ["user:cy"]  # caught up by hand
    assert tick(mem, clock) == []
    assert sorted(r.cube for r in mem.maintain_all()) == ALL  # a user's call: all of them


def test_a_failed_run_is_tried_again_on_the_next_tick(
    three: Memory, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = three
    assert tick(mem, clock) == ALL
    mem.add("Ben found a 1950s valve radio.", user_id="ben")
    tiers = mem._admin.engine.tiers
    real = tiers.maintain

    def fails_once(cube, *args, **kwargs):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(tiers, "maintain", real)
        raise OSError("disk full")

    monkeypatch.setattr(tiers, "maintain", fails_once)
    assert tick(mem, clock) == []  # its run failed (and says so)
    run = mem.maintenance_runs("user:ben")[0]
    assert run.error == "OSError: disk full"
    assert tick(mem, clock) == ["user:ben"]  # tried again
    assert mem.maintenance_runs("user:ben")[0].error is None
    assert tick(mem, clock) == []


def test_a_new_process_first_tick_takes_the_due_and_the_cubes_with_caches(
    open_memory: Callable[..., Memory], clock: ManualClock, tmp_path: Path
) -> None:
    """A restart does not maintain every cube again (20,000 cubes would be 20,000 runs beside
    the traffic): only the due ones and those holding KV caches or adapters, whose LM and
    tier files live outside the database and may have changed with the process."""
    home = tmp_path / "shared"
    first = open_memory(home, clock=clock, reinforce_flush_seconds=0, maintain_idle_seconds=IDLE)
    ana = first.add("Ana keeps bees on her balcony.", user_id="ana")[0]
    first.add("Ben repairs old radios.", user_id="ben")
    first.add("Cy swims in the lake every morning.", user_id="cy")
    first.promote(ana.id)  # a KV cache: user:ana now depends on the local LM
    assert tick(first, clock) == ALL
    while tick(first, clock):  # a run's own changes may make its cube due once more
        pass
    second = open_memory(home, clock=clock, reinforce_flush_seconds=0, maintain_idle_seconds=IDLE)
    second.add("Cy also rows.", user_id="cy")
    assert tick(second, clock) == ["user:ana", "user:cy"]  # not the idle, plaintext user:ben
    assert tick(first, clock) == []  # its first tick was long ago, and the second ran cy
