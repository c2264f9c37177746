"""W3C trace context of sagas: one trace per saga, short spans, context stored with the outbox.

A saga keeps the trace id of whoever started it (the `traceparent` header of StartSaga), or
the one of the short root span the coordinator opens when the sender had none. The span
that handles StartSaga has an id derived from the saga id (`start_traceparent`), so any
later hop can hang its spans under it without storing more than the trace id.

Every message the saga sends is stored in the outbox with a `traceparent`: the context of
the coordinator span that decided it (handling a reply, a start), or, when no span of the
saga was active (a timer, tracing off), the saga's start span. A step command's PRODUCER
span id derives from its message id (`producer_traceparent`), so a compensation can link to
the forward step's span from the saga's state alone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from convection.tracing import consumer_span, recording, span_id_for, traceparent_for

TRACEPARENT = "traceparent"
"""The W3C trace-context header name."""

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_id_from(headers: Mapping[str, str]) -> str | None:
    """Return the trace id of a valid `traceparent` header, else None."""
    match = _TRACEPARENT.match(headers.get(TRACEPARENT, "").strip().lower())
    if match is None or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1)


def new_trace_id() -> str:
    """Return a fresh random trace id (32 hex digits)."""
    return uuid.uuid4().hex


def parent_traceparent(trace_id: str, saga_id: str) -> str:
    """Return the `traceparent` to store with an outbox row of the saga's trace.

    The current span's context when it belongs to the saga's trace (the span that decided
    the message); otherwise the saga's start span, which every trace of a saga has.
    """
    sc = trace.get_current_span().get_span_context()
    if sc.is_valid and f"{sc.trace_id:032x}" == trace_id:
        return f"00-{trace_id}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"
    return start_traceparent(trace_id, saga_id)


def start_key(saga_id: str) -> str:
    """Return the key the span id of a saga's start span derives from."""
    return f"saga-start:{saga_id}"


def start_traceparent(trace_id: str, saga_id: str) -> str:
    """Return the traceparent of the span that handled the saga's StartSaga."""
    return traceparent_for(trace_id, start_key(saga_id))


def producer_key(message_id: str) -> str:
    """Return the key the span id of a message's PRODUCER span derives from."""
    return f"publish:{message_id}"


def producer_traceparent(trace_id: str, message_id: str) -> str:
    """Return the traceparent of the PRODUCER span that published `message_id`."""
    return traceparent_for(trace_id, producer_key(message_id))


@contextmanager
def saga_start_span(
    saga_type: str, saga_id: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
) -> Iterator[str | None]:
    """Open the short span that starts a saga; yield the trace id to store with the saga.

    With a valid `traceparent` in `headers` the saga continues the sender's trace; without,
    this span is the root of a new one. Its id derives from the saga id, so every later span
    of the saga (even from a timer, or after a restart) can hang under it. Yields the
    sender's trace id, or None, when tracing is off.
    """
    sender = trace_id_from(headers)
    carrier = {TRACEPARENT: headers[TRACEPARENT]} if sender else {}
    if sender and "tracestate" in headers:
        carrier["tracestate"] = headers["tracestate"]
    with consumer_span(
        f"saga {saga_type} start",
        carrier,
        {"saga.id": saga_id, "saga.type": saga_type, **attributes},
        # A hash per message is worth it only when the span is recorded.
        span_id=span_id_for(start_key(saga_id)) if recording() else None,
    ) as span:
        sc = span.get_span_context()
        yield f"{sc.trace_id:032x}" if sc.is_valid else sender
