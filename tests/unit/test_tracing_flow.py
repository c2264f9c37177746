"""How context flows through the coordinator's hops: stored with the row, published by the relay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts import Command, SagaEvent, SagaStatus
from convection import tracing
from coordinator import outgoing, relay, trace
from coordinator.core import Leg, SagaState, StepState, StepStatus
from coordinator.store import OutboxMessage, OutboxRow
from sagas import StepKind


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Route Convection's tracer to an in-memory exporter (the global provider is untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=tracing.chosen_id_generator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("t"))
    yield exporter
    provider.shutdown()


def _only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def _row(body: dict[str, object], headers: dict[str, str], message_id: str = "m-1") -> OutboxRow:
    return OutboxRow(
        id=1,
        exchange="convection.commands",
        routing_key="ro",
        message_id=message_id,
        body=json.dumps(body).encode(),
        headers=headers,
        mandatory=True,
        attempts=0,
        created_at=datetime.now(UTC),
    )


def _claimed(msg: OutboxMessage) -> OutboxRow:
    """The row the relay claims for a message the processor wrote."""
    return OutboxRow(
        id=1,
        exchange=msg.exchange,
        routing_key=msg.routing_key,
        message_id=msg.message_id,
        body=msg.body,
        headers=msg.headers,
        mandatory=msg.mandatory,
        attempts=0,
        created_at=datetime.now(UTC),
        span=msg.span,
    )


def _saga(trace_id: str, saga_id: str = "s-1") -> SagaState:
    now = datetime.now(UTC)
    networks = StepState(
        name="networks",
        stage=1,
        service="ro",
        action="ro.create-networks",
        kind=StepKind.COMPENSATABLE,
        forward=Leg[StepStatus](status=StepStatus.SUCCEEDED, attempt=1, command_id="do-1"),
    )
    return SagaState(
        saga_id=saga_id,
        saga_type="ns.instantiate",
        definition_version=1,
        status=SagaStatus.COMPENSATING,
        input={},
        created_at=now,
        updated_at=now,
        trace_id=trace_id,
        steps=(networks,),
    )


def test_service_name_override_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otel_trace, "set_tracer_provider", lambda _provider: None)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/", "OTEL_SERVICE_NAME": "over"}
    setup = tracing.setup_tracing("coordinator", env=env)
    try:
        assert setup.enabled
        assert setup.provider.resource.attributes["service.name"] == "over"
    finally:
        setup.shutdown()


def test_a_chosen_span_id_names_the_next_span(spans: InMemorySpanExporter) -> None:
    chosen = tracing.span_id_for("saga-start:s-1")
    assert chosen == tracing.span_id_for("saga-start:s-1") != tracing.span_id_for("other")
    with tracing.consumer_span("first", {}, {}, span_id=chosen), tracing.internal_span("inner"):
        pass
    assert _only(spans, "first").context.span_id == chosen
    assert _only(spans, "inner").context.span_id != chosen


def test_stored_context_is_the_deciding_span_else_the_saga_start(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.consumer_span("decide", {}, {}) as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
        stored = trace.parent_traceparent(trace_id, "s-1")
        foreign = trace.parent_traceparent("ab" * 16, "s-2")
    assert stored == tracing.traceparent_of(span)
    # Not this span's trace: the row keeps the saga's trace id, under the saga's start span.
    assert tracing.trace_id_of(foreign) == "ab" * 16
    assert foreign == trace.start_traceparent("ab" * 16, "s-2")


def test_relay_publishes_in_the_stored_context_with_links(spans: InMemorySpanExporter) -> None:
    undo = Command(
        message_id="undo-1",
        saga_id="s-1",
        saga_type="ns.instantiate",
        step="networks",
        attempt=2,
        compensation=True,
        idempotency_key="s-1/networks/undo",
        undoes_key="s-1/networks",
        service="ro",
        action="ro.delete-networks",
        payload={},
    )
    with tracing.consumer_span("decide", {}, {}) as decider:
        trace_id = f"{decider.get_span_context().trace_id:032x}"
        # The processor writes the row inside the span that decided it.
        row = _claimed(outgoing.command_message(_saga(trace_id), undo))
    forward = trace.producer_traceparent(trace_id, "do-1")
    with relay.producer_span_of(row) as span:
        headers: dict[str, str] = {}
        tracing.inject(headers)
    sent = _only(spans, "networks compensate")
    assert sent.kind == SpanKind.PRODUCER
    assert sent.parent is not None
    assert sent.parent.span_id == decider.get_span_context().span_id
    assert sent.context.span_id == tracing.span_id_for(trace.producer_key("undo-1"))
    assert headers["traceparent"] == tracing.traceparent_of(span)
    assert sent.attributes is not None
    assert sent.attributes["messaging.system"] == "rabbitmq"
    assert sent.attributes["messaging.operation.type"] == "send"
    assert sent.attributes["messaging.message.id"] == "undo-1"
    assert sent.attributes["saga.compensation"] is True
    assert sent.attributes["saga.attempt"] == 2
    assert [f"{ln.context.span_id:016x}" for ln in sent.links] == [forward.split("-")[2]]


def test_relay_hangs_an_undecided_row_under_the_saga_start(spans: InMemorySpanExporter) -> None:
    trace_id = "cd" * 16
    event = SagaEvent(
        message_id="ev-1",
        saga_id="s-2",
        saga_type="t",
        status=SagaStatus.COMPLETED,
        at=datetime.now(UTC),
    )
    state = _saga(trace_id, "s-2").model_copy(update={"saga_type": "t"})
    with relay.producer_span_of(_claimed(outgoing.event_message(state, event))):
        pass
    end = _only(spans, "saga t completed")
    assert end.parent is not None
    assert f"{end.parent.span_id:016x}" == trace.start_traceparent(trace_id, "s-2").split("-")[2]
    assert end.attributes is not None
    assert end.attributes["saga.outcome"] == "completed"


def test_relay_makes_no_span_for_a_row_of_no_trace(spans: InMemorySpanExporter) -> None:
    with relay.producer_span_of(_row({"type": "saga.wake"}, {})) as span:
        assert not span.get_span_context().is_valid
    assert not spans.get_finished_spans()


def test_http_server_span_is_the_client_span_child(spans: InMemorySpanExporter) -> None:
    headers: dict[str, str] = {"X-Auth-Token": "t"}
    with tracing.http_client_span("GET", "http://127.0.0.1:6080/compute/v2.1/servers", headers):
        pass
    with tracing.http_server_span("GET", "/compute/v2.1/servers", "/x", {"Traceparent": "bad"}):
        pass
    route = "/compute/v2.1/servers"
    with tracing.http_server_span("GET", route, "/x", headers), tracing.db_span("SELECT", "s"):
        pass
    client = _only(spans, "GET")
    servers = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert servers[0].parent is None
    assert servers[1].parent is not None
    assert servers[1].parent.span_id == client.context.span_id
    assert client.attributes is not None
    assert client.attributes["server.port"] == 6080
    assert _only(spans, "SELECT s").parent == servers[1].context


def test_a_saga_continues_its_sender_or_gets_a_root(spans: InMemorySpanExporter) -> None:
    sender = tracing.new_traceparent()
    with trace.saga_start_span("t", "s-3", {"traceparent": sender}, {}) as continued:
        pass
    with trace.saga_start_span("t", "s-4", {"traceparent": "junk"}, {}) as fresh:
        pass
    first, second = spans.get_finished_spans()
    assert continued == tracing.trace_id_of(sender)
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == sender.split("-")[2]
    assert second.parent is None
    assert fresh == f"{second.context.trace_id:032x}" != continued
    assert second.context.span_id == tracing.span_id_for(trace.start_key("s-4"))


def test_tracing_off_keeps_the_sender_trace_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "tracer", otel_trace.NoOpTracer)
    sender = tracing.new_traceparent()
    with trace.saga_start_span("t", "s-5", {"traceparent": sender}, {}) as trace_id:
        assert trace_id == tracing.trace_id_of(sender)
    with trace.saga_start_span("t", "s-6", {}, {}) as trace_id:
        assert trace_id is None
