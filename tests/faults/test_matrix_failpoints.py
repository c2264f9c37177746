"""Fault matrix: a process dies at each named failpoint, in the middle of real sagas.

Two coordinator replicas, the three adapters and the VIM simulator run as separate processes
on a private broker and database. One process is restarted armed with a failpoint; when it
fires (the process exits like a SIGKILL), it is restarted without it, as a supervisor would.
Every saga must end as it would have without the crash, and the checker must find nothing.
"""

from __future__ import annotations

import pytest

from convection import AFTER_EFFECT
from coordinator.failpoints import (
    AFTER_COMMIT,
    BEFORE_COMMIT,
    COMPENSATING,
    RELAY_AFTER_CONFIRM,
    RELAY_BEFORE_PUBLISH,
)
from tests.faults.matrix import World

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# Which hit of the point fires: late enough that the NS sagas are in flight.
COORDINATOR_POINTS = [
    (RELAY_BEFORE_PUBLISH, 3),
    (RELAY_AFTER_CONFIRM, 3),
    (BEFORE_COMMIT, 10),
    (AFTER_COMMIT, 10),
    (COMPENSATING, 1),
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("point", "hit"), COORDINATOR_POINTS, ids=[p for p, _ in COORDINATOR_POINTS]
)
async def test_coordinator_dies_at_failpoint(scene: World, point: str, hit: int) -> None:
    fired = scene.fired.get("c1", 0)
    await scene.restart_with("c1", CONVECTION_FAILPOINT=f"{point}@{hit}")
    expect = await scene.nss(point.replace(".", "-"), 4, failing=[1, 3])
    await scene.checked(expect)
    assert scene.fired.get("c1", 0) == fired + 1, f"{point} never fired:\n{scene.group.logs()}"
    assert f"failpoint {point}" in scene.group["c1"].log_text()


@pytest.mark.timeout(600)
async def test_participant_dies_after_its_effect_before_its_reply(scene: World) -> None:
    fired = scene.fired.get("ro_adapter", 0)
    await scene.restart_with("ro_adapter", CONVECTION_FAILPOINT=AFTER_EFFECT)
    expect = await scene.nss("after-effect", 4, failing=[2])
    await scene.checked(expect)
    # It fired on the first effect of the ro-adapter: a VIM network or server it created
    # and never answered for. The redelivered command found it by its idempotency key.
    assert scene.fired.get("ro_adapter", 0) == fired + 1, scene.group.logs()
