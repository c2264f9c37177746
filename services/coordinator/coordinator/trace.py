"""W3C trace context, the little the coordinator needs before tracing proper arrives.

A saga keeps the trace id of whoever started it (the `traceparent` header of StartSaga),
or a fresh one; every message the saga sends carries it in a `traceparent` header, stored
with the outbox row so the relay stamps the saga's trace, not its own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

TRACEPARENT = "traceparent"
"""The W3C trace-context header name."""

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_from(headers: Mapping[str, str]) -> str | None:
    """Return the trace id of a valid `traceparent` header, else None."""
    match = _TRACEPARENT.match(headers.get(TRACEPARENT, "").strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def new_trace_id() -> str:
    """Return a fresh random trace id (32 hex digits)."""
    return uuid.uuid4().hex


def traceparent(trace_id: str, message_id: str) -> str:
    """Return a `traceparent` for a message of the trace; the span id derives from its id."""
    span = uuid.uuid5(uuid.NAMESPACE_OID, message_id).hex[:16]
    return f"00-{trace_id}-{span}-01"
