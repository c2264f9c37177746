"""What a decision sends, as outbox messages, each with how the relay will trace it.

Step commands, lifecycle events, and the coordinator's notes to itself.

Everything about a publish is decided here, when the row is written: exchange, routing key,
body, headers, and the span (name, attributes, links). The relay then publishes rows without
reading their bodies or any saga's history.
"""

from __future__ import annotations

from datetime import datetime

from contracts import (
    REJECTED,
    CancelSaga,
    Command,
    ErrorInfo,
    SagaEvent,
    StartSaga,
    WakeSaga,
    encode,
    topology,
)
from convection.tracing import messaging_attributes
from coordinator.core import SagaState, message_id
from coordinator.store import OutboxMessage, SpanSpec
from coordinator.trace import TRACEPARENT, parent_traceparent, producer_traceparent


def command_message(state: SagaState, cmd: Command) -> OutboxMessage:
    """Return the outbox message of a step command (unroutable is an error: mandatory)."""
    saga: dict[str, str | int | bool] = {
        "id": state.saga_id,
        "type": state.saga_type,
        "step": cmd.step,
        "attempt": cmd.attempt,
        "compensation": cmd.compensation,
    }
    links: tuple[str, ...] = ()
    step = state.step(cmd.step)
    trace_id = state.trace_id
    if cmd.compensation and trace_id and step is not None and step.forward.command_id:
        # A compensation links to the producer span of the forward attempt it undoes.
        links = (producer_traceparent(trace_id, step.forward.command_id),)
    name = f"{cmd.step} {'compensate' if cmd.compensation else 'send'}"
    return _message(
        state,
        topology.COMMANDS_EXCHANGE,
        cmd.service,
        cmd.message_id,
        encode(cmd),
        mandatory=True,
        span=(name, saga, links),
    )


def event_message(state: SagaState, event: SagaEvent) -> OutboxMessage:
    """Return the outbox message of a lifecycle event; its span records how the saga went."""
    saga: dict[str, str | int | bool] = {
        "id": state.saga_id,
        "type": state.saga_type,
        "outcome": str(event.status),
    }
    if event.step is not None:
        saga["event.step"] = event.step
    return _message(
        state,
        topology.EVENTS_EXCHANGE,
        topology.event_routing_key(event.saga_type, event.status),
        event.message_id,
        encode(event),
        # Nobody may be listening for lifecycle events: that is not an error.
        mandatory=False,
        span=(f"saga {event.saga_type} {event.status}", saga, ()),
    )


def rejected_message(
    msg: StartSaga, saga_id: str, error: ErrorInfo, at: datetime, trace_id: str | None
) -> OutboxMessage:
    """Return the `rejected` lifecycle event that answers a StartSaga nobody could start."""
    event = SagaEvent(
        message_id=message_id(saga_id, "rejected", msg.message_id),
        sent_at=at,
        saga_id=saga_id,
        saga_type=msg.saga_type,
        status=REJECTED,
        error=error,
        trace_id=trace_id,
        at=at,
    )
    key = topology.event_routing_key(msg.saga_type, REJECTED)
    # Not traced: no saga exists whose trace it could join.
    return OutboxMessage(topology.EVENTS_EXCHANGE, key, event.message_id, encode(event), False)


def to_self(msg: CancelSaga | WakeSaga) -> OutboxMessage:
    """Return the outbox message of a note to the coordinator itself (not traced)."""
    key = topology.CANCEL_ROUTING_KEY if isinstance(msg, CancelSaga) else topology.WAKE_ROUTING_KEY
    return OutboxMessage(
        topology.SAGAS_EXCHANGE,
        key,
        msg.message_id,
        encode(msg),
        mandatory=True,
        saga_id=msg.saga_id,
    )


def _message(
    state: SagaState,
    exchange: str,
    routing_key: str,
    message_id: str,
    body: bytes,
    *,
    mandatory: bool,
    span: tuple[str, dict[str, str | int | bool], tuple[str, ...]],
) -> OutboxMessage:
    if state.trace_id is None:
        return OutboxMessage(
            exchange, routing_key, message_id, body, mandatory=mandatory, saga_id=state.saga_id
        )
    name, saga, links = span
    attributes = messaging_attributes(
        operation="send",
        exchange=exchange,
        routing_key=routing_key,
        message_id=message_id,
        saga=saga,
    )
    return OutboxMessage(
        exchange,
        routing_key,
        message_id,
        body,
        mandatory=mandatory,
        headers={TRACEPARENT: parent_traceparent(state.trace_id, state.saga_id)},
        saga_id=state.saga_id,
        span=SpanSpec(name, attributes, links),
    )
