"""OpenTelemetry for every Convection process: set up once, off at no cost, W3C over AMQP.

`setup_tracing(service)` reads the standard environment variables (`OTEL_SERVICE_NAME`,
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_TRACES_SAMPLER`,
...) and exports OTLP over HTTP/protobuf. Without an endpoint it installs nothing: the API's
no-op tracer stays in place and spans cost nothing.

Trace context crosses every hop in the W3C `traceparent` / `tracestate` AMQP headers. Spans
follow the OpenTelemetry messaging semantic conventions; saga attributes are added on top.
Every span is short (one per hop and per step attempt): nothing stays open while a saga waits.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "convection"
"""Instrumentation scope of every span Convection makes."""

_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class Tracing:
    """What `setup_tracing` installed; `shutdown()` flushes spans still in the batch."""

    enabled: bool
    provider: Any = None

    def shutdown(self) -> None:
        """Flush and stop the exporter (spans left in the batch processor are lost otherwise)."""
        if self.provider is not None:
            self.provider.shutdown()


def setup_tracing(service_name: str, *, env: Mapping[str, str] | None = None) -> Tracing:
    """Install an OTLP/HTTP exporting tracer provider if an endpoint is configured."""
    env = os.environ if env is None else env
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return Tracing(enabled=False)
    # Imported here so a process without an endpoint never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = env.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}), id_generator=chosen_id_generator()
    )
    traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        endpoint.rstrip("/") + "/v1/traces"
    )
    # The endpoint is passed on: `env` may not be the process environment (tests).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint)))
    trace.set_tracer_provider(provider)
    _TRACERS.clear()
    return Tracing(enabled=True, provider=provider)


_CHOSEN_SPAN_ID: ContextVar[int] = ContextVar("convection_chosen_span_id", default=0)


def span_id_for(key: str) -> int:
    """Return the deterministic 64-bit span id of `key` (a saga id, a message id...)."""
    value = int(uuid.uuid5(uuid.NAMESPACE_URL, f"convection-span:{key}").hex[:16], 16)
    return value or 1  # zero is the invalid span id


def traceparent_for(trace_id: str, key: str) -> str:
    """Return the traceparent of the span of `trace_id` whose id derives from `key`."""
    return f"00-{trace_id}-{span_id_for(key):016x}-01"


@contextmanager
def chosen_span_id(span_id: int | None) -> Iterator[None]:
    """Within the block, the next span started gets `span_id` (a no-op when None)."""
    if span_id is None:
        yield
        return
    token = _CHOSEN_SPAN_ID.set(span_id)
    try:
        yield
    finally:
        _CHOSEN_SPAN_ID.reset(token)


def chosen_id_generator() -> Any:
    """Return an SDK id generator that honours `chosen_span_id` (random ids otherwise)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _Ids(RandomIdGenerator):
        # A span id chosen by `chosen_span_id` (a saga's start span, a step's producer span)
        # lets another process name that span later without storing anything.
        def generate_span_id(self) -> int:
            chosen = _CHOSEN_SPAN_ID.get()
            return chosen if chosen else super().generate_span_id()

    return _Ids()


def recording() -> bool:
    """Tell whether Convection's tracer records spans, so their chosen ids are worth hashing."""
    return not isinstance(tracer(), trace.ProxyTracer | trace.NoOpTracer)


_TRACERS: list[trace.Tracer] = []


def tracer() -> trace.Tracer:
    """Return Convection's tracer (a no-op one unless tracing was set up)."""
    # Kept once found: without a provider, each `get_tracer` reads the process environment.
    # `setup_tracing` forgets it; a provider set by anyone else is reached through the proxy.
    if not _TRACERS:
        _TRACERS.append(trace.get_tracer(TRACER_NAME))
    return _TRACERS[0]


def inject(headers: MutableMapping[str, str], ctx: Context | None = None) -> None:
    """Write the current (or given) context into AMQP headers as traceparent/tracestate."""
    _PROPAGATOR.inject(headers, context=ctx)


def extract(headers: Mapping[str, str]) -> Context:
    """Read a context from AMQP headers; an empty context when there is none."""
    return _PROPAGATOR.extract(carrier=dict(headers))


def context_from_traceparent(traceparent: str | None) -> Context:
    """Return a context whose parent is `traceparent` (empty context if None or invalid)."""
    if not traceparent:
        return Context()
    return extract({"traceparent": traceparent})


