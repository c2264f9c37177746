"""The coordinator service: consumers, outbox relay and timers around one store and engine.

`Coordinator` runs in-process (tests, the embedded demo) or as `python -m coordinator`.
Its saga types come from its caller; other dependencies are passed in or built from
settings, and what it builds, it closes.

    async with Coordinator(settings, registry=osm_registry()) as coordinator:
        await coordinator.cancel("saga-1", "no longer needed")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Self

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import SagaStatus, topology
from convection.db import make_engine
from convection.failpoints import Failpoints
from convection.sealing import Sealer
from convection.transport import (
    Consumer,
    MemoryBroker,
    Transport,
    TransportError,
    open_transport,
)
from coordinator.consumer import Handlers, database_outage
from coordinator.core import Engine
from coordinator.dead_letter_ops import DeadLetterOps
from coordinator.dead_letters import DeadLetterCollector
from coordinator.errors import StartupError
from coordinator.failpoints import KNOWN as KNOWN_FAILPOINTS
from coordinator.metrics import Metrics
from coordinator.operations import Operations, SagaView
from coordinator.outcome import Outcome
from coordinator.processor import Processor
from coordinator.relay import OutboxRelay
from coordinator.senders import Senders
from coordinator.settings import CoordinatorSettings
from coordinator.store import SagaFilter, Store, check_schema, queries
from coordinator.store.dialect import COORDINATOR_APPLICATION, Lease
from coordinator.timers import Timers
from sagas import Registry, secret_paths

logger = logging.getLogger(__name__)

IN_FLIGHT = (SagaStatus.PENDING, SagaStatus.RUNNING, SagaStatus.COMPENSATING)
"""The statuses of sagas that have not finished, one gauge series each."""


class Coordinator:
    """One coordinator replica; any number may run against one database and broker."""

    def __init__(
        self,
        settings: CoordinatorSettings,
        *,
        registry: Registry,
        transport: Transport | None = None,
        db_engine: AsyncEngine | None = None,
        memory_broker: MemoryBroker | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics or Metrics()
        self._transport = transport
        self._db_engine = db_engine
        self._memory_broker = memory_broker
        self._owns_transport = transport is None
        self._owns_engine = db_engine is None
        self._consumers: list[Consumer] = []
        self._relay: OutboxRelay | None = None
        self._timers: Timers | None = None
        self._collector: DeadLetterCollector | None = None
        self._processor: Processor | None = None
        self._operations: Operations | None = None
        self._database = database_outage()
        self._dead_letters: DeadLetterOps | None = None
        self._gauge_lease: Lease | None = None
        self._started = False

    @property
    def operations(self) -> Operations:
        """Operator verbs and queries (available once started)."""
        if self._operations is None:
            raise RuntimeError("the coordinator is not started")
        return self._operations

    @property
    def dead_letters(self) -> DeadLetterOps:
        """List, show, replay and purge collected dead letters (available once started)."""
        if self._dead_letters is None:
            raise RuntimeError("the coordinator is not started")
        return self._dead_letters

    @property
    def transport(self) -> Transport:
        """The broker connection (available once started)."""
        if self._transport is None:
            raise RuntimeError("the coordinator is not started")
        return self._transport

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The Prometheus registry of this coordinator's metrics."""
        return self.metrics.registry

    async def readiness(self) -> dict[str, str]:
        """Check the database, the broker and the schema: name -> "ok" or what is wrong.

        While the consumers ride out a database outage, readiness says so and since when.
        """
        checks = await readiness(self._db_engine, self._transport)
        if self._database.down and checks.get("database") == "ok":
            checks["database"] = self._database.describe()
        return checks

    async def queues(self) -> list[dict[str, object]]:
        """Return each participant service's command queue: depth and consumers (None: unknown).

        A queue the broker cannot count shows its error instead, so one missing service
        leaves the others readable.
        """
        out: list[dict[str, object]] = []
        for service in self.registry.services():
            queue = topology.command_queue(service)
            entry: dict[str, object] = {"service": service, "queue": queue}
            try:
                entry["depth"] = await self.transport.queue_depth(queue)
                entry["consumers"] = await self.transport.queue_consumers(queue)
            except TransportError as exc:
                entry["error"] = str(exc)
            out.append(entry)
        return out

    async def metrics_text(self) -> bytes:
        """Return the Prometheus metrics text, the gauges refreshed from the database."""
        await self.refresh_gauges()
        return generate_latest(self.metrics.registry)

    async def refresh_gauges(self) -> None:
        """Bring the gauges up to date from the database (called on each /metrics scrape).

        They describe the whole database, so only the replica holding the gauge lease
        exports them; the others omit those series until they take the lease over.
        """
        if self._processor is None or self._gauge_lease is None:
            return
        held = await self._gauge_lease.held()
        self.metrics.database_gauges = held
        if not held:
            return
        store = self._processor.store
        async with store.reading() as conn:
            backlog, oldest, _dead = await store.outbox_stats(conn)
            now = await store.now(conn)
            by_status, stuck = await queries.gauges(conn, now)
        for status in IN_FLIGHT:
            self.metrics.sagas_in_flight.labels(status).set(by_status.get(status, 0))
        self.metrics.sagas_stuck.set(stuck)
        self.metrics.outbox_backlog.set(backlog)
        self.metrics.outbox_oldest_age.set((now - oldest).total_seconds() if oldest else 0.0)

    def _sealer(self) -> Callable[[str], str] | None:
        """Return how secrets are sealed, or refuse to run saga types with secrets unsealed."""
        if self.settings.vault_public_key:
            return Sealer(self.settings.vault_public_key).seal
        with_secrets = sorted({s.name for s in self.registry if secret_paths(s.input)})
        if with_secrets:
            raise StartupError(
                f"saga types {', '.join(with_secrets)} take secrets, and "
                "CONVECTION_VAULT_PUBLIC_KEY is not set: run `convection vault keygen` and "
                "give the public key to the coordinator, the private key to the services that "
                "own the secrets"
            )
        return None

    def _senders(self) -> Senders | None:
        """Return who may answer each service's steps, or None (with a warning) if unchecked."""
        users = self.settings.service_user_map()
        if users is None:
            logger.warning(
                "replies are accepted from any broker user: set CONVECTION_SERVICE_USERS "
                "(docs/security.md)"
            )
            return None
        missing = sorted(set(self.registry.services()) - set(users))
        if missing:
            logger.warning(
                "CONVECTION_SERVICE_USERS names no user for %s: their replies will be refused "
                "as forged",
                ", ".join(missing),
            )
        own = self._transport.user if self._transport is not None else None
        return Senders(users, own=own)

    async def start(self) -> None:
        """Check the schema, connect, start relay, timers, dead-letter collector and consumers."""
        s = self.settings
        self._sealer()  # refuse before connecting anything
        if self._db_engine is None:
            self._db_engine = make_engine(
                s.db_url, pool_size=s.db_pool_size, application_name=COORDINATOR_APPLICATION
            )
        try:
            if s.check_schema:
                await check_schema(self._db_engine)
            if self._transport is None:
                self._transport = open_transport(
                    s.amqp_url,
                    topology.coordinator_topology(self.registry.services()),
                    memory_broker=self._memory_broker,
                    publish_timeout=s.publish_timeout,
                )
                await self._transport.connect()
            store = Store(self._db_engine)
            failpoints = Failpoints(s.failpoint, KNOWN_FAILPOINTS)
            seal = self._sealer()
            self._database = database_outage()
            self._gauge_lease = Lease(self._db_engine)
            self._relay = OutboxRelay(
                store=store,
                transport=self._transport,
                metrics=self.metrics,
                batch=s.outbox_batch,
                poll_interval=s.outbox_poll_interval,
                max_attempts=s.outbox_max_attempts,
                retention=timedelta(seconds=s.outbox_retention_seconds),
                inbox_retention=timedelta(seconds=s.inbox_retention_seconds),
                failpoints=failpoints,
                database=self._database,
            )
            self._processor = Processor(
                store=store,
                engine=Engine(self.registry),
                metrics=self.metrics,
                on_commit=self._relay.wake,
                hand_off=self._relay.hand_off,
                failpoints=failpoints,
                seal=seal,
                senders=self._senders(),
                group=(s.group_lanes, s.group_commit) if s.group_commit > 1 else None,
            )
            self._operations = Operations(self._processor, self.registry)
            self._timers = Timers(
                processor=self._processor,
                metrics=self.metrics,
                interval=s.timer_interval,
                batch=s.timer_batch,
                database=self._database,
                stalled_after=s.stalled_transaction_seconds,
            )
            own = topology.coordinator_topology(self.registry.services())
            self._collector = DeadLetterCollector(
                store=store,
                transport=self._transport,
                metrics=self.metrics,
                queues=[queue.name for queue in own.queues],
            )
            self._dead_letters = DeadLetterOps(store, self._transport)
            await self._relay.start()
            await self._timers.start()
            handlers = Handlers(self._processor, self.metrics, database=self._database)
            if s.collect_dead_letters:
                await self._collector.start()
            for queue, handler in (
                (topology.COORDINATOR_SAGAS_QUEUE, handlers.on_saga_message),
                (topology.COORDINATOR_REPLIES_QUEUE, handlers.on_reply),
            ):
                consumer = await self._transport.consume(queue, handler, prefetch=s.prefetch)
                self._consumers.append(consumer)
            if s.metrics_port is not None:
                start_http_server(s.metrics_port, registry=self.metrics.registry)
        except BaseException:
            await self.stop()
            raise
        self._started = True
        logger.info("coordinator started")

    async def stop(self) -> None:
        """Stop consuming (finishing what is in flight), stop timers, flush the outbox once.

        Stopping twice is harmless: a second flush would open a connection on the engine
        the first one disposed of.
        """
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()
        if self._collector is not None:
            await self._collector.stop()
        if self._timers is not None:
            await self._timers.stop()
            self._timers = None
        if self._relay is not None:
            relay, self._relay = self._relay, None
            await relay.stop()
            try:
                await asyncio.wait_for(relay.flush(max_batches=10), timeout=10)
            except Exception:
                logger.exception("final outbox flush failed; the rows stay for another relay")
        if self._gauge_lease is not None:
            await self._gauge_lease.close()
            self._gauge_lease = None
        if self._owns_transport and self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self._owns_engine and self._db_engine is not None:
            await self._db_engine.dispose()
            self._db_engine = None
        if self._started:
            logger.info("coordinator stopped")
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- operator verbs ------------------------------------------------------------------------

    async def cancel(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Cancel a saga (see `Operations.cancel`)."""
        return await self.operations.cancel(saga_id, reason, requested_by)

    async def retry(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Resume a failed saga (see `Operations.retry`)."""
        return await self.operations.retry(saga_id, reason, requested_by)

    async def skip(
        self, saga_id: str, step: str, reason: str, requested_by: str = "api"
    ) -> Outcome:
        """Mark a failed compensation done (see `Operations.skip`)."""
        return await self.operations.skip(saga_id, step, reason, requested_by)

    async def get_saga(self, saga_id: str) -> SagaView | None:
        """Return a saga's state and history (see `Operations.get_saga`)."""
        return await self.operations.get_saga(saga_id)

    async def list_sagas(
        self, *, status: str | None = None, saga_type: str | None = None, limit: int = 100
    ) -> list[dict[str, object]]:
        """Return saga summaries (see `Operations.list_sagas`)."""
        statuses = (status,) if status else ()
        page = await self.operations.list_sagas(
            SagaFilter(statuses=statuses, saga_type=saga_type, limit=limit)
        )
        return page.items


async def readiness(engine: AsyncEngine | None, transport: Transport | None) -> dict[str, str]:
    """Check a coordinator's database, broker and schema: name -> "ok" or what is wrong."""
    if engine is None or transport is None:
        return {"database": "not started", "broker": "not started", "schema": "not started"}
    checks: dict[str, str] = {}
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {exc}"
    try:
        checks["broker"] = "ok" if await transport.ping() else "disconnected"
    except Exception as exc:
        checks["broker"] = f"unreachable: {exc}"
    try:
        await check_schema(engine)
        checks["schema"] = "ok"
    except Exception as exc:
        checks["schema"] = str(exc)
    return checks
