"""An adapter's heartbeat file, read by `convection health` as container health checks do."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]


async def _health(path: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "convection",
        "health",
        "--file",
        str(path),
        "--max-age",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.timeout(120)
async def test_adapter_heartbeat_reports_health(tmp_path: Path, amqp_url: str, pg_url: str) -> None:
    alive = tmp_path / "alive"
    code, out = await _health(alive)
    assert code == 1
    assert "missing" in out
    env = {
        **os.environ,
        "CONVECTION_AMQP_URL": amqp_url,
        "CONVECTION_DB_URL": pg_url,
        "CONVECTION_HEALTH_FILE": str(alive),
    }
    with (tmp_path / "lcm.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lcm_adapter", env=env, stdout=log, stderr=log
        )
    try:
        async with asyncio.timeout(60):
            while not alive.exists():
                assert proc.returncode is None, (tmp_path / "lcm.log").read_text()
                await asyncio.sleep(0.3)
        code, out = await _health(alive)
        assert code == 0, out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert not alive.exists()  # a stopped service is not healthy
