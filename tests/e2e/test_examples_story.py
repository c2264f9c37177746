"""The example inputs tell the story on their own: published in order as StartSaga messages from
a plain AMQP client to the services started with their documented commands, they end as the
README says, seen as lifecycle events on `convection.events`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aio_pika
import pytest

from contracts import topology
from tests.faults._procs import free_port
from tests.integration.coord_support import migrate

EXAMPLES = Path(__file__).resolve().parents[2] / "sagas" / "examples"
SERVICES = ("vim_sim", "coordinator", "vim_adapter", "ro_adapter", "lcm_adapter")


async def _spawn(env: dict[str, str], logs: Path) -> list[asyncio.subprocess.Process]:
    procs = []
    for module in SERVICES:
        with (logs / f"{module}.log").open("wb") as out:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", module, env=env, stdout=out, stderr=out
                )
            )
    return procs


async def _listening(port: int, within: float = 60.0) -> None:
    # The services start in any order; a saga started before the VIM listens would meet an
    # unreachable VIM, which is not the story the examples tell.
    async with asyncio.timeout(within):
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def _started(log: Path, process: asyncio.subprocess.Process, within: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while "coordinator started" not in log.read_text():
        if process.returncode is not None:
            pytest.fail(f"the coordinator exited with {process.returncode}:\n{_logs(log.parent)}")
        if loop.time() > deadline:
            pytest.fail(f"the coordinator did not start in {within:.0f} s:\n{_logs(log.parent)}")
        await asyncio.sleep(0.2)


def _logs(folder: Path) -> str:
    return "\n".join(p.name + ":\n" + p.read_text()[-2000:] for p in folder.glob("*.log"))


async def _stop(procs: list[asyncio.subprocess.Process]) -> list[int | None]:
    for p in procs:
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for p in procs:
        try:
            codes.append(await asyncio.wait_for(p.wait(), 30))
        except TimeoutError:
            p.kill()
            codes.append(None)
    return codes


@pytest.mark.slow
@pytest.mark.amqp
@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_examples_published_in_order_give_the_documented_outcomes(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    await migrate(fresh_pg_url)
    # The examples point at the simulator's default port, 6080; this simulator listens on a
    # free one (the inputs are rewritten to it) so it never meets another test's simulator.
    sim_port = free_port()
    env = {
        **os.environ,
        "CONVECTION_AMQP_URL": fresh_amqp_url,
        "CONVECTION_DB_URL": fresh_pg_url,
        "CONVECTION_VIM_SIM_PORT": str(sim_port),
        "CONVECTION_VIM_SIM_BOOT_SECONDS": "0.5",
        "CONVECTION_API_PORT": "0",
    }
    procs = await _spawn(env, tmp_path)
    await _listening(sim_port)
    connection = await aio_pika.connect_robust(fresh_amqp_url)
    try:
        # The coordinator logs "coordinator started" only once it declared and bound its queues
        # and consumes them, so the first StartSaga is routed. A queue's consumer count is no
        # such signal: in one CI run, under the full suite's load, it stayed 0 for a minute.
        await _started(tmp_path / "coordinator.log", procs[SERVICES.index("coordinator")])
        channel = await connection.channel()
        events = await channel.get_exchange(topology.EVENTS_EXCHANGE, ensure=True)
        await channel.declare_queue(topology.COORDINATOR_SAGAS_QUEUE, passive=True)
        watch = await channel.declare_queue(exclusive=True)
        await watch.bind(events, "saga.#")
        sagas = await channel.get_exchange(topology.SAGAS_EXCHANGE)
        seen: dict[str, str] = {}

        async def ended(saga_id: str) -> str:
            async with asyncio.timeout(90):
                while saga_id not in seen:
                    msg = await watch.get(fail=False)
                    if msg is None:
                        await asyncio.sleep(0.2)
                        continue
                    await msg.ack()
                    event = json.loads(msg.body)
                    if event["status"] in (
                        "completed",
                        "compensated",
                        "failed",
                        "compensation_failed",
                        "cancelled",
                    ):
                        seen[event["saga_id"]] = event["status"]
            return seen[saga_id]

        outcomes = {}
        for name, saga_type in (
            ("vim-account-create", "vim-account.create"),
            ("ns-instantiate", "ns.instantiate"),
            ("ns-instantiate-over-quota", "ns.instantiate"),
        ):
            body = {
                "type": "saga.start",
                "saga_type": saga_type,
                "saga_id": f"example-{name}",
                "input": json.loads(
                    (EXAMPLES / f"{name}.json")
                    .read_text()
                    .replace("127.0.0.1:6080", f"127.0.0.1:{sim_port}")
                ),
            }
            await sagas.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=topology.START_ROUTING_KEY,
            )
            try:
                outcomes[name] = await ended(f"example-{name}")
            except TimeoutError:
                pytest.fail(f"example-{name} never ended:\n{_logs(tmp_path)}")
        assert outcomes == {
            "vim-account-create": "completed",
            "ns-instantiate": "completed",
            "ns-instantiate-over-quota": "compensated",
        }, _logs(tmp_path)
    finally:
        await connection.close()
        codes = await _stop(procs)
    assert codes == [0] * len(SERVICES), codes
