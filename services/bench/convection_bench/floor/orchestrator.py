"""The floor's orchestrator: one statement per saga transition, then publish from the outbox.

A start inserts the saga row and the first command's outbox row; a reply advances the saga
row (only if it is the reply the saga waits for, so duplicates change nothing) and inserts
the next command's outbox row, or the completion event's after the last step. Each is one
CTE, hence one transaction. The rows it returns are published right after the commit, with
confirms, and then deleted; a sweeper republishes rows a crash or a failed publish left.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from convection_bench.floor.common import (
    COMMAND_KEY,
    COMMANDS_EXCHANGE,
    COMPLETED_KEY,
    EVENTS_EXCHANGE,
    REPLIES_QUEUE,
    STARTS_QUEUE,
    Node,
    Settings,
)

DDL = """
CREATE TABLE IF NOT EXISTS floor_sagas (
    id text PRIMARY KEY,
    steps int NOT NULL CHECK (steps > 0),
    step int NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'running',
    input jsonb NOT NULL,
    results jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS floor_outbox (
    id bigserial PRIMARY KEY,
    exchange text NOT NULL,
    routing_key text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""
"""The orchestrator's tables: the sagas and the outbox."""

# The exchanges and routing keys are parameters ($4...), so the SQL names no constants twice.
START = """
WITH saga AS (
    INSERT INTO floor_sagas (id, steps, input) VALUES ($1, $2, $3::jsonb)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, step)
INSERT INTO floor_outbox (exchange, routing_key, body)
SELECT $4::text, $5::text,
       json_build_object('saga_id', id, 'step', step, 'key', id || ':' || step)::text
  FROM saga
RETURNING id, exchange, routing_key, body
"""
"""Start a saga: its row and its first command's outbox row, one statement."""

ADVANCE = """
WITH saga AS (
    UPDATE floor_sagas
       SET step = step + 1,
           status = CASE WHEN step = steps THEN 'completed' ELSE 'running' END,
           results = results || jsonb_build_object($2::int::text, $3::jsonb),
           updated_at = now()
     WHERE id = $1 AND step = $2 AND status = 'running'
    RETURNING id, step, status)
INSERT INTO floor_outbox (exchange, routing_key, body)
SELECT CASE WHEN status = 'completed' THEN $4::text ELSE $6::text END,
       CASE WHEN status = 'completed' THEN $5::text ELSE $7::text END,
       CASE WHEN status = 'completed'
            THEN json_build_object('saga_id', id, 'status', status)::text
            ELSE json_build_object('saga_id', id, 'step', step, 'key', id || ':' || step)::text
       END
  FROM saga
RETURNING id, exchange, routing_key, body
"""
"""Record a step's result, move on, and queue the next command or the completion event."""

DELETE_SENT = "DELETE FROM floor_outbox WHERE id = ANY($1::bigint[])"
"""Forget outbox rows the broker confirmed."""

# Rows older than the lease are taken over (and leased again) by whichever sweeper runs first.
SWEEP = """
UPDATE floor_outbox SET created_at = now()
 WHERE id IN (SELECT id FROM floor_outbox
               WHERE created_at < now() - interval '5 seconds'
               ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING id, exchange, routing_key, body
"""
"""Lease the outbox rows left behind for five more seconds, and return them."""
SWEEP_INTERVAL = 1.0
"""Seconds between two sweeps of the outbox."""

_COMMAND_ROUTE = (COMMANDS_EXCHANGE, COMMAND_KEY)
_EVENT_ROUTE = (EVENTS_EXCHANGE, COMPLETED_KEY)

log = logging.getLogger("convection_bench.floor.orchestrator")


class Orchestrator:
    """Drives floor sagas: starts them, advances them on replies, announces completion."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def on_start(self, message: AbstractIncomingMessage, body: dict[str, Any]) -> None:
        """Insert the saga and its first command in one statement; then send the command."""
        saga_id, steps, saga_input = body["saga_id"], body["steps"], body.get("input", {})
        rows = await self.node.fetch(
            START, str(saga_id), int(steps), json.dumps(saga_input), *_COMMAND_ROUTE
        )
        await self._relay(rows, message)

    async def on_reply(self, message: AbstractIncomingMessage, body: dict[str, Any]) -> None:
        """Record a step's result and queue what follows in one statement; then send it."""
        saga_id, step, result = body["saga_id"], body["step"], body["result"]
        rows = await self.node.fetch(
            ADVANCE, str(saga_id), int(step), json.dumps(result), *_EVENT_ROUTE, *_COMMAND_ROUTE
        )
        await self._relay(rows, message)

    async def _relay(
        self, rows: Sequence[asyncpg.Record], message: AbstractIncomingMessage | None
    ) -> None:
        sent: list[int] = []
        try:
            for row in rows:
                await self.node.publish(row["exchange"], row["routing_key"], row["body"])
                sent.append(row["id"])
        except Exception:
            # Committed already: the sweeper publishes it later, so the delivery is done.
            log.exception("publishing from the outbox failed; the sweeper will retry")
        if message is not None:
            await message.ack()
        if sent:
            await self.node.fetch(DELETE_SENT, sent)

    async def sweep(self) -> None:
        """Republish outbox rows left behind, every second, until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self._relay(await self.node.fetch(SWEEP), None)
            except Exception:
                log.exception("sweeping the outbox failed")


async def run(settings: Settings) -> None:
    """Run an orchestrator until SIGTERM."""
    node = Node(settings)
    await node.open(DDL)
    orchestrator = Orchestrator(node)
    await node.consume(STARTS_QUEUE, orchestrator.on_start)
    await node.consume(REPLIES_QUEUE, orchestrator.on_reply)
    await node.serve(orchestrator.sweep)
