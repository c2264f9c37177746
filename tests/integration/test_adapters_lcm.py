"""The lcm-adapter over RabbitMQ and PostgreSQL: records, configuration, ledger, faults."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

import lcm_adapter
from contracts import lcm
from convection.db import make_engine
from tests.integration.adapter_support import call, connected, result_of, running

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(pg_url)
    yield engine
    await engine.dispose()


async def test_ns_lifecycle_with_ledger(fresh_amqp_url: str, engine: AsyncEngine) -> None:
    saga, ns = uuid.uuid4().hex, f"ns-{uuid.uuid4().hex[:8]}"
    async with (
        connected(fresh_amqp_url) as transport,
        running(lcm_adapter.run, transport=transport, engine=engine),
    ):
        record = lcm.CreateNsRecord(ns_id=ns, name="n", nsd_id="d", vim_account_id="a", vnfs=["v1"])
        assert (await call(transport, record, saga_id=saga, step="record")).outcome == "succeeded"
        configured = await call(
            transport,
            lcm.ConfigureVnf(ns_id=ns, vnf="v1", config={"k": 1}),
            saga_id=saga,
            step="cfg",
        )
        assert result_of(configured)["config_id"].startswith("cfg-")
        state = await call(
            transport, lcm.SetNsState(ns_id=ns, state="ready"), saga_id=saga, step="s"
        )
        assert state.result == {
            "ns_id": ns,
            "state": "ready",
            "previous": "building",
            "existed": True,
        }
        removed = await call(transport, lcm.RemoveNsConfig(ns_id=ns), saga_id=saga, step="rm")
        assert result_of(removed)["vnfs"] == ["v1"]
        deleted = await call(transport, lcm.DeleteNsRecord(ns_id=ns), saga_id=saga, step="del")
        assert deleted.result == {"ns_id": ns, "existed": True}
        unknown = await call(transport, lcm.SetNsState(ns_id=ns, state="ready"), saga_id=saga)
        assert unknown.outcome == "failed" and unknown.error.code == "unknown_ns"
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(lcm_adapter.LEDGER.c.step, lcm_adapter.LEDGER.c.action)
            .where(lcm_adapter.LEDGER.c.saga_id == saga)
            .order_by(lcm_adapter.LEDGER.c.id)
        )
        assert [tuple(r) for r in rows] == [
            ("record", "lcm.create-ns-record"),
            ("cfg", "lcm.configure-vnf"),
            ("s", "lcm.set-ns-state"),
            ("rm", "lcm.remove-ns-config"),
            ("del", "lcm.delete-ns-record"),
        ]


async def test_injected_faults(fresh_amqp_url: str, engine: AsyncEngine) -> None:
    faults = lcm_adapter.LcmFaults(fail_next=1, fail_actions=("lcm.configure-vnf",))
    ns = f"ns-{uuid.uuid4().hex[:8]}"
    async with (
        connected(fresh_amqp_url) as transport,
        running(lcm_adapter.run, transport=transport, engine=engine, faults=faults),
    ):
        record = lcm.CreateNsRecord(ns_id=ns, name="n", nsd_id="d", vim_account_id="a")
        first = await call(transport, record, key=f"{ns}/record")
        assert first.outcome == "retryable" and first.error.code == "injected_fault"
        again = await call(transport, record, key=f"{ns}/record", attempt=2)
        assert again.outcome == "succeeded"
        broken = await call(transport, lcm.ConfigureVnf(ns_id=ns, vnf="v"))
        assert broken.outcome == "failed" and broken.error.code == "injected_failure"
