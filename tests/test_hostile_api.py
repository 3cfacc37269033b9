"""Hostile callers at the HTTP edge (issue 22): input that used to cost quadratic time or
answer 500, figures that spanned tenants on open routes, and a no-auth server that any web
page could write to. Real `memsvc serve` processes over real HTTP, one per kind per module;
in-process apps only where a test must count calls or fake the peer address.
"""

from __future__ import annotations

import base64
import gc
import gzip
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from memsvc import Memory, Settings
from memsvc.api.app import create_app, create_app_from_env
from memsvc.retrieval.entities import _CAP_RUN, _COMMON, _ORG_SUFFIX, extract_entities, normalize
from tests.conftest import Served, run_cli, serving

OPERATOR_TOKEN = "op-7f3c9a1e-not-a-tenant-key"


@pytest.fixture(scope="module")
def op_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """API keys on, an operator token set, cube figures re-read every second."""
    home = tmp_path_factory.mktemp("hostile-op")
    env = {
        **os.environ,
        "MEMSVC_HOME": str(home),
        "MEMSVC_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "MEMSVC_METRICS_CACHE_SECONDS": "1",
        "MEMSVC_MAINTAIN_SECONDS": "0",
    }
    keys = {
        t: json.loads(run_cli("keys", "create", "--tenant", t, "--json", env=env))["key"]
        for t in ("acme", "globex")
    }
    with serving(env) as url:
        yield Served(url=url, home=home, env=env, keys=keys)


