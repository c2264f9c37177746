"""The checker's readers of the coordinator's tables, the participants' and the broker's queues."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import aio_pika
import asyncpg

from contracts import topology
from coordinator.dead_letters import UNKNOWN_REASON

# Every reason that would move a non-terminal saga on by itself; none of them is a clock
# hours away (a saga's own deadline is not counted: it would hide a stuck saga for an hour).
_STUCK = """
SELECT s.id, s.status,
  s.parked IS NOT NULL AS parked,
  EXISTS (SELECT 1 FROM saga_steps t WHERE t.saga_id = s.id AND (
      (t.status = 'running' AND t.deadline IS NOT NULL)
      OR (t.comp_status = 'running' AND t.comp_deadline IS NOT NULL))) AS awaiting_reply,
  EXISTS (SELECT 1 FROM saga_steps t WHERE t.saga_id = s.id AND (
      (t.status = 'retry_wait' AND t.due_at IS NOT NULL)
      OR (t.comp_status = 'retry_wait' AND t.comp_due_at IS NOT NULL))) AS retry_due,
  EXISTS (SELECT 1 FROM resource_locks l
          WHERE l.saga_id = s.id AND NOT l.granted) AS lock_wait,
  EXISTS (SELECT 1 FROM outbox o
          WHERE o.saga_id = s.id AND o.sent_at IS NULL AND o.dead_at IS NULL) AS sending
FROM sagas s WHERE NOT (s.status = ANY($1::text[]))
ORDER BY s.id
"""
_REASONS = ("parked", "awaiting_reply", "retry_due", "lock_wait", "sending")

# A compensation leg that left `none` for a step that cannot have had an effect: not a
# compensatable step, or one that neither succeeded nor may have acted (see
# `coordinator.core.compensation.needs_compensation`).
_NEEDLESS = """
SELECT saga_id, name, kind, status, comp_status, uncertain FROM saga_steps
WHERE comp_status <> 'none' AND NOT (kind = 'compensatable' AND (
    status = 'succeeded' OR (uncertain AND status IN ('failed', 'abandoned'))))
ORDER BY saga_id, name
"""


async def stuck(conn: asyncpg.Connection, terminal: Iterable[str]) -> tuple[list[str], list[str]]:
    """Return the non-terminal sagas with no visible reason to move, and those with one."""
    rows = await conn.fetch(_STUCK, sorted(terminal))
    without, with_reason = [], []
    for row in rows:
        reasons = [name for name in _REASONS if row[name]]
        if reasons:
            with_reason.append(f"{row['id']} ({row['status']}: {', '.join(reasons)})")
        else:
            without.append(f"{row['id']} ({row['status']})")
    return without, with_reason


async def needless_compensations(conn: asyncpg.Connection) -> list[str]:
    """Return the compensation legs that ran for steps that cannot have had an effect."""
    return [
        f"{r['saga_id']}/{r['name']}: {r['kind']} step {r['status']}"
        f"{' (uncertain)' if r['uncertain'] else ''}, compensation {r['comp_status']}"
        for r in await conn.fetch(_NEEDLESS)
    ]


async def unsent_outbox(conn: asyncpg.Connection) -> list[str]:
    """Return the outbox rows that were never sent (those parked dead included)."""
    rows = await conn.fetch(
        "SELECT id, saga_id, routing_key, attempts, last_error, dead_at FROM outbox"
        " WHERE sent_at IS NULL ORDER BY id"
    )
    return [
        f"outbox #{r['id']} {r['saga_id']} -> {r['routing_key']}"
        f" ({'dead' if r['dead_at'] else 'pending'}, {r['attempts']} attempts"
        f"{', ' + str(r['last_error'])[:80] if r['last_error'] else ''})"
        for r in rows
    ]


@dataclass
class DeadLetters:
    """Dead letters seen in one place: counted by reason, and those without one."""

    by_reason: dict[str, int] = field(default_factory=dict)
    without_reason: list[str] = field(default_factory=list)
    total: int = 0
    queued: dict[str, int] = field(default_factory=dict)
    """Messages still ready in each source queue (information, not a failure)."""


async def collected_dead_letters(conn: asyncpg.Connection) -> DeadLetters:
    """Read the `dead_letters` table the coordinator's collector fills."""
    found = DeadLetters()
    for row in await conn.fetch(
        "SELECT queue, reason, message_id, message_type, saga_id FROM dead_letters ORDER BY id"
    ):
        found.total += 1
        reason = row["reason"] or ""
        found.by_reason[reason] = found.by_reason.get(reason, 0) + 1
        if reason in ("", UNKNOWN_REASON):
            found.without_reason.append(
                f"{row['queue']}: {row['message_type']} {row['message_id']} of {row['saga_id']}"
            )
    return found


async def participant_replies(dsn: str) -> int:
    """Count the final replies a participants' database keeps (0 if it has none yet)."""
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        if await conn.fetchval("SELECT to_regclass('convection_participant_replies')") is None:
            return 0
        return int(await conn.fetchval("SELECT count(*) FROM convection_participant_replies"))
    finally:
        await conn.close()


async def _ready(connection: aio_pika.abc.AbstractConnection, queue: str) -> int | None:
    # A passive declare of a missing queue closes its channel: one channel per question.
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    except aio_pika.exceptions.ChannelClosed:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


async def _peek(connection: aio_pika.abc.AbstractConnection, queue: str, count: int) -> list[str]:
    """Read up to `count` messages of `queue` without settling them; closing gives them back."""
    channel = await connection.channel()
    missing: list[str] = []
    try:
        declared = await channel.declare_queue(queue, passive=True)
        for _ in range(count):
            message = await declared.get(no_ack=False, fail=False, timeout=10)
            if message is None:
                break
            if not (message.headers or {}).get(topology.REASON_HEADER):
                missing.append(f"{queue}: {message.message_id or message.body[:60]!r}")
    finally:
        # Unacked deliveries go back to the queue, in order, when their channel closes.
        await channel.close()
    return missing


async def dead_queues(amqp_url: str, source_queues: Sequence[str]) -> DeadLetters:
    """Count the dead letters still in each `.dead` queue and those among them without reason."""
    found = DeadLetters()
    connection = await aio_pika.connect(amqp_url, timeout=30)
    try:
        for queue in source_queues:
            ready = await _ready(connection, queue)
            if ready is not None:
                found.queued[queue] = ready
            dead = topology.dead_letter_queue(queue)
            waiting = await _ready(connection, dead) or 0
            found.total += waiting
            if waiting:
                found.without_reason.extend(await _peek(connection, dead, waiting))
    finally:
        await connection.close()
    return found
