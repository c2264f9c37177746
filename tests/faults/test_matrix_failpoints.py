"""Fault matrix: a process dies at each named failpoint, in the middle of real sagas.

Two coordinator replicas, the three adapters and the VIM simulator run as separate processes
on a private broker and database. One process is armed with a failpoint; when it fires (the
process exits like a SIGKILL), it is restarted without it, as a supervisor would. Every saga
must end as it would have without the crash, and the checker must find nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from convection import AFTER_EFFECT
from coordinator.failpoints import (
    AFTER_COMMIT,
    BEFORE_COMMIT,
    COMPENSATING,
    RELAY_AFTER_CONFIRM,
    RELAY_BEFORE_PUBLISH,
)
from tests.faults.matrix import world
from tests.faults.private import PrivatePostgres, PrivateRabbit

pytestmark = [pytest.mark.faults, pytest.mark.slow]
Servers = tuple[PrivateRabbit, PrivatePostgres]

# Which hit of the point fires: late enough that the NS sagas are in flight, not the account.
COORDINATOR_POINTS = [
    (RELAY_BEFORE_PUBLISH, 6),
    (RELAY_AFTER_CONFIRM, 6),
    (BEFORE_COMMIT, 12),
    (AFTER_COMMIT, 12),
    (COMPENSATING, 1),
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("point", "hit"), COORDINATOR_POINTS, ids=[p for p, _ in COORDINATOR_POINTS]
)
async def test_coordinator_dies_at_failpoint(
    servers: Servers, tmp_path: Path, point: str, hit: int
) -> None:
    async with world(servers, tmp_path / "logs") as w:
        await w.up(replicas=2, CONVECTION_FAILPOINT=f"{point}@{hit}")
        w.supervise()
        await w.register_account()
        expect = await w.nss("fp", 5, failing=[1, 3])
        await w.checked(expect)
        assert w.fired == {"c1": 1}, f"{point} never fired:\n{w.group.logs()}"
        assert f"failpoint {point}" in w.group["c1"].log_text()


@pytest.mark.timeout(600)
async def test_participant_dies_after_its_effect_before_its_reply(
    servers: Servers, tmp_path: Path
) -> None:
    async with world(servers, tmp_path / "logs") as w:
        await w.up(replicas=2, adapters=False)
        w.adapter("vim")
        w.adapter("lcm")
        w.adapter("ro", CONVECTION_FAILPOINT=AFTER_EFFECT)
        w.supervise()
        await w.register_account()
        expect = await w.nss("pe", 4, failing=[2])
        await w.checked(expect)
        # It fired on the first effect of the ro-adapter: a VIM network or server it created
        # and never answered for. The redelivered command found it by its idempotency key.
        assert w.fired == {"ro_adapter": 1}, w.group.logs()
