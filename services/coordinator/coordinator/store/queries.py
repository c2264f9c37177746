"""Read-only queries: saga lists, lock positions, statistics, gauges, what timers find due.

They read the coordinator's tables directly and never lock anything, so operators looking at
sagas never slow the per-message transactions down.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import TERMINAL_STATUSES, SagaStatus
from coordinator.core import CompStatus, StepStatus
from coordinator.core.locks import Claimant, LockQueue
from coordinator.store import tables as t
from sagas import LockMode

FINISHED = tuple(sorted(s.value for s in TERMINAL_STATUSES))
"""Statuses that end a saga, for statistics."""


@dataclass(frozen=True)
class SagaFilter:
    """What `GET /sagas` may filter on."""

    statuses: tuple[str, ...] = ()
    saga_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    stuck: bool = False
    limit: int = 50
    offset: int = 0


async def list_sagas(conn: AsyncConnection, f: SagaFilter, now: datetime) -> list[dict[str, Any]]:
    """Return saga summaries, newest first, with the step each is busy with."""
    c = t.sagas.c
    stmt = select(
        c.id,
        c.type,
        c.definition_version,
        c.status,
        c.trace_id,
        c.created_at,
        c.updated_at,
        c.error,
        c.parked,
    )
    if f.statuses:
        stmt = stmt.where(c.status.in_(f.statuses))
    if f.saga_type:
        stmt = stmt.where(c.type == f.saga_type)
    if f.since:
        stmt = stmt.where(c.created_at >= f.since)
    if f.until:
        stmt = stmt.where(c.created_at < f.until)
    if f.stuck:
        stmt = stmt.where(_stuck(now))
    stmt = stmt.order_by(c.created_at.desc(), c.id).limit(f.limit).offset(f.offset)
    rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    current = await _current_steps(conn, [r["id"] for r in rows])
    return [
        {
            "saga_id": r["id"],
            "saga_type": r["type"],
            "version": r["definition_version"],
            "status": r["status"],
            "parked": r["parked"],
            "current_step": current.get(r["id"]),
            "trace_id": r["trace_id"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
            "error": r["error"],
        }
        for r in rows
    ]


def _stuck(now: datetime) -> Any:
    """Parked, or running or compensating with a running step past its deadline."""
    c, s = t.sagas.c, t.saga_steps.c
    overdue = exists().where(
        and_(
            s.saga_id == c.id,
            or_(
                and_(s.status == StepStatus.RUNNING, s.deadline < now),
                and_(s.comp_status == CompStatus.RUNNING, s.comp_deadline < now),
            ),
        )
    )
    return or_(c.parked.is_not(None), and_(c.status.in_(("running", "compensating")), overdue))


async def gauges(conn: AsyncConnection, now: datetime) -> tuple[dict[str, int], int]:
    """Return (unfinished sagas by status, stuck sagas) for the metrics gauges."""
    c = t.sagas.c
    rows = await conn.execute(
        select(c.status, func.count()).where(c.status.not_in(FINISHED)).group_by(c.status)
    )
    by_status = {str(status): int(n) for status, n in rows}
    stuck = await conn.execute(select(func.count()).select_from(t.sagas).where(_stuck(now)))
    return by_status, int(stuck.scalar() or 0)


async def _current_steps(conn: AsyncConnection, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    s = t.saga_steps.c
    rows = await conn.execute(
        select(s.saga_id, s.name, s.ordinal)
        .where(s.saga_id.in_(ids))
        .where(
            or_(
                s.status.in_(("running", "retry_wait")),
                s.comp_status.in_(("running", "retry_wait")),
            )
        )
        .order_by(s.saga_id, s.ordinal)
    )
    busy: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        busy[r.saga_id].append(r.name)
    return {k: ", ".join(v) for k, v in busy.items()}


async def waiting(conn: AsyncConnection, saga_id: str) -> dict[str, Any] | None:
    """Return what a pending saga waits for, who holds it and where it is in line, or None.

    Only the resources it cannot have yet count: one it could share now is not waited for.
    """
    queues = await _queues(conn, saga_id)
    blocking = [r for r, q in queues.items() if q.position(saga_id) and not q.grantable(saga_id)]
    if not blocking:
        return None
    return {
        "resources": blocking,
        "position": max(queues[r].position(saga_id) for r in blocking),
        "held_by": {
            r: ", ".join(h.saga_id for h in queues[r].holders)
            for r in blocking
            if queues[r].holders
        },
    }


async def lock_queues(conn: AsyncConnection, saga_id: str) -> dict[str, Any]:
    """Return each queue of a saga's resources: holders and waiters in order, with mode."""
    return {
        r: {
            "holders": [_claim(h) for h in q.holders],
            "waiters": [_claim(w) for w in q.waiters],
        }
        for r, q in (await _queues(conn, saga_id)).items()
    }


def _claim(who: Claimant) -> dict[str, str]:
    return {"saga_id": who.saga_id, "saga_type": who.saga_type, "mode": who.mode.value}


