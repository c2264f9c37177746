"""The fault checker can fail: each kind of breakage, planted by hand, moves its figure to 1.

A small world that is right (a completed saga, a compensated one whose network was created
and deleted again in the VIM) is checked clean; then one breakage at a time is planted in the
coordinator's tables, the VIM simulator or a dead-letter queue, and only its figure moves.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest

from contracts import topology
from tests.faults._replay import Entry, illegal_transitions
from tests.faults.checker import FIGURES, CheckReport, Sources, check
from tests.integration.coord_support import migrate
from vim_sim import VimSimSettings, VimSimulator

pytestmark = [pytest.mark.postgres, pytest.mark.amqp]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _saga_sql() -> str:
    return (
        "INSERT INTO sagas (id, type, definition_version, status, phase, input, resources,"
        " deadline_fired, created_at, updated_at, seq, version)"
        " VALUES ($1, 'ns.instantiate', 1, $2, $3, '{}', '[]', false, $4, $4, 0, 1)"
    )


def _step_sql() -> str:
    return (
        "INSERT INTO saga_steps (saga_id, name, ordinal, stage, service, action, kind, status,"
        " run, attempt, comp_status, comp_run, comp_attempt, uncertain)"
        " VALUES ($1, $2, 0, 0, 'ro', 'ro.create-networks', 'compensatable', $3, 1, 1, $4, 1,"
        " 1, $5)"
    )


async def _saga(conn: asyncpg.Connection, saga_id: str, *path: str) -> None:
    """A saga row in the last status of `path`, with the history that led there."""
    phase = "compensation" if "compensating" in path else "forward"
    await conn.execute(_saga_sql(), saga_id, path[-1], phase, NOW)
    moves = [("saga.created", None, "pending")] + [
        ("saga.status", old, new) for old, new in itertools.pairwise(path)
    ]
    for kind, old, new in moves:
        await conn.execute(
            "INSERT INTO saga_history (saga_id, at, kind, from_status, to_status, cause, detail)"
            " VALUES ($1, $2, $3, $4, $5, 'test', '{}')",
            saga_id,
            NOW,
            kind,
            old,
            new,
        )


class World:
    """The coordinator's database, an in-process VIM simulator on it, and a vhost."""

    def __init__(self, conn: asyncpg.Connection, sim: str, amqp_url: str, pg_url: str) -> None:
        self.conn, self.sim, self.amqp_url, self.pg_url = conn, sim, amqp_url, pg_url
        self.token = ""

    async def check(self, started: list[str]) -> CheckReport:
        sources = Sources(db_dsn=self.pg_url, sim_url=self.sim, amqp_url=self.amqp_url)
        report = await check(sources, started=started)
        print(report.render())
        return report

    async def vim(
        self, method: str, path: str, saga_id: str, body: Any = None, key: str = "net"
    ) -> Any:
        headers = {"X-Auth-Token": self.token, "X-Convection-Saga-Id": saga_id}
        headers |= {"X-Convection-Step": "networks", "X-Idempotency-Key": f"{saga_id}/{key}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.sim + path, json=body, headers=headers) as resp,
        ):
            assert resp.status < 300, await resp.text()
            return await resp.json() if resp.status != 204 else None

    async def login(self) -> None:
        user = {"name": "osm", "password": "osm", "domain": {"name": "Default"}}
        auth = {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"name": "osm", "domain": {"name": "Default"}}},
            }
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.sim}/identity/v3/auth/tokens", json=auth) as resp,
        ):
            assert resp.status == 201
            self.token = resp.headers["X-Subject-Token"]


