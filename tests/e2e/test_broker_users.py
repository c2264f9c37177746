"""Least privilege on the real broker: each process runs as its own RabbitMQ user, set up by
`convection broker setup --apply` (the documented commands), and what an attacker holding one
user's password, or a broker user with every right, can and cannot make the system do.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import aiohttp
import pytest

from contracts import ErrorInfo, Reply, encode, ro, topology
from contracts.base import new_id
from coordinator.broker_setup import COORDINATOR_USER, service_user
from tests.e2e.test_operator_verbs import Ops, ns
from tests.faults.private import free_port
from tests.integration.coord_support import migrate

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]
SERVICES = ("vim", "ro", "lcm")
TOKENS = '{"op-token": "operator", "read-token": "reader"}'


def _as(admin_url: str, user: str) -> str:
    # The setup's default password is the user name (the test sets no other).
    parts = urlsplit(admin_url)
    return f"amqp://{user}:{user}@{parts.hostname}:{parts.port or 5672}{parts.path}"


async def _refused(url: str, exchange: str, routing_key: str, body: bytes, **props: Any) -> str:
    """Publish as the URL's user; return the broker's reason for refusing it."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange, ensure=False)
        message = aio_pika.Message(body, message_id=new_id(), **props)
        # A confirmed publish: the broker's refusal closes the channel before any confirm.
        with pytest.raises(aio_pika.exceptions.AMQPError) as caught:
            await target.publish(message, routing_key)
        return str(caught.value)
    finally:
        await connection.close()


async def _publish(url: str, exchange: str, routing_key: str, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(body, message_id=new_id()), routing_key)


def _forged_reply(step: dict[str, Any]) -> bytes:
    reply = Reply(
        command_id=step["command_id"],
        saga_id=step["saga_id"],
        step=step["name"],
        attempt=step["attempt"],
        outcome="failed",
        error=ErrorInfo(code="quota_exceeded", message="forged"),
    )
    return encode(reply)


