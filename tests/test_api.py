"""Every route's success and error paths through the real app (in-process HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from typer.testing import CliRunner

from memsvc import Memory
from memsvc.api.app import create_app
from memsvc.cli import app as cli_app


@pytest.fixture
def env(open_memory: Callable[..., Memory]) -> Iterator[dict[str, Any]]:
    mem = open_memory(max_request_bytes=64 * 1024, max_import_bytes=256 * 1024)
    keys = {t: mem.keys.create(t)[1] for t in ("acme", "globex")}
    with TestClient(create_app(mem)) as client:
        yield {"mem": mem, "client": client, "keys": keys}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _seed(env: dict[str, Any]) -> dict[str, str]:
    c, key = env["client"], env["keys"]["acme"]
    cube = c.post("/v1/cubes", json={"name": "team"}, headers=auth(key)).json()
    rec = c.post(
        "/v1/memories",
        json={"text": "acme secret plan", "user_id": "a", "cube": "team"},
        headers=auth(key),
    ).json()[0]
    return {"cube": cube["id"], "record": rec["id"]}


def routes(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every /v1 route with a valid request for acme's data."""
    r, c = ids["record"], ids["cube"]
    return [
        ("POST", "/v1/memories", {"json": {"text": "x", "user_id": "a", "cube": c}}),
        ("POST", "/v1/memories/search", {"json": {"query": "plan", "user_id": "a", "cube": c}}),
        ("GET", "/v1/memories", {"params": {"cube": c}}),
        ("GET", f"/v1/memories/{r}", {}),
        ("PATCH", f"/v1/memories/{r}", {"json": {"text": "changed"}}),
        ("GET", f"/v1/memories/{r}/history", {}),
        ("DELETE", f"/v1/memories/{r}", {}),
        ("GET", f"/v1/cubes/{c}", {}),
        ("POST", f"/v1/cubes/{c}/export", {}),
        ("POST", f"/v1/cubes/{c}/share", {"json": {"tenant": "initech"}}),
        ("DELETE", f"/v1/cubes/{c}", {}),
    ]


def test_every_v1_route_needs_a_valid_key(env: dict[str, Any]) -> None:
    ids, c = _seed(env), env["client"]
    extra = [
        ("POST", "/v1/cubes", {"json": {"name": "n"}}),
        ("GET", "/v1/cubes", {}),
        ("POST", "/v1/cubes/import", {"content": b"x"}),
    ]
    for method, path, kw in routes(ids) + extra:
        for headers in (
            {},
            auth("msk_000000000000_" + "x" * 43),
            {"Authorization": "Basic x"},
            auth("garbage"),
        ):
            r = c.request(method, path, headers=headers, **kw)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"]["code"] == "unauthorized"


def test_revoked_key_is_refused(env: dict[str, Any]) -> None:
    mem, c = env["mem"], env["client"]
    key, token = mem.keys.create("acme", name="temp")
    assert c.get("/v1/cubes", headers=auth(token)).status_code == 200
    mem.keys.revoke(key.key_id)
    r = c.get("/v1/cubes", headers=auth(token))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_other_tenant_gets_404_on_every_route(env: dict[str, Any]) -> None:
    ids, c = _seed(env), env["client"]
    other = auth(env["keys"]["globex"])
    for method, path, kw in routes(ids):
        r = c.request(method, path, headers=other, **kw)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] in ("cube_not_found", "record_not_found")
    mine = auth(env["keys"]["acme"])
    assert c.get(f"/v1/memories/{ids['record']}", headers=mine).json()["version"] == 1


def test_success_paths_of_every_route(env: dict[str, Any]) -> None:
    ids, c, h = _seed(env), env["client"], auth(env["keys"]["acme"])
    for method, path, kw in routes(ids):
        r = c.request(method, path, headers=h, **kw)
        assert r.status_code in (200, 201, 204), (method, path, r.text)
        if path.endswith("/export"):
            assert r.headers["content-type"] == "application/gzip"
            assert r.headers["x-memsvc-records"] == "2"
            blob = r.content
    assert c.get("/v1/cubes", headers=h).json() == []
    r = c.post("/v1/cubes/import", params={"cube": "back"}, content=blob, headers=h)
    assert r.status_code == 201 and r.json()["name"] == "back" and r.json()["records"] == 2
    r = c.get("/v1/memories", params={"cube": "back", "status": "all", "limit": 1}, headers=h)
    assert len(r.json()["items"]) == 1 and r.json()["next_cursor"]


def test_shared_cube_is_read_only(env: dict[str, Any]) -> None:
    ids, c = _seed(env), env["client"]
    acme, globex = auth(env["keys"]["acme"]), auth(env["keys"]["globex"])
    r = c.post(f"/v1/cubes/{ids['cube']}/share", json={"tenant": "globex"}, headers=acme)
    assert r.json()["shared_with"] == ["globex"]
    assert c.get(f"/v1/memories/{ids['record']}", headers=globex).status_code == 200
    r = c.post(
        "/v1/memories/search",
        json={"query": "plan", "user_id": "g", "cube": ids["cube"]},
        headers=globex,
    )
    assert r.status_code == 200 and len(r.json()) == 1
    for method, path, kw in routes(ids):  # an export too: it carries the owner's history
        if method in ("GET",) or path.endswith("/search"):
            continue
        r = c.request(method, path, headers=globex, **kw)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "forbidden"


