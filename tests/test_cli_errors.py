"""One error table (`memsvc.errors.STATUS_BY_ERROR`): the server answers with it, both remote
clients raise from it, and the CLI prints the same classes from either target."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from typer.testing import CliRunner

import memsvc.api.errors as api_errors
from memsvc import errors
from memsvc.api.errors import memsvc_error_response
from memsvc.cli import app
from memsvc.client import AsyncMemoryClient, MemoryClient, raise_for_error
from memsvc.errors import STATUS_BY_ERROR, MemsvcError, error_class, http_status


def every_error() -> list[type[MemsvcError]]:
    found, todo = [], [MemsvcError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: c.__name__)


ERRORS = every_error()


def test_the_server_uses_the_core_table() -> None:
    assert api_errors.STATUS_BY_ERROR is STATUS_BY_ERROR
    assert {cls.__name__ for cls in ERRORS} >= set(errors.__all__) - {
        "STATUS_BY_ERROR",
        "error_class",
        "http_status",
    }
    for cls, status in STATUS_BY_ERROR.items():
        assert error_class(None, status) is cls  # each status reads back as its class
        assert http_status(cls("x")) == status


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_round_trips_server_to_client(cls: type[MemsvcError]) -> None:
    """The server's response for an error is raised by the clients as the same class; with
    no code it still reads back as the class its status stands for."""
    answer = memsvc_error_response(cls("it broke", details={"retry_after": 2}))
    status = http_status(cls)
    assert answer.status_code == status
    resp = httpx.Response(status, content=answer.body, headers={"content-type": "application/json"})
    with pytest.raises(cls) as raised:
        raise_for_error(resp)
    assert type(raised.value) is cls and raised.value.message == "it broke"
    assert raised.value.details == {"retry_after": 2}
    bare = httpx.Response(status, json={"error": {"code": "?", "message": "m"}})
    with pytest.raises(MemsvcError) as fallback:
        raise_for_error(bare)
    assert isinstance(raised.value, type(fallback.value))
    assert type(fallback.value) is error_class(None, status)


def _server_that_raises(request: httpx.Request) -> httpx.Response:
    """A transport answering `GET /v1/memories/<ClassName>` as the API would that error."""
    cls = {c.__name__: c for c in ERRORS}[request.url.path.rsplit("/", 1)[1]]
    answer = memsvc_error_response(cls(f"{cls.__name__} here"))
    return httpx.Response(answer.status_code, content=answer.body, headers=answer.headers)


def test_both_clients_raise_the_servers_class() -> None:
    transport = httpx.MockTransport(_server_that_raises)
    with MemoryClient("http://memsvc", "k", transport=transport) as client:
        for cls in ERRORS:
            with pytest.raises(cls, match=f"{cls.__name__} here") as raised:
                client.get(cls.__name__)
            assert type(raised.value) is cls

    async def run() -> None:
        async with AsyncMemoryClient("http://memsvc", "k", transport=transport) as client:
            for cls in ERRORS:
                with pytest.raises(cls) as raised:
                    await client.get(cls.__name__)
                assert type(raised.value) is cls

    asyncio.run(run())


def test_the_cli_reports_the_servers_error_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--url`: the client's exception (from the table) is the CLI's one line, exit 1."""
    transport = httpx.MockTransport(_server_that_raises)
    real = MemoryClient.__init__

    def with_transport(self: MemoryClient, *args: object, **kw: object) -> None:
        real(self, *args, transport=transport, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MemoryClient, "__init__", with_transport)
    res = CliRunner().invoke(app, ["get", "RecordNotFound", "--url", "http://memsvc"])
    assert res.exit_code == 1 and res.output.strip() == "error: RecordNotFound here"
