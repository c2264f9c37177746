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

from contracts.topology import (
    DEAD_AT_HEADER,
    ERROR_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
)

DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Header a quorum queue sets to the number of earlier returns of a message."""
FIRST_DEATH_REASON_HEADER = "x-first-death-reason"
"""Header RabbitMQ sets on a message it dead-lettered itself (e.g. `delivery_limit`)."""
FIRST_DEATH_QUEUE_HEADER = "x-first-death-queue"
"""Header RabbitMQ sets to the queue a message it dead-lettered came from."""
FIRST_DEATH_EXCHANGE_HEADER = "x-first-death-exchange"
"""Header RabbitMQ sets to the exchange a message it dead-lettered was published to."""
DEATH_HEADER = "x-death"
"""RabbitMQ's array of tables on a message it dead-lettered: queue, reason, time, routing-keys."""
ERROR_LIMIT = 500
"""Characters of a crashed handler's error kept in the `x-convection-error` header."""

# Headers the broker owns: a copy we publish must not carry stale values of them
# (a quorum queue would show the old delivery count on the copy's first delivery).
_BROKER_HEADERS = frozenset({DELIVERY_COUNT_HEADER, DEATH_HEADER})
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


def is_broker_header(key: str) -> bool:
    """Tell whether RabbitMQ owns header `key` (delivery count, x-death, first/last death)."""
    return key in _BROKER_HEADERS or key.startswith(_BROKER_HEADER_PREFIXES)


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
    if FIRST_DEATH_EXCHANGE_HEADER in headers:
        headers.setdefault(ORIGINAL_EXCHANGE_HEADER, headers[FIRST_DEATH_EXCHANGE_HEADER])
    death = _first_death((raw or {}).get(DEATH_HEADER), headers.get(FIRST_DEATH_QUEUE_HEADER))
    if death is not None:
        keys = death.get("routing-keys")
        first_key = _decode_value(keys[0]) if isinstance(keys, list | tuple) and keys else None
        if first_key is not None:
            headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, first_key)
        when = death.get("time")
        if isinstance(when, datetime.datetime):
            headers.setdefault(DEAD_AT_HEADER, rfc3339(when))
    return MappingProxyType(headers)


def _first_death(value: object, queue: str | None) -> Mapping[str, object] | None:
    # x-death lists the most recent death first; the first death's entry names its queue.
    if not isinstance(value, list | tuple):
        return None
    entries = [entry for entry in value if isinstance(entry, Mapping)]
    for entry in entries:
        if queue is not None and _decode_value(entry.get("queue")) == queue:
            return entry
    return entries[-1] if entries else None


def rfc3339(when: datetime.datetime) -> str:
    """Return `when` as RFC 3339 in UTC with a `Z` (a naive time is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    text = when.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def error_text(exc: BaseException) -> str:
    """Return `<ExceptionType>: <message>` of `exc`, cut to `ERROR_LIMIT` characters."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]


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
    headers: Mapping[str, str],
    *,
    reason: str,
    source_queue: str,
    exchange: str,
    routing_key: str,
    error: str | None = None,
) -> dict[str, str]:
    """Return the headers of a dead-letter copy: the original's, with why, where and when.

    Args:
        headers: The original's headers.
        reason: Why it is dead-lettered.
        source_queue: The queue it was taken from.
        exchange: The exchange it was published to.
        routing_key: The routing key it was published with.
        error: For a handler that crashed, `<ExceptionType>: <message>`.
    """
    copied = {key: value for key, value in headers.items() if not is_broker_header(key)}
    copied[REASON_HEADER] = reason
    copied[SOURCE_QUEUE_HEADER] = source_queue
    copied[ORIGINAL_EXCHANGE_HEADER] = exchange
    copied[ORIGINAL_ROUTING_KEY_HEADER] = routing_key
    copied[DEAD_AT_HEADER] = rfc3339(datetime.datetime.now(datetime.UTC))
    if error is not None:
        copied[ERROR_HEADER] = error[:ERROR_LIMIT]
    else:
        # An earlier death's error says nothing about this one.
        copied.pop(ERROR_HEADER, None)
    return copied