@pytest.fixture(scope="module")
def local_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`memsvc serve --no-auth` on loopback."""
    env = {k: v for k, v in os.environ.items() if k != "MEMSVC_OPERATOR_TOKEN"}
    env |= {"MEMSVC_HOME": str(tmp_path_factory.mktemp("hostile-local"))}
    env["MEMSVC_MAINTAIN_SECONDS"] = "0"
    with serving(env, "--no-auth") as url:
        yield url


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- 7: entity extraction in linear time ------------------------------------------------------


def _reference_entities(text: str) -> list[tuple[str, str, str]]:
    """The extractor as it was before it was made linear (it searched `text[:start]` for
    every name): the oracle for "same results on ordinary text"."""
    sent_start = re.compile(r"(?:^|[.!?:;\"“(\[]\s*|\n\s*)$")
    place_before = re.compile(r"\b(?:in|at|to|from|near|visit(?:ed|ing)?|around)\s+$", re.I)
    out: dict[str, tuple[str, str, str]] = {}
    for m in _CAP_RUN.finditer(text):
        raw = re.sub(r"['\u2019]s$", "", m.group(0)).rstrip(",-&'\u2019")
        words = raw.split()
        while words and words[0].lower().strip("'\u2019") in _COMMON:
            words = words[1:]
        if not words:
            continue
        raw = " ".join(words)
        norm = normalize(raw)
        if len(norm) < 2 or norm in _COMMON or norm in out:
            continue
        before = text[: m.start()]
        at_start = bool(sent_start.search(before))
        if at_start and len(words) == 1 and norm in _COMMON:
            continue
        if _ORG_SUFFIX.search(raw):
            kind = "org"
        elif place_before.search(before):
            kind = "place"
        else:
            kind = "name"
        out[norm] = (raw, norm, kind)
    return list(out.values())


def _ordinary_texts() -> list[str]:
    """Every turn of the LongMemEval fixture, hand-made edge cases and seeded word soup."""
    fixture = Path(__file__).parent / "fixtures" / "longmemeval_fixture.json"
    texts = [
        turn["content"]
        for q in json.loads(fixture.read_text())
        for session in q["haystack_sessions"]
        for turn in session
    ]
    texts += [
        "Thanks Caroline! We visited Rome with Jon and met people from Stanford University.",
        "  In Paris we met Anna.\n\tAt Oslo, Bob's Cafe Inc. opened near  Bergen",
        "VISITING Lima, then around\n\n  Cusco; from  \t Quito (Ecuador) to \u2019Bogota\u2019",
        "Bank of the Andes Group. University of Oslo. de la Cruz met The Beatles in Liverpool",
        "xin Tokyo, Kin Kyoto, visitedOsaka, at: Nara, to-Kobe, 'Sapporo' at\u00a0Sendai",
        "Hey Mom, Wow. Monday in March? I'm at Google Corp. and at Acme Co. Ltd",
    ]
    names = "Anna Bob Oslo Paris Rome Jon Stanford University Inc Corp Club The Thanks Wow Hey"
    small = "in at to from near visited visiting around of de the and met with a is"
    marks = ". , ! ? ; : \" ( [ \n \t - & ' \u2019s \u201c"
    vocab = [*names.split(), *small.split(), *marks.split(" "), "  ", "\n  "]
    rng = random.Random(22)
    texts += [" ".join(rng.choices(vocab, k=rng.randint(1, 40))) for _ in range(3000)]
    texts += ["".join(rng.choices(vocab, k=rng.randint(1, 40))) for _ in range(1000)]
    return texts


def test_entities_same_as_before_on_ordinary_text() -> None:
    for text in _ordinary_texts():
        got = [(e.name, e.normalized, e.type) for e in extract_entities(text)]
        assert got == _reference_entities(text), text


def _distinct_names(nbytes: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out, size = [], 0
    while size < nbytes:
        w = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(
            rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)
        )
        out.append(w)
        size += len(w) + 2
    return ", ".join(out)[:nbytes]


def _best_seconds(fn: Callable[[], object], runs: int = 5) -> float:
    """The fastest of `runs`, the garbage collector held off: a full collection of the test
    process's heap (the model, ~1 M objects) or a busy core in one run is not the code's cost
    (CI saw 8 ms / 65 ms for 4x the text on a loaded machine; quiet, 10 / 41 ms)."""
    best = float("inf")
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    finally:
        if enabled:
            gc.enable()
    return best


def test_entity_extraction_time_grows_linearly_with_text() -> None:
    """4x the distinct capitalised names may cost at most 6x the time (quadratic: ~16x; 32 KiB
    took 3.3 s here before, 15 ms after)."""
    small, large = _distinct_names(16 * 1024), _distinct_names(64 * 1024)
    assert len(extract_entities(large)) > 7000
    t_small = _best_seconds(lambda: extract_entities(small))
    t_large = _best_seconds(lambda: extract_entities(large))
    assert t_large <= 6 * t_small + 0.005, (t_small, t_large)


# ---- 12: bad recipes and cursors answer 422 naming the field ----------------------------------

BAD_RECIPES: list[Any] = [
    "dense=1.2.3",
    "dense=.",
    "dense=1|n" + "9" * 5000,
    "dense=1|rrf" + "9" * 5000,
    "dense=1|k" + "9" * 5000,
    "dense=" + "9" * 5000,
    {"candidates": 50.5},
    {"k": 2.5},
    {"rrf_k": True},
    {"preset": []},
    {"name": ["x"]},
    {"channels": {"x" * 50_000: 1}},
    {"channels": {"dense": "y" * 50_000}},
]


@pytest.mark.parametrize("recipe", BAD_RECIPES, ids=lambda r: repr(r)[:30])
def test_bad_recipe_is_422_naming_recipe(op_server: Served, recipe: Any) -> None:
    r = httpx.post(
        f"{op_server.url}/v1/memories/search",
        json={"query": "anything", "user_id": "rx", "recipe": recipe},
        headers=_bearer(op_server.keys["acme"]),
        timeout=30,
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "recipe"
    assert len(r.content) < 1000  # the bad value is quoted short, not echoed whole


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    _cursor(b'{"after": 1e30}'),
    _cursor(b'{"after": 1000000000000000000000000000000}'),
    _cursor(b'{"after": 9223372036854775808}'),
    _cursor(b'{"after": true}'),
    _cursor(b'{"after": -1}'),
    _cursor(b'{"after": 1' + b"0" * 5000 + b"}"),
    _cursor(b"[" * 2000 + b"]" * 2000),
    "not base64 at all %%%",
]


def test_bad_cursor_is_422_naming_cursor(op_server: Served) -> None:
    h = _bearer(op_server.keys["acme"])
    with httpx.Client(base_url=op_server.url, headers=h, timeout=30) as http:
        assert http.post("/v1/memories", json={"text": "one", "user_id": "cx"}).status_code == 201
        assert http.post("/v1/memories", json={"text": "two", "user_id": "cx"}).status_code == 201
        page = http.get("/v1/memories", params={"user_id": "cx", "limit": 1}).json()
        nxt = http.get("/v1/memories", params={"user_id": "cx", "cursor": page["next_cursor"]})
        assert nxt.status_code == 200 and len(nxt.json()["items"]) == 1  # a real one still works
        for cursor in BAD_CURSORS:
            for path in ("/v1/memories", "/v1/cubes/user:cx/graph"):
                r = http.get(path, params={"user_id": "cx", "cursor": cursor})
                assert r.status_code == 422, (path, cursor[:40], r.text)
                assert r.json()["error"]["details"]["field"] == "cursor"


# ---- 9: /metrics and /readyz span tenants only for the operator, and stay cheap ---------------


def test_without_operator_token_metrics_show_only_tenant_free_totals(served: Served) -> None:
    key = served.keys["acme"]
    cube = httpx.post(f"{served.url}/v1/cubes", json={"name": "m-secret"}, headers=_bearer(key))
    cube_id = cube.json()["id"]
    add = {"text": "a record", "user_id": "mt", "cube": "m-secret"}
    assert httpx.post(f"{served.url}/v1/memories", json=add, headers=_bearer(key)).is_success
    for headers in ({}, _bearer(key)):  # a tenant's key is no operator token
        text = httpx.get(f"{served.url}/metrics", headers=headers).text
        assert 'memsvc_requests_total{method="POST",route="/v1/memories"' in text
        assert "memsvc_cubes " in text and "memsvc_database_up 1.0" in text
        assert "memsvc_cube_records" not in text and "cube=" not in text
        assert cube_id not in text and "m-secret" not in text
        ready = httpx.get(f"{served.url}/readyz", headers=headers)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_tenant_free_totals_count_every_tenant_and_name_none(
    open_memory: Callable[..., Memory],
) -> None:
    """The totals a scrape without the operator token gets (a fresh app: nothing cached)."""
    mem = open_memory()
    acme, globex = mem.for_tenant("acme"), mem.for_tenant("globex")
    cube = acme.create_cube("acme-plans")
    acme.add(["one", "two"], user_id="a", cube="acme-plans")
    globex.add("three", user_id="g")
    with TestClient(create_app(mem)) as c:
        text = c.get("/metrics", headers=_bearer(mem.keys.create("acme")[1])).text
    assert 'memsvc_records{status="active"} 3.0' in text and "memsvc_cubes 2.0" in text
    assert cube.id not in text and "acme" not in text and "user:g" not in text


def test_operator_token_guards_per_cube_figures(op_server: Served) -> None:
    url, key = op_server.url, op_server.keys["acme"]
    with httpx.Client(base_url=url, headers=_bearer(key), timeout=60) as http:
        cube_id = http.post("/v1/cubes", json={"name": "ops"}).json()["id"]
        for text in ("I live in Oslo.", "I moved to Bergen.", "Tea on Fridays."):
            http.post("/v1/memories", json={"text": text, "user_id": "o", "cube": "ops"})
        assert http.post("/v1/cubes/ops/maintain").status_code == 200
        body = {"query": "where do I live", "user_id": "o", "cube": "ops"}
        assert http.post("/v1/memories/search", json=body).status_code == 200  # loads it
    for headers in ({}, _bearer(key), _bearer(OPERATOR_TOKEN + "x")):
        r = httpx.get(f"{url}/metrics", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert cube_id not in r.text
        assert httpx.get(f"{url}/readyz", headers=headers).json() == {"status": "ready"}
    time.sleep(1.1)  # the figures are re-read at most once a second on this server
    op = _bearer(OPERATOR_TOKEN)
    text = httpx.get(f"{url}/metrics", headers=op).text
    assert f'memsvc_cube_records{{cube="{cube_id}",status="active"}} 3.0' in text
    assert f'memsvc_maintenance_runs{{cube="{cube_id}"}} 1.0' in text
    assert f'memsvc_maintenance_last_changes{{change="placed",cube="{cube_id}"}} 3.0' in text
    assert "memsvc_database_up 1.0" in text
    ready = httpx.get(f"{url}/readyz", headers=op).json()
    assert ready["status"] == "ready" and ready["cubes"] >= 1 and ready["indexes_loaded"] >= 1


def test_metrics_and_readyz_read_the_cube_figures_once_per_interval(
    open_memory: Callable[..., Memory],
) -> None:
    mem = open_memory(metrics_cache_seconds=60)
    calls = []
    real = mem.cube_stats

    def counted() -> list[dict[str, Any]]:
        calls.append(1)
        return real()

    mem.cube_stats = counted  # type: ignore[method-assign]
    with TestClient(create_app(mem)) as c:
        for _ in range(40):
            assert c.get("/metrics").status_code == 200
            assert c.get("/readyz").status_code in (200, 503)  # 503 while warming up
    assert len(calls) == 1


def test_readyz_and_metrics_echo_no_database_error(open_memory: Callable[..., Memory]) -> None:
    mem = open_memory()

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("cannot open /srv/secret/memsvc.db: tenant acme cube user:bob")

    mem.cube_stats = broken  # type: ignore[method-assign]
    with TestClient(create_app(mem), raise_server_exceptions=False) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "unavailable"}
        m = c.get("/metrics")
        assert m.status_code == 200 and "memsvc_database_up 0.0" in m.text
        assert "secret" not in m.text and "bob" not in m.text


# ---- 13: without API keys, only this machine's programs get in -------------------------------


def test_no_auth_refuses_foreign_host_and_origin(local_url: str) -> None:
    port = local_url.rsplit(":", 1)[1]
    add = {"text": "planted", "user_id": "web"}
    refused = [
        {"Host": "evil.example"},
        {"Host": f"evil.example:{port}"},
        {"Host": "127.0.0.1.evil.example"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example:8000"},
    ]
    for headers in refused:
        for method, path, kw in (
            ("GET", "/v1/memories", {"params": {"user_id": "web"}}),
            ("POST", "/v1/memories", {"json": add}),
            ("POST", "/v1/cubes/user:web/maintain", {}),
            ("POST", "/mcp", {"json": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}}),
        ):
            r = httpx.request(method, f"{local_url}{path}", headers=headers, **kw)
            assert r.status_code == 403, (headers, path, r.text)
            assert "without API keys" in r.json()["error"]["message"]
    for origin in (f"http://127.0.0.1:{port}", "http://localhost:3000", "http://[::1]"):
        r = httpx.post(f"{local_url}/v1/memories", json=add, headers={"Origin": origin})
        assert r.status_code == 201, r.text
    r = httpx.get(f"{local_url}/v1/memories", params={"user_id": "web"})
    assert len(r.json()["items"]) == 3  # the three loopback writes, nothing else


def test_no_auth_requires_the_content_type_of_each_body(local_url: str) -> None:
    user = {"user_id": "ct"}
    json_body = json.dumps({"text": "planted by a form", **user}).encode()
    cube_file = gzip.compress(b'{"not": "a cube"}\n')
    cases = [  # what a web page can send without a CORS preflight
        ("/v1/memories", json_body, {"Content-Type": "text/plain"}),
        ("/v1/memories", json_body, {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/v1/memories", json_body, {"Content-Type": "multipart/form-data; boundary=x"}),
        ("/v1/memories", json_body, {}),  # a Blob without a type: no Content-Type at all
        ("/mem0/v3/memories/add/", json_body, {"Content-Type": "text/plain"}),
        ("/v1/cubes/import", cube_file, {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/v1/cubes/import", cube_file, {"Content-Type": "text/plain"}),
        ("/v1/cubes/import", cube_file, {}),
    ]
    cubes = httpx.get(f"{local_url}/v1/cubes").json()
    for path, body, headers in cases:
        r = httpx.post(f"{local_url}{path}", content=body, headers=headers)
        assert r.status_code == 415, (path, headers, r.text)
        assert r.json()["error"]["code"] == "unsupported_media_type"
    assert httpx.get(f"{local_url}/v1/memories", params=user).json()["items"] == []
    assert httpx.get(f"{local_url}/v1/cubes").json() == cubes
    # the right types still work: JSON, and a cube file as application/gzip
    r = httpx.post(f"{local_url}/v1/memories", json={"text": "kept", **user})
    assert r.status_code == 201
    exported = httpx.post(f"{local_url}/v1/cubes/user:ct/export")
    assert exported.status_code == 200
    assert httpx.delete(f"{local_url}/v1/cubes/user:ct").status_code == 204  # ids stay unique
    r = httpx.post(
        f"{local_url}/v1/cubes/import",
        params={"cube": "ct-copy"},
        content=exported.content,
        headers={"Content-Type": "application/gzip"},
    )
    assert r.status_code == 201, r.text


def test_no_auth_app_refuses_remote_peers(open_memory: Callable[..., Memory]) -> None:
    """However the app is served (uvicorn --factory on 0.0.0.0), without keys it answers only
    loopback peers: the rule lives in the app, not only in `memsvc serve`."""
    app = create_app(open_memory(auth=False))

    async def call(peer: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get("/v1/cubes")

    far = anyio.run(call, "192.0.2.7")
    assert far.status_code == 403 and "loopback clients only" in far.json()["error"]["message"]
    assert anyio.run(call, "127.0.0.1").status_code == 200


def test_no_auth_app_will_not_start_on_a_public_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="loopback"):
        create_app(settings=Settings(home=tmp_path / "p", auth=False, host="0.0.0.0"))
    # what `uvicorn --factory memsvc.api.app:create_app_from_env` builds from the environment
    monkeypatch.setenv("MEMSVC_HOME", str(tmp_path / "u"))
    monkeypatch.setenv("MEMSVC_AUTH", "false")
    monkeypatch.setenv("MEMSVC_HOST", "0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        create_app_from_env()


def test_mcp_transport_checks_host_without_keys(open_memory: Callable[..., Memory]) -> None:
    """MCP's own DNS-rebinding protection is on without keys (behind the app's check)."""
    from fastapi import FastAPI

    from memsvc.api.mcp_http import mount_mcp

    bare = FastAPI()
    server = mount_mcp(bare, open_memory(auth=False), auth=False)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}

    async def post(*hosts: str) -> list[int]:
        async with server.session_manager.run():
            transport = httpx.ASGITransport(app=bare, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport) as c:
                return [
                    (await c.post(f"http://{h}/mcp", json=call, headers=accept)).status_code
                    for h in hosts
                ]

    assert anyio.run(post, "evil.example:8000", "127.0.0.1:8000", "localhost") == [421, 200, 200]


def test_a_message_dense_with_dates_stays_with_its_tenant(
    open_memory: Callable[..., Memory],
) -> None:
    """One tenant's 32 KB message of back-to-back dates (5,461 of them: the time grammar had
    been quadratic in such text, costing every tenant of the worker a second of its
    interpreter lock at each indexing) is stored and found whole by its own tenant, and
    another tenant's add and time question on the same service see only their own record."""
    mem = open_memory()
    acme, globex = mem.for_tenant("acme"), mem.for_tenant("globex")
    hostile = "May 5 " * (32768 // 6)
    at = datetime(2023, 6, 1, 12, tzinfo=UTC)
    acme.add(messages=[{"role": "user", "content": hostile}], user_id="u", timestamp=at)
    cat = "I adopted a cat on May 5, she is called Miso."
    globex.add(messages=[{"role": "user", "content": cat}], user_id="u", timestamp=at)
    theirs = globex.recall("When did I adopt my cat?", user_id="u", k=5, at=at)
    assert [h.record.content for h in theirs] == [cat]
    mine = acme.recall("What happened on May 5?", user_id="u", k=5, at=at)
    assert [h.record.content for h in mine] == [hostile]


def test_a_recipe_lifting_neighbouring_turns_stays_with_its_tenant(
    open_memory: Callable[..., Memory],
) -> None:
    """The near booster lifts turns beside a hit in its session. Two tenants using the same
    user and session names, one recalling with near at the highest weight a recipe may
    carry: the lift reaches only its own turns, and the other tenant's stay unseen."""
    mem = open_memory()
    acme, globex = mem.for_tenant("acme"), mem.for_tenant("globex")
    theirs = ["Our launch code phrase is heliotrope.", "Keep it between us.", "Agreed."]
    acme.add(messages=[{"name": "Ann", "content": t} for t in theirs], user_id="u", session_id="s")
    mine = ["What phrase do we use for the launch?", "Let me think.", "It is marigold."]
    globex.add(messages=[{"name": "Bo", "content": t} for t in mine], user_id="u", session_id="s")
    hits = globex.recall(
        "launch code phrase", user_id="u", k=10, recipe="keyword=1+near=100|weighted"
    )
    assert {h.record.content for h in hits} == set(mine)
    assert any("near" in h.explain for h in hits)
    assert {h.record.content for h in acme.recall("launch", user_id="u", k=10)} == set(theirs)
