"""Fault matrix: the VIM goes away for 20 s and for 3 minutes; a coordinator freezes.

A VIM outage must not fail a saga: the steps that talk to it retry transient errors with a
bound in time (minutes), not a handful of attempts, and so do their compensations. A
coordinator replica stopped with SIGSTOP holds its unacked deliveries; the broker must drop
its connection after the AMQP heartbeat (`convection.transport.amqp.HEARTBEAT_SECONDS`) and
hand them to the other replica, so the sagas end while it is still frozen.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.matrix import World, elapsed

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def _vim_outage(w: World, prefix: str, seconds: float) -> None:
    expect = await w.nss(prefix, 6, failing=[1, 4])
    await w.in_flight(prefix, steps=8)
    w.group.kill("vim_sim")
    began = time.monotonic()
    await asyncio.sleep(seconds)
    still_open = await w.statuses(expect)
    w.group["vim_sim"].start()
    print(f"\nVIM down {elapsed(began)}; sagas then: {sorted(still_open.values())}")
    await w.checked(expect, within=seconds + 300)


@pytest.mark.timeout(600)
async def test_vim_killed_20s(scene: World) -> None:
    await _vim_outage(scene, "vim20", 20)


@pytest.mark.timeout(900)
async def test_vim_killed_3min(scene: World) -> None:
    await _vim_outage(scene, "vim180", 180)


@pytest.mark.timeout(600)
async def test_frozen_coordinator_hands_its_work_over(scene: World) -> None:
    w = scene
    expect = await w.nss("frozen", 6, failing=[2])
    await w.in_flight("frozen", steps=6)
    w.group.freeze("c1")
    began = time.monotonic()
    try:
        # Every saga ends while c1 is still frozen: whatever it held was handed over, within
        # the documented bound (docs/architecture.md: about 40 s) and the sagas' own time; the
        # broker's default 60 s heartbeat took 170 s here.
        await w.settle(expect, within=120)
        print(f"\nall sagas ended {elapsed(began)} after c1 froze")
    finally:
        w.group.thaw("c1")
    await w.checked(expect)
    # Thawed, c1 finds its connection gone, reconnects and works again.
    await w.consumers("convection.coordinator.sagas", at_least=2, within=120)
