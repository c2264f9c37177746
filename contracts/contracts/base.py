"""Building blocks of every wire model: the base class, UTC datetimes, identifiers.

Every model forbids unknown fields and is immutable, so a typo in a producer is an error at the
producer, not a silently ignored field at the consumer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1
"""The schema version this release of the contracts writes and reads."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        # 9999-12-31T23:00-05:00 is past datetime.max in UTC; pydantic passes an
        # OverflowError through unwrapped, so it must become a validation error here.
        raise ValueError("the time is out of range once converted to UTC") from exc


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC; naive datetimes are rejected."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]
"""An id chosen by a producer: letters, digits and `._:/-`, at most 128 characters."""

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
"""A short lower-case name (saga types, actions, resource names)."""

JsonObject = dict[str, Any]
"""A JSON object, as decoded."""

SECRET_MARK = "x-convection-secret"  # noqa: S105 - the name of a schema keyword
"""JSON Schema keyword marking a field whose value must travel and rest sealed."""

Secret = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000),
    Field(json_schema_extra={SECRET_MARK: True}),
]
"""A secret (a password): the coordinator seals it on arrival (`convection.sealing`), only
the service that owns it can open it."""


def new_id() -> str:
    """Return a fresh random message id."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """Return the current time in UTC (for producers; the engine never reads the clock)."""
    return datetime.now(UTC)


class Model(BaseModel):
    """Base of every wire model: unknown fields forbidden, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(Model):
    """What went wrong: a stable machine-readable code and a message for a human."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    message: Annotated[str, StringConstraints(max_length=4000)]


class Message(Model):
    """Envelope fields every message carries."""

    schema_version: int = SCHEMA_VERSION
    message_id: Identifier = Field(default_factory=new_id)
    sent_at: UtcDatetime = Field(default_factory=utc_now)
