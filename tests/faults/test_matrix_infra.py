"""Fault matrix: the broker and the database fail under real sagas.

Connections closed by the broker, the broker stopped for 15 s, PostgreSQL restarted in
immediate mode (crash recovery) and stopped for 20 s. The coordinator replicas, the adapters
and the VIM simulator (which keeps its state in the same database) ride each out by
themselves; every saga ends as it would have, and the checker finds nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.matrix import World

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def _under_load(w: World, prefix: str) -> dict[str, str]:
    expect = await w.nss(prefix, 6, failing=[2, 5])
    await w.in_flight(prefix, steps=8)
    return expect


@pytest.mark.timeout(600)
async def test_broker_closes_every_connection(scene: World) -> None:
    expect = await _under_load(scene, "close")
    for _ in range(3):
        await asyncio.to_thread(scene.rabbit.close_connections, "fault matrix")
        await asyncio.sleep(2)
    await scene.checked(expect)


@pytest.mark.timeout(600)
async def test_broker_stopped_15s(scene: World) -> None:
    expect = await _under_load(scene, "stop")
    await scene.rabbit.outage(15)
    await scene.checked(expect)


@pytest.mark.timeout(600)
async def test_postgres_restarted_immediate(scene: World) -> None:
    expect = await _under_load(scene, "pgcrash")
    await scene.pg.arestart("immediate")
    await scene.checked(expect)


@pytest.mark.timeout(600)
async def test_postgres_stopped_20s(scene: World) -> None:
    expect = await _under_load(scene, "pgdown")
    await scene.pg.outage(20, mode="fast")
    await scene.checked(expect)
