"""The hostile corpus against every queue of a real stack, under least privilege.

The coordinator, the three adapters and the VIM simulator run as separate processes on a fresh
vhost and database, each as its own broker user (`convection broker setup --apply`). One real
saga runs first; the corpus (`tests.hostile.corpus`) is instantiated with its id, a step and
that step's command id, and every case is published through the real exchanges to each queue
it targets: the coordinator's sagas and replies queues and the command queue of each of the
three adapters, as the broker user the consumer expects (or as `intruder`, a user with every
right on the vhost, for the forged cases). Each copy gets a message id of its own, so its dead
letter is found in the coordinator's `dead_letters` table with the queue, the reason it got and
the body as published.

Every case must be dead-lettered with exactly its `expect` reason, a `duplicate` case's last
copy not at all; nothing may be dead-lettered without a reason, every process must still run,
and a second saga must still complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest

from contracts import topology
from contracts.base import new_id
from coordinator.broker_setup import CLIENT_USER, COORDINATOR_USER, service_user
from tests.e2e.stack import queue_depths, rabbitmqctl, url_as
from tests.e2e.test_dead_letters_e2e import metrics, sample
from tests.e2e.test_operator_verbs import Ops
from tests.faults.private import free_port
from tests.hostile.corpus import (
    API,
    COMMANDS,
    DUPLICATE,
    INTRUDER,
    REPLIES,
    SAGAS,
    Hostile,
    cases,
)
from tests.integration.coord_support import migrate

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]

SERVICES = ("vim", "ro", "lcm")
SAGA_TYPE = "vim-account.create"
STEP = "validate"
IN_FLIGHT = 32
"""Publishes in flight at once."""
CHANNELS = 4
"""Channels per publishing user."""


@dataclass(frozen=True)
class Copy:
    """One publish of one case to one queue."""

    case: Hostile
    queue: str
    """The queue it lands in (the `dead_letters.queue` of its dead letter)."""
    exchange: str
    routing_key: str
    user: str
    message_id: str
    last: bool
    """Whether it is the case's last copy: the one `expect` is about."""

    @property
    def expect(self) -> str | None:
        """The dead-letter reason it must get; None: no dead letter (or unspecified)."""
        if not self.last or self.case.expect == DUPLICATE:
            return None
        return self.case.expect


@dataclass(frozen=True)
class Target:
    queue: str
    exchange: str
    routing_key: str
    user: str


def plan(saga_id: str, step: str, command_id: str, step_user: str, data: Any) -> list[Copy]:
    """Every copy to publish: the corpus on the coordinator's queues and each adapter's."""
    conflicting = {**data, "name": f"{data['name']}-conflicting"}

    def corpus(service: str) -> list[Hostile]:
        found = cases(
            saga_id,
            step,
            command_id,
            saga_type=SAGA_TYPE,
            service=service,
            conflicting_input=conflicting,
        )
        return [c for c in found if c.targets != {API}]

    sagas = Target(
        topology.COORDINATOR_SAGAS_QUEUE,
        topology.SAGAS_EXCHANGE,
        topology.START_ROUTING_KEY,
        CLIENT_USER,
    )
    replies = Target(
        topology.COORDINATOR_REPLIES_QUEUE,
        topology.REPLIES_EXCHANGE,
        topology.REPLY_ROUTING_KEY,
        step_user,
    )
    aimed: list[tuple[Hostile, Target]] = []
    for case in corpus("vim"):
        if SAGAS in case.targets:
            aimed.append((case, sagas))
        if REPLIES in case.targets:
            aimed.append((case, replies))
    for service in SERVICES:
        commands = Target(
            topology.command_queue(service),
            topology.COMMANDS_EXCHANGE,
            service,
            COORDINATOR_USER,
        )
        aimed.extend((case, commands) for case in corpus(service) if COMMANDS in case.targets)
    serial = count()
    return [
        Copy(
            case=case,
            queue=target.queue,
            exchange=target.exchange,
            routing_key=target.routing_key,
            user=case.user_id or target.user,
            message_id=f"hostile-{next(serial):04d}-{case.name}-{copy}-{new_id()}",
            last=copy == case.repeat - 1,
        )
        for case, target in aimed
        for copy in range(case.repeat)
    ]


