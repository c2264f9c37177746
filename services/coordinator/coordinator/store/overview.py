"""Read-only queries of the dashboard: every lock queue, a time series, each service's errors.

Like `queries`, they never lock anything; they bound what they read (a window, a limit), so a
dashboard left open on a busy database costs a few small scans.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coordinator.store import tables as t
from coordinator.store.queries import FINISHED

MAX_LOCK_ROWS = 1000
"""The most lock rows one page shows."""
MAX_SERIES_SAGAS = 20_000
"""The most sagas one time series reads: beyond it the oldest of the window are left out."""


async def all_locks(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Return every lock queue: per resource, holders then waiters, with mode and saga times."""
    lk, c = t.resource_locks.c, t.sagas.c
    rows = (
        await conn.execute(
            select(
                lk.resource,
                lk.saga_id,
                lk.saga_type,
                lk.mode,
                lk.granted,
                lk.position,
                c.status,
                c.created_at,
                c.updated_at,
            )
            .join(t.sagas, c.id == lk.saga_id, isouter=True)
            .order_by(lk.resource, lk.granted.desc(), lk.position)
            .limit(MAX_LOCK_ROWS)
        )
    ).all()
    queues: dict[str, dict[str, Any]] = {}
    for r in rows:
        queue = queues.setdefault(
            r.resource, {"resource": r.resource, "holders": [], "waiters": []}
        )
        claim = {
            "saga_id": r.saga_id,
            "saga_type": r.saga_type,
            "mode": r.mode,
            "status": r.status,
            # The lock table keeps no grant time: the saga's start bounds how long it waited.
            "since": r.created_at,
        }
        queue["holders" if r.granted else "waiters"].append(claim)
    return list(queues.values())


async def series(
    conn: AsyncConnection, now: datetime, window: timedelta, buckets: int
) -> dict[str, list[dict[str, Any]]]:
    """Per saga type, `buckets` equal slices of `window` (oldest first), each with its counts.

    A slice holds the sagas created in it: how many started, completed, ended otherwise, and
    the 95th percentile of the durations of those that ended.
    """
    since = now - window
    width = window / buckets
    c = t.sagas.c
    rows = (
        await conn.execute(
            select(c.type, c.status, c.created_at, c.updated_at)
            .where(c.created_at >= since)
            .order_by(c.created_at.desc())
            .limit(MAX_SERIES_SAGAS)
        )
    ).all()
    slices: dict[str, list[dict[str, Any]]] = defaultdict(
        lambda: [
            {"at": since + width * i, "started": 0, "completed": 0, "failed": 0, "_d": []}
            for i in range(buckets)
        ]
    )
    for r in rows:
        index = min(int((r.created_at - since) / width), buckets - 1)
        cell = slices[r.type][index]
        cell["started"] += 1
        if r.status in FINISHED:
            cell["completed" if r.status == "completed" else "failed"] += 1
            cell["_d"].append((r.updated_at - r.created_at).total_seconds())
    out: dict[str, list[dict[str, Any]]] = {}
    for saga_type, cells in slices.items():
        for cell in cells:
            durations = sorted(cell.pop("_d"))
            cell["p95_seconds"] = durations[int(0.95 * (len(durations) - 1))] if durations else None
        out[saga_type] = cells
    return out


async def service_errors(
    conn: AsyncConnection, now: datetime, window: timedelta
) -> dict[str, dict[str, int]]:
    """Per participant service, over `window`: legs finished, failed, and retried attempts."""
    s = t.saga_steps.c
    rows = (
        await conn.execute(
            select(s.service, s.status, func.count(), func.sum(s.attempt))
            .where(s.finished_at >= now - window)
            .group_by(s.service, s.status)
        )
    ).all()
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"finished": 0, "failed": 0, "retries": 0})
    for service, status, count, attempts in rows:
        entry = out[service]
        entry["finished"] += int(count)
        entry["retries"] += max(int(attempts or 0) - int(count), 0)
        if status == "failed":
            entry["failed"] += int(count)
    return dict(out)


async def instances(conn: AsyncConnection) -> dict[tuple[str, int], dict[str, int]]:
    """Per saga type and definition version: how many sagas in all, and how many unfinished."""
    c = t.sagas.c
    rows = (
        await conn.execute(
            select(c.type, c.definition_version, c.status, func.count()).group_by(
                c.type, c.definition_version, c.status
            )
        )
    ).all()
    out: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: {"total": 0, "live": 0})
    for saga_type, version, status, count in rows:
        entry = out[(saga_type, int(version))]
        entry["total"] += int(count)
        if status not in FINISHED:
            entry["live"] += int(count)
    return dict(out)
