"""The harness: run a `System` through warm-up, latency and throughput phases, and measure it.

Per system: a fresh database and vhost, the setup hook, the processes, readiness (each queue
in `System.ready_queues` has its consumers), then

    warm-up     W sagas, not measured;
    latency     L sagas one after another, from publishing the start to receiving the event;
    throughput  N sagas, C in flight: sagas/s, steps/s, and CPU per saga from /proc deltas.

Counts per step (database transactions from pg_stat_database, statements and messages from
the processes' stats files) cover the whole run, W + L + N sagas, and are read once the
processes have exited: a busy PostgreSQL backend flushes its statistics at most once a
second, an idle one up to ten seconds later, but every backend flushes them when it exits.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from convection_bench import procfs
from convection_bench.broker import Broker
from convection_bench.fleet import Fleet
from convection_bench.progress import Ui
from convection_bench.report import ProcessFigures, SystemFigures, summarize
from convection_bench.resources import fresh_database, fresh_vhost, libpq_url, redact
from convection_bench.rss import RssSampler
from convection_bench.stats import Counters
from convection_bench.system import BenchError, Endpoints, System


@dataclass(frozen=True)
class Plan:
    """How many sagas each phase runs, how many are in flight, and how long to wait."""

    sagas: int = 500
    warmup: int = 20
    latency_sagas: int = 100
    concurrency: int | None = None
    """Sagas in flight in the throughput phase; None starts them all at once."""
    stall_timeout: float = 60.0
    """Seconds without any completion, while sagas are outstanding, before giving up."""
    ready_timeout: float = 120.0
    rss_every: float | None = None
    """Seconds between two samples of each process's RSS in the throughput phase (None: no)."""
    logs: Path | None = None
    """A folder where each system's process logs are kept (None: kept only when a run fails)."""

    @property
    def in_flight(self) -> int:
        """Sagas in flight in the throughput phase."""
        return min(self.concurrency or self.sagas, self.sagas)


def _slug(name: str, sep: str = "_") -> str:
    # Database names take `_`; vhosts and saga ids (contracts.base.Identifier) take `-`.
    return re.sub(r"[^a-z0-9]+", sep, name.lower()).strip(sep)


class _Run:
    """One system's run, from its started processes to its figures."""

    def __init__(
        self, system: System, plan: Plan, fleet: Fleet, broker: Broker, ui: Ui, workdir: Path
    ) -> None:
        self.system, self.plan, self.fleet = system, plan, fleet
        self.broker, self.ui, self.workdir = broker, ui, workdir
        self.tag = uuid.uuid4().hex[:8]

    def ids(self, phase: str, count: int) -> list[str]:
        """Return the saga ids of a phase: unique per run, so no start is a duplicate."""
        prefix = f"{_slug(self.system.name, '-')}-{phase}-{self.tag}"
        return [f"{prefix}-{i}" for i in range(count)]

    def check_alive(self, while_doing: str) -> None:
        dead = self.fleet.dead()
        if dead is not None:
            raise BenchError(
                f"{self.system.name}: {dead.label} (pid {dead.pid}) exited with code "
                f"{dead.process.returncode} while {while_doing}; the end of its log "
                f"({dead.log}):\n{dead.tail()}\nFix that, or run it by hand: "
                + " ".join(dead.spec.argv)
            )

    async def wait_ready(self) -> None:
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


async def _xacts(admin: asyncpg.Connection, database: str) -> int:
    value = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
    )
    return int(value or 0)


async def _backends(admin: asyncpg.Connection, database: str) -> list[int]:
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    return [int(r["pid"]) for r in rows]


