"""Fault matrix: 1,000 sagas queued while the adapters are down, every coordinator killed.

The sagas are started while no adapter runs, so their commands pile up in the command
queues; both coordinator replicas are SIGKILLed in the middle of the backlog (StartSagas still
queued, transactions and publishes in flight); then everything comes back. Every saga must
end, once, as it would have.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.matrix import SERVICES, World, elapsed
from tests.unit.world import example

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
ACCOUNTS = 980
NSS = 20


async def _rows(w: World) -> int:
    return int((await w.sql("SELECT count(*) AS n FROM sagas"))[0]["n"])


@pytest.mark.timeout(1200)
async def test_thousand_sagas_through_a_full_restart(scene: World) -> None:
    w = scene
    for service in SERVICES:
        w.group.kill(f"{service}_adapter")
    began = time.monotonic()
    expect: dict[str, str] = {}
    for index in range(ACCOUNTS):
        saga_id = f"acct-{index}"
        data = example("vim-account.create", vim_account_id=f"vim-{index}")
        data["credentials"]["auth_url"] = f"{w.sim}/identity/v3"
        await w.begin("vim-account.create", saga_id, data)
        expect[saga_id] = "completed"
    expect |= await w.nss("backlog", NSS, failing=[3, 11])
    print(f"\n{len(expect)} sagas started in {elapsed(began)}")

    async def some_recorded() -> bool:
        return await _rows(w) >= 300

    await w.until("300 sagas recorded", some_recorded, within=300)
    for name in ("c1", "c2"):
        w.group.kill(name)
    recorded = await _rows(w)
    print(f"both coordinators killed with {recorded} of {len(expect) + 1} sagas recorded")
    assert recorded < len(expect), "the backlog was gone before the kill: no test"
    for name in ("c1", "c2"):
        w.group[name].start()
    for service in SERVICES:
        w.group[f"{service}_adapter"].start()
    restarted = time.monotonic()
    await w.checked(expect, within=900)
    print(f"backlog drained {elapsed(restarted)} after the restart")
