"""Optional OpenTelemetry tracing behind a facade that costs nothing while it is off.

    from memsvc import tracing

    with tracing.span("index.catch_up", {"memsvc.index": "vectors"}) as sp:
        index = ...
        sp.set_attribute("memsvc.vectors", index.count)

Off by default. `setup_from_env()` (called when a `Memory` opens) turns it on when the
environment asks for traces with the standard variables: `OTEL_TRACES_EXPORTER` names an
exporter other than `none` (`otlp`, `console`), or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and
`OTEL_SDK_DISABLED` is not `true`. It needs the `memsvc[otel]` extra (the OpenTelemetry SDK
and its OTLP/HTTP exporter); without it a warning says so and tracing stays off. A program
that configures OpenTelemetry itself calls `enable()` (its global tracer provider) or
`enable(provider)`.

While off, `span()` returns one shared do-nothing object: no OpenTelemetry import, no
allocation. While on, each span becomes a child of the current one (contextvars, so across
`await` and anyio's worker threads), and a failure marks it as an error with the exception's
class name only: messages may quote input.

Spans carry no memory content: no record or query text, no user, session or tenant names.
Attributes are counts, k, the recipe, each channel's hit count, and a hash of the tenant;
`MEMSVC_OTEL_CAPTURE_QUERY=true` adds the query text to recall spans (opt-in).

This module imports nothing of ours, so every layer (store and retrieval included) may use it.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "SpanLike",
    "active",
    "annotate",
    "digest",
    "disable",
    "enable",
    "from_env",
    "mark_error",
    "server_span",
    "setup_from_env",
    "span",
]

log = logging.getLogger(__name__)

AttrValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]
Attributes = Mapping[str, AttrValue]
INSTRUMENTATION = "memsvc"


class SpanLike(Protocol):
    """What a `with tracing.span(...) as sp` block may do with `sp` (an OpenTelemetry span
    while on, a do-nothing one while off)."""

    def set_attribute(self, key: str, value: AttrValue) -> Any: ...

    def update_name(self, name: str) -> Any: ...

    def is_recording(self) -> bool: ...


class _NullSpan:
    """The span and its context manager while tracing is off: every call does nothing."""

    __slots__ = ()

    def __enter__(self) -> _NullSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: AttrValue) -> None:
        return None

    def update_name(self, name: str) -> None:
        return None

    def is_recording(self) -> bool:
        return False


_NULL = _NullSpan()
_tracer: Any = None  # an OpenTelemetry Tracer while on
_otel: Any = None  # the OpenTelemetry API pieces a live span needs (_Api), once on


class _Api:
    """The OpenTelemetry API, imported on the first `enable()` only."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.attach = context.attach
        self.detach = context.detach
        self.set_span_in_context = trace.set_span_in_context
        self.get_tracer_provider = trace.get_tracer_provider
        self.get_current_span = trace.get_current_span
        self.extract = propagate.extract
        self.server = SpanKind.SERVER
        self.internal = SpanKind.INTERNAL
        self.error = Status(StatusCode.ERROR)


