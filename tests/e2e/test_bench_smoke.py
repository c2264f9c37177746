"""`convection bench` end to end on the real servers: sensible figures, ratios, no leftovers.

Only the shape of the figures is checked (positive, ordered, counted), never their size: the
machine is shared, so timings say nothing about correctness.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests.environ import clean_environ
from tests.services import AMQP_BASE, PG_ADMIN_URL

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]

CONVECTION = str(Path(sys.executable).parent / "convection")


async def _databases() -> set[str]:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


def _vhosts() -> str:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run(
        [exe, "list_vhosts"], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@pytest.mark.timeout(300)
def test_only_floor_reports_sensible_figures_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = clean_environ()
    done = subprocess.run(
        [
            CONVECTION,
            "bench",
            "--only-floor",
            "--sagas",
            "50",
            "--warmup",
            "5",
            "--latency-sagas",
            "10",
            "--amqp-url",
            f"{AMQP_BASE}/",
            "--db-url",
            PG_ADMIN_URL,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sagas/s" in done.stdout and "floor" in done.stdout
    # Four slices of each measured phase by default (50 sagas: rounds of 13, 13, 12, 12).
    for phase in ("warm-up", "latency-0", "latency-3", "throughput-0", "throughput-3"):
        assert f"floor: {phase}: done in" in done.stderr

    document = json.loads(out.read_text())
    [floor] = document["systems"]
    assert floor["system"] == "floor" and floor["sagas"] == 50 and floor["steps"] == 3
    assert floor["sagas_per_s"] > 0 and floor["steps_per_s"] > floor["sagas_per_s"]
    latency = floor["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert floor["cpu_ms_per_saga"]["processes"] > 0
    assert floor["cpu_ms_per_saga"]["machine"] > 0
    assert {p["role"] for p in floor["processes"]} == {"orchestrator", "participant"}
    for process in floor["processes"]:
        assert process["cpu_ms_per_saga"] > 0, process
        assert process["peak_rss_mib"] > 0, process
        assert process["exit_code"] == 0, process
        assert process["counters"]["messages_consumed"] > 0, process
    per_step = floor["per_step"]
    assert per_step["db_transactions"] > 0
    # Each step is at least one orchestrator statement and one participant statement.
    assert per_step["db_statements"] >= 2
    assert per_step["messages_published"] >= 2
    assert document["ratios"] == {}

    database = re.search(r"database (bench_floor_\w+)", done.stderr)
    vhost = re.search(r"5672/(bench-floor-[\w-]+)", done.stderr)
    assert database and vhost, done.stderr
    assert database.group(1) not in asyncio.run(_databases())
    assert vhost.group(1) not in _vhosts()


@pytest.mark.timeout(600)
def test_floor_and_convection_rows_report_sensible_figures_and_ratios(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            CONVECTION,
            "bench",
            "--floor",
            "--coordinators",
            "2",
            "--coordinators",
            "1",
            "--sagas",
            "50",
            "--warmup",
            "5",
            "--latency-sagas",
            "10",
            "--amqp-url",
            f"{AMQP_BASE}/",
            "--db-url",
            PG_ADMIN_URL,
            "--json",
            str(out),
            "--logs",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=580,
        env=clean_environ(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "convection x1 / floor" in done.stdout and "convection x2 / floor" in done.stdout

    # The systems take turns: every system's first round before anyone's second, and the
    # order reversed in the next round.
    finished = re.findall(r"^(floor|convection x\d): throughput-(\d): done in", done.stderr, re.M)
    assert finished[:6] == [
        ("floor", "0"),
        ("convection x1", "0"),
        ("convection x2", "0"),
        ("convection x2", "1"),
        ("convection x1", "1"),
        ("floor", "1"),
    ], done.stderr

    document = json.loads(out.read_text())
    assert document["settings"]["rounds"] == 4
    floor, convection, two = document["systems"]
    assert floor["system"] == "floor" and convection["system"] == "convection x1"
    # One floor (of the fewest orchestrators), then a row per coordinator count, in order.
    assert [p["role"] for p in floor["processes"]].count("orchestrator") == 1
    assert two["system"] == "convection x2" and two["sagas_per_s"] > 0
    assert [p["role"] for p in two["processes"]].count("coordinator") == 2
    assert document["ratios"]["convection x2 / floor"]["sagas_per_s"] > 0
    assert convection["sagas"] == 50 and convection["steps"] == 3
    assert convection["sagas_per_s"] > 0
    assert convection["steps_per_s"] > convection["sagas_per_s"]
    latency = convection["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    # Per-step latency comes from the coordinator's own step records.
    steps = convection["step_latency_ms"]
    assert 0 < steps["p50"] <= steps["p99"] <= steps["max"]
    assert {p["role"] for p in convection["processes"]} == {"coordinator", "participant"}
    # --logs keeps each process's log, a folder per system, after a run that went well.
    for system, name in (("convection_x1", "coordinator-1"), ("convection_x2", "coordinator-2")):
        assert (tmp_path / "logs" / system / f"{name}.log").is_file(), system
    for process in convection["processes"]:
        assert process["exit_code"] == 0, process
        assert process["cpu_ms_per_saga"] > 0, process
        assert process["counters"]["db_statements"] > 0, process
        assert process["counters"]["messages_consumed"] > 0, process
        assert "outbox_polled" in process["counters"], process
    per_step = convection["per_step"]
    assert per_step["db_transactions"] > 0 and per_step["db_statements"] >= 2
    # A command out and a reply back per step, at the least.
    assert per_step["messages_published"] >= 2 and per_step["messages_consumed"] >= 2
    ratios = document["ratios"]["convection x1 / floor"]
    assert ratios["sagas_per_s"] > 0 and ratios["p50_ms"] > 0

    database = re.search(r"database (bench_convection_x1_\w+)", done.stderr)
    vhost = re.search(r"5672/(bench-convection-x1-[\w-]+)", done.stderr)
    assert database and vhost, done.stderr
    assert database.group(1) not in asyncio.run(_databases())
    assert vhost.group(1) not in _vhosts()


def test_a_bench_saga_of_too_many_steps_is_refused_before_anything_runs() -> None:
    done = subprocess.run(
        [CONVECTION, "bench", "--steps", "1000"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "bench.noop takes 1 to 100 steps" in done.stderr


def _ignore_sigint() -> None:
    # What a shell without job control does to a command it starts in the background.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_bench_and_leaves_nothing_behind(signum: int, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    argv = [CONVECTION, "bench", "--sagas", "400", "--warmup", "2", "--latency-sagas", "0"]
    argv += ["--participant-delay-ms", "1000", "--amqp-url", f"{AMQP_BASE}/"]
    with log.open("w") as sink:
        bench = subprocess.Popen(
            [*argv, "--db-url", PG_ADMIN_URL],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environ(),
            preexec_fn=_ignore_sigint,
        )
        try:
            deadline = time.monotonic() + 200
            # The participant slowed: the first round of 100 sagas is still running when it ends.
            while "throughput-0: 100 sagas" not in log.read_text():
                assert bench.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            children = _children(bench.pid)
            assert len(children) == 2, children  # a coordinator and a participant
            bench.send_signal(signum)
            code = bench.wait(timeout=120)
        finally:
            if bench.poll() is None:
                bench.kill()
    text = log.read_text()
    assert code == 128 + signum, text
    assert f"stopped by {signal.Signals(signum).name}" in text, text
    database = re.search(r"database (bench_convection_x1_\w+)", text)
    vhost = re.search(r"5672/(bench-convection-x1-[\w-]+)", text)
    assert database and vhost, text
    assert database.group(1) not in asyncio.run(_databases())
    assert vhost.group(1) not in _vhosts()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"process {pid} left running"


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True
