"""Leases and shared token buckets on both backends, and what they are for: with several
workers on one database only one runs the scheduled maintenance, and a key's rate holds
across all of them (two real servers on one PostgreSQL)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memsvc.evals.pg_cluster import PgCluster
from memsvc.maintenance import Lease, Scheduler
from memsvc.ratelimit import SharedRateLimiter
from memsvc.store.coordination import acquire_lease, release_lease, take_token
from memsvc.store.database import Database
from tests.conftest import run_cli, serving


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'memsvc.db'}"
    else:
        url = request.getfixturevalue("pg").new_database()
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def test_a_lease_has_one_holder_until_it_lapses_or_is_released(db: Database) -> None:
    assert acquire_lease(db, "maintenance", "a", ttl=10, now=100.0)
    assert not acquire_lease(db, "maintenance", "b", ttl=10, now=105.0)
    assert acquire_lease(db, "maintenance", "a", ttl=10, now=108.0)  # renewed to 118
    assert not acquire_lease(db, "maintenance", "b", ttl=10, now=115.0)
    assert acquire_lease(db, "maintenance", "b", ttl=10, now=118.5)  # a lapsed
    release_lease(db, "maintenance", "a")  # not a's to release any more
    assert not acquire_lease(db, "maintenance", "a", ttl=10, now=119.0)
    release_lease(db, "maintenance", "b")
    assert acquire_lease(db, "maintenance", "a", ttl=10, now=119.0)
    assert acquire_lease(db, "other", "b", ttl=10, now=119.0)  # names are independent


def test_concurrent_acquirers_get_exactly_one_lease(db: Database) -> None:
    won: list[str] = []
    barrier = threading.Barrier(8)

    def race(holder: str) -> None:
        barrier.wait()
        if acquire_lease(db, "race", holder, ttl=60, now=time.time()):
            won.append(holder)

    threads = [threading.Thread(target=race, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_token_bucket_grants_the_burst_then_refills_at_the_rate(db: Database) -> None:
    waits = [take_token(db, "k1", rate=2.0, burst=3, now=50.0) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.5)  # empty: one token in 1/rate
    assert take_token(db, "k1", rate=2.0, burst=3, now=50.25) == pytest.approx(0.25)
    assert take_token(db, "k1", rate=2.0, burst=3, now=50.5) == 0.0
    assert take_token(db, "k2", rate=2.0, burst=3, now=50.5) == 0.0  # its own bucket
    # a long pause refills only up to the burst
    assert [take_token(db, "k1", 2.0, 3, now=1000.0) for _ in range(4)].count(0.0) == 3
    # a clock behind the stored one never drains the bucket
    assert take_token(db, "k3", 2.0, 3, now=10.0) == 0.0
    assert take_token(db, "k3", 2.0, 3, now=9.0) == 0.0


def test_concurrent_takes_never_exceed_the_burst(db: Database) -> None:
    limiter = SharedRateLimiter(db, per_second=0.001, burst=5)
    granted: list[float] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        for _ in range(3):
            granted.append(limiter.take("shared-key"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(0.0) == 5 and len(granted) == 24


def test_only_the_lease_holder_runs_the_scheduled_job_and_another_takes_over(
    db: Database,
) -> None:
    runs = {"a": 0, "b": 0}

    def job(name: str) -> None:
        runs[name] += 1

    a = Scheduler(lambda: job("a"), 0.05, lease=Lease(db, "maintenance", ttl=5)).start()
    time.sleep(0.3)
    b = Scheduler(lambda: job("b"), 0.05, lease=Lease(db, "maintenance", ttl=5)).start()
    time.sleep(0.5)
    assert runs["a"] >= 3 and runs["b"] == 0 and b.skipped >= 3
    a.stop()  # releases: b takes over at its next tick, not after the ttl
    before = runs["b"]
    deadline = time.monotonic() + 3
    while runs["b"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    b.stop()
    assert runs["b"] > before


def test_two_servers_share_one_rate_limit_through_postgresql(pg: PgCluster, tmp_path: Path) -> None:
    url = pg.new_database()
    limits = {
        "MEMSVC_DATABASE_URL": url,
        "MEMSVC_RATE_LIMIT_PER_SECOND": "0.2",
        "MEMSVC_RATE_LIMIT_BURST": "6",
        "MEMSVC_RATE_LIMIT_SHARED": "true",
    }
    envs = [{**os.environ, **limits, "MEMSVC_HOME": str(tmp_path / f"w{i}")} for i in (1, 2)]
    key = json.loads(run_cli("keys", "create", "--tenant", "acme", "--json", env=envs[0]))["key"]
    headers = {"Authorization": f"Bearer {key}"}
    with serving(envs[0]) as url1, serving(envs[1]) as url2:
        codes = [
            httpx.get(f"{u}/v1/cubes", headers=headers).status_code
            for _ in range(6)
            for u in (url1, url2)
        ]
        # 6 between them, not 6 each
        assert codes.count(200) == 6 and codes.count(429) == 6, codes
        r = httpx.get(f"{url2}/v1/cubes", headers=headers)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