async def _settled(admin: asyncpg.Connection, database: str, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while await _backends(admin, database):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@dataclass(frozen=True)
class _Cpu:
    """CPU ticks at one moment: the system's processes, the machine, the database's backends."""

    processes: dict[int, int]
    machine: int | None
    postgres: dict[int, int]

    @classmethod
    async def now(
        cls, pids: Sequence[int], admin: asyncpg.Connection, database: str, seen: Sequence[int]
    ) -> _Cpu:
        # Backends seen before count too: one may have gone idle in between, not away.
        backends = {*seen, *await _backends(admin, database)}
        return cls(
            procfs.cpu_ticks_of(pids),
            procfs.machine_busy_ticks(),
            procfs.cpu_ticks_of(backends),
        )


@dataclass(frozen=True)
class _Measured:
    """What a run measured, before it becomes figures."""

    seconds: float
    latencies: Sequence[float]
    step_latencies: Sequence[float]
    xacts: int
    settled: bool
    before: _Cpu
    after: _Cpu
    peak_rss_kib: dict[int, int | None]


async def run_system(system: System, plan: Plan, base: Endpoints, ui: Ui) -> SystemFigures:
    """Run the whole benchmark for one system; processes and resources are always cleaned up."""
    slug = _slug(system.name)
    if plan.logs is not None:
        workdir = plan.logs / slug
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-{slug}-"))
    fleet: Fleet | None = None
    try:
        async with AsyncExitStack() as stack:
            db_url = await stack.enter_async_context(fresh_database(base.db_url, f"bench_{slug}"))
            amqp_url = await stack.enter_async_context(
                fresh_vhost(base.amqp_url, f"bench-{_slug(system.name, '-')}", ui.note)
            )
            ep = Endpoints(amqp_url, db_url)
            database = db_url.rsplit("/", 1)[1]
            ui.note(f"{system.name}: database {database}, broker {redact(amqp_url)}")
            if system.setup is not None:
                await system.setup(ep)
            admin = await asyncpg.connect(libpq_url(base.db_url), timeout=10)
            stack.push_async_callback(admin.close)
            settled = await _settled(admin, database)
            xacts_before = await _xacts(admin, database)
            fleet = Fleet(system.processes(ep), workdir)
            stack.push_async_callback(fleet.stop)
            await fleet.start()
            broker = await stack.enter_async_context(Broker(amqp_url))
            run = _Run(system, plan, fleet, broker, ui, workdir)
            await run.wait_ready()
            await broker.listen(system)
            await run.phase("warm-up", plan.warmup, min(plan.in_flight, plan.warmup))
            latencies, _ = await run.phase("latency", plan.latency_sagas, 1)
            # The harness's own CPU too: it is part of the machine figure.
            pids = [m.pid for m in fleet.members] + [os.getpid()]
            before = await _Cpu.now(pids, admin, database, ())
            labels = {m.label: m.pid for m in fleet.members}
            note = (lambda text: ui.note(f"{system.name}: {text}")) if plan.rss_every else None
            async with RssSampler(labels, plan.rss_every or 1e9, note) as sampler:
                _, seconds = await run.phase("throughput", plan.sagas, plan.in_flight)
            after = await _Cpu.now(pids, admin, database, tuple(before.postgres))
            rss = {pid: procfs.peak_rss_kib(pid) for pid in pids}
            step_latencies: Sequence[float] = ()
            if system.step_latencies is not None:
                ids = run.ids("latency", plan.latency_sagas)
                step_latencies = await system.step_latencies(ep, ids)
            await fleet.stop()
            settled = await _settled(admin, database) and settled
            xacts = await _xacts(admin, database) - xacts_before
            measured = _Measured(
                seconds, latencies, step_latencies, xacts, settled, before, after, rss
            )
            rss_over_time = sampler.samples if plan.rss_every else []
        figures = _figures(system, plan, fleet, measured)
        figures.rss_over_time = rss_over_time
    except Exception:
        if fleet is not None and fleet.members:
            ui.note(f"{system.name}: process logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    except BaseException:
        # Interrupted: nothing went wrong that the logs could explain.
        if plan.logs is None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    if plan.logs is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        ui.note(f"{system.name}: process logs in {workdir}")
    return figures


def _figures(system: System, plan: Plan, fleet: Fleet, m: _Measured) -> SystemFigures:
    steps_run = (plan.warmup + plan.latency_sagas + plan.sagas) * system.steps
    stats = [member.stats() for member in fleet.members]
    notes = [
        f"{member.label} wrote no stats file: statement and message counts are n/a"
        for member, s in zip(fleet.members, stats, strict=True)
        if s is None
    ]
    total = sum((s for s in stats if s is not None), Counters()) if not notes else None
    if not m.settled:
        notes.append("backends were still connected at the end: transactions may be undercounted")
    polled = sum(s.outbox_polled for s in stats if s is not None)
    if polled:
        notes.append(
            f"{polled} outbox rows were sent by a polling relay, not handed off at commit "
            "(a hand-off outlived its lease): most of them went out twice"
        )

    def per_step(value: int | None) -> float | None:
        return value / steps_run if value is not None else None

    def per_saga(ticks: int) -> float:
        return procfs.ticks_to_ms(ticks) / plan.sagas

    processes = []
    for member, s in zip(fleet.members, stats, strict=True):
        end, start = m.after.processes.get(member.pid), m.before.processes.get(member.pid)
        rss = m.peak_rss_kib.get(member.pid)
        cpu_ms = per_saga(end - start) if end is not None and start is not None else None
        processes.append(
            ProcessFigures(
                label=member.label,
                role=member.spec.role,
                pid=member.pid,
                cpu_ms_per_saga=cpu_ms,
                peak_rss_mib=rss / 1024 if rss is not None else None,
                exit_code=member.process.returncode,
                counters=asdict(s) if s is not None else None,
            )
        )
    cpu = [p.cpu_ms_per_saga for p in processes]
    machine = (
        per_saga(m.after.machine - m.before.machine)
        if m.after.machine is not None and m.before.machine is not None
        else None
    )
    postgres = sum(t - m.before.postgres.get(pid, 0) for pid, t in m.after.postgres.items())
    me = os.getpid()
    harness = m.after.processes.get(me, 0) - m.before.processes.get(me, 0)
    return SystemFigures(
        system=system.name,
        steps=system.steps,
        sagas=plan.sagas,
        concurrency=plan.in_flight,
        warmup=plan.warmup,
        latency_sagas=plan.latency_sagas,
        throughput_seconds=m.seconds,
        sagas_per_s=plan.sagas / m.seconds,
        steps_per_s=plan.sagas * system.steps / m.seconds,
        latency_ms=summarize(m.latencies),
        step_latency_ms=summarize(m.step_latencies),
        cpu_ms_per_saga={
            "processes": None if None in cpu else sum(c for c in cpu if c is not None),
            "machine": machine,
            "postgres": per_saga(postgres) if m.after.postgres else None,
            "harness": per_saga(harness),
        },
        per_step={
            "db_transactions": per_step(m.xacts),
            "db_statements": per_step(total.db_statements if total else None),
            "db_transactions_client": per_step(total.db_transactions if total else None),
            "messages_published": per_step(total.messages_published if total else None),
            "messages_consumed": per_step(total.messages_consumed if total else None),
        },
        processes=processes,
        notes=notes,
    )


async def run_bench(
    systems: Sequence[System], plan: Plan, base: Endpoints, ui: Ui
) -> list[SystemFigures]:
    """Run every system in turn, each on fresh resources; return their figures."""
    return [await run_system(system, plan, base, ui) for system in systems]
