"""The outbox half of the store: rows to publish after commit, claimed by the relays.

Rows are claimed by state (`sent_at IS NULL`), never by a high-water mark: sequence ids
commit out of order, and a relay polling "id > last seen" would skip rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convection import pg_driver
from coordinator.store import tables as t
from coordinator.store.dialect import Dialect


@dataclass(frozen=True)
class SpanSpec:
    """How the relay traces a row's publish, decided when the row is written.

    The PRODUCER span's parent is the row's stored `traceparent` header; its id derives from
    the message id. `links` are traceparents (a compensation links to its forward step).
    """

    name: str
    attributes: Mapping[str, str | int | bool] = field(default_factory=dict)
    links: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the JSON stored in the row's `span` column."""
        return {"name": self.name, "attributes": dict(self.attributes), "links": list(self.links)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SpanSpec | None:
        """Read the `span` column back (None: the row is traced by nobody)."""
        if not data:
            return None
        return cls(
            str(data["name"]), dict(data.get("attributes") or {}), tuple(data.get("links") or ())
        )


@dataclass(frozen=True)
class OutboxMessage:
    """A message to publish once the transaction that decided it commits."""

    exchange: str
    routing_key: str
    message_id: str
    body: bytes
    mandatory: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    saga_id: str | None = None
    span: SpanSpec | None = None


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as the relay claims it."""

    id: int
    exchange: str
    routing_key: str
    message_id: str
    body: bytes
    headers: dict[str, str]
    mandatory: bool
    attempts: int
    created_at: datetime
    span: SpanSpec | None = None


def outbox_row(m: OutboxMessage, at: datetime, available_at: datetime) -> dict[str, Any]:
    """The outbox row of a message written at `at`, due for sending at `available_at`."""
    return {
        "saga_id": m.saga_id,
        "exchange": m.exchange,
        "routing_key": m.routing_key,
        "message_id": m.message_id,
        "body": m.body,
        "headers": m.headers,
        "mandatory": m.mandatory,
        "span": m.span.to_json() if m.span is not None else None,
        "created_at": at,
        "available_at": available_at,
        "attempts": 0,
    }


class OutboxQueries:
    """Outbox reads and writes; `Store` inherits them (its engine and dialect)."""

    engine: AsyncEngine
    dialect: Dialect

    async def add_outbox(
        self, conn: AsyncConnection, messages: Iterable[OutboxMessage], at: datetime
    ) -> int:
        """Insert messages to send after commit (a message id still in the table is skipped).

        Still in the table: unsent, or sent and kept by a retention.
        """
        rows = [outbox_row(m, at, at) for m in messages]
        if not rows:
            return 0
        stmt = self.dialect.insert_ignore(t.outbox)
        await conn.execute(stmt, rows)
        await self.dialect.notify(conn)
        return len(rows)

    async def withdraw(
        self, conn: AsyncConnection, message_ids: Sequence[str], at: datetime
    ) -> tuple[str, ...]:
        """Delete the unsent rows among `message_ids`; return the ids actually deleted.

        A row handed to its writer's relay (never tried, due only after the hand-off lease)
        may be on its way to the broker right now, unlocked: it is not withdrawn, so the
        step counts as sent and is compensated like any other, never marked as never sent.
        """
        if not message_ids:
            return ()
        c = t.outbox.c
        stmt = delete(t.outbox).where(
            c.message_id.in_(message_ids),
            c.sent_at.is_(None),
            c.dead_at.is_(None),
            or_(c.attempts > 0, c.available_at <= at),
        )
        result = await conn.execute(stmt.returning(t.outbox.c.message_id))
        deleted = set(result.scalars())
        return tuple(m for m in message_ids if m in deleted)

    async def claim_outbox(
        self, conn: AsyncConnection, at: datetime, limit: int
    ) -> list[OutboxRow]:
        """Lock up to `limit` rows due for sending (SKIP LOCKED: other relays take others)."""
        c = t.outbox.c
        stmt = (
            select(t.outbox)
            .where(c.sent_at.is_(None), c.dead_at.is_(None), c.available_at <= at)
            .order_by(c.id)
            .limit(limit)
        )
        rows = (await conn.execute(self.dialect.for_update(stmt, skip_locked=True))).mappings()
        return [
            OutboxRow(
                id=r["id"],
                exchange=r["exchange"],
                routing_key=r["routing_key"],
                message_id=r["message_id"],
                body=r["body"],
                headers=dict(r["headers"] or {}),
                mandatory=r["mandatory"],
                attempts=r["attempts"],
                created_at=r["created_at"],
                span=SpanSpec.from_json(r["span"]),
            )
            for r in rows
        ]

    async def mark_sent(self, conn: AsyncConnection, ids: Sequence[int], at: datetime) -> None:
        """Mark rows as sent."""
        if ids:
            await conn.execute(update(t.outbox).where(t.outbox.c.id.in_(ids)).values(sent_at=at))

    async def mark_sent_now(
        self, conn: AsyncConnection, ids: Sequence[int], *, alone: bool = False
    ) -> None:
        """Mark rows as sent at the database's time (no clock read of its own).

        `alone` (PostgreSQL): the statement is its own transaction; `conn` has none open.
        """
        if not ids:
            return
        if self.engine.dialect.name == "postgresql":
            # One statement whatever the count (an IN list is a new one per length), prepared
            # once per connection on the driver.
            sql = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
            await (pg_driver.fetch_alone if alone else pg_driver.fetch)(conn, sql, (list(ids),))
            return
        stmt = update(t.outbox).where(t.outbox.c.id.in_(ids)).values(sent_at=func.now())
        await conn.execute(stmt)

    async def forget_sent(
        self, conn: AsyncConnection, ids: Sequence[int], *, alone: bool = False
    ) -> None:
        """Delete rows that were sent (the relay's way when no sent row is kept).

        A delete writes a few bytes of WAL and no index entry, where marking a row sent writes
        the whole row again and an entry in each of its indexes (BENCHMARKS.md). `alone`
        (PostgreSQL): the statement is its own transaction; `conn` has none open.
        """
        if not ids:
            return
        if self.engine.dialect.name == "postgresql":
            sql = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
            await (pg_driver.fetch_alone if alone else pg_driver.fetch)(conn, sql, (list(ids),))
            return
        await conn.execute(delete(t.outbox).where(t.outbox.c.id.in_(ids)))

    async def mark_failed(
        self,
        conn: AsyncConnection,
        row_id: int,
        error: str,
        *,
        retry_at: datetime,
        dead_at: datetime | None = None,
    ) -> None:
        """Count a failed publish: retry at `retry_at`, or park the row dead at `dead_at`."""
        await conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id == row_id)
            .values(
                attempts=t.outbox.c.attempts + 1,
                last_error=error[:2000],
                available_at=retry_at,
                dead_at=dead_at,
            )
        )

    async def purge_sent(self, conn: AsyncConnection, before: datetime, limit: int) -> int:
        """Delete at most `limit` rows sent before `before`: small batches, no bloat spikes."""
        ids = select(t.outbox.c.id).where(t.outbox.c.sent_at < before).limit(limit)
        result = await conn.execute(
            delete(t.outbox).where(t.outbox.c.id.in_(ids.scalar_subquery()))
        )
        return int(result.rowcount or 0)

    async def outbox_stats(self, conn: AsyncConnection) -> tuple[int, datetime | None, int]:
        """Return (pending rows, creation time of the oldest pending row, dead rows)."""
        c = t.outbox.c
        pending = (
            await conn.execute(
                select(func.count(), func.min(c.created_at)).where(
                    c.sent_at.is_(None), c.dead_at.is_(None)
                )
            )
        ).one()
        dead = (await conn.execute(select(func.count()).where(c.dead_at.is_not(None)))).scalar()
        oldest = pending[1]
        if isinstance(oldest, str | datetime):
            oldest = t.UtcDateTime().process_result_value(oldest, self.engine.dialect)
        return int(pending[0]), oldest, int(dead or 0)
