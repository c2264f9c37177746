"""The ro-adapter as real processes: a crash between effect and reply, two instances, SIGTERM.

The crash uses the failpoint `CONVECTION_FAILPOINT=participant.after_effect`: the process
exits with status 137 once the handler returned and before its outcome is stored.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest

from contracts import ro
from contracts.topology import COMMANDS_EXCHANGE, REASON_HEADER, command_queue, dead_letter_queue
from tests.integration.adapter_support import (
    REPLIES_QUEUE,
    WAIT,
    adapter_env,
    command,
    connected,
    credentials,
    ledger,
    next_reply,
    send,
    simulator,
    spawn,
    take,
    wait_for_log,
)

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow, pytest.mark.faults]

READY = "participant ro consuming"


async def _terminate(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), WAIT)


async def test_crash_after_effect_then_restart_has_one_effect(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    log = tmp_path / "ro.log"
    env = adapter_env(fresh_amqp_url, fresh_pg_url)
    async with simulator(tmp_path) as sim, connected(fresh_amqp_url) as transport:
        crashing = await spawn(
            "ro_adapter", env | {"CONVECTION_FAILPOINT": "participant.after_effect"}, log
        )
        await wait_for_log(log, READY)
        saga = uuid.uuid4().hex
        target = ro.VimTarget(vim_account_id="a", credentials=credentials(sim))
        nets = [ro.NetworkSpec(name="n", cidr="10.7.0.0/24")]
        cmd = command(ro.CreateNetworks(vim=target, ns_id="ns-c", networks=nets), saga_id=saga)
        await send(transport, cmd)
        assert await asyncio.wait_for(crashing.wait(), WAIT) == 137
        assert [r["operation"] for r in await ledger(sim, saga)] == [
            "create_network",
            "create_subnet",
        ]
        assert await transport.queue_depth(REPLIES_QUEUE) == 0

        restarted = await spawn("ro_adapter", env, log)
        reply = await next_reply(transport)
        assert reply.outcome == "succeeded" and reply.command_id == cmd.message_id
        # The redelivered command replayed the VIM's creates under the same keys: no new effect.
        assert [r["operation"] for r in await ledger(sim, saga)] == [
            "create_network",
            "create_subnet",
        ]
        assert await _terminate(restarted) == 0
    assert "exited cleanly" in log.read_text()


async def test_two_instances_share_the_queue_and_bad_input_is_dead_lettered(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    logs = [tmp_path / "ro-1.log", tmp_path / "ro-2.log"]
    env = adapter_env(fresh_amqp_url, fresh_pg_url, CONVECTION_PREFETCH="2")
    async with simulator(tmp_path) as sim, connected(fresh_amqp_url) as transport:
        processes = [await spawn("ro_adapter", env, log) for log in logs]
        for log in logs:
            await wait_for_log(log, READY)
        target = ro.VimTarget(vim_account_id="a", credentials=credentials(sim))
        cmds = [command(ro.FindNsNetworks(vim=target, ns_id=f"ns-{i}")) for i in range(50)]
        for cmd in cmds:
            await send(transport, cmd)
        got = [await next_reply(transport) for _ in cmds]
        assert {r.outcome for r in got} == {"succeeded"}
        assert sorted(r.command_id for r in got) == sorted(c.message_id for c in cmds)

        await transport.publish(COMMANDS_EXCHANGE, "ro", b"{oops", message_id="bad-input")
        dead_queue = dead_letter_queue(command_queue("ro"))
        dead = await take(transport, dead_queue)
        assert dead.headers[REASON_HEADER] == "invalid_json" and dead.body == b"{oops"
        await dead.ack()
        assert [await _terminate(p) for p in processes] == [0, 0]
    handled = [log.read_text().count("running ro.find-ns-networks") for log in logs]
    assert sum(handled) == 50 and min(handled) > 0, handled
