"""The parking half of the store: events kept for a coordinator that has a saga's version.

A coordinator that lacks the definition version an instance is pinned to never guesses:
it keeps the event (in arrival order), marks the saga `parked` with the reason, and acks
the message. A coordinator that has the version feeds the parked events, in order, before
anything new, and clears the mark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coordinator.store import tables as t


@dataclass(frozen=True)
class ParkedEvent:
    """One kept event: its row id (the order) and its JSON."""

    id: int
    event: str


class ParkingQueries:
    """Parked-event reads and writes; `Store` inherits them."""

    async def park(
        self,
        conn: AsyncConnection,
        saga_id: str,
        reason: str,
        event: str,
        message_id: str | None,
        at: datetime,
    ) -> None:
        """Keep `event` for later and mark the saga parked with `reason`."""
        await conn.execute(
            insert(t.parked_events).values(
                saga_id=saga_id, message_id=message_id, event=event, parked_at=at
            )
        )
        await conn.execute(update(t.sagas).where(t.sagas.c.id == saga_id).values(parked=reason))

    async def parked_events(self, conn: AsyncConnection, saga_id: str) -> list[ParkedEvent]:
        """Return the events kept for a saga, oldest first."""
        p = t.parked_events.c
        rows = await conn.execute(select(p.id, p.event).where(p.saga_id == saga_id).order_by(p.id))
        return [ParkedEvent(int(r.id), str(r.event)) for r in rows]

    async def unpark(self, conn: AsyncConnection, saga_id: str) -> None:
        """Forget a saga's kept events (they were fed) and clear its parked mark."""
        await conn.execute(delete(t.parked_events).where(t.parked_events.c.saga_id == saga_id))
        await conn.execute(update(t.sagas).where(t.sagas.c.id == saga_id).values(parked=None))

    async def parked_sagas(
        self, conn: AsyncConnection, known: Iterable[tuple[str, int]], limit: int
    ) -> list[str]:
        """Return ids of parked sagas whose type and version are among `known`."""
        s = t.sagas.c
        pairs = [and_(s.type == name, s.definition_version == v) for name, v in known]
        if not pairs:
            return []
        stmt = select(s.id).where(s.parked.is_not(None), or_(*pairs)).limit(limit)
        return list((await conn.execute(stmt)).scalars())
