"""Message headers as the transport exposes them: flat `str` values, same on every backend.

AMQP headers are typed tables (strings, integers, timestamps, nested tables and
arrays). Callers get `Mapping[str, str]` instead, so code that reads a header
never depends on the backend; this module decodes them and builds the headers
of dead-letter copies.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from contracts.topology import REASON_HEADER, SOURCE_QUEUE_HEADER

DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Header a quorum queue sets to the number of earlier returns of a message."""
FIRST_DEATH_REASON_HEADER = "x-first-death-reason"
"""Header RabbitMQ sets on a message it dead-lettered itself (e.g. `delivery_limit`)."""
FIRST_DEATH_QUEUE_HEADER = "x-first-death-queue"
"""Header RabbitMQ sets to the queue a message it dead-lettered came from."""
FIRST_DEATH_EXCHANGE_HEADER = "x-first-death-exchange"
"""Header RabbitMQ sets to the exchange a message it dead-lettered was published to."""

# Headers the broker owns: a copy we publish must not carry stale values of them
# (a quorum queue would show the old delivery count on the copy's first delivery).
_BROKER_HEADERS = frozenset({DELIVERY_COUNT_HEADER, "x-death"})
_BROKER_HEADER_PREFIXES = ("x-first-death-", "x-last-death-")


def _decode_value(value: object) -> str | None:
    # bool before int: bool is an int subclass, and "true" reads better than "1".
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    # Nested tables and arrays (x-death) have no faithful flat form.
    return None


def decode_headers(raw: Mapping[str, object] | None) -> Mapping[str, str]:
    """Return `raw` with values as str, plus the dead-letter headers of broker dead letters.

    A message RabbitMQ dead-lettered itself (delivery limit) carries
    `x-first-death-*` headers but not ours, so the reason and source queue are
    filled in from them: every dead letter then names its reason and source queue.
    """
    headers: dict[str, str] = {}
    for key, value in (raw or {}).items():
        decoded = _decode_value(value)
        if decoded is not None:
            headers[key] = decoded
    if FIRST_DEATH_REASON_HEADER in headers:
        headers.setdefault(REASON_HEADER, headers[FIRST_DEATH_REASON_HEADER])
    if FIRST_DEATH_QUEUE_HEADER in headers:
        headers.setdefault(SOURCE_QUEUE_HEADER, headers[FIRST_DEATH_QUEUE_HEADER])
    return MappingProxyType(headers)


def delivery_count(raw: Mapping[str, object] | None) -> int:
    """Return how often a message was returned to its queue before (0 when never)."""
    value = (raw or {}).get(DELIVERY_COUNT_HEADER)
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str | bytes) and value.isdigit():
        return int(value)
    return 0


def dead_letter_headers(
    headers: Mapping[str, str], *, reason: str, source_queue: str
) -> dict[str, str]:
    """Return the headers of a dead-letter copy: the original's, with reason and source queue."""
    copied = {
        key: value
        for key, value in headers.items()
        if key not in _BROKER_HEADERS and not key.startswith(_BROKER_HEADER_PREFIXES)
    }
    copied[REASON_HEADER] = reason
    copied[SOURCE_QUEUE_HEADER] = source_queue
    return copied
