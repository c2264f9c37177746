"""The face of collected dead letters for people and tools: list, show, replay, purge.

The HTTP API (and through it `convection dead-letters`) calls only these.

A replay publishes the dead message again to the queue it died in, through the default
exchange (routing key = that queue's name, mandatory, confirmed), with a new message id and
`x-convection-replay-of: <its message id>`. The coordinator's inbox remembers the ids of the
messages it handled, also of those it rejected (the rejection commits, with its lifecycle
event), so a coordinator message replayed under its old id would be dropped as a duplicate:
the body's own `message_id` is rewritten to the new id too, and a StartSaga without a saga
id gets the id its first delivery derived, so the replay starts that same saga. A step command
keeps its body as it was: its id is what the coordinator matches the reply against, and the
participant dedupes by idempotency key, not by message id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from contracts import MAX_MESSAGE_BYTES
from contracts.messages import MESSAGE_TYPES
from contracts.topology import DEAD_LETTER_HEADERS, REPLAY_OF_HEADER
from convection.transport import PublishError, Transport, TransportError, Unroutable
from convection.transport.base import DEFAULT_CONTENT_TYPE
from convection.transport.headers import is_broker_header, rfc3339
from coordinator.core import message_id as derived_id
from coordinator.store import DeadLetterFilter, PurgeSelector, Store
from coordinator.store.dead_letters import SUMMARY_COLUMNS

logger = logging.getLogger(__name__)

DEFAULT_EXCHANGE = ""
"""The exchange that routes to the queue named by the routing key: a replay hits one queue."""
COMMAND_TYPE = "step.command"
"""The message type whose body a replay leaves as it was."""


class BadCursor(ValueError):
    """A page cursor that this API did not hand out."""


def encode_cursor(dead_at: datetime, dead_letter_id: int) -> str:
    """Return the opaque cursor of the page after the row (dead_at, id)."""
    raw = json.dumps([dead_at.isoformat(), dead_letter_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Return the (dead_at, id) a cursor stands for, or raise BadCursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, dead_letter_id = json.loads(raw)
        when = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor(f"not a cursor of this API: {cursor[:80]!r}") from exc
    if (
        when.tzinfo is None
        or not isinstance(dead_letter_id, int)
        or not 0 <= dead_letter_id < 2**63  # a bigint
    ):
        raise BadCursor(f"not a cursor of this API: {cursor[:80]!r}")
    return when, dead_letter_id


@dataclass(frozen=True)
class Page:
    """A page of dead letters, newest first, and the cursor of the next (None: the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class Replayed:
    """What a replay came to; `replay_message_id` is set when it was published."""

    kind: Literal["replayed", "not_found", "already_replayed", "unroutable", "unavailable"]
    dead_letter_id: int
    replay_message_id: str | None = None
    note: str = ""


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    item = {name: row[name] for name in SUMMARY_COLUMNS}
    for name in ("dead_at", "collected_at", "replayed_at"):
        if item[name] is not None:
            item[name] = rfc3339(item[name])
    item["size"] = int(row["size"] or 0)
    return item


def replay_body(body: bytes, new_id: str) -> bytes:
    """Return the body to replay: a coordinator message gets `new_id` as its `message_id`."""
    if len(body) > MAX_MESSAGE_BYTES:
        return body
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if not isinstance(parsed, dict) or parsed.get("type") == COMMAND_TYPE:
        return body
    kind = parsed.get("type")
    if "message_id" not in parsed and not (isinstance(kind, str) and kind in MESSAGE_TYPES):
        return body
    first = parsed.get("message_id")
    if not isinstance(first, str):
        # What the decoder derives for a body without one: the replay must not change it.
        first = hashlib.sha256(body).hexdigest()[:32]
    parsed["message_id"] = new_id
    if kind == "saga.start" and not parsed.get("saga_id"):
        parsed["saga_id"] = derived_id("saga", first)
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode()


def replay_headers(headers: dict[str, str], original_id: str | None) -> dict[str, str]:
    """Return the headers to replay with: the original's, without dead-letter and broker ones."""
    kept = {
        key: value
        for key, value in headers.items()
        if key not in DEAD_LETTER_HEADERS and not is_broker_header(key)
    }
    kept[REPLAY_OF_HEADER] = original_id or ""
    return kept


class DeadLetterOps:
    """List, show, replay and purge the dead letters one coordinator's store holds."""

    def __init__(self, store: Store, transport: Transport) -> None:
        self._store = store
        self._transport = transport

    async def list_dead_letters(self, f: DeadLetterFilter) -> Page:
        """Return a page of dead letters, newest first."""
        async with self._store.reading() as conn:
            rows = await self._store.dead_letters(conn, f)
        cursor = None
        if len(rows) == f.limit:
            cursor = encode_cursor(rows[-1]["dead_at"], rows[-1]["id"])
        return Page([_summary(row) for row in rows], cursor)

    async def get_dead_letter(self, dead_letter_id: int) -> dict[str, Any] | None:
        """Return one dead letter with its headers and body, or None if there is none."""
        async with self._store.reading() as conn:
            row = await self._store.dead_letter(conn, dead_letter_id)
        if row is None:
            return None
        detail = _summary(row)
        detail["content_type"] = row["content_type"]
        detail["replayed_by"] = row["replayed_by"]
        detail["replay_reason"] = row["replay_reason"]
        detail["headers"] = dict(row["headers"] or {})
        try:
            detail["body"] = bytes(row["body"]).decode("utf-8")
        except UnicodeDecodeError:
            detail["body_base64"] = base64.b64encode(row["body"]).decode()
        return detail

    async def replay(
        self, dead_letter_id: int, *, reason: str, again: bool = False, requested_by: str = "api"
    ) -> Replayed:
        """Publish a dead letter again to the queue it died in, and mark it replayed.

        The row stays locked while the message is published and confirmed, so two operators
        replaying one dead letter publish it once (the second gets `already_replayed`).
        """
        try:
            async with self._store.transaction() as conn:
                row = await self._store.dead_letter(conn, dead_letter_id, lock=True)
                if row is None:
                    return Replayed("not_found", dead_letter_id)
                if row["replayed_at"] is not None and not again:
                    note = (
                        f"dead letter {dead_letter_id} was replayed at "
                        f"{rfc3339(row['replayed_at'])} as {row['replay_message_id']}; "
                        'send "again": true to replay it once more'
                    )
                    return Replayed("already_replayed", dead_letter_id, note=note)
                new_id = uuid.uuid4().hex
                await self._transport.publish(
                    DEFAULT_EXCHANGE,
                    row["queue"],
                    replay_body(bytes(row["body"]), new_id),
                    message_id=new_id,
                    headers=replay_headers(dict(row["headers"] or {}), row["message_id"]),
                    mandatory=True,
                    content_type=row["content_type"] or DEFAULT_CONTENT_TYPE,
                )
                at = await self._store.now(conn)
                await self._store.mark_replayed(
                    conn,
                    dead_letter_id,
                    at,
                    replay_message_id=new_id,
                    by=requested_by,
                    reason=reason,
                )
        except Unroutable as exc:
            return Replayed("unroutable", dead_letter_id, note=f"no queue to replay to: {exc}")
        except (PublishError, TransportError) as exc:
            return Replayed("unavailable", dead_letter_id, note=f"the broker failed: {exc}")
        logger.info(
            "dead letter %d replayed to %s as %s by %s: %s",
            dead_letter_id,
            row["queue"],
            new_id,
            requested_by,
            reason,
        )
        return Replayed("replayed", dead_letter_id, new_id)

    async def purge(self, selector: PurgeSelector) -> int:
        """Delete the dead letters `selector` matches (at least one selector); return how many."""
        async with self._store.transaction() as conn:
            purged = await self._store.purge_dead_letters(conn, selector)
        logger.info("purged %d dead letters (%s)", purged, selector)
        return purged
