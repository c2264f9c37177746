"""Fault matrix: the broker and the database fail under real sagas.

Connections closed by the broker, the broker stopped for 15 s, PostgreSQL restarted in
immediate mode (crash recovery) and stopped for 20 s. The coordinator replicas, the adapters
and the VIM simulator (which keeps its state in the same database) ride each out by
themselves; every saga ends as it would have, and the checker finds nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.faults.matrix import World, world
from tests.faults.private import PrivatePostgres, PrivateRabbit

pytestmark = [pytest.mark.faults, pytest.mark.slow]
Servers = tuple[PrivateRabbit, PrivatePostgres]


async def _under_load(w: World, prefix: str) -> dict[str, str]:
    await w.up(replicas=2)
    await w.register_account()
    expect = await w.nss(prefix, 6, failing=[2, 5])
    await w.in_flight(steps=8)
    return expect


@pytest.mark.timeout(600)
async def test_broker_closes_every_connection(servers: Servers, tmp_path: Path) -> None:
    async with world(servers, tmp_path / "logs") as w:
        expect = await _under_load(w, "close")
        for _ in range(3):
            await asyncio.to_thread(w.rabbit.close_connections, "fault matrix")
            await asyncio.sleep(2)
        await w.checked(expect)


@pytest.mark.timeout(600)
async def test_broker_stopped_15s(servers: Servers, tmp_path: Path) -> None:
    async with world(servers, tmp_path / "logs") as w:
        expect = await _under_load(w, "stop")
        await w.rabbit.outage(15)
        await w.checked(expect)


@pytest.mark.timeout(600)
async def test_postgres_restarted_immediate(servers: Servers, tmp_path: Path) -> None:
    async with world(servers, tmp_path / "logs") as w:
        expect = await _under_load(w, "pgcrash")
        await w.pg.arestart("immediate")
        await w.checked(expect)


@pytest.mark.timeout(600)
async def test_postgres_stopped_20s(servers: Servers, tmp_path: Path) -> None:
    async with world(servers, tmp_path / "logs") as w:
        expect = await _under_load(w, "pgdown")
        await w.pg.outage(20, mode="fast")
        await w.checked(expect)
