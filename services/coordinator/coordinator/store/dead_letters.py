"""The dead-letter half of the store: dead letters collected once each, listed, replayed, purged.

A dead letter is identified by its source queue, its message id (or its body, for a message
without one) and its reason: collecting it again (a redelivery of the `.dead` message, a second
replica, a copy parked twice) inserts nothing. Lists are newest first, paged by keyset on
(dead_at, id), so a page never shifts under rows collected meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coordinator.store import tables as t
from coordinator.store.dialect import Dialect

SUMMARY_COLUMNS = (
    "id",
    "queue",
    "reason",
    "error",
    "message_id",
    "message_type",
    "saga_id",
    "dead_at",
    "collected_at",
    "replayed_at",
    "replay_message_id",
)
"""The columns of a dead letter in a list (its size is added; headers and body are not)."""


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the collector found it in a dead-letter queue."""

    queue: str
    reason: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    error: str | None = None
    message_type: str | None = None
    saga_id: str | None = None
    content_type: str | None = None
    dead_at: datetime | None = None
    """When it died, if its headers say; else the time it was collected."""

    def dedupe_key(self) -> str:
        """Return the key that makes one row of this dead letter, however often collected."""
        identity = self.message_id or "body:" + hashlib.sha256(self.body).hexdigest()
        return hashlib.sha256(f"{self.queue}\n{identity}\n{self.reason}".encode()).hexdigest()


@dataclass(frozen=True)
class DeadLetterFilter:
    """What `GET /dead-letters` may filter on, and where the page starts."""

    queue: str | None = None
    reason: str | None = None
    saga_id: str | None = None
    replayed: bool | None = None
    limit: int = 50
    after: tuple[datetime, int] | None = None
    """The (dead_at, id) of the last row of the previous page."""


@dataclass(frozen=True)
class PurgeSelector:
    """Which dead letters a purge deletes: every given selector must match."""

    ids: tuple[int, ...] = ()
    queue: str | None = None
    reason: str | None = None
    replayed: bool | None = None

    @property
    def empty(self) -> bool:
        """Whether nothing is selected (a purge of everything is refused)."""
        return not self.ids and self.queue is None and self.reason is None and self.replayed is None


def _where(stmt: Any, *, queue: str | None, reason: str | None, replayed: bool | None) -> Any:
    c = t.dead_letters.c
    if queue is not None:
        stmt = stmt.where(c.queue == queue)
    if reason is not None:
        stmt = stmt.where(c.reason == reason)
    if replayed is not None:
        stmt = stmt.where(c.replayed_at.is_not(None) if replayed else c.replayed_at.is_(None))
    return stmt


class DeadLetterQueries:
    """Dead-letter reads and writes; `Store` inherits them (its dialect)."""

    dialect: Dialect

    async def add_dead_letter(
        self, conn: AsyncConnection, letter: DeadLetter, at: datetime
    ) -> bool:
        """Insert a collected dead letter; False when it was collected before."""
        stmt = self.dialect.insert_ignore(t.dead_letters).values(
            dedupe_key=letter.dedupe_key(),
            queue=letter.queue,
            reason=letter.reason,
            error=letter.error,
            message_id=letter.message_id,
            message_type=letter.message_type,
            saga_id=letter.saga_id,
            content_type=letter.content_type,
            headers=dict(letter.headers),
            body=letter.body,
            dead_at=letter.dead_at or at,
            collected_at=at,
        )
        result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def dead_letters(
        self, conn: AsyncConnection, f: DeadLetterFilter
    ) -> list[dict[str, Any]]:
        """Return a page of dead letters, newest first, each with its body's size in bytes."""
        c = t.dead_letters.c
        stmt: Select[Any] = select(
            *(c[name] for name in SUMMARY_COLUMNS), func.length(c.body).label("size")
        )
        stmt = _where(stmt, queue=f.queue, reason=f.reason, replayed=f.replayed)
        if f.saga_id is not None:
            stmt = stmt.where(c.saga_id == f.saga_id)
        if f.after is not None:
            at, last_id = f.after
            stmt = stmt.where(or_(c.dead_at < at, and_(c.dead_at == at, c.id < last_id)))
        stmt = stmt.order_by(c.dead_at.desc(), c.id.desc()).limit(f.limit)
        return [dict(row) for row in (await conn.execute(stmt)).mappings()]

    async def dead_letter(
        self, conn: AsyncConnection, dead_letter_id: int, *, lock: bool = False
    ) -> dict[str, Any] | None:
        """Return one dead letter with its headers and body, locked if asked; None if absent."""
        stmt = select(t.dead_letters).where(t.dead_letters.c.id == dead_letter_id)
        if lock:
            stmt = self.dialect.for_update(stmt)
        row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        found = dict(row)
        found["size"] = len(found["body"])
        return found

    async def mark_replayed(
        self,
        conn: AsyncConnection,
        dead_letter_id: int,
        at: datetime,
        *,
        replay_message_id: str,
        by: str,
        reason: str,
    ) -> None:
        """Record that a dead letter was published again, under `replay_message_id`."""
        await conn.execute(
            update(t.dead_letters)
            .where(t.dead_letters.c.id == dead_letter_id)
            .values(
                replayed_at=at,
                replay_message_id=replay_message_id,
                replayed_by=by[:200],
                replay_reason=reason,
            )
        )

    async def purge_dead_letters(self, conn: AsyncConnection, selector: PurgeSelector) -> int:
        """Delete the dead letters `selector` matches; return how many."""
        if selector.empty:
            raise ValueError("a purge needs at least one selector")
        stmt = delete(t.dead_letters)
        if selector.ids:
            stmt = stmt.where(t.dead_letters.c.id.in_(selector.ids))
        stmt = _where(
            stmt, queue=selector.queue, reason=selector.reason, replayed=selector.replayed
        )
        result = await conn.execute(stmt)
        return int(result.rowcount or 0)
