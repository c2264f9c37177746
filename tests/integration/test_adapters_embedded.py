"""The three adapters in one process on the in-process broker and one SQLite file (the demo)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import lcm_adapter
import ro_adapter
import vim_adapter
from contracts import lcm, ro, vim
from convection.db import make_engine
from convection.transport import MemoryBroker
from tests.integration.adapter_support import (
    call,
    connected,
    credentials,
    result_of,
    running,
    simulator,
)


async def test_all_three_adapters_embedded(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/demo.db")
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(simulator(tmp_path))
        transport = await stack.enter_async_context(connected("memory://", MemoryBroker()))
        for module in (vim_adapter, ro_adapter, lcm_adapter):
            await stack.enter_async_context(running(module.run, transport=transport, engine=engine))
        spec = vim.VimAccountSpec(vim_account_id="acc", name="site", credentials=credentials(sim))
        assert result_of(await call(transport, vim.RegisterAccount(account=spec)))
        record = lcm.CreateNsRecord(ns_id="ns", name="n", nsd_id="d", vim_account_id="acc")
        assert result_of(await call(transport, record)) == {"ns_id": "ns"}
        target = ro.VimTarget(vim_account_id="acc", credentials=credentials(sim))
        vdus = [ro.VduSpec(name="web", image="cirros-0.6", flavor="m1.tiny", count=3)]
        deployed = await call(transport, ro.DeployVdus(vim=target, ns_id="ns", vnf="v", vdus=vdus))
        assert len(result_of(deployed)["servers"]) == 3
    await engine.dispose()
