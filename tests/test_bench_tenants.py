"""bench_tenants end to end at a tiny scale: a real `memsvc serve` on loopback over SQLite,
Zipf traffic for a few seconds, under a budget small enough to force evictions; the report's
fields hold what the run did."""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.evals.bench_tenants import main, pareto_sizes


def test_pareto_sizes_mean_and_range() -> None:
    sizes = pareto_sizes(20_000, 2_000_000, 50, 500, seed=0)
    assert min(sizes) >= 50 and max(sizes) <= 500
    assert 95 <= sum(sizes) / len(sizes) <= 105  # 2 million records, give or take
    assert sum(s > 400 for s in sizes) > 0  # a few big ones
    assert pareto_sizes(3, 30, 10, 10, seed=1) == [10, 10, 10]


def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["--cubes", "20", "--records", "300", "--min-size", "10", "--max-size", "25"]
    args += ["--backend", "sqlite", "--workers", "1", "--budget-mib", "1", "--seconds", "3"]
    args += ["--clients", "2", "--hot-reference-ms", "1000", "--cache-dir", str(tmp_path)]
    assert main([*args, "--json", str(out), "--markdown", str(md)]) == 0

    result = json.loads(out.read_text())
    assert result["cubes"] == 20 and 200 <= result["records"] <= 500
    (row,) = result["rows"]
    assert row["backend"] == "sqlite" and row["workers"] == 1 and row["budget_mib"] == 1
    assert row["errors"] == 0 and row["requests"] > 10 and row["requests_per_s"] > 0
    cold, hot, add = row["recall_cold"], row["recall_hot"], row["add"]
    assert 1 <= cold["n"] <= 20 and hot["n"] >= 1 and add["n"] >= 1
    for s in (cold, hot):
        assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]
        # the server's own time (Server-Timing) is part of what the client waited
        assert 0 < s["server_p50_ms"] <= s["server_p95_ms"] <= s["server_p99_ms"]
        assert s["server_p50_ms"] <= s["p50_ms"]
    assert 0 < add["p50_ms"] <= add["p95_ms"]
    (w,) = row["per_worker"]
    # every cold recall loaded its cube; 20 cubes of ~130 KB overflow 1 MiB: some evicted
    assert w["misses"] >= cold["n"] and w["reloads"] == w["misses"] - cold["n"] >= 0
    assert w["evictions"] > 0 and row["evictions"] == w["evictions"]
    assert 0 <= row["hit_rate"] < 1 and w["load_seconds"] >= 0
    assert w["index_mib_end"] <= 1.5  # the budget, plus at most one cube over it
    mem = w["memory"]
    assert 100 < mem["idle_mib"] <= mem["peak_mib"] and mem["steady_mib"] <= mem["peak_mib"]
    assert len(mem["series"]) >= 4  # sampled every 0.5 s over 3 s
    assert row["targets"]["no_errors"] is True
    assert row["targets"]["hot_p95_le_bench_recall"] is not None
    assert set(row["targets"]) == {
        "memory_within_budget",
        "cold_200_p95_le_50ms",
        "hot_p95_le_bench_recall",
        "no_errors",
    }
    assert row["load"] == "closed x2"
    table = md.read_text().splitlines()
    assert table[0].startswith("| backend | workers | budget MiB | load") and len(table) == 3


def test_open_loop_run_sends_at_the_set_rate(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["--cubes", "10", "--records", "150", "--min-size", "10", "--max-size", "20"]
    args += ["--backend", "sqlite", "--workers", "1", "--budget-mib", "64", "--seconds", "4"]
    args += ["--rate", "15", "--hot-reference-ms", "1000", "--cache-dir", str(tmp_path)]
    assert main([*args, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["load"] == "open 15/s" and row["errors"] == 0
    assert 30 <= row["requests"] <= 100  # ~60 Poisson arrivals in 4 s


def test_each_postgresql_run_gets_a_fresh_copy_of_the_built_data(pg) -> None:
    """bench_tenants restores the data once and copies it per run (CREATE DATABASE TEMPLATE):
    a run's writes stay out of the next run's copy, and a dropped copy is gone."""
    import psycopg

    def conn(url: str) -> psycopg.Connection:
        return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))

    template = pg.new_database()
    with conn(template) as c:
        c.execute("CREATE TABLE t (v int)")
        c.execute("INSERT INTO t VALUES (1)")
    name = template.rsplit("/", 1)[1]
    first = pg.new_database(name)
    with conn(first) as c:
        c.execute("INSERT INTO t VALUES (2)")
    second = pg.new_database(name)
    with conn(second) as c:
        assert c.execute("SELECT v FROM t").fetchall() == [(1,)]
    pg.drop_database(first)
    with conn(template) as c:
        names = {r[0] for r in c.execute("SELECT datname FROM pg_database").fetchall()}
    assert first.rsplit("/", 1)[1] not in names and second.rsplit("/", 1)[1] in names


def test_chat_days_groups_turns_into_daily_sessions_by_the_cast() -> None:
    from datetime import UTC, datetime, timedelta

    from memsvc.evals.corpus import CAST, chat_days

    start = datetime(2022, 1, 1, 9, tzinfo=UTC)
    days = chat_days([f"t{i}" for i in range(45)], start)
    assert [len(d) for d in days] == [20, 20, 5]
    assert days[1][0] == {"name": CAST[0], "content": "t20", "timestamp": start + timedelta(days=1)}
    assert days[2][4]["timestamp"] == start + timedelta(days=2, minutes=4)
    assert days[0][3]["name"] == CAST[3]
