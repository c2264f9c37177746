"""Helpers of the coordinator's integration tests: a test participant, publishing, waiting."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text

import contracts
from contracts import Command, ErrorInfo, StartSaga, decode, encode, topology
from convection.db import make_engine
from convection.transport import Consumer, Delivery, Transport, open_transport
from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings
from coordinator.store import tables, upgrade_engine
from sagas import osm_registry
from tests.unit.world import OSM_SERVICES, OSM_TOPOLOGY, fake_result

Outcome = str
"""succeeded, failed, retryable (then succeeded), slow (succeeded after a second), or hold
(no reply)."""


async def migrate(db_url: str) -> None:
    """Bring the database's schema to head."""
    engine = make_engine(db_url)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


def settings(amqp_url: str, db_url: str, **changes: Any) -> CoordinatorSettings:
    """Coordinator settings with short intervals for tests."""
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "db_url": db_url,
        "timer_interval": 0.2,
        "outbox_poll_interval": 0.5,
    }
    values.update(changes)
    return CoordinatorSettings(**values)


@dataclass
class Participant:
    """A test participant on every command queue: effects by idempotency key, real replies."""

    transport: Transport
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    """Step name -> outcome of its forward command (default: succeeded)."""
    choose: Callable[[Command], Outcome | None] | None = None
    """Picks the outcome of a forward command first, when set (None: use `outcomes`)."""
    received: list[Command] = field(default_factory=list)
    effects: Counter[str] = field(default_factory=Counter)
    """Forward idempotency key -> effects applied (must stay <= 1)."""
    undone: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    """Command message id -> how often it arrived."""
    _consumers: list[Consumer] = field(default_factory=list)
    _retried: set[str] = field(default_factory=set)

    async def start(self, services: tuple[str, ...] = OSM_SERVICES) -> None:
        """Consume the command queues of `services`."""
        for service in services:
            queue = topology.command_queue(service)
            self._consumers.append(await self.transport.consume(queue, self._handle, prefetch=64))

    async def stop(self) -> None:
        """Stop consuming."""
        for consumer in self._consumers:
            await consumer.stop()

    async def _handle(self, delivery: Delivery) -> None:
        cmd = decode(delivery.body)
        assert isinstance(cmd, Command)
        self.received.append(cmd)
        self.deliveries[cmd.message_id] += 1
        chosen = self.choose(cmd) if self.choose is not None else None
        outcome = chosen or self.outcomes.get(cmd.step, "succeeded")
        if cmd.compensation:
            outcome = "succeeded"
        if outcome == "retryable":
            # Transient once per step, then it works: exercises the retry timer.
            outcome = "succeeded" if cmd.idempotency_key in self._retried else "retryable"
            self._retried.add(cmd.idempotency_key)
        if outcome == "slow":
            await asyncio.sleep(1.0)
            outcome = "succeeded"
        if outcome == "hold":
            await delivery.ack()
            return
        if outcome == "succeeded":
            if cmd.compensation:
                key = cmd.undoes_key or ""
                if self.effects[key] > self.undone[key]:
                    self.undone[key] += 1
            elif not self.effects[cmd.idempotency_key]:
                self.effects[cmd.idempotency_key] += 1
            reply = contracts.reply_to(cmd, "succeeded", result=fake_result(cmd))
        else:
            error = ErrorInfo(code="test", message=f"{outcome} on purpose")
            reply = contracts.reply_to(cmd, outcome, error=error)
        await self.transport.publish(
            topology.REPLIES_EXCHANGE,
            topology.REPLY_ROUTING_KEY,
            encode(reply),
            message_id=reply.message_id,
        )
        await delivery.ack()


async def open_client(amqp_url: str) -> Transport:
    """A connected transport that declares the standard topology."""
    transport = open_transport(amqp_url, OSM_TOPOLOGY)
    await transport.connect()
    return transport


async def start_saga(
    transport: Transport,
    saga_type: str,
    saga_id: str,
    data: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
) -> StartSaga:
    """Publish a StartSaga to convection.sagas/saga.start."""
    msg = StartSaga(saga_type=saga_type, saga_id=saga_id, input=data)
    await transport.publish(
        topology.SAGAS_EXCHANGE,
        topology.START_ROUTING_KEY,
        encode(msg),
        message_id=msg.message_id,
        headers=headers,
    )
    return msg


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, every: float = 0.1
) -> None:
    """Wait until `check()` is true, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {check}")
        await asyncio.sleep(every)


class Db:
    """Read-only queries the tests make on the coordinator's tables."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    async def close(self) -> None:
        """Dispose of the engine."""
        await self.engine.dispose()

    async def statuses(self) -> dict[str, str]:
        """Saga id -> status."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(tables.sagas.c.id, tables.sagas.c.status))
            return {str(saga_id): str(status) for saga_id, status in rows}

    async def history(self, saga_id: str | None = None) -> list[dict[str, Any]]:
        """History rows, oldest first (of one saga, or all)."""
        h = tables.saga_history
        stmt = select(h).order_by(h.c.id)
        if saga_id is not None:
            stmt = stmt.where(h.c.saga_id == saga_id)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(stmt)).mappings()]

    async def scalar(self, sql: str) -> Any:
        """Run one scalar query."""
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()


@dataclass
class Rig:
    """A coordinator, a participant and a client on one fresh vhost and database."""

    coordinator: Coordinator
    participant: Participant
    client: Transport
    db: Db

    async def status(self, saga_id: str) -> str | None:
        return (await self.db.statuses()).get(saga_id)

    async def until(self, saga_id: str, status: str, within: float = 30.0) -> None:
        async def reached() -> bool:
            return await self.status(saga_id) == status

        await eventually(reached, within=within)


@asynccontextmanager
async def running_rig(amqp_url: str, pg_url: str, **changes: Any) -> AsyncIterator[Rig]:
    """Migrate, then run a coordinator, a participant and a client until the block ends.

    `changes` override the coordinator's settings.
    """
    await migrate(pg_url)
    client = await open_client(amqp_url)
    participant = Participant(await open_client(amqp_url))
    await participant.start()
    db = Db(pg_url)
    try:
        config = settings(amqp_url, pg_url, **changes)
        async with Coordinator(config, registry=osm_registry()) as coordinator:
            yield Rig(coordinator, participant, client, db)
    finally:
        await participant.stop()
        await participant.transport.close()
        await client.close()
        await db.close()