@pytest.fixture
async def world(fresh_pg_url: str, fresh_amqp_url: str) -> AsyncIterator[World]:
    await migrate(fresh_pg_url)
    settings = VimSimSettings(db_url=fresh_pg_url, port=0, boot_seconds=0)
    conn = await asyncpg.connect(fresh_pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with VimSimulator(settings) as sim:
            w = World(conn, sim.url, fresh_amqp_url, fresh_pg_url)
            await w.login()
            yield w
    finally:
        await conn.close()


def _moved(before: CheckReport, after: CheckReport) -> dict[str, int]:
    return {
        name: after.figures[name] - before.figures[name]
        for name in FIGURES
        if after.figures[name] != before.figures[name]
    }


@pytest.mark.timeout(120)
async def test_each_breakage_moves_its_own_figure(world: World) -> None:
    conn = world.conn
    await _saga(conn, "ok", "pending", "running", "completed")
    await _saga(conn, "undone", "pending", "running", "compensating", "compensated")
    await conn.execute(_step_sql(), "undone", "networks", "succeeded", "done", False)
    created = await world.vim(
        "POST", "/network/v2.0/networks", "undone", {"network": {"name": "n"}}
    )
    net = created["network"]["id"]
    await world.vim("DELETE", f"/network/v2.0/networks/{net}", "undone")
    report = await world.check(["ok", "undone"])
    report.assert_clean()
    assert report.info["by_status"] == {"compensated": 1, "completed": 1}

    async def planted(figure: str, started: list[str]) -> None:
        nonlocal report
        after = await world.check(started)
        assert _moved(report, after) == {figure: 1}, after.render()
        with pytest.raises(AssertionError, match=figure):
            after.assert_clean()
        report = after

    # A resource left behind by a compensated saga.
    stray = {"network": {"name": "stray"}}
    await world.vim("POST", "/network/v2.0/networks", "undone", stray, key="stray")
    await planted("leftovers", ["ok", "undone"])
    # A saga that was started and never recorded.
    await planted("lost", ["ok", "undone", "never-recorded"])
    started = ["ok", "undone", "never-recorded"]
    # A running saga that nothing will move: no step in flight, no timer, no lock, no outbox.
    await _saga(conn, "stuck", "pending", "running")
    await planted("stuck", started)
    # The VIM applying one create twice under one key (written past the simulator's guard).
    await conn.execute(
        "INSERT INTO vimsim_ledger (at, saga_id, step, action, project_id, operation,"
        " resource_type, resource_id, idempotency_key)"
        " SELECT at, saga_id, step, action, project_id, operation, resource_type,"
        " 'another-id', idempotency_key FROM vimsim_ledger WHERE operation = 'create_network'"
        " ORDER BY seq LIMIT 1"
    )
    await planted("duplicate_effects", started)
    # A compensation of a step that failed for certain (nothing to undo).
    await conn.execute(_step_sql(), "undone", "other", "failed", "done", False)
    await planted("needless_undo", started)
    # A move the tables forbid: a step of the completed saga succeeded without being sent.
    await conn.execute(
        "INSERT INTO saga_history (saga_id, at, kind, step, from_status, to_status, cause,"
        " detail) VALUES ('ok', $1, 'step.succeeded', 'x', 'pending', 'succeeded', 'test', '{}')",
        NOW,
    )
    await planted("illegal_transitions", started)
    # A command the relay never sent.
    await conn.execute(
        "INSERT INTO outbox (saga_id, exchange, routing_key, message_id, body, headers,"
        " mandatory, created_at, available_at, attempts)"
        " VALUES ('ok', 'convection.commands', 'ro', 'm-1', '\\x7b7d', '{}', true, $1, $1, 3)",
        NOW,
    )
    await planted("unsent_outbox", started)
    # A dead letter collected without a reason, then one still waiting in a `.dead` queue.
    await conn.execute(
        "INSERT INTO dead_letters (dedupe_key, queue, reason, headers, body, dead_at,"
        " collected_at) VALUES ('k', 'convection.coordinator.replies', 'unknown', '{}',"
        " '\\x7b7d', $1, $1)",
        NOW,
    )
    await planted("dead_without_reason", started)
    await _dead_letter_without_reason(world.amqp_url)
    await planted("dead_without_reason", started)
    assert report.info["dead_queued"] == 1


async def _dead_letter_without_reason(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = topology.dead_letter_queue(topology.COORDINATOR_REPLIES_QUEUE)
        await channel.declare_queue(dead, durable=True, arguments={"x-queue-type": "quorum"})
        body = json.dumps({"type": "step.reply"}).encode()
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id="no-reason", headers={"x-other": "1"}), dead
        )


def test_replay_tells_a_gap_from_an_unlogged_allowed_move() -> None:
    logged = [
        Entry("saga.created", None, None, "pending"),
        Entry("saga.status", None, "pending", "running"),
        Entry("step.started", "a", "pending", "running"),
        # running -> failed with the move to running unlogged (a payload that cannot be built)
        Entry("step.failed", "b", "running", "failed"),
        Entry("saga.status", None, "running", "compensating"),
        Entry("saga.status", None, "compensating", "failed"),
    ]
    assert illegal_transitions("s", logged, "failed") == []
    same = [*logged[:3], Entry("step.succeeded", "a", "succeeded", "succeeded")]
    assert illegal_transitions("s", same, "running") == []  # no move: nothing to check
    # none -> retry_wait cannot happen unlogged: a gap, though retry_wait -> running is allowed.
    jump = [*logged[:3], Entry("compensation.started", "a", "retry_wait", "running")]
    assert len(illegal_transitions("s", jump, "running")) == 1
    forbidden = [*logged[:3], Entry("step.succeeded", "c", "pending", "succeeded")]
    assert len(illegal_transitions("s", forbidden, "running")) == 1
    wrong_end = illegal_transitions("s", logged, "completed")
    assert wrong_end == ["s: history ends in failed, the row says completed"]
