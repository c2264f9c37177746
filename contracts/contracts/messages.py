"""The union of every message on the wire, and decoding bytes into one of them.

Decoding never raises anything but `BadMessage`, whose `reason` is a stable code that the
consumer puts in the dead-letter header: the message is kept, with why it was refused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from contracts.base import SCHEMA_VERSION
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

MAX_MESSAGE_BYTES = 1_048_576
"""Largest message body a consumer accepts (1 MiB); larger ones are dead-lettered."""

_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


class BadMessage(ValueError):
    """A message body that cannot be accepted; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(body: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> AnyMessage:
    """Decode a message body into its model, or raise BadMessage with a reason code.

    The reasons: too_large, invalid_json, not_an_object, unknown_type,
    unsupported_schema_version, invalid_message.
    """
    if len(body) > max_bytes:
        raise BadMessage("too_large", f"{len(body)} bytes, the limit is {max_bytes}")
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadMessage("invalid_json", str(exc)) from exc
    if not isinstance(raw, dict):
        raise BadMessage("not_an_object", f"a JSON {type(raw).__name__}, not an object")
    kind = raw.get("type")
    if kind not in MESSAGE_TYPES:
        raise BadMessage("unknown_type", f"unknown message type {kind!r}")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise BadMessage(
            "unsupported_schema_version",
            f"schema_version {version!r}; this consumer reads {SCHEMA_VERSION}",
        )
    if "message_id" not in raw:
        # A hand-written message (e.g. from amqp-publish) may omit its id; one derived from the
        # bytes makes a redelivery of the same message a duplicate, not a second saga.
        raw["message_id"] = hashlib.sha256(body).hexdigest()[:32]
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise BadMessage("invalid_message", _summarise(exc)) from exc


def encode(message: AnyMessage) -> bytes:
    """Encode a message as the JSON bytes that go on the wire."""
    return message.model_dump_json().encode()


def _summarise(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:10]
    ]
    return "; ".join(parts)
