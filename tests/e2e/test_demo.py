"""`convection demo`: the OSM story ends as expected, embedded and against real servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.environ import clean_environ


def _demo(tmp_path: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = clean_environ(("CONVECTION_", "OTEL_"))
    env["COLUMNS"] = "160"
    return subprocess.run(
        [sys.executable, "-m", "convection", "demo", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_embedded_demo_plays_the_story(tmp_path: Path) -> None:
    done = _demo(tmp_path, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "every saga ended as the story expects" in out
    for act in ("create the VIM", "two VNFs", "over the VIM", "cancel while", "terminate"):
        assert act in out
    summary = out[out.rindex("summary") :]
    for status in ("completed", "compensated", "cancelled"):
        assert status in summary
    assert "NO" not in summary
    assert not list(tmp_path.iterdir()), "the demo must not leave files behind"


def test_demo_refuses_half_a_configuration(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--amqp-url", "amqp://guest:guest@127.0.0.1:5672/", timeout=60)
    assert done.returncode == 2
    assert "give both --amqp-url and --db-url" in done.stdout
