"""End to end through a real `memsvc serve` process: raw HTTP as any client would send it."""

from __future__ import annotations

import re
import time

import httpx

from tests.conftest import Served


def _client(served: Served, tenant: str = "acme") -> httpx.Client:
    return httpx.Client(
        base_url=served.url,
        timeout=30,
        headers={"Authorization": f"Bearer {served.keys[tenant]}"},
    )


def test_add_search_get_delete_over_http(served: Served) -> None:
    with _client(served) as http:
        r = http.post(
            "/v1/memories",
            json={
                "text": [
                    "The boiler is serviced every October.",
                    "Grandma's birthday is June 2nd.",
                ],
                "user_id": "http-user",
                "tags": ["home"],
            },
        )
        assert r.status_code == 201
        recs = r.json()
        r = http.post(
            "/v1/memories/search",
            json={"query": "when is the heating checked", "user_id": "http-user", "k": 1},
        )
        assert r.status_code == 200
        hit = r.json()[0]
        assert hit["record"]["id"] == recs[0]["id"] and hit["explain"]["dense"]["rank"] == 1
        assert http.get(f"/v1/memories/{recs[1]['id']}").json()["tags"] == ["home"]
        assert http.delete(f"/v1/memories/{recs[1]['id']}").status_code == 204
        assert http.get(f"/v1/memories/{recs[1]['id']}").json()["status"] == "deleted"
        assert http.delete(f"/v1/memories/{recs[1]['id']}?hard=true").status_code == 204
        assert http.get(f"/v1/memories/{recs[1]['id']}").status_code == 404


def test_health_ready_metrics_need_no_key(served: Served) -> None:
    """Without an operator token set, probes and scrapes get only tenant-free figures
    (tests/test_hostile_api.py has the operator's view)."""
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served.url}/readyz").json() == {"status": "ready"}
    deadline = time.monotonic() + 5  # the cube figures are cached for a second
    while "memsvc_records{" not in (text := httpx.get(f"{served.url}/metrics").text):
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert 'memsvc_requests_total{method="POST",route="/v1/memories",status="201"}' in text
    assert "memsvc_request_seconds_bucket" in text and "memsvc_records{" in text
    assert "memsvc_cube_records" not in text
    # the served worker froze its start-up objects and times its collections
    frozen = re.search(r"^memsvc_gc_frozen_objects (\S+)$", text, re.M)
    assert frozen is not None and float(frozen.group(1)) > 100_000
    assert 'memsvc_gc_pause_seconds_count{generation="0"}' in text


def test_client_errors_are_4xx_json(served: Served) -> None:
    with _client(served) as http:
        r = http.get("/v1/memories/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "record_not_found"
        r = http.post("/v1/memories", json={"text": "  ", "user_id": "u"})
        assert r.status_code == 422 and "text is empty" in r.json()["error"]["message"]
        r = http.post(
            "/v1/memories", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    r = httpx.post(f"{served.url}/v1/memories", json={"text": "x", "user_id": "u"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_several_workers_share_one_data_directory(tmp_path) -> None:
    """Writes acknowledged by one worker are found by recall on whichever worker answers,
    within the index sync bound."""
    import json

    from tests.conftest import run_cli, serving

    env = {**__import__("os").environ, "MEMSVC_HOME": str(tmp_path / "w")}
    key = json.loads(run_cli("keys", "create", "--tenant", "w", "--json", env=env))["key"]
    with (
        serving(env, "--workers", "2") as url,
        httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        for i in range(12):  # new connections spread over the workers
            text = f"worker test fact number {i} about kiwis"
            r = http.post(
                "/v1/memories",
                json={"text": text, "user_id": "w"},
                headers={"Connection": "close"},
            )
            assert r.status_code == 201
            # The other worker sees it within MEMSVC_INDEX_SYNC_SECONDS (0.1 s default).
            acked = time.monotonic()
            while True:
                r = http.post(
                    "/v1/memories/search",
                    json={"query": text, "user_id": "w", "k": 1},
                    headers={"Connection": "close"},
                )
                hits = r.json()
                if hits and hits[0]["record"]["content"] == text:
                    break
                assert time.monotonic() - acked < 0.6, "write not visible within 0.6 s"
                time.sleep(0.02)
        assert (
            len(http.get("/v1/memories", params={"user_id": "w", "limit": 100}).json()["items"])
            == 12
        )


def test_recipes_and_explain_over_http_and_the_remote_client(served: Served) -> None:
    from memsvc import MemoryClient

    with _client(served) as http:
        http.post(
            "/v1/memories",
            json={
                "messages": [
                    {"name": "Caroline", "content": "How did the kids handle the accident?"},
                    {"name": "Melanie", "content": "They were scared but we reassured them."},
                ],
                "user_id": "recipe-user",
                "session_id": "s1",
                "timestamp": "2023-10-20T10:00:00Z",
            },
        )
        q = {"query": "How did Melanie's children handle the accident?", "user_id": "recipe-user"}
        deep = http.post("/v1/memories/search", json={**q, "recipe": "deep", "k": 2}).json()
        assert deep[0]["record"]["content"].startswith("They were scared")
        assert {"dense", "keyword", "session", "fused"} <= set(deep[0]["explain"])
        custom = {"channels": {"dense": 1, "keyword": 1}, "fusion": "rrf", "rrf_k": 5}
        body = {**q, "recipe": custom, "k": 2}
        hits = http.post("/v1/memories/search", json=body).json()
        assert set(hits[0]["explain"]) <= {"dense", "keyword", "fused"}
        fast = http.post("/v1/memories/search", json={**q, "recipe": "fast", "k": 2}).json()
        assert set(fast[0]["explain"]) == {"dense"}
        r = http.post("/v1/memories/search", json={**q, "recipe": "dense=1+telepathy=1"})
        assert r.status_code == 422 and "unknown channel telepathy" in r.json()["error"]["message"]
        assert r.json()["error"]["details"] == {"field": "recipe"}
    with MemoryClient(served.url, served.keys["acme"]) as client:
        hits = client.recall(q["query"], user_id="recipe-user", k=2, recipe="deep")
        assert [h.record.id for h in hits] == [h["record"]["id"] for h in deep]
        assert [set(h.explain) for h in hits] == [set(h["explain"]) for h in deep]