def traceparent_of(span: Span) -> str:
    """Return the W3C traceparent of a span (sampled flag kept)."""
    sc = span.get_span_context()
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def trace_id_of(traceparent: str | None) -> str | None:
    """Return the 32-hex trace id of a traceparent, or None."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def new_traceparent() -> str:
    """Return a traceparent for a brand-new trace (used when nothing is exported)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def link_to(traceparent: str | None) -> list[Link]:
    """Return a span link to the span that `traceparent` names (none if absent)."""
    if not traceparent or trace_id_of(traceparent) is None:
        return []
    _, trace_id, span_id, flags = traceparent.split("-")
    sc = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16))
    )
    return [Link(sc)]


def messaging_attributes(
    *,
    operation: str,
    exchange: str,
    routing_key: str,
    message_id: str | None,
    saga: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return span attributes per the messaging semantic conventions, plus saga attributes."""
    attrs: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.operation.name": "publish" if operation == "send" else "consume",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_id:
        attrs["messaging.message.id"] = message_id
    for key, value in (saga or {}).items():
        if value is not None:
            attrs[f"saga.{key}"] = value
    return attrs


@contextmanager
def producer_span(
    name: str,
    parent: Context,
    attributes: Mapping[str, Any],
    links: list[Link] | None = None,
    *,
    span_id: int | None = None,
) -> Iterator[Span]:
    """A PRODUCER span under `parent`; inside it, `inject` writes this span's context."""
    with chosen_span_id(span_id):
        span = tracer().start_span(
            name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes, links=links or []
        )
    with trace.use_span(span, end_on_exit=True):
        yield span


@contextmanager
def consumer_span(
    name: str,
    headers: Mapping[str, str],
    attributes: Mapping[str, Any],
    links: list[Link] | None = None,
    *,
    span_id: int | None = None,
) -> Iterator[Span]:
    """A CONSUMER span, child of the context carried by the message's headers."""
    if "traceparent" not in headers and not recording():
        # No context to carry on and nothing records a span: a no-op span, as the tracer's
        # would be, without the propagator, the span object and the context switch per message.
        yield trace.INVALID_SPAN
        return
    parent = extract(headers)
    with chosen_span_id(span_id):
        span = tracer().start_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links or []
        )
    with trace.use_span(span, end_on_exit=True):
        yield span


@contextmanager
def internal_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A short INTERNAL span under the current one (e.g. a database call)."""
    with tracer().start_as_current_span(
        name, kind=SpanKind.INTERNAL, attributes=attributes or {}
    ) as span:
        yield span


@contextmanager
def db_span(operation: str, table: str, system: str = "postgresql") -> Iterator[Span]:
    """A CLIENT span of one database call, named and attributed per the semantic conventions."""
    if not recording():
        # Nothing would record it, and the current span (the consumer's) stays current.
        yield trace.INVALID_SPAN
        return
    attributes = {
        "db.system.name": system,
        "db.operation.name": operation,
        "db.collection.name": table,
    }
    with tracer().start_as_current_span(
        f"{operation} {table}", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield span


@contextmanager
def http_client_span(method: str, url: str, headers: MutableMapping[str, str]) -> Iterator[Span]:
    """A CLIENT span of one HTTP call; the request `headers` get its traceparent."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.full": url,
        "server.address": parts.hostname or "",
    }
    if parts.port is not None:
        attributes["server.port"] = parts.port
    with tracer().start_as_current_span(
        method, kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        inject(headers)
        yield span


@contextmanager
def http_server_span(
    method: str, route: str, path: str, headers: Mapping[str, str]
) -> Iterator[Span]:
    """A SERVER span of one HTTP request, child of the caller's traceparent if any."""
    attributes = {"http.request.method": method, "http.route": route, "url.path": path}
    carrier = {
        k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")
    }
    with tracer().start_as_current_span(
        f"{method} {route}",
        context=extract(carrier),
        kind=SpanKind.SERVER,
        attributes=attributes,
    ) as span:
        yield span


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` to every log record, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record with the current span's ids (empty outside a span)."""
        sc = trace.get_current_span().get_span_context()
        record.trace_id = f"{sc.trace_id:032x}" if sc.is_valid else ""
        record.span_id = f"{sc.span_id:016x}" if sc.is_valid else ""
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s trace=%(trace_id)s span=%(span_id)s %(message)s"
"""The log format of every service: trace and span ids on every line."""


def setup_logging(level: str = "INFO") -> None:
    """Configure root logging with trace-correlated lines (called once, in `__main__`)."""
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def current_context() -> Context:
    """Return the active context (to store with an outbox row)."""
    return otel_context.get_current()
