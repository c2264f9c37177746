"""Two and three coordinator processes on one database and broker, 200 sagas in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import Command, topology
from tests.integration.coord_support import (
    Db,
    Participant,
    eventually,
    migrate,
    open_client,
    start_saga,
)
from tests.services import postgres_database, rabbitmq_vhost
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow]

TERMINAL = {"completed", "compensated", "failed", "compensation_failed", "cancelled"}


@pytest.fixture
def urls() -> Iterator[tuple[str, str]]:
    with rabbitmq_vhost() as amqp_url, postgres_database() as pg_url:
        yield amqp_url, pg_url


async def _spawn(
    n: int, amqp_url: str, pg_url: str, logs: Path
) -> list[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "CONVECTION_AMQP_URL": amqp_url,
        "CONVECTION_DB_URL": pg_url,
        "CONVECTION_TIMER_INTERVAL": "0.5",
        "CONVECTION_PREFETCH": "16",
        "CONVECTION_API_PORT": "0",
        "CONVECTION_LOG_LEVEL": "INFO",
        # Two cores shared by every process: a confirm can be slow, and a publish retried
        # after a timeout is a legitimate duplicate that would blur the exactly-once check.
        "CONVECTION_PUBLISH_TIMEOUT": "60",
    }
    processes = []
    for i in range(n):
        log = (logs / f"coordinator-{i}.log").open("wb")
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "coordinator", env=env, stdout=log, stderr=log
            )
        )
        log.close()

    async def all_started() -> bool:
        return all(
            b"coordinator started" in (logs / f"coordinator-{i}.log").read_bytes() for i in range(n)
        )

    await eventually(all_started, within=30)
    return processes


def _choose(cmd: Command) -> str | None:
    # One ns saga in five fails a VDU deploy and compensates, on whichever replica.
    if cmd.step == "vdus:vnf-app" and cmd.saga_id.endswith(("0", "5")):
        return "failed"
    return None


@pytest.mark.parametrize("replicas", [2, 3])
async def test_replicas_share_200_sagas_without_double_transitions(
    urls: tuple[str, str], tmp_path: Path, replicas: int
) -> None:
    amqp_url, pg_url = urls
    await migrate(pg_url)
    client = await open_client(amqp_url)
    participant = Participant(await open_client(amqp_url), choose=_choose)
    await participant.start()
    db = Db(pg_url)
    processes = await _spawn(replicas, amqp_url, pg_url, tmp_path)
    try:
        began = time.monotonic()
        starts = [
            (
                "vim-account.create",
                f"vim-{i:03d}",
                example("vim-account.create", vim_account_id=f"a{i}"),
            )
            for i in range(170)
        ] + [
            ("ns.instantiate", f"ns-{i:03d}", example("ns.instantiate", ns_id=f"ns-{i:03d}"))
            for i in range(30)
        ]
        ids = [saga_id for _, saga_id, _ in starts]
        await asyncio.gather(*(start_saga(client, *start) for start in starts))

        async def all_terminal() -> bool:
            statuses = await db.statuses()
            return len(statuses) == len(ids) and set(statuses.values()) <= TERMINAL

        await eventually(all_terminal, within=90, every=0.5)
        elapsed = time.monotonic() - began
        statuses = await db.statuses()
        expected = {
            s: "compensated" if s.startswith("ns-") and s.endswith(("0", "5")) else "completed"
            for s in ids
        }
        assert statuses == expected, f"after {elapsed:.1f}s"
        # Every saga went into a terminal state exactly once, and nothing moved twice.
        assert (
            await db.scalar(
                "SELECT count(*) FROM (SELECT saga_id, from_status, to_status FROM saga_history "
                "WHERE kind = 'saga.status' GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
            )
            == 0
        )
        assert (
            await db.scalar(
                "SELECT count(*) FROM (SELECT saga_id, step, attempt, kind FROM saga_history "
                "WHERE kind IN ('step.started', 'step.succeeded', 'compensation.started', "
                "'compensation.succeeded') GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"
            )
            == 0
        )
        ended = await db.scalar(
            "SELECT count(*) FROM saga_history WHERE kind = 'saga.status' "
            "AND to_status IN ('completed', 'compensated', 'failed', 'cancelled', "
            "'compensation_failed')"
        )
        assert ended == len(ids)
        # Each command reached the participant once and had its effect at most once.
        assert set(participant.deliveries.values()) == {1}
        assert max(participant.effects.values()) == 1
        assert all(participant.undone[k] <= participant.effects[k] for k in participant.undone)

        async def all_marked_sent() -> bool:
            # A confirmed row is marked sent a moment later (the relay gathers its marks).
            return bool(await db.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0)

        await eventually(all_marked_sent, within=30, every=0.2)
        assert (
            await client.queue_depth(topology.dead_letter_queue(topology.COORDINATOR_SAGAS_QUEUE))
            == 0
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), 30) for p in processes]
        await participant.stop()
        await participant.transport.close()
        await client.close()
        await db.close()
    assert codes == [0] * replicas, [
        (tmp_path / f"coordinator-{i}.log").read_text()[-3000:] for i in range(replicas)
    ]
