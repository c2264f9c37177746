"""The union of every message on the wire, and decoding bytes into one of them.

Decoding never raises anything but `BadMessage`, whatever the bytes: its `reason` is a stable
code (one of `BAD_MESSAGE_REASONS`) that the consumer puts in the dead-letter header, so the
message is kept with why it was refused.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from contracts.base import SCHEMA_VERSION
from contracts.jsonsafe import MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, BadMessage, parse_json
from contracts.saga import CancelSaga, SagaEvent, StartSaga, WakeSaga
from contracts.steps import Command, Reply

AnyMessage = Annotated[
    StartSaga | CancelSaga | WakeSaga | SagaEvent | Command | Reply, Field(discriminator="type")
]
"""Every message type, told apart by its `type` field."""

MESSAGE_TYPES: dict[str, type[Any]] = {
    "saga.start": StartSaga,
    "saga.cancel": CancelSaga,
    "saga.wake": WakeSaga,
    "saga.event": SagaEvent,
    "step.command": Command,
    "step.reply": Reply,
}
"""Message classes by their `type`."""

_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


def decode(
    body: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> AnyMessage:
    """Decode a message body into its model, or raise BadMessage with a reason code.

    Args:
        body: The raw message body.
        max_bytes: Largest body accepted, inclusive.
        max_depth: Deepest nesting of arrays and objects accepted.

    Returns:
        The message, with a `message_id` derived from the bytes when the body has none.

    Raises:
        BadMessage: With one of `BAD_MESSAGE_REASONS`: those of `parse_json`, then
            not_an_object, unknown_type, unsupported_schema_version, invalid_message.
    """
    raw = parse_json(body, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(raw, dict):
        raise BadMessage("not_an_object", f"a JSON {type(raw).__name__}, not an object")
    kind = raw.get("type")
    # A list or object as `type` is unhashable: the dict lookup would raise TypeError.
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise BadMessage("unknown_type", f"unknown message type {_clip(kind)}")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise BadMessage(
            "unsupported_schema_version",
            f"schema_version {_clip(version)}; this consumer reads {SCHEMA_VERSION}",
        )
    if "message_id" not in raw:
        # A hand-written message (e.g. from amqp-publish) may omit its id; one derived from the
        # bytes makes a redelivery of the same message a duplicate, not a second saga.
        raw["message_id"] = hashlib.sha256(body).hexdigest()[:32]
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise BadMessage("invalid_message", _summarise(exc)) from exc
    except Exception as exc:
        # pydantic wraps only ValueError and AssertionError from validators; anything else
        # escaping one is a bug in a model, but dead-lettering with a reason beats a message
        # retried until the broker drops it without one.
        raise BadMessage("invalid_message", f"{type(exc).__name__}: {exc}") from exc


def encode(message: AnyMessage) -> bytes:
    """Encode a message as the JSON bytes that go on the wire."""
    return message.model_dump_json().encode()


def _clip(value: Any) -> str:
    # A hostile value can be a megabyte long; the detail ends up in logs.
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _summarise(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p)[:80] for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:10]
    ]
    return "; ".join(parts)