def test_large_bodies_are_refused_before_parsing(env: dict[str, Any]) -> None:
    c, h = env["client"], auth(env["keys"]["acme"])
    big = json.dumps({"text": "x" * (70 * 1024), "user_id": "a"}).encode()
    r = c.post("/v1/memories", content=big, headers={**h, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = c.post("/v1/memories", content=chunked(), headers={**h, "content-type": "application/json"})
    assert r.status_code == 413
    r = c.post("/v1/cubes/import", content=b"x" * (300 * 1024), headers=h)
    assert r.status_code == 413
    assert env["mem"].list_cubes() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x"}, "user_id"),
        ({"text": 5, "user_id": "u"}, "text"),
        ({"text": "x", "user_id": "u", "colour": "red"}, "colour"),
        ({"text": "   ", "user_id": "u"}, "text"),
        ({"text": "x", "user_id": "u", "importance": "high"}, "importance"),
        ({"messages": [{"content": "a", "role": 3}], "user_id": "u"}, "messages.0.role"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(
    env: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    r = env["client"].post("/v1/memories", json=body, headers=auth(env["keys"]["acme"]))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and err["details"]["field"] == field


def test_malformed_json_and_bad_query_params(env: dict[str, Any]) -> None:
    c, h = env["client"], auth(env["keys"]["acme"])
    r = c.post(
        "/v1/memories", content=b'{"text": ', headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 422
    r = c.get("/v1/memories", params={"user_id": "u", "limit": "many"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "limit"
    r = c.get("/v1/memories", params={"user_id": "u", "metadata": "[1]"}, headers=h)
    assert r.status_code == 422
    r = c.get("/v1/memories", params={"user_id": "u", "status": "gone"}, headers=h)
    assert r.status_code == 422
    assert c.get("/v1/nowhere", headers=h).status_code == 404
    assert c.put("/v1/memories", headers=h).status_code == 405


def test_openapi_validates_and_lists_every_route(env: dict[str, Any]) -> None:
    spec = env["client"].get("/openapi.json").json()
    validate(spec)
    paths = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    expected = {
        ("POST", "/v1/memories"),
        ("GET", "/v1/memories"),
        ("POST", "/v1/memories/search"),
        ("GET", "/v1/memories/{record_id}"),
        ("PATCH", "/v1/memories/{record_id}"),
        ("DELETE", "/v1/memories/{record_id}"),
        ("GET", "/v1/memories/{record_id}/history"),
        ("GET", "/v1/memories/{record_id}/neighbors"),
        ("GET", "/v1/memories/{record_id}/lineage"),
        ("POST", "/v1/memories/{record_id}/restore"),
        ("POST", "/v1/cubes"),
        ("GET", "/v1/cubes"),
        ("GET", "/v1/cubes/{cube}"),
        ("DELETE", "/v1/cubes/{cube}"),
        ("POST", "/v1/cubes/{cube}/export"),
        ("POST", "/v1/cubes/import"),
        ("POST", "/v1/cubes/{cube}/share"),
        ("DELETE", "/v1/cubes/{cube}/share/{tenant}"),
        ("GET", "/v1/cubes/{cube}/graph"),
        ("POST", "/v1/cubes/{cube}/maintain"),
        ("GET", "/v1/cubes/{cube}/maintenance"),
        ("POST", "/v1/generate"),
        ("POST", "/v1/memories/promote"),
        ("POST", "/v1/memories/{record_id}/demote"),
        ("POST", "/v1/cubes/{cube}/consolidate"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        # mem0's client, under /mem0 (tests/test_integrations.py)
        ("GET", "/mem0/v1/ping/"),
        ("POST", "/mem0/v3/memories/add/"),
        ("POST", "/mem0/v3/memories/search/"),
        ("POST", "/mem0/v3/memories/"),
        ("GET", "/mem0/v1/memories/{memory_id}/"),
        ("PUT", "/mem0/v1/memories/{memory_id}/"),
        ("DELETE", "/mem0/v1/memories/{memory_id}/"),
        ("DELETE", "/mem0/v1/memories/"),
        ("GET", "/mem0/v1/memories/{memory_id}/history/"),
    }
    assert paths == expected
    assert env["client"].get("/docs").status_code == 200


def test_keys_cli_and_no_auth_guard(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMSVC_HOME", str(tmp_path / "k"))
    runner = CliRunner()
    made = json.loads(runner.invoke(cli_app, ["keys", "create", "--tenant", "t1", "--json"]).stdout)
    assert made["key"].startswith("msk_") and made["tenant"] == "t1"
    listed = json.loads(runner.invoke(cli_app, ["keys", "list", "--json"]).stdout)
    assert [k["key_id"] for k in listed] == [made["key_id"]] and "key" not in listed[0]
    assert runner.invoke(cli_app, ["keys", "revoke", made["key_id"]]).exit_code == 0
    with Memory(tmp_path / "k") as mem:
        assert mem.keys.list("t1")[0].revoked_at is not None
    r = runner.invoke(cli_app, ["serve", "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "only binds loopback" in r.output


def test_key_cache_expires_for_revocations_made_elsewhere(tmp_path) -> None:
    import time

    from memsvc.errors import AuthError
    from memsvc.keys import KeyManager
    from memsvc.store.database import Database

    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    db.migrate()
    server, elsewhere = KeyManager(db, cache_seconds=0.3), KeyManager(db)
    key, token = elsewhere.create("acme")
    assert server.authenticate(token) == "acme"
    elsewhere.revoke(key.key_id)  # another process: this cache does not hear of it
    assert server.authenticate(token) == "acme"
    time.sleep(0.35)
    with pytest.raises(AuthError, match="revoked"):
        server.authenticate(token)
    db.dispose()


HOSTILE: list[tuple[str, str, bytes | None, int]] = [
    ("POST", "/v1/memories", b"[1,2,3]", 422),
    ("POST", "/v1/memories", b'{"text": "a", "user_id": "u", "importance": NaN}', 422),
    ("POST", "/v1/memories", b'{"text": "a", "user_id": "u", "metadata": {"x": NaN}}', 422),
    (
        "POST",
        "/v1/memories",
        b'{"text": "a", "user_id": "u", "metadata": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        422,
    ),
    ("POST", "/v1/memories", b"\xff\xfe not utf-8", 422),
    ("POST", "/v1/memories", b'{"text": "a\\u0000b", "user_id": "u"}', 422),
    ("POST", "/v1/memories", b'{"text": "a", "user_id": "u\\u0000"}', 422),
    ("POST", "/v1/memories", b'{"text": "a", "user_id": "u", "timestamp": 1e300}', 422),
    ("POST", "/v1/memories", b'{"text": "a", "user_id": "u", "cube": "x/../y"}', 404),
    (
        "POST",
        "/v1/memories/search",
        b'{"query": "a", "user_id": "u", "k": 1000000000000000000000000000000}',
        422,
    ),
    (
        "POST",
        "/v1/memories/search",
        b'{"query": "a", "user_id": "u", "filters": {"since": 1}}',
        200,
    ),
    ("GET", "/v1/memories?user_id=u&limit=-5", None, 422),
    ("GET", "/v1/memories?user_id=u&cursor=%00%01", None, 422),
    ("GET", "/v1/memories/%00", None, 404),
    ("GET", "/v1/memories/" + "a" * 5000, None, 422),
    ("GET", "/v1/cubes/..%2F..%2Fetc", None, 404),
    ("POST", "/v1/cubes", b'{"name": "a%2Fb"}', 422),
    ("POST", "/v1/cubes/import", b"not a gzip file", 422),
    ("POST", "/v1/cubes/import?cube=..", b"\x1f\x8b\x08\x00garbage", 422),
    ("POST", "/v1/cubes/user:u/share", b'{"tenant": ""}', 422),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    HOSTILE,
    ids=[f"{m} {p[:30]} {(b or b'')[:20]!r}" for m, p, b, _ in HOSTILE],
)
def test_hostile_input_is_a_clean_4xx(
    env: dict[str, Any], method: str, path: str, body: bytes | None, status: int
) -> None:
    c = TestClient(env["client"].app, raise_server_exceptions=False)
    h = {**auth(env["keys"]["acme"]), "content-type": "application/json"}
    c.post("/v1/memories", json={"text": "seed", "user_id": "u"}, headers=h)
    r = c.request(method, path, content=body, headers=h)
    assert r.status_code == status, r.text
    if status >= 400:
        assert set(r.json()["error"]) == {"code", "message", "details"}


def test_rate_limit_per_key_answers_429_with_retry_after(
    open_memory: Callable[..., Memory],
) -> None:
    from memsvc import MemoryClient, RateLimited

    mem = open_memory(rate_limit_per_second=2.0, rate_limit_burst=3)
    keys = {t: mem.keys.create(t)[1] for t in ("acme", "globex")}
    with TestClient(create_app(mem)) as c:
        codes = [c.get("/v1/cubes", headers=auth(keys["acme"])).status_code for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        r = c.get("/v1/cubes", headers=auth(keys["acme"]))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        assert r.json()["error"]["details"]["retry_after"] > 0
        # another key has its own bucket; health checks are never limited
        assert c.get("/v1/cubes", headers=auth(keys["globex"])).status_code == 200
        assert c.get("/healthz").status_code == 200
        time.sleep(0.6)  # 2/s refills one request in 0.5 s
        assert c.get("/v1/cubes", headers=auth(keys["acme"])).status_code == 200
        client = MemoryClient("http://testserver", keys["acme"])
        client._http = c  # the remote client's error mapping over the same app
        c.headers.update(auth(keys["acme"]))
        with pytest.raises(RateLimited):
            for _ in range(5):
                client.list_cubes()