class Publishers:
    """A connection per broker user, a few confirming channels each."""

    def __init__(self, admin_url: str, stack: AsyncExitStack) -> None:
        self._admin_url = admin_url
        self._stack = stack
        self._channels: dict[str, list[aio_pika.abc.AbstractChannel]] = {}
        self._turn = count()

    async def open(self, user: str) -> None:
        connection = await aio_pika.connect(url_as(self._admin_url, user))
        self._stack.push_async_callback(connection.close)
        self._channels[user] = [
            await connection.channel(publisher_confirms=True) for _ in range(CHANNELS)
        ]

    async def publish(self, copy: Copy) -> None:
        channels = self._channels[copy.user]
        channel = channels[next(self._turn) % len(channels)]
        exchange = await channel.get_exchange(copy.exchange, ensure=False)
        message = aio_pika.Message(
            copy.case.body,
            message_id=copy.message_id,
            user_id=copy.user,
            headers=dict(copy.case.headers),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # Mandatory: a copy that routes nowhere fails here instead of never dying.
        await exchange.publish(message, copy.routing_key, mandatory=True)


async def publish_all(publishers: Publishers, copies: list[Copy]) -> None:
    """Publish every copy, IN_FLIGHT at a time; a case's copies in order, one after another."""
    by_case: dict[tuple[str, str], list[Copy]] = {}
    for copy in copies:
        by_case.setdefault((copy.case.name, copy.queue), []).append(copy)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one_case(mine: list[Copy]) -> None:
        async with gate:
            for copy in mine:
                await publishers.publish(copy)

    async with asyncio.TaskGroup() as group:
        for mine in by_case.values():
            group.create_task(one_case(mine))


@asynccontextmanager
async def intruder(vhost: str) -> AsyncIterator[None]:
    """The corpus's INTRUDER: a broker user with every right on `vhost`."""
    created = rabbitmqctl("add_user", INTRUDER, INTRUDER, check=False).returncode == 0
    if not created:
        # Left by another test on this broker: take it as it is, with its known password.
        rabbitmqctl("change_password", INTRUDER, INTRUDER)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, INTRUDER, ".*", ".*", ".*")
        yield
    finally:
        if created:
            rabbitmqctl("delete_user", INTRUDER, check=False)
        else:
            rabbitmqctl("clear_permissions", "-p", vhost, INTRUDER, check=False)


def summary(copies: list[Copy], rows: Mapping[str, Mapping[str, Any]], seconds: float) -> str:
    per_queue: dict[str, Counter[str]] = {}
    for copy in copies:
        row = rows.get(copy.message_id)
        reason = str(row["reason"]) if row else "acked"
        per_queue.setdefault(copy.queue, Counter())[reason] += 1
    parts = [
        f"{queue.removeprefix('convection.')}: "
        + " ".join(f"{reason}={n}" for reason, n in sorted(counts.items()))
        for queue, counts in sorted(per_queue.items())
    ]
    return (
        f"hostile queues: {len(copies)} publishes, {len(rows)} dead letters in {seconds:.1f}s | "
        + " | ".join(parts)
    )


def mismatches(copies: list[Copy], rows: Mapping[str, Mapping[str, Any]]) -> Iterator[str]:
    for copy in copies:
        row = rows.get(copy.message_id)
        got = None if row is None else (row["queue"], row["reason"])
        if copy.expect is not None and got != (copy.queue, copy.expect):
            error = f" ({row['error']})" if row is not None and row["error"] else ""
            yield f"{copy.case.name} on {copy.queue}: expected {copy.expect}, got {got}{error}"
        elif copy.last and copy.case.expect == DUPLICATE and row is not None:
            yield f"{copy.case.name} on {copy.queue}: a duplicate, yet dead-lettered as {got}"


