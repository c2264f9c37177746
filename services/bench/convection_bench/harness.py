"""The harness: bring the systems up side by side, run their phases in turns, and measure them.

Each system gets a fresh database and vhost, its setup hook, its processes, and readiness (each
queue in `System.ready_queues` has its consumers). Then, every system in turn at each stage:

    warm-up     W sagas, not measured;
    latency     L sagas one after another, from publishing the start to receiving the event,
                in R slices: the systems take turns slice by slice;
    throughput  N sagas in R rounds of N/R (C in flight, default a round's all at once), the
                systems taking turns round by round: sagas/s, steps/s, and CPU per saga from
                /proc deltas summed over the system's own rounds.

Taking turns is what makes the ratios fair on a shared machine, whose speed drifts by a fifth
over a minute (BENCHMARKS.md): each system is measured across the whole run, not in one stretch
of it. A system waiting for its turn is idle (its timers tick, nothing else), though the tail of
its last round (sent outbox rows deleted, statistics flushed) can spill into the next system's
first moments; measured, that bleed is a few percent of a core (BENCHMARKS.md).

Counts per step (database transactions from pg_stat_database, statements and messages from
the processes' stats files) cover the whole run, W + L + N sagas and the other systems' turns,
and are read once the processes have exited: a busy PostgreSQL backend flushes its statistics
at most once a second, an idle one up to ten seconds later, but every backend flushes them
when it exits.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from convection_bench import procfs
from convection_bench.broker import Broker
from convection_bench.fleet import Fleet
from convection_bench.phases import PhaseRunner, Plan, slices, slug
from convection_bench.progress import Ui
from convection_bench.report import ProcessFigures, SystemFigures, summarize
from convection_bench.resources import fresh_database, fresh_vhost, libpq_url, redact
from convection_bench.rss import RssSampler
from convection_bench.stats import Counters
from convection_bench.system import Endpoints, System

__all__ = ["Plan", "run_bench"]


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


@dataclass
class _Tally:
    """CPU ticks summed over a system's throughput rounds."""

    processes: dict[int, int] = field(default_factory=dict)
    machine: int | None = 0
    postgres: int | None = None

    def add(self, before: _Cpu, after: _Cpu) -> None:
        """Add one round's deltas."""
        for pid, end in after.processes.items():
            if pid in before.processes:
                self.processes[pid] = self.processes.get(pid, 0) + end - before.processes[pid]
        if self.machine is not None and after.machine is not None and before.machine is not None:
            self.machine += after.machine - before.machine
        else:
            self.machine = None
        if after.postgres:
            spent = sum(t - before.postgres.get(pid, 0) for pid, t in after.postgres.items())
            self.postgres = (self.postgres or 0) + spent


@dataclass(frozen=True)
class _Measured:
    """What a run measured, before it becomes figures."""

    seconds: float
    latencies: Sequence[float]
    step_latencies: Sequence[float]
    xacts: int
    settled: bool
    cpu: _Tally
    peak_rss_kib: dict[int, int | None]


@dataclass
class _Up:
    """One system brought up: its resources, processes, broker connection and what it measured."""

    system: System
    ep: Endpoints
    admin: asyncpg.Connection
    database: str
    fleet: Fleet
    run: PhaseRunner
    workdir: Path
    settled: bool
    xacts_before: int
    latencies: list[float] = field(default_factory=list)
    latency_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: _Tally = field(default_factory=_Tally)
    rss_over_time: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        """The system's processes and the harness (its CPU is part of the machine figure)."""
        return [m.pid for m in self.fleet.members] + [os.getpid()]


def _workdir(system: System, plan: Plan) -> Path:
    name = slug(system.name)
    if plan.logs is None:
        return Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    workdir = plan.logs / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir


