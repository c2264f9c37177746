"""Helpers of the HTTP API tests: tokens, a steerable participant, the API under test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

import contracts
from contracts import Command, ErrorInfo, decode, encode, topology
from convection.transport import Delivery
from coordinator.api import ApiServer, ApiSettings
from coordinator.service import Coordinator
from sagas import osm_registry
from tests.integration.coord_support import (
    Db,
    Participant,
    eventually,
    migrate,
    open_client,
    settings,
)
from tests.unit.world import example

OPERATOR, READER = "op-secret", "read-secret"
TOKENS = {OPERATOR: {"role": "operator", "name": "alice"}, READER: "reader"}


@dataclass
class UndoFailing(Participant):
    """The test participant, but compensations of the sagas in `fail_undo` fail for good."""

    fail_undo: set[str] = field(default_factory=set)

    async def _handle(self, delivery: Delivery) -> None:
        cmd = decode(delivery.body)
        assert isinstance(cmd, Command)
        if cmd.compensation and cmd.saga_id in self.fail_undo:
            self.received.append(cmd)
            error = ErrorInfo(code="undo_broken", message="the compensation fails on purpose")
            reply = contracts.reply_to(cmd, "failed", error=error)
            await self.transport.publish(
                topology.REPLIES_EXCHANGE,
                topology.REPLY_ROUTING_KEY,
                encode(reply),
                message_id=reply.message_id,
            )
            await delivery.ack()
            return
        await super()._handle(delivery)


@dataclass
class Api:
    """The API under test, its coordinator, participant and database."""

    url: str
    coordinator: Coordinator
    participant: UndoFailing
    db: Db
    session: aiohttp.ClientSession
    hold: set[str] = field(default_factory=set)
    """Sagas whose ns-record command is never answered."""
    fail: set[str] = field(default_factory=set)
    """Sagas whose networks (or validate) step fails for good."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = OPERATOR,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.url + path, data=data, headers=h, params=params
        ) as resp:
            raw = await resp.read()
            try:
                decoded: Any = json.loads(raw)
            except ValueError:
                decoded = raw.decode()
            return resp.status, resp.headers, decoded

    async def start(self, saga_type: str, data: dict[str, Any], **extra: Any) -> str:
        status, headers, body = await self.call(
            "POST", "/sagas", body={"saga_type": saga_type, "input": data, **extra}
        )
        assert status == 202, body
        assert headers["Location"] == f"/sagas/{body['saga_id']}"
        return str(body["saga_id"])

    async def saga(self, saga_id: str) -> dict[str, Any]:
        status, _, body = await self.call("GET", f"/sagas/{saga_id}", token=READER)
        assert status == 200, body
        return dict(body)

    async def until(self, saga_id: str, status: str, within: float = 20.0) -> dict[str, Any]:
        async def reached() -> bool:
            return bool((await self.saga(saga_id))["status"] == status)

        await eventually(reached, within=within)
        return await self.saga(saga_id)


async def steered_participant(amqp_url: str) -> tuple[UndoFailing, set[str], set[str]]:
    """A started fake participant: sagas in `hold` wait at ns-record, those in `fail` fail."""
    participant = UndoFailing(await open_client(amqp_url))
    hold: set[str] = set()
    fail: set[str] = set()

    def choose(cmd: Command) -> str | None:
        if cmd.saga_id in hold and cmd.step == "ns-record":
            return "hold"
        if cmd.saga_id in fail and cmd.step in ("networks", "validate"):
            return "failed"
        return None

    participant.choose = choose
    await participant.start()
    return participant, hold, fail


@asynccontextmanager
async def serving_api(
    urls: tuple[str, str], *, timer_interval: float | None = None, max_body_bytes: int | None = None
) -> AsyncIterator[Api]:
    """A migrated database, the steered participant, a coordinator and its API server."""
    amqp_url, pg_url = urls
    await migrate(pg_url)
    participant, hold, fail = await steered_participant(amqp_url)
    db = Db(pg_url)
    timers = {} if timer_interval is None else {"timer_interval": timer_interval}
    limits = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    try:
        async with (
            Coordinator(
                settings(amqp_url, pg_url, **timers), registry=osm_registry()
            ) as coordinator,
            aiohttp.ClientSession() as session,
        ):
            server = ApiServer(coordinator, ApiSettings(port=0, tokens=TOKENS, **limits))
            url = await server.start()
            try:
                yield Api(url, coordinator, participant, db, session, hold, fail)
            finally:
                await server.stop()
    finally:
        await participant.stop()
        await participant.transport.close()
        await db.close()


def ns_input(ns_id: str) -> dict[str, Any]:
    return example("ns.instantiate", ns_id=ns_id)


async def _compensation_failed(api: Api, saga_id: str, ns_id: str) -> dict[str, Any]:
    api.fail.add(saga_id)
    api.participant.fail_undo.add(saga_id)
    await api.start("ns.instantiate", ns_input(ns_id), saga_id=saga_id)
    saga = await api.until(saga_id, "compensation_failed")
    steps = {s["name"]: s for s in saga["steps"]}
    assert steps["networks"]["status"] == "failed"
    assert steps["networks"]["last_error"]["code"] == "test"
    assert steps["ns-record"]["status"] == "compensation_failed"
    assert steps["ns-record"]["last_error"]["code"] == "undo_broken"
    return saga
