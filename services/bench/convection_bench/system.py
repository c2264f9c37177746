"""What the harness benchmarks: a `System` of processes, how to start a saga, how one ends.

A system knows nothing of the harness: it gets `Endpoints` (its own vhost and database) and
returns process specs, a start function and a parser for its completion events. Two systems
exist: the hand-written floor (`floor_system`) and Convection (`convection_system`: K
coordinators running only the bench saga package, M echo participants).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contracts import topology
from contracts.messages import encode
from contracts.saga import TERMINAL_STATUSES, SagaStatus, StartSaga
from convection_bench.floor import common as floor
from convection_bench.noop import sagas as noop_sagas
from convection_bench.noop.actions import SERVICE as BENCH_SERVICE
from convection_bench.noop.participant import DELAY_ENV as ECHO_DELAY_ENV


class BenchError(Exception):
    """The benchmark cannot go on; the message says what happened and what to do next."""


@dataclass(frozen=True)
class Endpoints:
    """Where one system runs: a vhost and a database of its own, fresh for this run."""

    amqp_url: str
    db_url: str
    """`postgresql://...`, the form libpq and asyncpg take."""

    @property
    def sqlalchemy_db_url(self) -> str:
        """The database URL with the asyncpg driver named, as Convection's settings want it."""
        return self.db_url.replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a system: its role (a label in the report), argv and extra environment."""

    role: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


Publish = Callable[[str, str, bytes], Awaitable[None]]
"""Publishes (exchange, routing key, body) persistent, mandatory and publisher-confirmed."""


@dataclass(frozen=True)
class Completion:
    """A saga's terminal event: which saga, whether it succeeded, and the status it reported."""

    saga_id: str
    ok: bool
    status: str


@dataclass(frozen=True)
class System:
    """Everything the harness needs to run the bench workload through one implementation."""

    name: str
    """Row label in the report, e.g. `floor` or `convection x2`."""
    steps: int
    processes: Callable[[Endpoints], Sequence[ProcessSpec]]
    start: Callable[[Publish, str], Awaitable[None]]
    """Starts the saga with the given id (the harness picks ids; they are unique)."""
    events_exchange: str
    """A durable topic exchange; the harness binds a private queue to it."""
    events_routing_keys: tuple[str, ...]
    parse_event: Callable[[bytes], Completion | None]
    """Returns None for events that do not end a saga."""
    ready_queues: Mapping[str, int]
    """Queue name -> consumers it must have before the system counts as ready."""
    setup: Callable[[Endpoints], Awaitable[None]] | None = None
    """Runs before the processes start, e.g. a schema migration."""
    step_latencies: Callable[[Endpoints, Sequence[str]], Awaitable[Sequence[float]]] | None = None
    """Optional: per-step latencies in seconds of the given (latency-phase) sagas."""


def bench_input(steps: int) -> dict[str, Any]:
    """Return the input every system's sagas get: small, and naming the number of steps."""
    return {"steps": steps, "payload": "bench"}


