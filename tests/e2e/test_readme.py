"""The README's own commands work verbatim on a fresh clone, and its AMQP example ends as it says.

The README marks what this test runs with an HTML comment before a fenced block:

    <!-- readme-test: run -->       commands run one after another; each must exit 0
    <!-- readme-test: env -->       each service's shell runs these first (its `export`s of
                                    the URLs aside: the test gives its own vhost and database)
    <!-- readme-test: services -->  one long-running service per line, started in background
    <!-- readme-test: python -->    the example, saved as start_sagas.py, run by `uv run python`
    <!-- readme-test: output -->    exactly what the example prints

The clone is of this repository's committed HEAD (`git clone`), set up with
`uv sync --frozen --all-packages` (quick from uv's cache), and pointed at a fresh vhost and
database through the variables the README documents (`CONVECTION_AMQP_URL`,
`CONVECTION_DB_URL`; `CONVECTION_API_PORT=0` so the API takes a free port).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"<!-- readme-test: (\w+) -->\n```[\w-]*\n(.*?)```", re.S)
READY = {
    "coordinator": "coordinator started",
    "vim_adapter": "participant vim consuming",
    "ro_adapter": "participant ro consuming",
    "lcm_adapter": "participant lcm consuming",
    "vim_sim": "vim-sim listening on",
}


def blocks(readme: str) -> dict[str, list[str]]:
    """Return the README's marked blocks by kind."""
    found: dict[str, list[str]] = {}
    for kind, body in MARK.findall(readme):
        found.setdefault(kind, []).append(body)
    return found


def _commands(block: str) -> list[str]:
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(found).exists(), "uv is needed (pip install uv)"
    return found


def test_the_readme_marks_what_this_test_runs() -> None:
    found = blocks((ROOT / "README.md").read_text())
    assert sorted(found) == ["env", "output", "python", "run", "services"], sorted(found)
    services = _commands(found["services"][0])
    assert {c.split()[-1] for c in services} == set(READY), services
    assert "CONVECTION_AMQP_URL" in found["python"][0]


def _set_up(
    tmp_path: Path, uv: str, found: dict[str, list[str]], amqp_url: str, db_url: str
) -> tuple[Path, dict[str, str]]:
    """Clone, sync, and run the README's `run` blocks; return the clone and its environment."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONVECTION_", "VIRTUAL_ENV", "PYTHONPATH", "OTEL_"))
    }
    env["PATH"] = f"{Path(uv).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    subprocess.run(
        [uv, "sync", "--frozen", "--all-packages", "--quiet"],
        cwd=clone,
        env=env,
        check=True,
        timeout=600,
    )
    env |= {
        "CONVECTION_AMQP_URL": amqp_url,
        "CONVECTION_DB_URL": db_url,
        "CONVECTION_API_PORT": "0",
    }
    for block in found["run"]:
        for command in _commands(block):
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
    return clone, env


@pytest.mark.slow
@pytest.mark.amqp
@pytest.mark.postgres
@pytest.mark.timeout(900)
async def test_the_readme_runs_verbatim_in_a_fresh_clone(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("CONVECTION_AMQP_URL", "CONVECTION_DB_URL", "CONVECTION_API_PORT"):
        assert name in readme, f"the README does not document {name}"
    found = blocks(readme)
    uv = _uv()
    clone, env = await asyncio.to_thread(_set_up, tmp_path, uv, found, fresh_amqp_url, fresh_pg_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        prelude = "".join(
            f"{line}; " for line in _commands(found["env"][0]) if not line.startswith("export ")
        )
        for command in _commands(found["services"][0]):
            name = command.split()[-1]
            with (logs / f"{name}.log").open("wb") as log:
                procs[name] = await asyncio.create_subprocess_exec(
                    "bash",
                    "-c",
                    f"{prelude}exec {command}",
                    cwd=clone,
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
        await _ready(logs, procs)
        (clone / "start_sagas.py").write_text(found["python"][0])
        story = await asyncio.create_subprocess_exec(
            uv,
            "run",
            "python",
            "start_sagas.py",
            cwd=clone,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(story.communicate(), timeout=300)
        told = "\n".join(f"{p.name}:\n{p.read_text()[-1500:]}" for p in logs.iterdir())
        assert story.returncode == 0, (err.decode(), told)
        assert out.decode() == found["output"][0], (out.decode(), told)
    finally:
        codes = await _stop(procs)
    assert codes == dict.fromkeys(procs, 0), codes


async def _ready(logs: Path, procs: dict[str, asyncio.subprocess.Process]) -> None:
    async with asyncio.timeout(300):
        while True:
            waiting = [
                name
                for name in procs
                if READY[name] not in (logs / f"{name}.log").read_text(errors="replace")
            ]
            if not waiting:
                return
            for name in waiting:
                assert procs[name].returncode is None, (logs / f"{name}.log").read_text()
            await asyncio.sleep(0.5)


async def _stop(procs: dict[str, asyncio.subprocess.Process]) -> dict[str, int | None]:
    for proc in procs.values():
        if proc.returncode is None:
            # The group of this service alone (started in its own session): uv and its child.
            os.killpg(proc.pid, signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for name, proc in procs.items():
        try:
            codes[name] = await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            codes[name] = None
    return codes