@pytest.mark.timeout(300)
async def test_every_queue_dead_letters_the_hostile_corpus_with_its_reason(
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

    s = Ops(fresh_amqp_url, fresh_pg_url, tmp_path / "logs")
    s.api = f"http://127.0.0.1:{free_port()}"
    users = ",".join(f"{svc}={service_user(svc)}" for svc in SERVICES)
    async with intruder(vhost), s.running(), AsyncExitStack() as connections:
        s.spawn("vim_sim", "vim_sim")
        s.spawn(
            "coordinator",
            "coordinator",
            CONVECTION_AMQP_URL=url_as(fresh_amqp_url, COORDINATOR_USER),
            CONVECTION_SERVICE_USERS=users,
            CONVECTION_API_PORT=s.api.rsplit(":", 1)[1],
        )
        await s.consumers(topology.COORDINATOR_SAGAS_QUEUE)
        for service in SERVICES:
            s.spawn(
                f"{service}_adapter",
                f"{service}_adapter",
                CONVECTION_AMQP_URL=url_as(fresh_amqp_url, service_user(service)),
                CONVECTION_COORDINATOR_USER=COORDINATOR_USER,
                CONVECTION_DECLARE_TOPOLOGY="false",
            )
        for service in SERVICES:
            await s.consumers(topology.command_queue(service))

        # One real saga to completion: the corpus's replies and commands aim at it.
        data = s.account("vim-osm-1")
        await s.start(SAGA_TYPE, "acct", data)
        assert await s.ended("acct") == "completed"
        [step] = await s.sql(
            "SELECT name, service, command_id FROM saga_steps WHERE saga_id = 'acct' AND name = $1",
            STEP,
        )
        sent = await s.sql(
            "SELECT detail->>'command_id' AS command_id FROM saga_history WHERE saga_id = 'acct'"
            " AND step = $1 AND detail->>'command_id' IS NOT NULL ORDER BY id",
            STEP,
        )
        command_id = str(sent[-1]["command_id"])
        assert command_id == step["command_id"], "the step's last command, in both tables"
        copies = plan("acct", STEP, command_id, service_user(step["service"]), data)
        assert len({c.message_id for c in copies}) == len(copies)

        publishers = Publishers(fresh_amqp_url, connections)
        for user in sorted({c.user for c in copies}):
            await publishers.open(user)
        began = time.monotonic()
        await publish_all(publishers, copies)

        # One wait for all: every dead letter expected is in the table, the coordinator
        # counted the duplicates it acked, and nothing is left in any queue.
        expected = [c.message_id for c in copies if c.expect is not None]
        duplicates = Counter(c.queue for c in copies if c.case.expect == DUPLICATE and c.last)
        assert set(duplicates) <= {
            topology.COORDINATOR_REPLIES_QUEUE,
            topology.COORDINATOR_SAGAS_QUEUE,
        }, "a duplicate case on a command queue: count the adapters' duplicates too"

        async def settled() -> bool:
            rows = await s.sql(
                "SELECT count(*) AS n FROM dead_letters WHERE message_id = ANY($1::text[])",
                expected,
            )
            if rows[0]["n"] < len(expected):
                return False
            samples = await metrics(f"{s.api}/metrics")
            for queue, n in duplicates.items():
                acked = sample(
                    samples, "convection_coordinator_messages_total", queue=queue, outcome=DUPLICATE
                )
                if acked < n:
                    return False
            depths = await asyncio.to_thread(queue_depths, vhost)
            return not any(depths.values())

        async def dead_letters() -> dict[str, dict[str, Any]]:
            found = await s.sql(
                "SELECT message_id, queue, reason, error, encode(sha256(body), 'hex') AS digest"
                " FROM dead_letters"
            )
            return {str(r["message_id"]): dict(r) for r in found}

        try:
            await s.until("every hostile copy is handled and collected", settled, within=150)
        except AssertionError as exc:
            wrong = "\n".join(mismatches(copies, await dead_letters()))
            depths = await asyncio.to_thread(queue_depths, vhost)
            raise AssertionError(f"{wrong}\nqueues: {depths}\n{exc}") from None
        seconds = time.monotonic() - began
        rows = await dead_letters()
        print("\n" + summary(copies, rows, seconds))

        wrong = list(mismatches(copies, rows))
        assert not wrong, f"{len(wrong)} case(s) got the wrong treatment:\n" + "\n".join(wrong)
        altered = [
            f"{c.case.name} on {c.queue}"
            for c in copies
            if c.message_id in rows
            and rows[c.message_id]["digest"] != hashlib.sha256(c.case.body).hexdigest()
        ]
        assert not altered, f"dead letters whose body is not what was published: {altered}"
        ours = {c.message_id for c in copies}
        stray = [r for r in rows.values() if r["message_id"] not in ours]
        assert not stray, f"dead letters nobody published: {stray}"
        reasonless = [r for r in rows.values() if r["reason"] in (None, "", "unknown")]
        assert not reasonless, f"dead-lettered without a reason: {reasonless}"

        # The system survived: every process runs, and a new saga completes.
        dead = [svc.name for svc in s.group if not svc.running]
        assert not dead, f"exited: {dead}\n{s.group.logs()}"
        await s.start(SAGA_TYPE, "acct-after", s.account("vim-osm-2"))
        assert await s.ended("acct-after") == "completed"
        dead = [svc.name for svc in s.group if not svc.running]
        assert not dead, f"exited: {dead}\n{s.group.logs()}"