async def run_command(argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    """Run a setup command to completion, or raise a BenchError with the end of its output."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env) if env is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await proc.communicate()
    except BaseException:
        # Cancelled (the bench stopping): the command does not outlive it.
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        tail = "\n".join(out.decode(errors="replace").splitlines()[-20:])
        raise BenchError(f"{what} failed with exit code {proc.returncode}:\n{tail}")


def floor_system(
    *, steps: int, orchestrators: int = 1, participants: int = 1, prefetch: int = 32
) -> System:
    """Return the hand-written floor with `orchestrators` and `participants` processes."""

    def processes(ep: Endpoints) -> list[ProcessSpec]:
        env = {"FLOOR_AMQP_URL": ep.amqp_url, "FLOOR_DB_URL": ep.db_url}
        env["FLOOR_PREFETCH"] = str(prefetch)
        module = (sys.executable, "-m", "convection_bench.floor")
        return [ProcessSpec("orchestrator", (*module, "orchestrator"), env)] * orchestrators + [
            ProcessSpec("participant", (*module, "participant"), env)
        ] * participants

    async def start(publish: Publish, saga_id: str) -> None:
        body = {"saga_id": saga_id, "steps": steps, "input": bench_input(steps)}
        await publish(floor.SAGAS_EXCHANGE, floor.START_KEY, json.dumps(body).encode())

    def parse_event(body: bytes) -> Completion:
        raw = json.loads(body)
        return Completion(str(raw["saga_id"]), raw["status"] == "completed", str(raw["status"]))

    return System(
        name="floor",
        steps=steps,
        processes=processes,
        start=start,
        events_exchange=floor.EVENTS_EXCHANGE,
        events_routing_keys=(floor.COMPLETED_KEY,),
        parse_event=parse_event,
        ready_queues={
            floor.STARTS_QUEUE: orchestrators,
            floor.REPLIES_QUEUE: orchestrators,
            floor.COMMANDS_QUEUE: participants,
        },
    )


BENCH_SAGA_TYPE = noop_sagas.SAGA_TYPE
"""The saga type of the bench workload in Convection: S remote no-op steps."""
ECHO_PARTICIPANT = "convection_bench.noop.participant:echo"
"""The echo participant, as `convection participant` takes it."""


def saga_selection(steps: int) -> str:
    """Return CONVECTION_SAGAS for coordinators that run bench.noop of `steps` steps only."""
    # The entry point offers the default shape; another shape is a module:attr reference.
    return "bench" if steps == noop_sagas.DEFAULT_STEPS else noop_sagas.reference(steps)


def convection_system(
    *,
    steps: int,
    coordinators: int = 1,
    participants: int = 1,
    prefetch: int = 32,
    participant_delay_ms: float = 0.0,
) -> System:
    """Return Convection with `coordinators` coordinator and `participants` echo processes."""
    if not 1 <= steps <= noop_sagas.MAX_STEPS:
        raise BenchError(f"bench.noop takes 1 to {noop_sagas.MAX_STEPS} steps, not {steps}")

    def processes(ep: Endpoints) -> list[ProcessSpec]:
        env = {
            "CONVECTION_AMQP_URL": ep.amqp_url,
            "CONVECTION_DB_URL": ep.sqlalchemy_db_url,
            "CONVECTION_API_ENABLED": "false",
            "CONVECTION_PREFETCH": str(prefetch),
            "CONVECTION_LOG_LEVEL": "WARNING",
            # Enough connections for every delivery in flight, the relay and the timers.
            "CONVECTION_DB_POOL_SIZE": str(prefetch),
            "CONVECTION_SAGAS": saga_selection(steps),
            # A shared machine's broker can take seconds to confirm under a burst; the
            # default 5 s would back rows off (and count retries) instead of measuring.
            "CONVECTION_PUBLISH_TIMEOUT": "60",
        }
        echo_env = {**env, ECHO_DELAY_ENV: str(participant_delay_ms)}
        coordinator = ProcessSpec("coordinator", (sys.executable, "-m", "coordinator"), env)
        participant = ProcessSpec(
            "participant",
            (sys.executable, "-m", "convection", "participant", ECHO_PARTICIPANT),
            echo_env,
        )
        return [coordinator] * coordinators + [participant] * participants

    async def setup(ep: Endpoints) -> None:
        argv = (sys.executable, "-m", "convection", "db", "upgrade")
        await run_command((*argv, "--db-url", ep.sqlalchemy_db_url), "`convection db upgrade`")

    async def start(publish: Publish, saga_id: str) -> None:
        message = StartSaga(saga_type=BENCH_SAGA_TYPE, saga_id=saga_id, input=bench_input(steps))
        await publish(topology.SAGAS_EXCHANGE, topology.START_ROUTING_KEY, encode(message))

    def parse_event(body: bytes) -> Completion | None:
        raw = json.loads(body)
        status = str(raw.get("status"))
        if status not in TERMINAL_STATUSES:
            return None
        return Completion(str(raw["saga_id"]), status == SagaStatus.COMPLETED, status)

    async def step_latencies(ep: Endpoints, saga_ids: Sequence[str]) -> list[float]:
        # Each step's own time, command decided to reply recorded, as the coordinator saw it.
        conn = await asyncpg.connect(ep.db_url, timeout=10)
        try:
            rows = await conn.fetch(STEP_SECONDS, list(saga_ids))
        finally:
            await conn.close()
        return [float(r["seconds"]) for r in rows]

    return System(
        name=f"convection x{coordinators}",
        steps=steps,
        processes=processes,
        start=start,
        events_exchange=topology.EVENTS_EXCHANGE,
        # Every terminal status, not only `completed`: a failing saga ends the run, not stalls it.
        events_routing_keys=tuple(
            topology.event_routing_key(BENCH_SAGA_TYPE, s) for s in sorted(TERMINAL_STATUSES)
        ),
        parse_event=parse_event,
        ready_queues={
            topology.COORDINATOR_SAGAS_QUEUE: coordinators,
            topology.COORDINATOR_REPLIES_QUEUE: coordinators,
            topology.command_queue(BENCH_SERVICE): participants,
        },
        setup=setup,
        step_latencies=step_latencies,
    )


STEP_SECONDS = """
SELECT EXTRACT(EPOCH FROM finished_at - started_at) AS seconds
  FROM saga_steps
 WHERE saga_id = ANY($1::text[]) AND finished_at IS NOT NULL AND started_at IS NOT NULL
"""
"""Per-step latency of the given sagas from the coordinator's own step records."""