@pytest.mark.timeout(300)
async def test_each_process_runs_as_its_own_broker_user_and_forgeries_are_refused(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    vhost = unquote(urlsplit(fresh_amqp_url).path[1:])
    setup = [sys.executable, "-m", "convection", "broker", "setup", "--apply", "--vhost", vhost]
    for service in SERVICES:
        setup += ["--service", service]
    proc = await asyncio.create_subprocess_exec(
        *setup, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"`convection broker setup` failed:\n{output.decode()}"
    await migrate(fresh_pg_url)
    # The test's own client is guest, with every right on the vhost: an admin, or a service
    # that was given too much.
    s = Ops(fresh_amqp_url, fresh_pg_url, tmp_path / "logs")
    port = free_port()
    s.api = f"http://127.0.0.1:{port}"
    users = ",".join(f"{svc}={service_user(svc)}" for svc in SERVICES)
    async with s.running():
        s.spawn("vim_sim", "vim_sim", CONVECTION_VIM_SIM_BOOT_SECONDS="4")
        s.spawn(
            "coordinator",
            "coordinator",
            CONVECTION_AMQP_URL=_as(fresh_amqp_url, COORDINATOR_USER),
            CONVECTION_SERVICE_USERS=users,
            CONVECTION_API_PORT=str(port),
            CONVECTION_API_TOKENS=TOKENS,
        )
        await s.consumers(topology.COORDINATOR_SAGAS_QUEUE)
        for service in SERVICES:
            s.spawn(
                f"{service}_adapter",
                f"{service}_adapter",
                CONVECTION_AMQP_URL=_as(fresh_amqp_url, service_user(service)),
                CONVECTION_COORDINATOR_USER=COORDINATOR_USER,
                CONVECTION_DECLARE_TOPOLOGY="false",
            )
        for service in SERVICES:
            await s.consumers(topology.command_queue(service))

        # Everything works under least privilege.
        await s.start("vim-account.create", "acct", s.account("vim-osm-1"))
        assert await s.ended("acct") == "completed"
        await s.start("ns.instantiate", "inst", ns("ns-sec"))

        # What one participant's password buys: no commands, no replies in another's name.
        vim_url = _as(fresh_amqp_url, service_user("vim"))
        command = b'{"type": "step.command"}'
        why = await _refused(vim_url, topology.COMMANDS_EXCHANGE, "ro", command)
        assert "ACCESS_REFUSED" in why, why
        why = await _refused(
            vim_url, topology.REPLIES_EXCHANGE, "reply", b"{}", user_id=service_user("ro")
        )
        assert "PRECONDITION_FAILED" in why, why
        client_url = _as(fresh_amqp_url, "convection-client")
        why = await _refused(client_url, topology.COMMANDS_EXCHANGE, "ro", command)
        assert "ACCESS_REFUSED" in why, why

        # A broker user with every right is still not the coordinator, nor the ro service.
        # A payload the ro-adapter would carry out (the account's real credentials): only the
        # sender gives it away.
        target = {"vim_account_id": "vim-osm-1", **s.account("vim-osm-1")}
        forged = ro.CreateNetworks.model_validate(
            {
                "vim": {k: target[k] for k in ("vim_account_id", "vim_type", "credentials")},
                "ns_id": "ns-ghost",
                "networks": [{"name": "ghost-net", "cidr": "10.9.9.0/24"}],
            }
        )
        ghost = {
            "type": "step.command",
            "message_id": new_id(),
            "saga_id": "never-started",
            "saga_type": "ns.instantiate",
            "step": "networks",
            "attempt": 1,
            "idempotency_key": "never-started/networks",
            "service": "ro",
            "action": forged.ACTION,
            "payload": forged.model_dump(mode="json"),
        }
        await _publish(fresh_amqp_url, topology.COMMANDS_EXCHANGE, "ro", json.dumps(ghost).encode())

        async def deploying() -> bool:
            rows = await s.sql(
                "SELECT saga_id, name, attempt, command_id FROM saga_steps WHERE saga_id = "
                "'inst' AND action = 'ro.deploy-vdus' AND status = 'running'"
            )
            steps.extend(dict(r) for r in rows)
            return bool(rows)

        steps: list[dict[str, Any]] = []
        await s.until("a deploy step is running", deploying, within=60)
        # The ids a forger needs, from the coordinator's own tables: a failed reply from the
        # lcm user, and one from the all-powerful guest, to the ro step in flight.
        lcm_url = _as(fresh_amqp_url, service_user("lcm"))
        await _publish(lcm_url, topology.REPLIES_EXCHANGE, "reply", _forged_reply(steps[0]))
        await _publish(fresh_amqp_url, topology.REPLIES_EXCHANGE, "reply", _forged_reply(steps[0]))
        assert await s.ended("inst", within=120) == "completed"

        async def dead() -> bool:
            rows = await s.sql("SELECT queue, reason FROM dead_letters WHERE reason = 'forged'")
            return len(rows) >= 3

        await s.until("three forged messages dead-lettered", dead, within=30)
        rows = await s.sql("SELECT queue, count(*) AS n FROM dead_letters GROUP BY queue, reason")
        seen = {(r["queue"], r["n"]) for r in rows}
        assert (topology.COORDINATOR_REPLIES_QUEUE, 2) in seen, seen
        assert (topology.command_queue("ro"), 1) in seen, seen
        assert (await s.sim_json("/admin/resources?saga_id=never-started"))["networks"] == []

        # Readers do not see the ids of the commands; operators do.
        async def history(token: str) -> str:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{s.api}/sagas/{quote('inst')}", headers=headers) as resp,
            ):
                assert resp.status == 200
                return str((await resp.json())["history"])

        assert "command_id" not in await history("read-token")
        assert steps[0]["command_id"] in await history("op-token")
