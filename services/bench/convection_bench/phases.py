"""One system's phases: starting sagas, waiting for their completion events, supervising it all.

A phase starts `count` sagas, `in_flight` at once, each from publishing its start to receiving
the event that it completed; a saga that ends otherwise, a process that exits, or no completion
for `stall_timeout` seconds fail the run with what to look at.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from convection_bench.broker import Broker
from convection_bench.fleet import Fleet
from convection_bench.progress import Ui
from convection_bench.system import BenchError, System


@dataclass(frozen=True)
class Plan:
    """How many sagas each phase runs, how many are in flight, and how long to wait."""

    sagas: int = 500
    warmup: int = 20
    latency_sagas: int = 100
    concurrency: int | None = None
    """Sagas in flight in the throughput phase; None starts each round's sagas all at once."""
    rounds: int = 4
    """Slices of the latency and throughput phases; the systems take turns, slice by slice."""
    stall_timeout: float = 60.0
    """Seconds without any completion, while sagas are outstanding, before giving up."""
    ready_timeout: float = 120.0
    rss_every: float | None = None
    """Seconds between two samples of each process's RSS in the throughput phase (None: no)."""
    logs: Path | None = None
    """A folder where each system's process logs are kept (None: kept only when a run fails)."""

    @property
    def in_flight(self) -> int:
        """Sagas in flight in the throughput phase (at most the largest round's)."""
        return min(self.concurrency or self.sagas, self.round_size)

    @property
    def round_size(self) -> int:
        """Sagas in the largest round of the throughput phase (`slices` puts the extra first)."""
        return max(1, -(-self.sagas // self.rounds))


def slug(name: str, sep: str = "_") -> str:
    """Return `name` as a database name (`_`) or a vhost and saga id part (`-`)."""
    return re.sub(r"[^a-z0-9]+", sep, name.lower()).strip(sep)


def slices(total: int, rounds: int) -> list[int]:
    """Return `total` split into `rounds` near-equal parts (the first ones larger)."""
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


class PhaseRunner:
    """Runs one system's phases on its started processes and its broker connection."""

    def __init__(
        self, system: System, plan: Plan, fleet: Fleet, broker: Broker, ui: Ui, workdir: Path
    ) -> None:
        self.system, self.plan, self.fleet = system, plan, fleet
        self.broker, self.ui, self.workdir = broker, ui, workdir
        self.tag = uuid.uuid4().hex[:8]

    def ids(self, phase: str, count: int) -> list[str]:
        """Return the saga ids of a phase: unique per run, so no start is a duplicate."""
        prefix = f"{slug(self.system.name, '-')}-{phase}-{self.tag}"
        return [f"{prefix}-{i}" for i in range(count)]

    def check_alive(self, while_doing: str) -> None:
        """Fail the run, with the end of its log, if one of the system's processes exited."""
        dead = self.fleet.dead()
        if dead is not None:
            raise BenchError(
                f"{self.system.name}: {dead.label} (pid {dead.pid}) exited with code "
                f"{dead.process.returncode} while {while_doing}; the end of its log "
                f"({dead.log}):\n{dead.tail()}\nFix that, or run it by hand: "
                + " ".join(dead.spec.argv)
            )

    async def wait_ready(self) -> None:
        """Wait until every queue the system listens on has its consumers."""
        deadline = time.monotonic() + self.plan.ready_timeout
        while True:
            self.check_alive("starting")
            missing = {}
            for queue, wanted in self.system.ready_queues.items():
                have = await self.broker.consumers(queue)
                if have < wanted:
                    missing[queue] = f"{have}/{wanted} consumers"
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.system.name} was not ready within {self.plan.ready_timeout:.0f}s "
                    f"({missing}): see the process logs in {self.workdir}"
                )
            await asyncio.sleep(0.2)

    async def phase(self, name: str, count: int, in_flight: int) -> tuple[list[float], float]:
        """Run `count` sagas, `in_flight` at once; return their latencies and the wall time."""
        if count == 0:
            return [], 0.0
        gate = asyncio.Semaphore(max(1, in_flight))
        latencies: list[float] = []
        received: list[float] = []
        with self.ui.phase(self.system.name, name, count) as advance:

            async def one(saga_id: str) -> None:
                async with gate:
                    waiter = self.broker.expect(saga_id)
                    sent = time.perf_counter()
                    try:
                        await self.system.start(self.broker.publish, saga_id)
                    except Exception as exc:
                        raise BenchError(
                            f"{self.system.name}: cannot start saga {saga_id}: {exc!r}: is "
                            "the system consuming its start queue? See its logs in "
                            f"{self.workdir}"
                        ) from exc
                    completion, at = await waiter
                if not completion.ok:
                    raise BenchError(
                        f"{self.system.name}: saga {saga_id} ended {completion.status!r}, not "
                        f"completed: the system under test fails; see its logs in {self.workdir}"
                    )
                latencies.append(at - sent)
                received.append(at)
                advance()

            started = time.perf_counter()
            self.broker.last_event = time.monotonic()
            await self._supervise(
                [asyncio.create_task(one(saga_id)) for saga_id in self.ids(name, count)], name
            )
        return latencies, max(received) - started

    async def _supervise(self, tasks: Sequence[asyncio.Task[None]], phase: str) -> None:
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=0.5, return_when=asyncio.FIRST_EXCEPTION
                )
                for task in done:
                    task.result()
                self.check_alive(f"running the {phase} phase")
                if pending and time.monotonic() - self.broker.last_event > self.plan.stall_timeout:
                    raise BenchError(
                        f"{self.system.name}: no saga completed for {self.plan.stall_timeout:.0f}s"
                        f" in the {phase} phase ({len(pending)} outstanding): the system is "
                        f"stuck; see its logs in {self.workdir}"
                    )
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
