"""A poison command end to end: dead-lettered with its reason, listed, replayed once fixed.

The coordinator, the three adapters and the VIM simulator run as separate processes on the real
RabbitMQ and PostgreSQL. The lcm-adapter starts with a bug in `lcm.configure-vnf` (its handler
returns no result, `CONVECTION_LCM_FAULTS` `crash_actions`): every delivery of those commands
fails until the participant dead-letters them itself (`handler_crashed`, with the exception in
`x-convection-error`). The coordinator collects them; the real `convection dead-letters` CLI
lists them; the lcm-adapter is restarted without the bug; the CLI replays them, and the saga,
still waiting for its configure steps (their timeout is five minutes), completes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import lcm, topology
from tests.e2e.stack import Stack
from tests.environ import clean_environ
from tests.faults.private import free_port
from tests.integration.coord_support import migrate
from tests.unit.world import example

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]

CONVECTION = str(Path(sys.executable).parent / "convection")
TOKEN = "e2e-operator"
LCM_QUEUE = topology.command_queue("lcm")
CONFIGURE = lcm.ConfigureVnf.ACTION


@dataclass
class Cli:
    api_url: str

    async def run(self, *args: str) -> tuple[int, str, str]:
        env = clean_environ()
        env |= {"CONVECTION_API_URL": self.api_url, "CONVECTION_API_TOKEN": TOKEN}
        proc = await asyncio.create_subprocess_exec(
            CONVECTION,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        code, out, err = await self.run(*args, "-o", "json")
        assert code == 0, err
        return json.loads(out)


async def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.timeout(300)
async def test_a_poison_command_is_dead_lettered_listed_and_replayed_after_the_fix(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    await migrate(fresh_pg_url)
    stack = Stack(fresh_amqp_url, fresh_pg_url, tmp_path / "logs")
    api_port, buggy_port, fixed_port = free_port(), free_port(), free_port()
    cli = Cli(f"http://127.0.0.1:{api_port}")
    async with stack.running():
        stack.spawn("vim_sim", "vim_sim")
        stack.spawn(
            "coordinator",
            "coordinator",
            CONVECTION_API_PORT=str(api_port),
            CONVECTION_API_TOKENS=json.dumps({TOKEN: {"role": "operator", "name": "e2e"}}),
        )
        stack.spawn("vim_adapter", "vim_adapter")
        stack.spawn("ro_adapter", "ro_adapter")
        buggy = stack.spawn(
            "lcm_buggy",
            "lcm_adapter",
            CONVECTION_LCM_FAULTS=json.dumps({"crash_actions": [CONFIGURE]}),
            CONVECTION_METRICS_PORT=str(buggy_port),
        )
        for queue in (
            topology.COORDINATOR_SAGAS_QUEUE,
            topology.command_queue("vim"),
            topology.command_queue("ro"),
            LCM_QUEUE,
        ):
            await stack.consumers(queue)

        account = example("vim-account.create")
        account["credentials"] = {
            **account["credentials"],
            "auth_url": f"{stack.sim}/identity/v3",
        }
        await stack.start("vim-account.create", "dl-acct", account)
        assert await stack.ended("dl-acct") == "completed"
        await stack.start("ns.instantiate", "dl-inst", example("ns.instantiate"))

        async def both_dead() -> bool:
            rows = await stack.sql(
                "SELECT count(*) AS n FROM dead_letters WHERE queue = $1", LCM_QUEUE
            )
            return bool(rows[0]["n"] == 2)

        await stack.until("both configure commands are dead letters", both_dead, within=120)
        assert await stack.status("dl-inst") == "running"  # still waiting for them

        # Listed by the real CLI with the reason and the source queue, and shown with the error.
        listed = (await cli.json("dead-letters", "list", "--queue", LCM_QUEUE))["items"]
        assert {(i["queue"], i["reason"], i["saga_id"]) for i in listed} == {
            (LCM_QUEUE, "handler_crashed", "dl-inst")
        }
        assert {i["message_type"] for i in listed} == {"step.command"}
        assert len(listed) == 2
        detail = await cli.json("dead-letters", "show", str(listed[0]["id"]))
        error = detail["headers"][topology.ERROR_HEADER]
        assert error.startswith(f"TypeError: the {CONFIGURE} handler returned NoneType"), error
        assert detail["error"] == error
        assert detail["headers"][topology.ORIGINAL_EXCHANGE_HEADER] == topology.COMMANDS_EXCHANGE
        code, text, err = await cli.run("dead-letters", "list", "--reason", "handler_crashed")
        assert code == 0, err
        lines = [line.split("\t") for line in text.splitlines()]  # not a terminal: plain lines
        assert sorted(int(line[0]) for line in lines) == sorted(i["id"] for i in listed)
        assert all(line[1].endswith("Z") and len(line[1]) == 20 for line in lines)

        buggy_metrics = await metrics(f"http://127.0.0.1:{buggy_port}/metrics")
        dead = "convection_participant_dead_letters_total"
        assert sample(buggy_metrics, dead, service="lcm", reason="handler_crashed") == 2

        # The fix: the lcm-adapter restarted without the bug, then the replay.
        buggy.terminate()
        stack.spawn("lcm_fixed", "lcm_adapter", CONVECTION_METRICS_PORT=str(fixed_port))
        await stack.consumers(LCM_QUEUE)
        ids = [str(i["id"]) for i in listed]
        code, out, err = await cli.run(
            "dead-letters", "replay", *ids, "--reason", "configure-vnf fixed", "--yes"
        )
        assert code == 0, err
        assert out.count("replayed ") == 2, out
        assert await stack.ended("dl-inst", within=120) == "completed"

        replayed = (await cli.json("dead-letters", "list", "--replayed"))["items"]
        assert sorted(i["id"] for i in replayed) == sorted(i["id"] for i in listed)
        assert all(i["replay_message_id"] and i["replayed_at"] for i in replayed)
        code, _, err = await cli.run("dead-letters", "replay", ids[0], "--reason", "again?")
        assert code == 4, err  # replayed already: a conflict

        # The counters: collected by the coordinator, and run once by the fixed adapter.
        coordinator = await metrics(f"{cli.api_url}/metrics")
        collected = sample(
            coordinator,
            "convection_dead_letters_total",
            queue=LCM_QUEUE,
            reason="handler_crashed",
        )
        assert collected == 2
        fixed = await metrics(f"http://127.0.0.1:{fixed_port}/metrics")
        commands = "convection_participant_commands_total"
        assert sample(fixed, commands, service="lcm", action=CONFIGURE, outcome="succeeded") == 2
        rows = await stack.sql("SELECT count(*) AS n FROM lcm_vnf_configs")
        assert rows[0]["n"] == 2
