"""Tracing helpers: off without an endpoint, W3C context through headers, trace-stamped logs."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, use_span

from convection import tracing


def test_off_without_an_endpoint() -> None:
    assert not tracing.setup_tracing("x", env={}).enabled
    assert not tracing.setup_tracing(
        "x", env={"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h"}
    ).enabled


def test_context_round_trips_through_headers_and_links() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tr = provider.get_tracer("t")
    with tr.start_as_current_span("sender", kind=SpanKind.PRODUCER) as sender:
        headers: dict[str, str] = {}
        tracing.inject(headers)
    parent = tracing.traceparent_of(sender)
    assert headers["traceparent"] == parent
    assert tracing.trace_id_of(parent) == f"{sender.get_span_context().trace_id:032x}"
    ctx = tracing.extract(headers)
    with tr.start_as_current_span("receiver", context=ctx, links=tracing.link_to(parent)):
        pass
    receiver = exporter.get_finished_spans()[-1]
    assert receiver.parent is not None
    assert receiver.parent.span_id == sender.get_span_context().span_id
    assert receiver.links[0].context.span_id == sender.get_span_context().span_id
    assert tracing.trace_id_of("garbage") is None
    assert tracing.link_to(None) == []
    fresh = tracing.new_traceparent()
    assert tracing.trace_id_of(fresh) is not None
    assert tracing.context_from_traceparent(None) is not None


def test_messaging_attributes_follow_the_conventions() -> None:
    attrs = tracing.messaging_attributes(
        operation="send",
        exchange="convection.commands",
        routing_key="ro",
        message_id="m1",
        saga={
            "id": "s1",
            "type": "ns.instantiate",
            "step": "networks",
            "attempt": 2,
            "compensation": False,
            "none": None,
        },
    )
    assert attrs["messaging.system"] == "rabbitmq"
    assert attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.destination.name"] == "convection.commands"
    assert attrs["messaging.rabbitmq.destination.routing_key"] == "ro"
    assert attrs["saga.attempt"] == 2
    assert "saga.none" not in attrs


def test_log_lines_carry_trace_and_span_ids() -> None:
    provider = TracerProvider()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    filt = tracing.TraceContextFilter()
    filt.filter(record)
    assert record.trace_id == ""  # type: ignore[attr-defined]
    span = provider.get_tracer("t").start_span("s")
    with use_span(span, end_on_exit=True):
        filt.filter(record)
    assert record.trace_id == f"{span.get_span_context().trace_id:032x}"  # type: ignore[attr-defined]
    assert record.span_id == f"{span.get_span_context().span_id:016x}"  # type: ignore[attr-defined]
