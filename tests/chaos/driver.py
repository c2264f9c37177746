"""The client side of the chaos run: start sagas through any outage and watch them end.

Both halves outlive the broker and the database restarting under them: a StartSaga is
published again until the broker confirms it (the coordinator's inbox drops the copies, they
carry one message id), and the watcher reconnects to the database when it goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiohttp
import asyncpg

from contracts import topology
from coordinator.broker_setup import CLIENT_USER

TERMINAL = frozenset({"completed", "compensated", "failed", "compensation_failed", "cancelled"})
log = logging.getLogger("chaos")


class Publisher:
    """Publishes StartSaga as the client user, with confirms, retrying until confirmed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.resent = 0
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _target(self) -> aio_pika.abc.AbstractExchange:
        if self._exchange is None or self._connection is None or self._connection.is_closed:
            await self.close()
            self._connection = await aio_pika.connect(self.url, timeout=5)
            # on_return_raises: an unroutable StartSaga must not count as sent.
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.get_exchange(topology.SAGAS_EXCHANGE, ensure=False)
        return self._exchange

    async def start(self, saga_type: str, saga_id: str, data: dict[str, Any]) -> None:
        """Publish one StartSaga and return once the broker confirmed it."""
        body = {
            "type": "saga.start",
            "message_id": f"start.{saga_id}",
            "saga_type": saga_type,
            "saga_id": saga_id,
            "input": data,
        }
        message = aio_pika.Message(
            json.dumps(body).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=CLIENT_USER,
            message_id=body["message_id"],
        )
        for attempt in range(10_000):
            # One publisher for all chains: a broker outage is then one reconnect loop, not a
            # hundred, and no chain closes the connection another has just opened.
            async with self._lock:
                try:
                    async with asyncio.timeout(10):
                        exchange = await self._target()
                        await exchange.publish(
                            message, topology.START_ROUTING_KEY, mandatory=True, timeout=10
                        )
                    return
                except Exception as exc:  # any broker trouble: publish again
                    self.resent += 1
                    if attempt % 20 == 0:
                        log.info("StartSaga %s not confirmed (%s); again", saga_id, exc)
                    await self.close()
            await asyncio.sleep(0.5)
        raise RuntimeError(f"StartSaga {saga_id} never confirmed")

    async def close(self) -> None:
        """Close the connection, if any."""
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None and not connection.is_closed:
            # Closing a connection that is going away anyway: whatever it raises is moot.
            with contextlib.suppress(Exception):
                await connection.close()


@dataclass
class _Waiter:
    ready: Callable[[str], bool]
    future: asyncio.Future[str]


@dataclass
class Watcher:
    """Polls the coordinator's `sagas` table for the sagas somebody waits on."""

    dsn: str
    interval: float = 0.5
    statuses: dict[str, str] = field(default_factory=dict)
    _waiters: dict[str, list[_Waiter]] = field(default_factory=dict)

    async def wait(self, saga_id: str, ready: Callable[[str], bool]) -> str:
        """Wait until the saga's status satisfies `ready`; return the status."""
        if (status := self.statuses.get(saga_id)) is not None and ready(status):
            return status
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(saga_id, []).append(_Waiter(ready, future))
        return await future

    async def run(self) -> None:
        """Poll until cancelled, reconnecting whenever the database goes away."""
        conn: asyncpg.Connection | None = None
        try:
            while True:
                conn = await self._poll(conn)
                await asyncio.sleep(self.interval)
        finally:
            if conn is not None:
                conn.terminate()

    async def _poll(self, conn: asyncpg.Connection | None) -> asyncpg.Connection | None:
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(self.dsn, timeout=5)
            if self._waiters:
                rows = await conn.fetch(
                    "SELECT id, status FROM sagas WHERE id = ANY($1::text[])",
                    list(self._waiters),
                    timeout=10,
                )
                self._settle({r["id"]: r["status"] for r in rows})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if conn is not None:
                conn.terminate()
            return None
        return conn

    def _settle(self, seen: dict[str, str]) -> None:
        for saga_id, status in seen.items():
            self.statuses[saga_id] = status
            waiting = self._waiters.get(saga_id, [])
            for waiter in [w for w in waiting if w.ready(status)]:
                waiting.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(status)
            if not waiting:
                self._waiters.pop(saga_id, None)


@dataclass
class Outcome:
    """One saga of the run: what its scenario expects and how it ended."""

    saga_id: str
    saga_type: str
    scenario: str
    expected: frozenset[str]
    status: str | None = None
    started: float = 0.0
    ended: float = 0.0


class Run:
    """The `Driver` the scenarios use, recording every saga they start."""

    def __init__(self, sim: str, publisher: Publisher, watcher: Watcher) -> None:
        self.sim = sim
        self.publisher = publisher
        self.watcher = watcher
        self.outcomes: dict[str, Outcome] = {}
        self.scenario = ""

    def for_scenario(self, scenario: str) -> Run:
        """A view of this run that files the sagas it starts under `scenario`."""
        view = Run(self.sim, self.publisher, self.watcher)
        view.outcomes, view.scenario = self.outcomes, scenario
        return view

    async def project(self, name: str, *, instances: int, cores: int) -> None:
        """Add a VIM project (user and password: its name), retrying while the VIM is down."""
        body = {
            "name": name,
            "user": name,
            "password": name,
            "quota": {"instances": instances, "cores": cores},
        }
        while True:
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
                    http.post(f"{self.sim}/admin/projects", json=body) as resp,
                ):
                    # 409: an earlier try went through and only its answer was lost.
                    if resp.status in (201, 409):
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.5)

    async def begin(self, saga_type: str, saga_id: str, data: dict[str, Any]) -> None:
        """Start a saga; its outcome is recorded by `end`."""
        self.outcomes[saga_id] = Outcome(
            saga_id, saga_type, self.scenario, frozenset(), started=time.monotonic()
        )
        await self.publisher.start(saga_type, saga_id, data)

    async def seen(self, saga_id: str) -> None:
        """Wait until the coordinator created the saga."""
        await self.watcher.wait(saga_id, lambda _status: True)

    async def end(self, saga_id: str, expect: frozenset[str]) -> bool:
        """Wait for the saga to end; tell whether it ended as expected."""
        outcome = self.outcomes[saga_id]
        outcome.expected = expect
        outcome.status = await self.watcher.wait(saga_id, TERMINAL.__contains__)
        outcome.ended = time.monotonic()
        return outcome.status in expect
