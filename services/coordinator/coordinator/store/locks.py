"""The lock half of the store: resource lock queues as rows, read and replaced per queue.

One row per (resource, saga): the holder (`granted`) and the waiters by `position`. The
pure `coordinator.core.locks` decides; these methods only load and save whole queues, inside
the transaction that takes or releases the locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coordinator.core.locks import Claimant, LockQueue
from coordinator.store import tables as t
from coordinator.store.dialect import Dialect


class LockQueries:
    """Lock-queue reads and writes; `Store` inherits them (its dialect)."""

    dialect: Dialect

    async def lock_queues(
        self, conn: AsyncConnection, resources: Iterable[str], saga_id: str | None
    ) -> dict[str, LockQueue]:
        """Lock and return the queues of `resources` (and of `saga_id`), closed over waiters.

        Locks the queues it reads, then reads them; if the waiters in them reach further
        queues, locks those too and reads again. A deadlock here is retried like any other.
        """
        wanted_first = tuple(resources)
        held: set[str] = set()
        wanted = set(wanted_first)
        while True:
            await self.dialect.lock_resources(conn, wanted - held)
            held |= wanted
            table = await self.load_locks(conn, resources=wanted_first, saga_id=saga_id)
            if set(table) <= held:
                return table
            wanted = set(table)

    async def load_locks(
        self, conn: AsyncConnection, *, resources: Iterable[str] = (), saga_id: str | None = None
    ) -> dict[str, LockQueue]:
        """Return the queues of `resources` (and of `saga_id`), closed over their waiters."""
        c = t.resource_locks.c
        wanted = set(resources)
        sagas: set[str] = {saga_id} if saga_id else set()
        rows: dict[tuple[str, str], Any] = {}
        while True:
            cond = [c.resource.in_(wanted)] if wanted else []
            if sagas:
                cond.append(c.saga_id.in_(sagas))
            if not cond:
                break
            found = (await conn.execute(select(t.resource_locks).where(or_(*cond)))).mappings()
            for r in found:
                rows[(r["resource"], r["saga_id"])] = r
            more_res = {r for r, _ in rows} - wanted
            more_sagas = {s for _, s in rows} - sagas
            if not more_res and not more_sagas:
                break
            wanted |= more_res
            sagas |= more_sagas
        table = {r: LockQueue(r) for r in wanted}
        for (resource, _), r in sorted(rows.items(), key=lambda kv: kv[1]["position"]):
            q = table[resource]
            who = Claimant(r["saga_id"], r["saga_type"])
            if r["granted"]:
                table[resource] = LockQueue(resource, who, q.waiters)
            else:
                table[resource] = LockQueue(resource, q.holder, (*q.waiters, who))
        return table

    async def save_locks(self, conn: AsyncConnection, table: dict[str, LockQueue]) -> None:
        """Replace the rows of every queue in `table` with what the table says."""
        if not table:
            return
        await conn.execute(delete(t.resource_locks).where(t.resource_locks.c.resource.in_(table)))
        rows = []
        for resource, q in table.items():
            if q.holder is not None:
                rows.append(_lock_row(resource, q.holder, granted=True, position=0))
            rows.extend(
                _lock_row(resource, w, granted=False, position=i + 1)
                for i, w in enumerate(q.waiters)
            )
        if rows:
            await conn.execute(insert(t.resource_locks), rows)


def _lock_row(resource: str, who: Claimant, *, granted: bool, position: int) -> dict[str, Any]:
    return {
        "resource": resource,
        "saga_id": who.saga_id,
        "saga_type": who.saga_type,
        "granted": granted,
        "position": position,
    }