async def _queues(conn: AsyncConnection, saga_id: str) -> dict[str, LockQueue]:
    lk = t.resource_locks.c
    mine = select(lk.resource).where(lk.saga_id == saga_id).scalar_subquery()
    rows = (
        await conn.execute(
            select(lk.resource, lk.saga_id, lk.saga_type, lk.mode, lk.granted)
            .where(lk.resource.in_(mine))
            .order_by(lk.resource, lk.position)
        )
    ).all()
    queues: dict[str, LockQueue] = {}
    for r in rows:
        q = queues.get(r.resource, LockQueue(r.resource))
        who = Claimant(r.saga_id, r.saga_type, LockMode(r.mode))
        if r.granted:
            queues[r.resource] = LockQueue(q.resource, (*q.holders, who), q.waiters)
        else:
            queues[r.resource] = LockQueue(q.resource, q.holders, (*q.waiters, who))
    return queues


async def stats(conn: AsyncConnection, now: datetime, window: timedelta) -> dict[str, Any]:
    """Per saga type and per step: count, success and failure rates, mean and p95 durations."""
    since = now - window
    c = t.sagas.c
    rows = (
        await conn.execute(
            select(c.id, c.type, c.status, c.created_at, c.updated_at).where(c.created_at >= since)
        )
    ).all()
    by_type: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_type[r.type].append(r)
    s = t.saga_steps.c
    step_rows = (
        await conn.execute(
            select(s.saga_id, s.name, s.group_name, s.status, s.started_at, s.finished_at, c.type)
            .join(t.sagas, c.id == s.saga_id)
            .where(c.created_at >= since, s.status != "pending")
        )
    ).all()
    steps: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for row in step_rows:
        steps[row.type][row.group_name or row.name].append(row)
    out = []
    for saga_type in sorted(by_type):
        sagas = by_type[saga_type]
        finished = [r for r in sagas if r.status in FINISHED]
        ok = [r for r in finished if r.status == SagaStatus.COMPLETED]
        durations = [(r.updated_at - r.created_at).total_seconds() for r in finished]
        step_stats = []
        for name, runs in steps[saga_type].items():
            done = [r for r in runs if r.status in ("succeeded", "failed")]
            good = [r for r in done if r.status == "succeeded"]
            times = [
                (r.finished_at - r.started_at).total_seconds()
                for r in done
                if r.finished_at and r.started_at
            ]
            step_stats.append({"step": name, **_summary(len(runs), len(done), len(good), times)})
        out.append(
            {
                "saga_type": saga_type,
                **_summary(len(sagas), len(finished), len(ok), durations),
                "in_flight": len(sagas) - len(finished),
                "steps": sorted(step_stats, key=lambda x: x["step"]),
            }
        )
    return {"window_seconds": int(window.total_seconds()), "saga_types": out}


def _summary(count: int, finished: int, ok: int, durations: list[float]) -> dict[str, Any]:
    return {
        "count": count,
        "finished": finished,
        "success_rate": ok / finished if finished else 0.0,
        "failure_rate": (finished - ok) / finished if finished else 0.0,
        "mean_seconds": sum(durations) / len(durations) if durations else None,
        "p95_seconds": _percentile(durations, 0.95),
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def count_by_status(conn: AsyncConnection) -> dict[SagaStatus, int]:
    """Return how many sagas are in each status."""
    c = t.sagas.c
    rows = await conn.execute(select(c.status, func.count()).group_by(c.status))
    return {SagaStatus(status): int(n) for status, n in rows}


@dataclass(frozen=True)
class StepDue:
    """A step row the timers found due."""

    saga_id: str
    name: str
    status: str
    comp_status: str
    attempt: int
    comp_attempt: int


_TERMINAL = [s.value for s in TERMINAL_STATUSES]


async def due_steps(conn: AsyncConnection, at: datetime, limit: int) -> list[StepDue]:
    """Return steps whose deadline passed or whose retry is due (either leg), in live sagas."""
    st, s = t.saga_steps.c, t.sagas.c
    due = or_(
        and_(st.status == StepStatus.RUNNING, st.deadline <= at),
        and_(st.status == StepStatus.RETRY_WAIT, st.due_at <= at),
        and_(st.comp_status == CompStatus.RUNNING, st.comp_deadline <= at),
        and_(st.comp_status == CompStatus.RETRY_WAIT, st.comp_due_at <= at),
    )
    stmt = (
        select(st.saga_id, st.name, st.status, st.comp_status, st.attempt, st.comp_attempt)
        .join(t.sagas, s.id == st.saga_id)
        .where(s.status.not_in(_TERMINAL), due)
        .limit(limit)
    )
    return [StepDue(**r) for r in (await conn.execute(stmt)).mappings()]


async def due_sagas(conn: AsyncConnection, at: datetime, limit: int) -> list[str]:
    """Return ids of live sagas whose own deadline passed and was not yet fed."""
    s = t.sagas.c
    stmt = (
        select(s.id)
        .where(s.status.not_in(_TERMINAL), s.deadline <= at, s.deadline_fired.is_(False))
        .limit(limit)
    )
    return list((await conn.execute(stmt)).scalars())
