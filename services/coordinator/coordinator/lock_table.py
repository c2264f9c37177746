"""Resource locks in the store: the pure lock rules (`core.locks`) applied to the lock table.

Acquiring may cancel the sagas a new one supersedes and queue it behind holders; releasing
grants the next waiters, which hear of it through a wake-up to the coordinator itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CancelSaga, WakeSaga
from coordinator import outgoing
from coordinator.core import (
    Event,
    LockGranted,
    LockQueued,
    LockRejected,
    SagaState,
    locks,
    message_id,
)
from coordinator.store import OutboxMessage, Store
from sagas import Saga


async def acquire(
    store: Store,
    conn: AsyncConnection,
    saga: Saga[Any],
    state: SagaState,
    resources: tuple[str, ...],
    at: datetime,
) -> tuple[Event, list[OutboxMessage]]:
    """Claim `resources` for `state`'s saga; return the lock event and the cancels to send."""
    table = await store.lock_queues(conn, resources, None)
    who = locks.Claimant(state.saga_id, state.saga_type)
    got = locks.acquire(
        table,
        who,
        resources,
        saga.lock_policy,
        saga.supersedes,
        shared=state.shared,
        queued=saga.supersede_queued,
    )
    await store.save_locks(conn, got.table)
    cancels = [
        outgoing.to_self(
            CancelSaga(
                message_id=message_id(h.saga_id, "superseded-by", state.saga_id, state.version),
                saga_id=h.saga_id,
                reason=f"superseded by {state.saga_id}",
                requested_by=state.saga_id,
            )
        )
        for h in got.cancel
    ]
    event: Event
    if got.granted:
        event = LockGranted(at=at)
    elif got.rejected_by is not None:
        event = LockRejected(at=at, resource=resources[0], holder=got.rejected_by.saga_id)
    else:
        event = LockQueued(at=at, waiting_for=got.waiting_for, position=got.position)
    return event, cancels


async def release(store: Store, conn: AsyncConnection, state: SagaState) -> list[OutboxMessage]:
    """Release what `state`'s saga holds; return the wake-ups of the sagas now granted."""
    if not state.resources:
        return []
    table = await store.lock_queues(conn, state.resources, state.saga_id)
    if not table:
        return []
    out = locks.release(table, state.saga_id)
    await store.save_locks(conn, out.table)
    wakes = []
    for who in out.granted:
        held = ",".join(sorted(r for r, q in out.table.items() if q.holds(who.saga_id)))
        wake = WakeSaga(
            message_id=message_id(who.saga_id, "wake", state.saga_id, state.version),
            saga_id=who.saga_id,
            resource=held[:300] or "-",
        )
        wakes.append(outgoing.to_self(wake))
    return wakes
