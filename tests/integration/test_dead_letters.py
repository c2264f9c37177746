"""Dead letters of the coordinator's queues, collected into `dead_letters`, listed and replayed.

Real RabbitMQ and PostgreSQL. The replay story is a rolling upgrade: a StartSaga of a saga type
that the running coordinators do not have yet is dead-lettered (`unknown_saga_type`); once
coordinators with the new package run, an operator replays it and the saga runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from contracts import CancelSaga, Reply, encode, topology
from convection.transport import Transport
from coordinator.api import ApiServer, ApiSettings
from coordinator.service import Coordinator
from sagas import OSM_SAGAS, Registry, osm_registry
from tests.integration.coord_support import (
    Db,
    Participant,
    eventually,
    migrate,
    open_client,
    settings,
    start_saga,
)
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]

OPERATOR, READER = "dl-operator", "dl-reader"
TOKENS: Any = {OPERATOR: {"role": "operator", "name": "carol"}, READER: "reader"}
SAGAS_Q, REPLIES_Q = topology.COORDINATOR_SAGAS_QUEUE, topology.COORDINATOR_REPLIES_QUEUE
BEFORE_UPGRADE = Registry([s for s in OSM_SAGAS if s.name != "vim-account.create"])


class Api:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def call(
        self, method: str, path: str, body: Any = None, token: str = OPERATOR, **params: str
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers, params=params or None
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def items(self, **params: str) -> list[dict[str, Any]]:
        status, body = await self.call("GET", "/dead-letters", **params)
        assert status == 200, body
        return list(body["items"])


@asynccontextmanager
async def replica(amqp_url: str, pg_url: str, registry: Registry) -> AsyncIterator[Coordinator]:
    async with Coordinator(settings(amqp_url, pg_url), registry=registry) as coordinator:
        yield coordinator


@asynccontextmanager
async def api_of(coordinator: Coordinator) -> AsyncIterator[Api]:
    server = ApiServer(coordinator, ApiSettings(port=0, tokens=TOKENS))
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(url, session)
    finally:
        await server.stop()


def collected(coordinator: Coordinator, queue: str, reason: str) -> float:
    counter = coordinator.metrics.dead_letters_collected.labels(queue, reason)
    return float(counter._value.get())


def _reply(saga_id: str) -> Reply:
    return Reply(
        command_id="c1", saga_id=saga_id, step="validate", attempt=1, outcome="succeeded", result={}
    )


async def _publish(client: Transport, exchange: str, key: str, body: bytes, mid: str) -> None:
    await client.publish(exchange, key, body, message_id=mid)


@pytest.mark.timeout(120)
async def test_dead_letters_are_collected_listed_paged_replayed_and_purged(
    fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    await migrate(fresh_pg_url)
    client = await open_client(fresh_amqp_url)
    participant = Participant(await open_client(fresh_amqp_url))
    await participant.start()
    db = Db(fresh_pg_url)
    try:
        async with replica(fresh_amqp_url, fresh_pg_url, BEFORE_UPGRADE) as old:
            await _bad_input_is_collected_and_listed(old, client, db)
        # The upgrade: two replicas that have vim-account.create, collecting side by side.
        async with (
            replica(fresh_amqp_url, fresh_pg_url, osm_registry()) as new_a,
            replica(fresh_amqp_url, fresh_pg_url, osm_registry()) as new_b,
            api_of(new_a) as api,
        ):
            await _copies_make_one_row(new_a, new_b, client, db)
            await _replay_runs_the_saga(api, db)
            await _purge(api, db)
    finally:
        await participant.stop()
        await participant.transport.close()
        await client.close()
        await db.close()


async def _bad_input_is_collected_and_listed(old: Coordinator, client: Transport, db: Db) -> None:
    start, cancel = topology.START_ROUTING_KEY, topology.CANCEL_ROUTING_KEY
    sagas, replies = topology.SAGAS_EXCHANGE, topology.REPLIES_EXCHANGE
    await start_saga(client, "vim-account.create", "dl-late", example("vim-account.create"))
    await _publish(client, sagas, start, b"{not json", "dl-json")
    await _publish(client, sagas, cancel, encode(CancelSaga(saga_id="nobody", reason="x")), "dl-c")
    await _publish(client, replies, topology.REPLY_ROUTING_KEY, b"\xff\xfe", "dl-bytes")
    await _publish(client, replies, topology.REPLY_ROUTING_KEY, encode(_reply("ghost")), "dl-r")

    async def five() -> bool:
        return bool(await db.scalar("SELECT count(*) FROM dead_letters") == 5)

    await eventually(five, within=20)
    async with api_of(old) as api:
        everything = await api.items()
        reasons = {(i["queue"], i["reason"]) for i in everything}
        assert reasons == {
            (SAGAS_Q, "unknown_saga_type"),
            (SAGAS_Q, "invalid_json"),
            (SAGAS_Q, "unknown_saga"),
            (REPLIES_Q, "invalid_json"),
            (REPLIES_Q, "unknown_saga"),
        }
        stamps = [(i["dead_at"], i["id"]) for i in everything]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        assert all(i["dead_at"].endswith("Z") and i["replayed_at"] is None for i in everything)
        late = next(i for i in everything if i["reason"] == "unknown_saga_type")
        assert (late["message_type"], late["saga_id"]) == ("saga.start", "dl-late")
        assert late["size"] > 0 and late["message_id"]

        # Filters, each alone and together; a reader may list.
        assert len(await api.items(reason="invalid_json")) == 2
        assert len(await api.items(queue=REPLIES_Q)) == 2
        assert [i["id"] for i in await api.items(queue=REPLIES_Q, reason="unknown_saga")] == [
            next(i["id"] for i in everything if i["message_id"] == "dl-r")
        ]
        assert [i["id"] for i in await api.items(saga_id="dl-late")] == [late["id"]]
        assert len(await api.items(replayed="false")) == 5
        assert await api.items(replayed="true") == []
        status, _ = await api.call("GET", "/dead-letters", token=READER)
        assert status == 200

        # Pages of two, by the opaque cursor, cover everything once, in order.
        paged: list[dict[str, Any]] = []
        cursor = ""
        while True:
            status, page = await api.call("GET", "/dead-letters", limit="2", cursor=cursor)
            assert status == 200, page
            paged += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert paged == everything

        # Unknown parameters and bad values are named.
        for params, named in (
            ({"colour": "red", "queue": SAGAS_Q}, "colour"),
            ({"limit": "lots"}, "limit"),
            ({"limit": "0"}, "limit"),
            ({"replayed": "maybe"}, "replayed"),
            ({"cursor": "not-a-cursor"}, "cursor"),
        ):
            status, problem = await api.call("GET", "/dead-letters", **params)
            assert status == 400, (params, problem)
            assert named in problem["detail"], problem

        # Details: headers, and the body as text or as base64.
        status, detail = await api.call("GET", f"/dead-letters/{late['id']}", token=READER)
        assert status == 200
        assert json.loads(detail["body"])["saga_id"] == "dl-late"
        assert detail["headers"][topology.REASON_HEADER] == "unknown_saga_type"
        assert detail["headers"][topology.ORIGINAL_EXCHANGE_HEADER] == topology.SAGAS_EXCHANGE
        assert detail["headers"][topology.ORIGINAL_ROUTING_KEY_HEADER] == start
        raw = next(i for i in everything if i["message_id"] == "dl-bytes")
        status, detail = await api.call("GET", f"/dead-letters/{raw['id']}")
        assert (status, detail["body_base64"], "body" in detail) == (200, "//4=", False)
        for missing in ("999999", "abc"):
            status, problem = await api.call("GET", f"/dead-letters/{missing}")
            assert status == 404, problem

    # Counted where collected, by source queue and reason.
    assert collected(old, SAGAS_Q, "unknown_saga_type") == 1
    assert collected(old, REPLIES_Q, "invalid_json") == 1
    assert collected(old, SAGAS_Q, "invalid_json") == 1


async def _copies_make_one_row(a: Coordinator, b: Coordinator, client: Transport, db: Db) -> None:
    # The same dead letter parked five times (as a crash between publish and ack would),
    # collected by two replicas at once: one row, counted once.
    headers = {topology.REASON_HEADER: "unknown_step", topology.SOURCE_QUEUE_HEADER: REPLIES_Q}
    for _ in range(5):
        await client.publish(
            topology.DEAD_LETTER_EXCHANGE,
            REPLIES_Q,
            encode(_reply("twice")),
            message_id="dl-copies",
            headers=headers,
        )

    async def drained() -> bool:
        dead = topology.dead_letter_queue(REPLIES_Q)
        return await client.queue_depth(dead) == 0

    await eventually(drained, within=20)
    await asyncio.sleep(0.3)  # the last acks follow their commits
    rows = await db.scalar("SELECT count(*) FROM dead_letters WHERE message_id = 'dl-copies'")
    assert rows == 1
    assert collected(a, REPLIES_Q, "unknown_step") + collected(b, REPLIES_Q, "unknown_step") == 1


async def _replay_runs_the_saga(api: Api, db: Db) -> None:
    [late] = await api.items(saga_id="dl-late")
    status, problem = await api.call(
        "POST", f"/dead-letters/{late['id']}/replay", {"reason": "x"}, token=READER
    )
    assert status == 403, problem
    status, problem = await api.call("POST", f"/dead-letters/{late['id']}/replay", {})
    assert status == 422, problem
    status, done = await api.call(
        "POST", f"/dead-letters/{late['id']}/replay", {"reason": "vim-account.create deployed"}
    )
    assert status == 202, done
    assert done["id"] == late["id"] and done["replay_message_id"] != late["message_id"]

    async def completed() -> bool:
        return (await db.statuses()).get("dl-late") == "completed"

    await eventually(completed, within=30)
    status, detail = await api.call("GET", f"/dead-letters/{late['id']}")
    assert detail["replay_message_id"] == done["replay_message_id"]
    assert detail["replayed_at"].endswith("Z")
    assert (detail["replayed_by"], detail["replay_reason"]) == (
        "carol",
        "vim-account.create deployed",
    )
    assert [i["id"] for i in await api.items(replayed="true")] == [late["id"]]
    # Once is enough, unless asked again; a missing one is 404.
    status, problem = await api.call("POST", f"/dead-letters/{late['id']}/replay", {"reason": "y"})
    assert status == 409 and "again" in problem["detail"], problem
    status, again = await api.call(
        "POST", f"/dead-letters/{late['id']}/replay", {"reason": "y", "again": True}
    )
    assert status == 202 and again["replay_message_id"] != done["replay_message_id"]
    status, _ = await api.call("POST", "/dead-letters/999999/replay", {"reason": "y"})
    assert status == 404
    history = await db.history("dl-late")
    assert [h["kind"] for h in history].count("saga.created") == 1


async def _purge(api: Api, db: Db) -> None:
    status, problem = await api.call("POST", "/dead-letters/purge", {})
    assert status == 400, problem
    status, problem = await api.call("POST", "/dead-letters/purge", {"ids": []})
    assert status == 400, problem
    status, problem = await api.call("POST", "/dead-letters/purge", {"replayed": True}, READER)
    assert status == 403, problem
    status, done = await api.call("POST", "/dead-letters/purge", {"replayed": True})
    assert (status, done) == (200, {"purged": 1})
    json_ones = [i["id"] for i in await api.items(reason="invalid_json")]
    status, done = await api.call(
        "POST", "/dead-letters/purge", {"ids": json_ones, "queue": SAGAS_Q}
    )
    assert (status, done) == (200, {"purged": 1})
    assert await db.scalar("SELECT count(*) FROM dead_letters") == 4