class _LiveSpan:
    """A span made current for the `with` block and ended after it."""

    __slots__ = ("_attributes", "_context", "_kind", "_name", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: Any,
        name: str,
        attributes: Attributes | None,
        kind: Any = None,
        context: Any = None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._kind = kind
        self._context = context

    def __enter__(self) -> SpanLike:
        api = _otel
        sp = self._tracer.start_span(
            self._name,
            context=self._context,
            kind=self._kind or api.internal,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = sp
        self._token = api.attach(api.set_span_in_context(sp))
        return sp  # type: ignore[no-any-return]

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        sp = self._span
        try:
            if exc_type is not None:
                sp.set_attribute("error.type", exc_type.__qualname__)
                sp.set_status(_otel.error)
        finally:
            _otel.detach(self._token)
            sp.end()


def active() -> bool:
    """Whether spans are being recorded now."""
    return _tracer is not None


def span(name: str, attributes: Attributes | None = None) -> Any:
    """A context manager: a child span of the current one while on, nothing while off. It
    gives a `SpanLike` (`set_attribute`, `update_name`, `is_recording`)."""
    tracer = _tracer
    if tracer is None:
        return _NULL
    return _LiveSpan(tracer, name, attributes)


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (e.g. the SDK call's root span); nothing while off.
    Callers build `attributes` only when `active()`."""
    if _tracer is not None:
        _otel.get_current_span().set_attributes(attributes)


def server_span(method: str, headers: Iterable[tuple[bytes, bytes]]) -> Any:
    """The span of one HTTP request (kind SERVER), continuing the caller's trace when the
    request carries W3C trace context (`traceparent`). Named `method` until the middleware
    knows the route."""
    tracer = _tracer
    if tracer is None:
        return _NULL
    carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
    parent = _otel.extract(carrier)
    return _LiveSpan(
        tracer, method, {"http.request.method": method}, kind=_otel.server, context=parent
    )


def mark_error(sp: SpanLike, error_type: str) -> None:
    """Mark a live span as failed (e.g. an HTTP 5xx answered without an exception)."""
    if sp.is_recording():
        sp.set_attribute("error.type", error_type)
        sp.set_status(_otel.error)  # type: ignore[attr-defined]


def digest(value: str) -> str:
    """A short stable hash of an identifier (a tenant): groups spans by it without naming it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


# ---- switching on and off ----------------------------------------------------------------


def enable(tracer_provider: Any = None) -> None:
    """Record spans through `tracer_provider` (an OpenTelemetry `TracerProvider`; default
    the global one, i.e. whatever the program configured)."""
    global _tracer, _otel
    _otel = _otel or _Api()
    provider = tracer_provider if tracer_provider is not None else _otel.get_tracer_provider()
    _tracer = provider.get_tracer(INSTRUMENTATION, _version())


def disable() -> None:
    """Stop recording: `span()` is the do-nothing object again."""
    global _tracer
    _tracer = None


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("memsvc")
    except Exception:  # a source checkout without metadata
        return None


def _exporters(environ: Mapping[str, str]) -> list[str]:
    named = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    named = [e for e in named if e]
    if named:
        return [] if "none" in named else named
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return ["otlp"] if endpoint else []


def from_env() -> Any:
    """A `TracerProvider` built from the standard OTEL_* variables, or None when they do not
    ask for traces (or the SDK is missing: a warning names the extra).

    Exporters: `otlp` (OTLP over HTTP/protobuf; the endpoint, headers, timeout and
    compression come from `OTEL_EXPORTER_OTLP_*`) and `console`. The SDK itself reads the
    sampler (`OTEL_TRACES_SAMPLER`), the batch processor's limits (`OTEL_BSP_*`) and the
    resource (`OTEL_RESOURCE_ATTRIBUTES`); the service name is `OTEL_SERVICE_NAME`, else
    `memsvc`. Everything is read from `os.environ`, as the SDK and its exporter read it."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = _exporters(env)
    if not exporters:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning(
            "OTEL_* asks for traces but the OpenTelemetry SDK is not installed: "
            "pip install 'memsvc[otel]'; tracing stays off"
        )
        return None
    resource = Resource.create()
    extra: dict[str, str] = {}
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        extra[SERVICE_NAME] = "memsvc"
    version = _version()
    if SERVICE_VERSION not in resource.attributes and version:
        extra[SERVICE_VERSION] = version
    provider = TracerProvider(resource=resource.merge(Resource(extra)) if extra else resource)
    added = 0
    for name in exporters:
        if name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol.strip().lower() != "http/protobuf":
                log.warning(
                    "memsvc exports OTLP over HTTP/protobuf only (OTEL_EXPORTER_OTLP_PROTOCOL=%s "
                    "is not supported): point the endpoint at the collector's HTTP port (4318)",
                    protocol,
                )
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                log.warning("the OTLP exporter is missing: pip install 'memsvc[otel]'")
                continue
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console): ignored", name)
            continue
        added += 1
    if not added:
        provider.shutdown()
        return None
    return provider


_setup_lock = threading.Lock()
_setup_done = False


def setup_from_env() -> bool:
    """Turn tracing on from the environment (`from_env`), once per process; spans still
    batched at exit are sent then. Whether tracing is on."""
    global _setup_done
    with _setup_lock:
        if not _setup_done:
            _setup_done = True
            provider = from_env()
            if provider is not None:
                enable(provider)
                atexit.register(provider.shutdown)
                log.info("OpenTelemetry tracing on (OTEL_* environment)")
    return active()
