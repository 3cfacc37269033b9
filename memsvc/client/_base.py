"""What the sync and async clients share: each `Memory` method's request, built and checked
here (no I/O), each response parsed here, and error responses raised as the core's classes.

A builder (`_add`, `_recall`, ...) mirrors one `Memory` method and returns a `_Call`; the
client twins (`_sync.MemoryClient`, `_async.AsyncMemoryClient`) only send it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import TypeAdapter

from memsvc import errors
from memsvc.errors import InvalidInput, error_class
from memsvc.models import (
    Added,
    Cube,
    Filters,
    Generation,
    GraphPage,
    Hit,
    IndexCache,
    MaintenanceRun,
    MemoryRecord,
    Message,
    Neighbor,
    Page,
    RecordVersion,
)
from memsvc.retrieval.recipe import Recipe
from memsvc.validation import check_idempotency_key, check_text, to_utc

Progress = Callable[[int, int | None], None]
StatusArg = Literal["active", "archived", "deleted", "all"]
_RECORDS = TypeAdapter(list[MemoryRecord])
_HITS = TypeAdapter(list[Hit])
_VERSIONS = TypeAdapter(list[RecordVersion])
_NEIGHBORS = TypeAdapter(list[Neighbor])
_CUBES = TypeAdapter(list[Cube])

# The header a load balancer hashes on to send each cube's requests to one worker
# (deploy/nginx/memsvc.conf); the server ignores it.
ROUTE_HEADER = "X-Memsvc-Cube"


def route_key(cube: str) -> str:
    """What `ROUTE_HEADER` carries for a cube: the first 16 hex digits of the SHA-256 of its
    name (or id) as the call names it, so proxies and their logs see an opaque, stable
    token of fixed size in place of a name that may hold a user id, an e-mail address or
    characters a header cannot carry. Routing needs only that one name always gives one
    token; it is not a secret (whoever guesses a name can compute its token)."""
    return hashlib.sha256(cube.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _route(cube: str | None, user_id: str | None) -> str | None:
    """The cube a call concerns: the one it names, else the user's default cube."""
    if isinstance(cube, str) and cube:
        return cube
    if isinstance(user_id, str) and user_id:
        return f"user:{user_id}"
    return None


@dataclass
class _Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    parse: Callable[[httpx.Response], Any] = lambda r: None
    slow: bool = False  # minutes of work (training): no client-side timeout
    headers: dict[str, str] = field(default_factory=dict)
    cube: str | None = None  # the cube it concerns, for the load balancer (ROUTE_HEADER)


def _csv(values: Sequence[str] | str | None) -> str | None:
    """A list query parameter as the API takes it: comma-separated."""
    return values if values is None or isinstance(values, str) else ",".join(values)


def _iso(value: Any, name: str) -> str | None:
    when = to_utc(value, field=name)
    return when.isoformat() if when is not None else None


def _text(value: Any, name: str) -> Any:
    """bytes must be UTF-8 (as in `Memory`); JSON carries only text."""
    if isinstance(value, bytes | bytearray):
        return check_text(value, field=name, max_bytes=1 << 62)
    return value


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def raise_for_error(resp: httpx.Response) -> None:
    """Turn an error response into the same exception `Memory` raises."""
    if resp.status_code < 400:
        return
    try:
        err = resp.json()["error"]
        code, message, details = err["code"], err["message"], err.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", resp.text or resp.reason_phrase, {}
    raise error_class(code, resp.status_code)(message, details=details)


