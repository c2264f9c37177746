"""Fault matrix: messages that arrive twice, out of order or too late, and a poison command.

The replies are published as the participant services' own broker users, so they pass the
coordinator's authenticity check: they are what a participant that redelivers, races itself
or wakes up late would send. None may change a saga, send a command or undo anything. The
poison commands (published as the coordinator's user) are dead-lettered with a reason, and
the sagas beside them complete.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from contracts import ErrorInfo, Progress, Reply, encode, topology
from contracts.base import new_id
from convection.participant_replies import final_reply_id
from coordinator.broker_setup import COORDINATOR_USER, service_user
from tests.faults.matrix import World

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
_STEPS = (
    "SELECT saga_id, name, service, status, attempt, command_id, result, comp_status,"
    " comp_attempt, comp_command_id FROM saga_steps WHERE command_id IS NOT NULL"
)


def _replies(step: Any) -> list[tuple[str, Reply]]:
    """What a confused participant could send about `step`: (message id, reply) pairs."""
    base = {"saga_id": step["saga_id"], "step": step["name"], "attempt": step["attempt"]}
    forward = {**base, "command_id": step["command_id"]}
    out: list[tuple[str, Reply]] = [
        # The participant's final reply again, with its own id (the inbox knows it) and with a
        # new one (only the step's records know it).
        (final_reply_id(step["command_id"]), _final(forward, step)),
        (new_id(), _final(forward, step)),
        # A progress report overtaken by the final reply.
        (new_id(), Reply(**forward, outcome="progress", progress=Progress(message="late"))),
        # A contradicting failure of the same attempt, later than its real answer.
        (new_id(), Reply(**forward, outcome="failed", error=ErrorInfo(code="late", message="x"))),
        (
            new_id(),
            Reply(**forward, outcome="retryable", error=ErrorInfo(code="late", message="x")),
        ),
    ]
    if step["comp_command_id"]:
        undo = {**base, "attempt": step["comp_attempt"], "command_id": step["comp_command_id"]}
        error = ErrorInfo(code="late", message="x")
        out.append((new_id(), Reply(**undo, compensation=True, outcome="failed", error=error)))
        out.append(
            (new_id(), Reply(**undo, compensation=True, outcome="succeeded", result={"late": 1}))
        )
    return out


def _final(forward: dict[str, Any], step: Any) -> Reply:
    if step["status"] == "succeeded":
        return Reply(**forward, outcome="succeeded", result=_json(step["result"]))
    return Reply(**forward, outcome="failed", error=ErrorInfo(code="dup", message="duplicate"))


def _json(value: Any) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str) else value
    return dict(parsed or {})


async def _confuse(w: World, steps: list[Any]) -> int:
    sent = 0
    for step in steps:
        user = service_user(step["service"])
        for message_id, reply in _replies(step):
            await w.publish_as(
                user,
                topology.REPLIES_EXCHANGE,
                topology.REPLY_ROUTING_KEY,
                encode(reply),
                message_id=message_id,
                content_type="application/json",
            )
            sent += 1
    return sent


async def _footprint(w: World) -> tuple[int, int, list[Any]]:
    history = await w.sql("SELECT count(*) AS n FROM saga_history")
    # Rows ever written (sent rows are deleted): the id sequence moves with every insert.
    outbox = await w.sql(
        "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('outbox', 'id')::regclass)"
        ", 0) AS n"
    )
    steps = await w.sql(
        "SELECT saga_id, name, status, comp_status, attempt, comp_attempt FROM saga_steps"
        " ORDER BY saga_id, name"
    )
    return int(history[0]["n"]), int(outbox[0]["n"]), [tuple(r) for r in steps]


@pytest.mark.timeout(600)
async def test_duplicate_reordered_and_late_replies(scene: World) -> None:
    w = scene
    expect = await w.nss("dup", 4, failing=[1])
    # While the sagas run: every step answered so far hears its answers again, out of order.
    await w.in_flight("dup", steps=8)
    running = await w.sql(_STEPS + " AND status IN ('succeeded', 'failed')")
    in_flight = await _confuse(w, running)
    await w.settle(expect)
    # After they ended: everything again, for every step, much too late.
    await asyncio.sleep(3)
    before = await _footprint(w)
    late = await _confuse(w, await w.sql(_STEPS))
    await asyncio.sleep(10)
    assert await _footprint(w) == before, "a late reply changed a finished saga"
    print(f"\nreplies sent: {in_flight} in flight, {late} late")
    await w.checked(expect, dead_letters=True)


def _command(action: str, payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    saga_id = f"poison-{new_id()[:8]}"
    return {
        "type": "step.command",
        "message_id": new_id(),
        "saga_id": saga_id,
        "saga_type": "ns.instantiate",
        "step": "networks",
        "attempt": 1,
        "idempotency_key": f"{saga_id}/networks",
        "service": "ro",
        "action": action,
        "payload": payload,
        **changes,
    }


@pytest.mark.timeout(600)
async def test_poison_commands_are_dead_lettered_with_a_reason(scene: World) -> None:
    w = scene
    before = len(await w.sql("SELECT id FROM dead_letters"))
    expect = await w.nss("poison", 4, failing=[3])
    deep = b"[" * 10_000 + b"]" * 10_000
    poisons = {
        "ro": [
            b"not json at all",
            deep,
            json.dumps(_command("ro.no-such-action", {})).encode(),
            json.dumps(_command("ro.create-networks", {}, service="lcm")).encode(),
        ],
        "lcm": [b"\xff\xfe not utf-8", json.dumps({"type": "step.command"}).encode()],
    }
    for service, bodies in poisons.items():
        for body in bodies:
            await w.publish_as(
                COORDINATOR_USER,
                topology.COMMANDS_EXCHANGE,
                service,
                body,
                message_id=new_id(),
                content_type="application/json",
            )
    await w.settle(expect)
    total = sum(len(b) for b in poisons.values())

    async def collected() -> bool:
        rows = await w.sql("SELECT count(*) AS n FROM dead_letters")
        return int(rows[0]["n"]) >= before + total

    await w.until("every poison command is collected", collected, within=60)
    rows = await w.sql("SELECT queue, reason FROM dead_letters ORDER BY id OFFSET $1", before)
    print(f"dead letters: {[tuple(r) for r in rows]}")
    assert len(rows) == total, rows
    assert {r["queue"] for r in rows} == {"convection.commands.ro", "convection.commands.lcm"}
    await w.checked(expect, dead_letters=True)
