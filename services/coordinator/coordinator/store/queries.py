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

from sqlalchemy import String, and_, cast, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import TERMINAL_STATUSES, SagaStatus
from coordinator.core import CompStatus, StepStatus
from coordinator.core.locks import Claimant, LockQueue
from coordinator.store import tables as t
from coordinator.store.dialect import json_list_contains
from sagas import LockMode

FINISHED = tuple(sorted(s.value for s in TERMINAL_STATUSES))
"""Statuses that end a saga, for statistics and gauges."""

Position = tuple[datetime, str]
"""Where a page of sagas ends: the last one's (created_at, id) in the list's order."""


@dataclass(frozen=True)
class SagaFilter:
    """What a saga list may filter on (`GET /sagas`, `convection list`); every field narrows.

    Attributes:
        statuses: Any of these statuses.
        saga_type: This saga type.
        started_after: Created at or after this time.
        started_before: Created before this time.
        stuck: True: only stuck sagas (see `_stuck`); False: only those not stuck.
        resource: Sagas whose resources include this one (e.g. `ns:ns-web-1`).
        input_fields: (path, value) pairs: the input's field at that path, as text, equals it.
        error_code: The saga's error has this code.
        after: Only sagas after this position (keyset pagination), in the list's order.
        limit: At most this many.
    """

    statuses: tuple[str, ...] = ()
    saga_type: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    stuck: bool | None = None
    resource: str | None = None
    input_fields: tuple[tuple[tuple[str | int, ...], str], ...] = ()
    error_code: str | None = None
    after: Position | None = None
    limit: int = 50


def _conditions(f: SagaFilter, now: datetime, dialect: str) -> list[Any]:
    c = t.sagas.c
    where: list[Any] = []
    if f.statuses:
        where.append(c.status.in_(f.statuses))
    if f.saga_type:
        where.append(c.type == f.saga_type)
    if f.started_after:
        where.append(c.created_at >= f.started_after)
    if f.started_before:
        where.append(c.created_at < f.started_before)
    if f.stuck is not None:
        where.append(_stuck(now) if f.stuck else not_(_stuck(now)))
    if f.resource:
        where.append(json_list_contains(dialect, c.resources, f.resource))
    for path, value in f.input_fields:
        # Cast on both dialects: SQLite's json_extract returns numbers as numbers.
        where.append(cast(c.input[path].as_string(), String) == value)
    if f.error_code:
        where.append(c.error["code"].as_string() == f.error_code)
    if f.after:
        at, saga_id = f.after
        where.append(or_(c.created_at < at, and_(c.created_at == at, c.id > saga_id)))
    return where


async def list_sagas(conn: AsyncConnection, f: SagaFilter, now: datetime) -> list[dict[str, Any]]:
    """Return saga summaries, newest first (ties by id), with the step each is busy with."""
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
        c.resources,
    ).where(*_conditions(f, now, conn.dialect.name))
    stmt = stmt.order_by(c.created_at.desc(), c.id).limit(f.limit)
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
            "resources": r["resources"],
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
    """Per saga type and per step over `window`: counts by outcome, rates, mean and p95.

    `success_rate` is completed over finished, `failure_rate` every other ending but a
    cancel (compensated, failed, compensation_failed, ...), `cancelled_rate` cancelled: the
    three add up to 1. Steps come in the saga's order (a group's steps as one line).
    """
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
            select(
                s.saga_id, s.name, s.group_name, s.ordinal, s.status, s.started_at, s.finished_at
            )
            .add_columns(c.type)
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
        durations = [(r.updated_at - r.created_at).total_seconds() for r in finished]
        outcomes = dict.fromkeys(FINISHED, 0)
        for r in finished:
            outcomes[r.status] += 1
        step_stats = []
        for name, runs in sorted(steps[saga_type].items(), key=lambda kv: _first(kv[1])):
            done = [r for r in runs if r.status in ("succeeded", "failed")]
            good = sum(1 for r in done if r.status == "succeeded")
            times = [
                (r.finished_at - r.started_at).total_seconds()
                for r in done
                if r.finished_at and r.started_at
            ]
            counts = {"succeeded": good, "failed": len(done) - good}
            step_stats.append({"step": name, **_summary(len(runs), counts, "succeeded", times)})
        out.append(
            {
                "saga_type": saga_type,
                **_summary(len(sagas), outcomes, SagaStatus.COMPLETED.value, durations),
                "in_flight": len(sagas) - len(finished),
                "steps": step_stats,
            }
        )
    return {"window_seconds": int(window.total_seconds()), "saga_types": out}


def _first(runs: list[Any]) -> tuple[int, str]:
    return min(r.ordinal for r in runs), runs[0].name


def _summary(
    count: int, outcomes: dict[str, int], ok: str, durations: list[float]
) -> dict[str, Any]:
    finished = sum(outcomes.values())
    cancelled = outcomes.get(SagaStatus.CANCELLED.value, 0)
    good = outcomes.get(ok, 0)
    return {
        "count": count,
        "finished": finished,
        "outcomes": outcomes,
        "success_rate": good / finished if finished else 0.0,
        "failure_rate": (finished - good - cancelled) / finished if finished else 0.0,
        "cancelled_rate": cancelled / finished if finished else 0.0,
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
