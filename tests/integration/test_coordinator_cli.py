"""`convection db upgrade` and the coordinator as processes: schema check, settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.store import head_revision
from tests.environ import clean_environ

pytestmark = [pytest.mark.postgres]

CONVECTION = str(Path(sys.executable).with_name("convection"))


def _env(**values: str) -> dict[str, str]:
    env = clean_environ()
    env.update(values)
    return env


def test_invalid_settings_exit_2_naming_the_variable() -> None:
    # Through `convection coordinator`; `python -m coordinator` and SIGTERM are exercised by
    # the replica tests.
    done = subprocess.run(
        [CONVECTION, "coordinator"],
        env=_env(CONVECTION_DB_URL="mysql://x", CONVECTION_PREFETCH="0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "CONVECTION_AMQP_URL" in done.stderr
    assert "CONVECTION_DB_URL" in done.stderr
    assert "CONVECTION_PREFETCH" in done.stderr


def test_a_database_behind_is_refused_until_db_upgrade(fresh_pg_url: str) -> None:
    env = _env(CONVECTION_DB_URL=fresh_pg_url, CONVECTION_AMQP_URL="amqp://127.0.0.1:1/none")
    behind = subprocess.run(
        [sys.executable, "-m", "coordinator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert behind.returncode == 3
    assert "convection db upgrade" in behind.stderr
    upgraded = subprocess.run(
        [CONVECTION, "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert head_revision() in upgraded.stdout
    again = subprocess.run(
        [CONVECTION, "db", "upgrade", "--db-url", fresh_pg_url],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr
