"""An adapter process serves its Prometheus metrics on CONVECTION_METRICS_PORT."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import lcm
from contracts.topology import (
    ERROR_HEADER,
    HANDLER_CRASHED,
    REASON_HEADER,
    command_queue,
    dead_letter_queue,
)
from tests.faults.private import free_port
from tests.integration.adapter_support import (
    adapter_env,
    command,
    connected,
    next_reply,
    send,
    spawn,
    take,
    wait_for_log,
)

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]

LCM_DEAD = dead_letter_queue(command_queue("lcm"))


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.timeout(120)
async def test_an_adapter_process_exports_its_command_counters(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    port = free_port()
    log = tmp_path / "lcm.log"
    env = adapter_env(
        fresh_amqp_url,
        fresh_pg_url,
        CONVECTION_METRICS_PORT=str(port),
        CONVECTION_LCM_FAULTS=json.dumps({"crash_actions": [lcm.SetNsState.ACTION]}),
    )
    async with connected(fresh_amqp_url) as transport:
        process = await spawn("lcm_adapter", env, log)
        try:
            await wait_for_log(log, "participant lcm consuming")
            record = lcm.CreateNsRecord(ns_id="ns-m", name="m", nsd_id="d", vim_account_id="v")
            first = command(record)
            await send(transport, first)
            assert (await next_reply(transport)).outcome == "succeeded"
            await send(transport, first)
            assert (await next_reply(transport)).outcome == "succeeded"  # from the store
            crashing = command(lcm.SetNsState(ns_id="ns-m", state="ready"))
            await send(transport, crashing)
            dead = await take(transport, LCM_DEAD)
            await dead.ack()
            assert dead.message_id == crashing.message_id
            assert dead.headers[REASON_HEADER] == HANDLER_CRASHED
            assert dead.headers[ERROR_HEADER].startswith("TypeError: the lcm.set-ns-state")
            samples = await scrape(f"http://127.0.0.1:{port}/metrics")
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0, log.read_text()

    def sample(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    commands = "convection_participant_commands_total"
    create = lcm.CreateNsRecord.ACTION
    assert sample(commands, service="lcm", action=create, outcome="succeeded") == 1
    assert sample(commands, service="lcm", action=create, outcome="duplicate") == 1
    assert (
        sample(commands, service="lcm", action=lcm.SetNsState.ACTION, outcome="dead_lettered") == 1
    )
    dead_letters = "convection_participant_dead_letters_total"
    assert sample(dead_letters, service="lcm", reason=HANDLER_CRASHED) == 1
    duration = "convection_participant_command_duration_seconds_count"
    assert sample(duration, service="lcm", action=create, outcome="succeeded") == 1
