"""`convection demo --amqp-url --db-url`: the story against real servers, one process each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_demo import _demo


@pytest.mark.slow
@pytest.mark.amqp
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_demo_against_real_servers_runs_each_service_as_a_process(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    done = _demo(tmp_path, "--amqp-url", fresh_amqp_url, "--db-url", fresh_pg_url, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every saga ended as the story expects" in done.stdout
    for module in ("vim_sim", "coordinator", "vim_adapter", "ro_adapter", "lcm_adapter"):
        assert f"started {module}" in done.stdout
