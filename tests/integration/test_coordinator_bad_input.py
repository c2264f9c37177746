"""Bad input over the real broker: every case lands in a dead-letter queue with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterator

import aio_pika
import pytest

import contracts
from contracts import MAX_MESSAGE_BYTES, CancelSaga, Reply, StartSaga, encode, topology
from convection.transport import Transport
from tests.integration.coord_support import Rig, eventually, running_rig, start_saga
from tests.services import postgres_database, rabbitmq_vhost
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]

SAGAS_DEAD = topology.dead_letter_queue(topology.COORDINATOR_SAGAS_QUEUE)
REPLIES_DEAD = topology.dead_letter_queue(topology.COORDINATOR_REPLIES_QUEUE)


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    with rabbitmq_vhost() as amqp_url, postgres_database() as pg_url:
        yield amqp_url, pg_url


def _reply(saga_id: str, step: str) -> Reply:
    return Reply(
        command_id="c1",
        saga_id=saga_id,
        step=step,
        attempt=1,
        outcome="succeeded",
        result={},
    )


async def _publish(client: Transport, routing_key: str, body: bytes, message_id: str) -> None:
    exchange = (
        topology.REPLIES_EXCHANGE
        if routing_key == topology.REPLY_ROUTING_KEY
        else topology.SAGAS_EXCHANGE
    )
    await client.publish(exchange, routing_key, body, message_id=message_id)


async def _drain(client: Transport, queue: str) -> dict[str, str]:
    out: dict[str, str] = {}
    while (delivery := await client.get(queue)) is not None:
        out[delivery.message_id or ""] = delivery.headers[topology.REASON_HEADER]
        assert delivery.headers[topology.SOURCE_QUEUE_HEADER] == queue.removesuffix(".dead")
        await delivery.ack()
    return out


async def test_every_bad_input_is_dead_lettered_and_good_sagas_still_run(
    urls: tuple[str, str],
) -> None:
    # This test reads the dead-letter queues itself (tests/integration/test_dead_letters.py
    # covers the coordinator collecting them).
    async with running_rig(*urls, collect_dead_letters=False) as rig:
        await _bad_inputs_then_a_good_saga(rig)


async def _bad_inputs_then_a_good_saga(rig: Rig) -> None:
    client = rig.client
    start = topology.START_ROUTING_KEY
    # A known saga, to send a reply for a step it does not have.
    await start_saga(client, "vim-account.create", "known", example("vim-account.create"))
    await rig.until("known", "completed")
    good_start = json.loads(encode(StartSaga(saga_type="ns.instantiate", saga_id="x")))
    cases: dict[str, tuple[str, bytes, str]] = {
        "m-json": (start, b"{not json", "invalid_json"),
        "m-array": (start, b"[1, 2]", "not_an_object"),
        "m-type": (start, json.dumps({"type": "saga.explode"}).encode(), "unknown_type"),
        "m-version": (
            start,
            json.dumps({**good_start, "schema_version": 99}).encode(),
            "unsupported_schema_version",
        ),
        "m-large": (start, b" " * (MAX_MESSAGE_BYTES + 1), "too_large"),
        "m-invalid": (start, json.dumps({"type": "saga.start"}).encode(), "invalid_message"),
        "m-saga-type": (
            start,
            encode(StartSaga(saga_type="no.such-saga", saga_id="s-unknown-type")),
            "unknown_saga_type",
        ),
        "m-input": (
            start,
            encode(StartSaga(saga_type="ns.instantiate", saga_id="s-bad-input", input={})),
            "invalid_input",
        ),
        "m-cancel-unknown": (
            topology.CANCEL_ROUTING_KEY,
            encode(CancelSaga(saga_id="nobody", reason="x")),
            "unknown_saga",
        ),
        "m-reply-on-sagas": (start, encode(_reply("known", "validate")), "unexpected_type"),
    }
    reply_cases: dict[str, tuple[str, bytes, str]] = {
        "r-unknown-saga": (
            topology.REPLY_ROUTING_KEY,
            encode(_reply("nobody", "validate")),
            "unknown_saga",
        ),
        "r-unknown-step": (
            topology.REPLY_ROUTING_KEY,
            encode(_reply("known", "no-such-step")),
            "unknown_step",
        ),
        "r-json": (topology.REPLY_ROUTING_KEY, b"\xff\xfe", "invalid_json"),
        "r-start-on-replies": (
            topology.REPLY_ROUTING_KEY,
            encode(StartSaga(saga_type="vim-account.create", saga_id="wrong-queue")),
            "unexpected_type",
        ),
    }
    for message_id, (key, body, _) in {**cases, **reply_cases}.items():
        await _publish(client, key, body, message_id)
    # A good saga right after the bad input still completes.
    await start_saga(client, "ns.instantiate", "after-bad", example("ns.instantiate"))
    await rig.until("after-bad", "completed")

    seen_sagas: dict[str, str] = {}
    seen_replies: dict[str, str] = {}

    async def all_dead() -> bool:
        seen_sagas.update(await _drain(client, SAGAS_DEAD))
        seen_replies.update(await _drain(client, REPLIES_DEAD))
        return len(seen_sagas) >= len(cases) and len(seen_replies) >= len(reply_cases)

    await eventually(all_dead, within=15)
    assert seen_sagas == {k: reason for k, (_, _, reason) in cases.items()}
    assert seen_replies == {k: reason for k, (_, _, reason) in reply_cases.items()}
    # Nothing was created by the bad messages, and each was counted by reason.
    statuses = await rig.db.statuses()
    assert not {"s-unknown-type", "s-bad-input", "x", "wrong-queue"} & set(statuses)
    dead = rig.coordinator.metrics.dead_letters
    assert dead.labels("unknown_step")._value.get() == 1
    assert dead.labels("invalid_json")._value.get() == 2
    assert await client.queue_depth(topology.COORDINATOR_SAGAS_QUEUE) == 0


async def test_duplicate_messages_change_nothing(urls: tuple[str, str]) -> None:
    async with running_rig(*urls) as rig:
        msg = await start_saga(
            rig.client, "vim-account.create", "dup", example("vim-account.create")
        )
        await rig.until("dup", "completed")
        # The same StartSaga again (a redelivery), and another one for the same saga id.
        body = encode(msg)
        await _publish(rig.client, topology.START_ROUTING_KEY, body, msg.message_id)
        await start_saga(rig.client, "vim-account.create", "dup", example("vim-account.create"))
        # A replayed reply of the finished saga.
        cmd = next(c for c in rig.participant.received if c.saga_id == "dup")
        reply = contracts.reply_to(cmd, "succeeded", result={"project_id": "p1"})
        await _publish(rig.client, topology.REPLY_ROUTING_KEY, encode(reply), reply.message_id)
        dups = rig.coordinator.metrics.duplicates

        async def counted() -> bool:
            total = sum(dups.labels(k)._value.get() for k in ("saga.start", "step.reply"))
            return bool(total >= 3)

        await eventually(counted, within=10)
        history = await rig.db.history("dup")
        assert [r["kind"] for r in history].count("saga.created") == 1
        assert len([c for c in rig.participant.received if c.saga_id == "dup"]) == 2


async def test_a_refused_start_is_answered_with_a_rejected_lifecycle_event(
    urls: tuple[str, str],
) -> None:
    async with running_rig(*urls, collect_dead_letters=False) as rig:
        connection = await aio_pika.connect_robust(urls[0])
        async with connection:
            channel = await connection.channel()
            events = await channel.get_exchange(topology.EVENTS_EXCHANGE)
            watch = await channel.declare_queue(exclusive=True)
            await watch.bind(events, "saga.#.rejected")
            await start_saga(rig.client, "no.such-saga", "rej-type", {})
            await start_saga(rig.client, "ns.instantiate", "rej-input", {"ns_id": "x"})
            account = example("vim-account.create", vim_account_id="vim-taken")
            await start_saga(rig.client, "vim-account.create", "taken", account)
            await rig.until("taken", "completed")
            # The same id again with another input: refused (conflict), not silently dropped.
            other = example("vim-account.create", vim_account_id="vim-other")
            await start_saga(rig.client, "vim-account.create", "taken", other)
            seen: dict[str, dict[str, object]] = {}

            async def both() -> bool:
                while (msg := await watch.get(fail=False)) is not None:
                    await msg.ack()
                    event = json.loads(msg.body)
                    seen[event["saga_id"]] = event
                    assert msg.routing_key == f"saga.{event['saga_type']}.rejected"
                return len(seen) == 3

            await eventually(both, within=15)
        assert seen["rej-type"]["status"] == "rejected"
        assert seen["rej-type"]["error"]["code"] == "unknown_saga_type"  # type: ignore[index]
        assert seen["rej-input"]["error"]["code"] == "invalid_input"  # type: ignore[index]
        assert seen["taken"]["error"]["code"] == "conflict"  # type: ignore[index]
        dead = await _drain(rig.client, SAGAS_DEAD)
        assert sorted(dead.values()) == ["conflict", "invalid_input", "unknown_saga_type"]
        assert "rej-type" not in await rig.db.statuses()
