"""The process shell every adapter shares: settings from the environment, signals, clean exit.

An adapter's `__main__` calls `main(...)`: it reads the settings once, checks the database
and connects the transport, runs the participant until SIGTERM or SIGINT, stops the consumer
gracefully and exits 0. A failure to start is one line in the log and an exit code
(`convection.startup`; the same for every adapter and `convection participant`):

    0  stopped gracefully after SIGTERM or SIGINT
    2  bad settings (a variable missing or malformed, a URL that does not parse)
    4  the database is unavailable: unreachable, no such database, login refused
    5  the broker is unavailable: unreachable, no such vhost, login refused

Environment (every adapter):

    CONVECTION_AMQP_URL    broker URL (required), e.g. amqp://guest:guest@127.0.0.1:5672/
    CONVECTION_DB_URL      database URL (required), PostgreSQL or SQLite
    CONVECTION_PREFETCH    deliveries in flight at once (default 16)
    CONVECTION_FAILPOINT   crash on purpose for tests: `participant.after_effect`
    CONVECTION_LOG_LEVEL   logging level (default INFO)
    CONVECTION_METRICS_PORT  serve Prometheus metrics on this port (optional; see
                           `convection.participant_metrics`)
    CONVECTION_COORDINATOR_USER  accept commands only from this broker user (see
                           docs/security.md); unset accepts any sender
    CONVECTION_DECLARE_TOPOLOGY  false: declare nothing, only check that the queues and
                           exchanges exist (a broker user without configure permission)

`register_adapter` (from `convection.cli_adapters`) adds `convection adapter <name>`.

Nothing heavy is imported at module level: the I/O stack loads when a process starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, TypeAlias, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topology import EXCHANGES, Topology, service_queue
from convection import startup
from convection.cli_adapters import GROUP, adapter_group, register_adapter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from convection.participant_metrics import ParticipantMetrics
    from convection.transport import Transport

logger = logging.getLogger(__name__)

__all__ = [
    "GROUP",
    "ParticipantSettings",
    "Runner",
    "SettingsError",
    "adapter_group",
    "load_settings",
    "main",
    "register_adapter",
    "serve",
    "topology_of",
]


class SettingsError(ValueError):
    """The environment does not hold usable settings; the message names each bad one."""


class ParticipantSettings(BaseSettings):
    """Settings of an adapter process, read once from `CONVECTION_*` environment variables.

    Attributes:
        amqp_url: The broker (`amqp://...`).
        db_url: The database for stored replies and the adapter's own tables.
        prefetch: Deliveries in flight at once.
        failpoint: A failpoint to crash on (tests only).
        log_level: Logging level name.
        health_file: A heartbeat file to touch while the broker connection is up.
        metrics_port: A port to serve the Prometheus metrics on, if set.
        coordinator_user: The broker user whose commands are accepted (None: anyone's).
        declare_topology: Declare the queues and exchanges (False: only check them).
    """

    model_config = SettingsConfigDict(env_prefix="CONVECTION_", frozen=True, extra="ignore")

    amqp_url: Annotated[str, Field(min_length=1, pattern=r"^amqps?://")]
    db_url: Annotated[str, Field(min_length=1)]
    prefetch: Annotated[int, Field(ge=1, le=1000)] = 16
    failpoint: str | None = None
    log_level: str = "INFO"
    health_file: str | None = None
    vault_key: str | None = None
    """The vault's private key, for the services that own secrets (`convection vault keygen`)."""
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    coordinator_user: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    declare_topology: bool = True

    @field_validator("db_url")
    @classmethod
    def _parsable_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        startup.check_url(value)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _parsable_amqp_url(cls, value: str) -> str:
        startup.check_url(value)
        return value

    @field_validator("vault_key")
    @classmethod
    def _usable_key(cls, value: str | None) -> str | None:
        if value:
            from convection.sealing import Vault

            Vault(value)  # raises SealingError (a ValueError) saying what is wrong
        return value or None

    @field_validator("failpoint")
    @classmethod
    def _known_failpoint(cls, value: str | None) -> str | None:
        from convection.participant import FAILPOINTS

        if value and value not in FAILPOINTS:
            raise ValueError(f"unknown failpoint; known: {', '.join(sorted(FAILPOINTS))}")
        return value or None


S = TypeVar("S", bound=ParticipantSettings)

Runner: TypeAlias = (
    "Callable[[S, Transport, AsyncEngine, asyncio.Event, ParticipantMetrics], Awaitable[None]]"
)
"""Runs an adapter's participant with its settings until the event is set, counting into the
metrics the process serves."""


def load_settings(settings_type: type[S]) -> S:
    """Read `settings_type` from the environment, or raise `SettingsError` saying what is wrong."""
    try:
        return settings_type()
    except ValidationError as exc:
        # Never echo input values: URLs may carry passwords.
        problems = "; ".join(
            f"CONVECTION_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(f"invalid settings: {problems}") from exc


def topology_of(services: Sequence[str]) -> Topology:
    """Return what participants of `services` declare: the exchanges and their own queues."""
    return Topology(exchanges=EXCHANGES, queues=tuple(service_queue(s) for s in services))


async def serve(settings: S, runner: Runner[S], services: Sequence[str]) -> None:
    """Connect, run `runner` until SIGTERM/SIGINT, then stop and disconnect.

    The transport declares only the command queues of `services`: a participant declares
    its own queue, never another service's. The database is checked and the broker connected
    first; a failure there raises `StartupFailure` saying which and why.
    """
    from prometheus_client import start_http_server
    from sqlalchemy import text

    from convection.db import make_engine
    from convection.health import Heartbeat
    from convection.participant_metrics import ParticipantMetrics
    from convection.transport import open_transport

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    from convection.run_stats import RunStats

    stats = RunStats.from_environment()  # `convection bench` only
    metrics = ParticipantMetrics()
    exporter = None
    if settings.metrics_port is not None:
        exporter, _thread = start_http_server(settings.metrics_port, registry=metrics.registry)
        logger.info("metrics on port %d", settings.metrics_port)
    # Enough connections for every delivery in flight plus the handlers' own queries.
    engine = make_engine(settings.db_url, pool_size=settings.prefetch)
    try:
        transport = open_transport(
            settings.amqp_url, topology_of(services), declare=settings.declare_topology
        )
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            with startup.quiet_connect():
                await transport.connect()
        except Exception as exc:
            failure = startup.classify(exc, db_url=settings.db_url, amqp_url=settings.amqp_url)
            if failure is None:
                raise
            raise failure from exc
        if settings.coordinator_user is None:
            logger.warning(
                "commands are accepted from any broker user: set CONVECTION_COORDINATOR_USER "
                "(docs/security.md)"
            )
        try:
            beat = None
            if settings.health_file:
                # Container health checks read this file (`convection health --file ...`).
                beat = asyncio.create_task(Heartbeat(settings.health_file, transport.ping).run())
            try:
                await runner(settings, transport, engine, stop, metrics)
            finally:
                if beat is not None:
                    beat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beat
        finally:
            await transport.close()
            if stats is not None:
                stats.write(transport)
    finally:
        await engine.dispose()
        if exporter is not None:
            exporter.shutdown()


def main(service: str, settings_type: type[S], runner: Runner[S]) -> int:
    """Run an adapter process; return its exit code (see the module's list)."""
    from convection.tracing import setup_logging, setup_tracing

    setup_logging("INFO")
    try:
        settings = load_settings(settings_type)
    except SettingsError as exc:
        logger.error("%s-adapter: %s", service, exc)  # noqa: TRY400 - no traceback for bad input
        return startup.SETTINGS
    logging.getLogger().setLevel(settings.log_level.upper())
    tracing = setup_tracing(f"{service}-adapter")
    try:
        asyncio.run(serve(settings, runner, [service]))
    except startup.StartupFailure as exc:
        logger.error("%s-adapter: %s", service, exc)  # noqa: TRY400 - one line, no traceback
        return exc.code
    finally:
        # Spans still in the batch processor are lost unless the provider is shut down.
        tracing.shutdown()
    logger.info("%s-adapter: exited cleanly", service)
    return 0
