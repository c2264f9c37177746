"""The short chaos run of CI: 200 sagas while the monkey kills and restarts for 60 seconds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.monkey import ChaosPlan
from tests.chaos.run import Options, run

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.mark.timeout(1500)
async def test_short_chaos_run_ends_every_saga_as_its_scenario_says(
    tmp_path: Path, chaos_summary: Callable[[str], None]
) -> None:
    """Kills every 2-5 s, one broker and one database restart; the checker finds nothing."""
    options = Options(
        sagas=200,
        chaos=ChaosPlan(seconds=60, kill_every=(2, 5), broker_restarts=1, db_restarts=1),
        drain_seconds=600,
        seed=12,
        workdir=tmp_path,
    )
    result = await run(options)
    chaos_summary(result.summary + "\n" + "\n".join(f"FAILED: {f}" for f in result.failures))
    assert result.ok, "\n".join([*result.failures, result.summary])
