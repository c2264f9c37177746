"""The floor's participant: store the outcome by idempotency key, reply, then ack.

The outcome is stored before the reply goes out, in one `INSERT ... ON CONFLICT` that returns
the stored outcome on a redelivery, so a command delivered twice is answered twice with the
same result and done once. The command is acked only after the reply is confirmed: a crash
in between redelivers it, and the stored outcome answers again.
"""

from __future__ import annotations

import json
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from convection_bench.floor.common import COMMANDS_QUEUE, REPLY_KEY, SAGAS_EXCHANGE, Node, Settings

DDL = """
CREATE TABLE IF NOT EXISTS floor_outcomes (
    key text PRIMARY KEY,
    result jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""
"""The participant's table: one stored outcome per idempotency key."""

# DO UPDATE (to the same key) rather than DO NOTHING: it makes RETURNING yield the stored row.
STORE = """
INSERT INTO floor_outcomes (key, result) VALUES ($1, $2::jsonb)
ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
RETURNING result
"""
"""Store the outcome unless one is stored for the key; return the stored one either way."""


class Participant:
    """Answers no-op commands with a small JSON result, exactly once per idempotency key."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def on_command(self, message: AbstractIncomingMessage, body: dict[str, Any]) -> None:
        """Store the outcome, publish the reply (confirmed), then ack the command."""
        key = str(body["key"])
        result = json.dumps({"ok": True, "key": key})
        rows = await self.node.fetch(STORE, key, result)
        # asyncpg hands jsonb over as its text.
        stored = json.loads(rows[0]["result"])
        reply = {"saga_id": body["saga_id"], "step": body["step"], "result": stored}
        await self.node.publish(SAGAS_EXCHANGE, REPLY_KEY, json.dumps(reply))
        await message.ack()


async def run(settings: Settings) -> None:
    """Run a participant until SIGTERM."""
    node = Node(settings)
    await node.open(DDL)
    await node.consume(COMMANDS_QUEUE, Participant(node).on_command)
    await node.serve()
