"""The gauges of the whole database are exported by one replica: two coordinators on one
PostgreSQL database, whose /metrics summed give the true counts once, also after the lease's
connection is killed and after its holder stops."""

from __future__ import annotations

import re

import asyncpg
import pytest

from coordinator.service import Coordinator
from coordinator.store.dialect import LEASE_APPLICATION, asyncpg_dsn
from sagas import osm_registry
from tests.integration.api_support import steered_participant
from tests.integration.coord_support import eventually, migrate, settings
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]

DATABASE_WIDE = (
    "convection_sagas_in_flight",
    "convection_sagas_stuck",
    "convection_outbox_backlog",
    "convection_outbox_oldest_pending_age_seconds",
)


def _series(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(
            r"^(convection_(?:sagas_in_flight|sagas_stuck|outbox_\w+?))(\{.*\})? (\S+)$", line
        )
        if m and m.group(1) in DATABASE_WIDE:
            found[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return found


async def _scrape(*coordinators: Coordinator) -> list[dict[str, float]]:
    return [_series((await c.metrics_text()).decode()) for c in coordinators]


async def test_one_replica_exports_the_database_gauges(
    fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    await migrate(fresh_pg_url)
    participant, hold, _fail = await steered_participant(fresh_amqp_url)
    ids = [f"lease-{i}" for i in range(3)]
    hold.update(ids)
    one = Coordinator(settings(fresh_amqp_url, fresh_pg_url), registry=osm_registry())
    two = Coordinator(settings(fresh_amqp_url, fresh_pg_url), registry=osm_registry())
    dsn = asyncpg_dsn(fresh_pg_url)
    admin = await asyncpg.connect(dsn)
    try:
        await one.start()
        await two.start()
        for i, saga_id in enumerate(ids):
            data = example("ns.instantiate", ns_id=f"ns-lease-{i}")
            await one.operations.start("ns.instantiate", data, saga_id=saga_id)

        async def all_running() -> bool:
            views = [await one.get_saga(saga_id) for saga_id in ids]
            return all(v is not None and v.state.status == "running" for v in views)

        await eventually(all_running, within=20)
        truth = await admin.fetchval("SELECT count(*) FROM sagas WHERE status = 'running'")
        assert truth == 3
        running = 'convection_sagas_in_flight{status="running"}'
        first, second = await _scrape(one, two)
        assert (running in first) != (running in second), (first, second)
        assert first.get(running, 0) + second.get(running, 0) == truth
        for name in DATABASE_WIDE:
            exported = [any(k.startswith(name) for k in s) for s in (first, second)]
            assert exported.count(True) == 1, name
        # The lease's connection dies: some replica takes the lease again.
        holder, other = (one, two) if running in first else (two, one)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            LEASE_APPLICATION,
        )
        assert killed == 2  # the holder's and the other's (which tried and waits)
        await _scrape(holder, other)  # both notice; one of them takes it again
        after = await _scrape(holder, other)
        assert sum(s.get(running, 0) for s in after) == truth, after
        assert [running in s for s in after].count(True) == 1
        # The holder stops: the other takes the lease over on its next scrape.
        now_holding = holder if running in after[0] else other
        survivor = other if now_holding is holder else holder
        await now_holding.stop()
        [alone] = await _scrape(survivor)
        assert alone.get(running) == truth
    finally:
        await admin.close()
        await one.stop()
        await two.stop()
        await participant.stop()
        await participant.transport.close()