class _BaseClient:
    """Request building and response parsing shared by the sync and async clients."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"User-Agent": "memsvc-client"}
        api_key = api_key or os.environ.get("MEMSVC_API_KEY")
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    # Each builder mirrors one `Memory` method's signature and returns a _Call.

    def _add(self, text, messages, *, idempotency_key=None, **kw) -> _Call:  # type: ignore[no-untyped-def]
        key = check_idempotency_key(idempotency_key)
        if isinstance(text, bytes | bytearray):
            text = _text(text, "text")
        elif isinstance(text, list | tuple):
            text = [_text(t, f"text[{i}]") for i, t in enumerate(text)]
        if messages is not None and isinstance(messages, Sequence):
            messages = [
                m.model_dump(mode="json") if isinstance(m, Message) else m for m in messages
            ]
        body = {"text": text, "messages": messages, **kw}
        body["timestamp"] = _iso(kw.get("timestamp"), "timestamp")
        if kw.get("tags") is not None and not isinstance(kw["tags"], str):
            body["tags"] = list(kw["tags"])
        return _Call(
            "POST",
            "/v1/memories",
            body=_drop_none(body),
            parse=self._added,
            headers={"Idempotency-Key": key} if key is not None else {},
            cube=_route(kw.get("cube"), kw.get("user_id")),
        )

    def _recall(self, query, *, user_id, k, filters, at, cube, recipe=None) -> _Call:  # type: ignore[no-untyped-def]
        if isinstance(filters, Filters):
            filters = filters.model_dump(mode="json", exclude_defaults=True)
        if isinstance(recipe, Recipe):
            recipe = recipe.to_dict()
        body = {
            "query": _text(query, "query"),
            "user_id": user_id,
            "k": k,
            "filters": filters,
            "at": _iso(at, "at"),
            "cube": cube,
            "recipe": recipe,
        }
        return _Call(
            "POST",
            "/v1/memories/search",
            body=_drop_none(body) | {"k": k},
            parse=lambda r: _HITS.validate_python(r.json()),
            cube=_route(cube, user_id),
        )

    def _update(self, id: str, **kw: Any) -> _Call:
        for name in ("event_time", "valid_from", "valid_to"):
            kw[name] = _iso(kw.get(name), name)
        if kw.get("text") is not None:
            kw["text"] = _text(kw["text"], "text")
        if kw.get("tags") is not None and not isinstance(kw["tags"], str):
            kw["tags"] = list(kw["tags"])
        return _Call(
            "PATCH",
            f"/v1/memories/{_seg(id)}",
            body=_drop_none(kw),
            parse=lambda r: MemoryRecord.model_validate(r.json()),
        )

    def _list(self, *, user_id, cube, filters, status, limit, cursor) -> _Call:  # type: ignore[no-untyped-def]
        params: dict[str, Any] = {
            "user_id": user_id,
            "cube": cube,
            "status": status,
            "limit": limit,
            "cursor": cursor,
        }
        if filters is not None:
            try:
                f = filters if isinstance(filters, Filters) else Filters.model_validate(filters)
            except ValueError as exc:
                raise InvalidInput(f"bad filters: {exc}", details={"field": "filters"}) from exc
            params |= {
                "agent_id": f.agent_id,
                "session_id": f.session_id,
                "kinds": f.kinds or None,
                "tags": f.tags or None,
                "since": _iso(f.since, "since"),
                "until": _iso(f.until, "until"),
                "metadata": json.dumps(f.metadata) if f.metadata else None,
                "tiers": list(f.tiers) or None,
            }
            if f.user_id is not None:
                raise InvalidInput(
                    "list filters by user_id are not supported over HTTP; pass user_id= instead",
                    details={"field": "filters"},
                )
        return _Call(
            "GET",
            "/v1/memories",
            params=_drop_none(params),
            parse=lambda r: Page.model_validate(r.json()),
            cube=_route(cube, user_id),
        )

    def _unreachable(self, exc: httpx.TransportError) -> errors.StorageError:
        return errors.StorageError(f"cannot reach memsvc at {self.base_url}: {exc}")

    def _get(self, id: str) -> _Call:
        return _Call("GET", f"/v1/memories/{_seg(id)}", parse=self._record)

    def _delete(self, id: str, hard: bool) -> _Call:
        return _Call("DELETE", f"/v1/memories/{_seg(id)}", params={"hard": "true"} if hard else {})

    def _graph(self, cube: str, *, types: Any, limit: int, cursor: str | None) -> _Call:
        params = _drop_none({"types": _csv(types), "limit": limit, "cursor": cursor})
        return _Call(
            "GET",
            f"/v1/cubes/{_seg(cube)}/graph",
            params=params,
            parse=lambda r: GraphPage.model_validate(r.json()),
            cube=cube,
        )

    def _neighbors(self, id: str, *, types: Any, depth: int) -> _Call:
        params = _drop_none({"types": _csv(types), "depth": depth})
        return _Call(
            "GET",
            f"/v1/memories/{_seg(id)}/neighbors",
            params=params,
            parse=lambda r: _NEIGHBORS.validate_python(r.json()),
        )

    def _generate(self, prompt: str, **kw: Any) -> _Call:
        filters, recipe = kw.get("filters"), kw.get("recipe")
        if isinstance(filters, Filters):
            kw["filters"] = filters.model_dump(mode="json", exclude_defaults=True)
        if isinstance(recipe, Recipe):
            kw["recipe"] = recipe.to_dict()
        body = _drop_none({"prompt": _text(prompt, "prompt"), **kw}) | {"k": kw["k"]}
        return _Call(
            "POST",
            "/v1/generate",
            body=body,
            parse=lambda r: Generation.model_validate(r.json()),
            slow=True,
            cube=_route(kw.get("cube"), kw.get("user_id")),
        )

    def _promote(self, id: str | Sequence[str], tier: str) -> _Call:
        ids = [id] if isinstance(id, str) else list(id)
        return _Call(
            "POST",
            "/v1/memories/promote",
            body={"record_ids": ids, "tier": tier},
            parse=self._record,
            slow=True,
        )

    def _demote(self, id: str) -> _Call:
        return _Call(
            "POST", f"/v1/memories/{_seg(id)}/demote", parse=lambda r: list(r.json()["removed"])
        )

    def _consolidate(self, cube: str | None, user_id: str | None, **kw: Any) -> _Call:
        if cube is None:
            if user_id is None:
                raise InvalidInput("give user_id or cube", details={"field": "user_id"})
            cube = f"user:{user_id}"
        if kw.get("record_ids") is not None and not isinstance(kw["record_ids"], str):
            kw["record_ids"] = list(kw["record_ids"])
        return _Call(
            "POST",
            f"/v1/cubes/{_seg(cube)}/consolidate",
            body=_drop_none(kw),
            parse=self._record,
            slow=True,
            cube=cube,
        )

    def _restore(self, id: str) -> _Call:
        return _Call("POST", f"/v1/memories/{_seg(id)}/restore", parse=self._record)

    def _lineage(self, id: str) -> _Call:
        return _Call("GET", f"/v1/memories/{_seg(id)}/lineage", parse=self._records)

    def _maintain(self, cube: str) -> _Call:
        return _Call(
            "POST",
            f"/v1/cubes/{_seg(cube)}/maintain",
            parse=lambda r: MaintenanceRun.model_validate(r.json()),
            cube=cube,
        )

    def _last_run(self, cube: str) -> _Call:
        return _Call(
            "GET",
            f"/v1/cubes/{_seg(cube)}/maintenance",
            parse=lambda r: None if r.json() is None else MaintenanceRun.model_validate(r.json()),
            cube=cube,
        )

    def _history(self, id: str) -> _Call:
        return _Call(
            "GET",
            f"/v1/memories/{_seg(id)}/history",
            parse=lambda r: _VERSIONS.validate_python(r.json()),
        )

    def _create_cube(self, name: str, **kw: Any) -> _Call:
        body = _drop_none({"name": name, **kw})
        return _Call("POST", "/v1/cubes", body=body, parse=self._cube, cube=name)

    def _get_cube(self, cube: str) -> _Call:
        return _Call("GET", f"/v1/cubes/{_seg(cube)}", parse=self._cube, cube=cube)

    def _list_cubes(self) -> _Call:
        return _Call("GET", "/v1/cubes", parse=lambda r: _CUBES.validate_python(r.json()))

    def _delete_cube(self, cube: str) -> _Call:
        return _Call("DELETE", f"/v1/cubes/{_seg(cube)}", cube=cube)

    def _share_cube(self, cube: str, tenant: str) -> _Call:
        return _Call(
            "POST",
            f"/v1/cubes/{_seg(cube)}/share",
            body={"tenant": tenant},
            parse=self._cube,
            cube=cube,
        )

    def _unshare_cube(self, cube: str, tenant: str) -> _Call:
        path = f"/v1/cubes/{_seg(cube)}/share/{_seg(tenant)}"
        return _Call("DELETE", path, parse=self._cube, cube=cube)

    def _index_cache(self, operator_token: str | None) -> _Call:
        """The answering worker's index cache, from its `/metrics`; the operator token, when
        given, replaces the API key for this call only."""
        headers = {"Authorization": f"Bearer {operator_token}"} if operator_token else {}
        return _Call("GET", "/metrics", parse=_parse_index_cache, headers=headers)

    def _operator_needed(
        self, exc: errors.AuthError, operator_token: str | None
    ) -> errors.AuthError:
        """The 401 of `/metrics`, saying what to send: the server has an operator token."""
        if operator_token:
            why = "refused the operator token given"
        else:
            why = "needs its operator token (MEMSVC_OPERATOR_TOKEN) to show /metrics"
        return errors.AuthError(
            f"the memsvc server at {self.base_url} {why}: pass operator_token= "
            f"(memsvc info: --operator-token) ({exc.message})",
            details=exc.details,
        )

    @staticmethod
    def _record(r: httpx.Response) -> MemoryRecord:
        return MemoryRecord.model_validate(r.json())

    @staticmethod
    def _records(r: httpx.Response) -> list[MemoryRecord]:
        return _RECORDS.validate_python(r.json())

    @staticmethod
    def _added(r: httpx.Response) -> Added:
        replayed = r.headers.get("idempotent-replayed", "").lower() == "true"
        return Added(_RECORDS.validate_python(r.json()), replayed=replayed)

    @staticmethod
    def _cube(r: httpx.Response) -> Cube:
        return Cube.model_validate(r.json())

    @staticmethod
    def _encode(call: _Call) -> dict[str, Any]:
        kw: dict[str, Any] = {"params": call.params}
        if call.slow:
            kw["timeout"] = None
        if call.body is not None:
            # ensure_ascii: lone surrogates travel as escapes and get the server's clear 422
            # instead of failing to encode here.
            kw["content"] = json.dumps(
                call.body, ensure_ascii=True, allow_nan=False, default=_json_default
            ).encode()
            kw["headers"] = {"Content-Type": "application/json"}
        if call.headers:
            kw["headers"] = {**kw.get("headers", {}), **call.headers}
        if call.cube is not None:
            kw["headers"] = {**kw.get("headers", {}), **_routed(call.cube)}
        return kw


# IndexCache's fields and the /metrics samples that carry them (memsvc/api/metrics.py:
# gauges, then counters with their `_total`); the budget's is absent when the worker has none.
_INDEX_SERIES = {
    "bytes": "memsvc_index_memory_bytes",
    "budget_bytes": "memsvc_index_memory_budget_bytes",
    "cubes": "memsvc_index_cubes_loaded",
    "hits": "memsvc_index_cache_hits_total",
    "misses": "memsvc_index_cache_misses_total",
    "evictions": "memsvc_index_cache_evictions_total",
    "load_seconds": "memsvc_index_load_seconds_total",
}


def _parse_index_cache(r: httpx.Response) -> IndexCache:
    """`IndexCache` from Prometheus text. A missing series is an error, never a zero: a
    server without them (not memsvc, or too old) must not read as an empty cache."""
    try:
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(r.text)
            for sample in family.samples
            if not sample.labels
        }
    except ValueError as exc:
        raise errors.MemsvcError(f"cannot read the server's /metrics: {exc}") from exc
    missing = [s for f, s in _INDEX_SERIES.items() if s not in values and f != "budget_bytes"]
    if missing:
        raise errors.MemsvcError(
            f"the server's /metrics has no {', '.join(missing)}: not a memsvc server that "
            "publishes its index cache"
        )
    got = {f: values.get(s) for f, s in _INDEX_SERIES.items()}
    return IndexCache.model_validate(
        {f: v if v is None or f == "load_seconds" else int(v) for f, v in got.items()}
    )


def _routed(cube: str | None) -> dict[str, str]:
    """The routing header for a call on `cube` (none when the call names no cube: record ids,
    the tenant's cube list; a load balancer spreads those)."""
    return {ROUTE_HEADER: route_key(cube)} if isinstance(cube, str) and cube else {}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value, "timestamp")
    raise InvalidInput(f"cannot send a {type(value).__name__} as JSON")


