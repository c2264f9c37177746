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
from sagas import LockMode


class LockQueries:
    """Lock-queue reads and writes; `Store` inherits them (its dialect)."""

    dialect: Dialect

    async def lock_queues(
        self, conn: AsyncConnection, resources: Iterable[str], saga_id: str | None
    ) -> dict[str, LockQueue]:
        """Lock and return the queues of `resources` (and of `saga_id`), closed over waiters.

        One lock serialises every change to the lock table until commit. Locking each queue
        instead deadlocks as soon as queues connect (every NS saga shares its VIM account,
        so the closure of one saga's queues reaches many others', found only while reading);
        and lock-table changes happen only when a saga starts waiting, is granted, or ends.
        """
        await self.dialect.lock_queue_table(conn)
        return await self.load_locks(conn, resources=resources, saga_id=saga_id)

    async def load_locks(
        self, conn: AsyncConnection, *, resources: Iterable[str] = (), saga_id: str | None = None
    ) -> dict[str, LockQueue]:
        """Return the queues of `resources` (and of `saga_id`), closed over their waiters.

        A waiter's other queues are needed to grant it (all or nothing); a holder's are not.
        """
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
            more_sagas = {s for (_, s), r in rows.items() if not r["granted"]} - sagas
            if not more_res and not more_sagas:
                break
            wanted |= more_res
            sagas |= more_sagas
        table = {r: LockQueue(r) for r in wanted}
        for (resource, _), r in sorted(rows.items(), key=lambda kv: kv[1]["position"]):
            q = table[resource]
            who = Claimant(r["saga_id"], r["saga_type"], LockMode(r["mode"]))
            if r["granted"]:
                table[resource] = LockQueue(resource, (*q.holders, who), q.waiters)
            else:
                table[resource] = LockQueue(resource, q.holders, (*q.waiters, who))
        return table

    async def save_locks(self, conn: AsyncConnection, table: dict[str, LockQueue]) -> None:
        """Replace the rows of every queue in `table` with what the table says."""
        if not table:
            return
        await conn.execute(delete(t.resource_locks).where(t.resource_locks.c.resource.in_(table)))
        rows: list[dict[str, Any]] = []
        for resource, q in table.items():
            rows.extend(_lock_row(resource, h, granted=True, position=0) for h in q.holders)
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
        "mode": who.mode.value,
        "position": position,
    }
