"""The monkey: SIGKILLs a random service every few seconds, restarts the servers now and then.

One action at a time: a killed service is started again before the next kill, and no service
is killed while the broker or the database is being restarted. The loop is bounded by the
chaos window and by a number of kills, and it stops by itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from tests.chaos.cluster import ChaosCluster

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class ChaosPlan:
    """How hard and how long to shake the system.

    Attributes:
        seconds: Length of the chaos window.
        kill_every: Pause between two kills, drawn uniformly from this range (seconds).
        down_for: How long a killed service stays down, drawn from this range (seconds).
        broker_restarts: RabbitMQ restarts in the window, spread over it.
        db_restarts: PostgreSQL restarts (immediate: crash recovery) in the window.
        max_kills: Stop killing after this many, whatever the time.
        broker_mode: How the node stops: "graceful" (rabbitmqctl stop) or "kill" (SIGKILL).
    """

    seconds: float = 60.0
    kill_every: tuple[float, float] = (2.0, 5.0)
    down_for: tuple[float, float] = (0.2, 3.0)
    broker_restarts: int = 1
    db_restarts: int = 1
    max_kills: int = 1000
    broker_mode: str = "graceful"


def _server_schedule(plan: ChaosPlan, rng: random.Random) -> list[tuple[float, str]]:
    """When (seconds into the window) each server restart happens, in order."""
    kinds = ["broker"] * plan.broker_restarts + ["database"] * plan.db_restarts
    rng.shuffle(kinds)
    # Evenly spaced inside the window's middle 80 %, jittered, so they never pile up.
    slot = plan.seconds * 0.8 / max(len(kinds), 1)
    return [
        (plan.seconds * 0.1 + slot * (i + rng.uniform(0.25, 0.75)), kind)
        for i, kind in enumerate(kinds)
    ]


async def shake(cluster: ChaosCluster, plan: ChaosPlan, rng: random.Random) -> None:
    """Run the chaos window; return with every service started again."""
    began = time.monotonic()
    deadline = began + plan.seconds
    servers = _server_schedule(plan, rng)
    kills = 0
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(min(rng.uniform(*plan.kill_every), deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                break
            if servers and time.monotonic() - began >= servers[0][0]:
                _, kind = servers.pop(0)
                await _restart(cluster, kind, plan)
                continue
            if kills >= plan.max_kills:
                continue
            target = rng.choice(cluster.targets)
            await cluster.kill(target)
            kills += 1
            await asyncio.sleep(rng.uniform(*plan.down_for))
            await cluster.revive(target)
        # A window too short for its schedule still restarts every server it promised.
        for _, kind in servers:
            await _restart(cluster, kind, plan)
    finally:
        await cluster.revive_all()


async def _restart(cluster: ChaosCluster, kind: str, plan: ChaosPlan) -> None:
    if kind == "broker":
        stop, start = await cluster.restart_broker(plan.broker_mode)
    else:
        stop, start = await cluster.restart_database()
    log.info("chaos: %s restarted (stopping %.1fs, starting %.1fs)", kind, stop, start)


async def supervisor(cluster: ChaosCluster, every: float = 1.0) -> None:
    """Restart services that died on their own, until cancelled."""
    while True:
        await asyncio.sleep(every)
        await cluster.supervise()
