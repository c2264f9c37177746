"""One chaos run from start to summary: `run(options)` returns the process exit status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos import report
from tests.chaos.checking import run_checker
from tests.chaos.cluster import ChaosCluster
from tests.chaos.driver import Publisher, Run, Watcher
from tests.chaos.monkey import ChaosPlan, shake, supervisor
from tests.chaos.scenarios import Scenario, plan

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class Options:
    """What to run.

    Attributes:
        sagas: How many sagas the chains start in all.
        chaos: The monkey's plan (window length, kill pace, server restarts).
        concurrency: Chains in flight at once.
        replicas: Processes of each adapter (sharing its queue).
        drain_seconds: How long to wait, after the window, for everything to end.
        seed: Seed of every random choice (chains, targets, pauses), for a rerun.
        workdir: Where logs go (kept); a temporary folder when None.
        progress_every: Seconds between two progress lines.
    """

    sagas: int = 200
    chaos: ChaosPlan = field(default_factory=ChaosPlan)
    concurrency: int = 40
    replicas: int = 1
    drain_seconds: float = 600.0
    seed: int = 0
    workdir: Path | None = None
    progress_every: float = 5.0


@dataclass
class Result:
    """How the run ended, for the test and for the exit status."""

    failures: list[str]
    summary: str

    @property
    def ok(self) -> bool:
        """Whether nothing went wrong."""
        return not self.failures


async def _chains(run: Run, options: Options, rng: random.Random) -> None:
    chains = plan(options.sagas, rng)
    gate = asyncio.Semaphore(options.concurrency)
    # Spread the chains' starts over most of the window, so the monkey meets sagas in every
    # state; the concurrency bound keeps a two-core machine from drowning.
    pace = options.chaos.seconds * 0.7 / max(len(chains), 1)

    async def one(scenario: Scenario, key: str) -> None:
        async with gate:
            await scenario.run(run.for_scenario(scenario.name), key)

    tasks = []
    try:
        for index, scenario in enumerate(chains):
            tasks.append(asyncio.create_task(one(scenario, f"c{index:04d}")))
            await asyncio.sleep(pace)
        await asyncio.gather(*tasks)
    finally:
        # Cancelled at the drain bound: the chains still waiting go with it.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _progress(run: Run, cluster: ChaosCluster, total: int, began: float) -> str:
    done = sum(1 for o in run.outcomes.values() if o.status is not None)
    kills = cluster.tally.kills
    by_target = " ".join(f"{k}={v}" for k, v in sorted(kills.items()))
    return (
        f"[{time.monotonic() - began:6.1f}s] sagas {done}/{total} done, "
        f"{len(run.outcomes) - done} in flight; kills {sum(kills.values())} ({by_target}); "
        f"broker {cluster.tally.restarts['broker']}, db {cluster.tally.restarts['database']}"
    )


async def _report_progress(run: Run, cluster: ChaosCluster, options: Options) -> None:
    began = time.monotonic()
    while True:
        await asyncio.sleep(options.progress_every)
        print(_progress(run, cluster, options.sagas, began), flush=True)


async def _outbox_drained(cluster: ChaosCluster, within: float) -> None:
    assert cluster.stack is not None

    async def empty() -> bool:
        rows = await cluster.stack.sql(
            "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL"
        )
        return int(rows[0]["n"]) == 0

    with contextlib.suppress(AssertionError):
        await cluster.stack.until("the outbox drains", empty, within=within)


async def run(options: Options) -> Result:
    """Run the chaos as `options` say; return what it found."""
    rng = random.Random(options.seed)
    # Kept after the run: the logs are how a failed run explains itself.
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="convection-chaos-"))
    cluster = ChaosCluster(workdir, replicas=options.replicas)
    async with cluster.running():
        return await _drive(cluster, options, rng, workdir)


async def _drive(
    cluster: ChaosCluster, options: Options, rng: random.Random, workdir: Path
) -> Result:
    assert cluster.stack is not None
    publisher = Publisher(cluster.client_url)
    watcher = Watcher(cluster.stack.dsn)
    run_ = Run(cluster.stack.sim, publisher, watcher)
    began = time.monotonic()
    background = [
        asyncio.create_task(watcher.run()),
        asyncio.create_task(_report_progress(run_, cluster, options)),
        asyncio.create_task(supervisor(cluster)),
    ]
    chains = asyncio.create_task(_chains(run_, options, random.Random(rng.random())))
    try:
        await shake(cluster, options.chaos, random.Random(rng.random()))
        calm = time.monotonic()
        print(_progress(run_, cluster, options.sagas, began) + " -- chaos over", flush=True)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(chains), options.drain_seconds)
        except TimeoutError:
            timed_out = True
        await _outbox_drained(cluster, within=60)
        drain = time.monotonic() - calm
    finally:
        for task in (*background, chains):
            task.cancel()
        await asyncio.gather(*background, chains, return_exceptions=True)
        await publisher.close()
    local = await report.local_check(cluster, run_.outcomes)
    checker = await run_checker(cluster, started=list(run_.outcomes))
    duplicates = report.duplicates_absorbed(cluster, workdir / "logs")
    failures = [f"{name}: {n}" for name, n in local.figures.items() if n]
    failures += checker.failures
    if timed_out:
        failures.append(f"not drained within {options.drain_seconds:.0f}s")
    if crashes := cluster.tally.crashes:
        failures.append(f"services exited on their own: {crashes}")
    if len(run_.outcomes) != options.sagas:
        failures.append(
            f"{len(run_.outcomes)} sagas started, {options.sagas} planned"
            " (a chain stops at its first unexpected outcome)"
        )
    summary = report.summary(
        run_, cluster, duplicates=duplicates, drain=drain, local=local, checker=checker.text
    )
    summary += f"\n  logs: {workdir / 'logs'}"
    return Result(failures, summary)