@asynccontextmanager
async def _brought_up(system: System, plan: Plan, base: Endpoints, ui: Ui) -> AsyncIterator[_Up]:
    """Bring one system up on fresh resources; stop and drop everything afterwards."""
    workdir = _workdir(system, plan)
    fleet: Fleet | None = None
    try:
        async with AsyncExitStack() as stack:
            name = slug(system.name)
            db_url = await stack.enter_async_context(fresh_database(base.db_url, f"bench_{name}"))
            amqp_url = await stack.enter_async_context(
                fresh_vhost(base.amqp_url, f"bench-{slug(system.name, '-')}", ui.note)
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
            run = PhaseRunner(system, plan, fleet, broker, ui, workdir)
            await run.wait_ready()
            await broker.listen(system)
            yield _Up(system, ep, admin, database, fleet, run, workdir, settled, xacts_before)
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


async def _latency_slice(up: _Up, k: int, count: int) -> None:
    name = f"latency-{k}"
    latencies, _ = await up.run.phase(name, count, 1)
    up.latencies.extend(latencies)
    up.latency_ids.extend(up.run.ids(name, count))


async def _throughput_round(up: _Up, plan: Plan, k: int, count: int) -> None:
    before = await _Cpu.now(up.pids, up.admin, up.database, ())
    labels = {m.label: m.pid for m in up.fleet.members}
    note = (lambda text: up.run.ui.note(f"{up.system.name}: {text}")) if plan.rss_every else None
    async with RssSampler(labels, plan.rss_every or 1e9, note, offset=up.seconds) as sampler:
        _, seconds = await up.run.phase(f"throughput-{k}", count, min(plan.in_flight, count))
    after = await _Cpu.now(up.pids, up.admin, up.database, tuple(before.postgres))
    up.seconds += seconds
    up.cpu.add(before, after)
    if plan.rss_every:
        up.rss_over_time.extend(sampler.samples)


async def _finish(up: _Up, plan: Plan) -> SystemFigures:
    rss = {pid: procfs.peak_rss_kib(pid) for pid in up.pids}
    step_latencies: Sequence[float] = ()
    if up.system.step_latencies is not None:
        step_latencies = await up.system.step_latencies(up.ep, up.latency_ids)
    await up.fleet.stop()
    settled = await _settled(up.admin, up.database) and up.settled
    xacts = await _xacts(up.admin, up.database) - up.xacts_before
    measured = _Measured(up.seconds, up.latencies, step_latencies, xacts, settled, up.cpu, rss)
    figures = _figures(up.system, plan, up.fleet, measured)
    figures.rss_over_time = up.rss_over_time
    return figures


def _turns(ups: Sequence[_Up], k: int) -> Sequence[_Up]:
    return ups if k % 2 == 0 else list(reversed(ups))


async def run_bench(
    systems: Sequence[System], plan: Plan, base: Endpoints, ui: Ui
) -> list[SystemFigures]:
    """Bring every system up, run their phases in turns, return their figures (in order)."""
    async with AsyncExitStack() as stack:
        ups = [await stack.enter_async_context(_brought_up(s, plan, base, ui)) for s in systems]
        for up in ups:
            await up.run.phase("warm-up", plan.warmup, min(plan.in_flight, plan.warmup))
        # Who goes first alternates, so no system always runs right after the same one.
        for k, count in enumerate(slices(plan.latency_sagas, plan.rounds)):
            for up in _turns(ups, k):
                await _latency_slice(up, k, count)
        for k, count in enumerate(slices(plan.sagas, plan.rounds)):
            for up in _turns(ups, k):
                if count:
                    await _throughput_round(up, plan, k, count)
        return [await _finish(up, plan) for up in ups]


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
        ticks = m.cpu.processes.get(member.pid)
        rss = m.peak_rss_kib.get(member.pid)
        cpu_ms = per_saga(ticks) if ticks is not None else None
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
    machine = per_saga(m.cpu.machine) if m.cpu.machine is not None else None
    harness = m.cpu.processes.get(os.getpid(), 0)
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
            "postgres": per_saga(m.cpu.postgres) if m.cpu.postgres is not None else None,
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