def _seg(value: str) -> str:
    if not isinstance(value, str) or not value or "/" in value:
        raise InvalidInput("ids and cube names cannot be empty or contain '/'")
    # percent-encode what a URL cannot carry raw (control characters): the server answers
    # for it (an id with a NUL is simply not found), as `Memory` does
    return quote(value, safe=":@._-~!$&'()*+,;=")


def _counts(resp: httpx.Response) -> dict[str, int]:
    return {k: int(resp.headers.get(f"x-memsvc-{k}", 0)) for k in ("records", "entities", "edges")}


def _tmp_path(path: Path) -> Path:
    """Where a download goes until it is complete (then it is renamed onto `path`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _cube_file(path: str | Path) -> tuple[Path, int]:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no cube file at {path}")
    return path, path.stat().st_size


def _report_training(rec: MemoryRecord, progress: Callable[[int, int, float], None] | None) -> None:
    """Training runs on the server: `progress` hears of it once, when it is done."""
    if progress is not None:
        curve = rec.metadata.get("loss_curve") or [0.0]
        progress(len(curve), len(curve), float(curve[-1]))


def _owned(cubes: list[Cube]) -> list[str]:
    """The cubes a tenant-wide `maintain()` covers, by id: a default cube's name holds its
    user id, which may contain a '/'."""
    return [c.id for c in cubes if c.access == "owner"]
