"""The transport contract's dead letters, on both backends: delivery limits, crashing handlers."""

from __future__ import annotations

import logging

import pytest

from contracts.topology import (
    COMMANDS_EXCHANGE,
    DEAD_AT_HEADER,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    ERROR_HEADER,
    HANDLER_CRASHED,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    dead_letter_queue,
)
from convection.transport import Delivery, Transport
from tests.contract.transport_support import (
    SHORT_LIMIT,
    SHORT_QUEUE,
    TOPOLOGY,
    VIM_DEAD,
    VIM_QUEUE,
    Inbox,
    eventually,
    eventually_get,
    publish_command,
)


async def test_requeue_loop_hits_the_delivery_limit_and_the_consumer_lives_on(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    poisoned: list[Delivery] = []
    handled = Inbox()

    async def handler(delivery: Delivery) -> None:
        if delivery.body != b"poison":
            await handled.ack(delivery)
            return
        poisoned.append(delivery)
        # Both ways back to the queue: an explicit requeue, and a handler that raises.
        if delivery.delivery_count % 2:
            raise RuntimeError("handler bug")
        await delivery.requeue()

    consumer = await transport.consume(VIM_QUEUE, handler)
    with caplog.at_level(logging.ERROR, logger="convection.transport"):
        poison = await publish_command(transport, b"poison")
        fine = await publish_command(transport, b"fine")
        assert (await handled.next()).message_id == fine
        dead = await eventually_get(transport, VIM_DEAD)
    await dead.ack()
    await consumer.stop()

    assert [d.delivery_count for d in poisoned] == list(range(DELIVERY_LIMIT + 1))
    assert [d.redelivered for d in poisoned] == [False] + [True] * DELIVERY_LIMIT
    assert dead.message_id == poison
    assert dead.headers[REASON_HEADER] == "delivery_limit"
    assert dead.headers[SOURCE_QUEUE_HEADER] == VIM_QUEUE
    assert dead.delivery_count == 0
    assert "handler failed" in caplog.text


async def test_dead_letter_parks_a_copy_with_its_reason(transport: Transport) -> None:
    async def reject(delivery: Delivery) -> None:
        await delivery.dead_letter("unknown schema_version")

    consumer = await transport.consume(VIM_QUEUE, reject)
    message_id = await publish_command(transport, b"bad", headers={"traceparent": "t-1"})
    dead = await eventually_get(transport, VIM_DEAD)
    await dead.ack()
    await consumer.stop()

    assert (dead.body, dead.message_id) == (b"bad", message_id)
    assert (dead.exchange, dead.routing_key) == (DEAD_LETTER_EXCHANGE, VIM_QUEUE)
    assert dead.headers[REASON_HEADER] == "unknown schema_version"
    assert dead.headers[SOURCE_QUEUE_HEADER] == VIM_QUEUE
    assert dead.headers["traceparent"] == "t-1"
    assert await transport.get(VIM_QUEUE) is None  # the original was acked


async def test_a_handler_that_always_raises_is_dead_lettered_with_its_error(
    transport: Transport,
) -> None:
    counts: list[int] = []

    async def crash(delivery: Delivery) -> None:
        counts.append(delivery.delivery_count)
        raise ValueError("no such key 'vnf' " + "x" * 600)

    consumer = await transport.consume(VIM_QUEUE, crash)
    message_id = await publish_command(transport, b"crash", headers={"traceparent": "t-2"})
    dead = await eventually_get(transport, VIM_DEAD)
    await dead.ack()
    await consumer.stop()

    # Dead-lettered by the consumer at its last delivery, not requeued once more.
    assert counts == list(range(DELIVERY_LIMIT + 1))
    assert (dead.body, dead.message_id) == (b"crash", message_id)
    assert dead.headers[REASON_HEADER] == HANDLER_CRASHED
    error = dead.headers[ERROR_HEADER]
    assert error.startswith("ValueError: no such key 'vnf' xxx")
    assert len(error) == 500
    assert dead.headers[SOURCE_QUEUE_HEADER] == VIM_QUEUE
    assert dead.headers[ORIGINAL_EXCHANGE_HEADER] == COMMANDS_EXCHANGE
    assert dead.headers[ORIGINAL_ROUTING_KEY_HEADER] == "vim"
    assert dead.headers[DEAD_AT_HEADER].endswith("Z")
    assert dead.headers["traceparent"] == "t-2"
    assert "x-first-death-reason" not in dead.headers  # not the broker's doing
    assert await transport.get(VIM_QUEUE) is None


async def test_the_queue_s_own_delivery_limit_is_known_to_its_consumer(
    transport: Transport,
) -> None:
    crashed: list[int] = []
    returned: list[int] = []

    async def handler(delivery: Delivery) -> None:
        assert delivery.delivery_limit == SHORT_LIMIT
        if delivery.body == b"crash":
            crashed.append(delivery.delivery_count)
            raise RuntimeError("bug")
        returned.append(delivery.delivery_count)
        await delivery.requeue()  # the broker's own dead-lettering, by the limit

    consumer = await transport.consume(SHORT_QUEUE, handler)
    await transport.publish(COMMANDS_EXCHANGE, "short", b"crash", message_id="m-crash")
    await transport.publish(COMMANDS_EXCHANGE, "short", b"return", message_id="m-return")
    short_dead = dead_letter_queue(SHORT_QUEUE)
    dead: dict[str, Delivery] = {}

    async def both() -> bool:
        while (delivery := await transport.get(short_dead)) is not None:
            await delivery.ack()
            dead[delivery.message_id or ""] = delivery
        return len(dead) == 2

    await eventually(both)
    await consumer.stop()

    assert crashed == returned == list(range(SHORT_LIMIT + 1))
    assert dead["m-crash"].headers[REASON_HEADER] == HANDLER_CRASHED
    assert dead["m-crash"].headers[ERROR_HEADER] == "RuntimeError: bug"
    broker = dead["m-return"].headers
    assert broker[REASON_HEADER] == "delivery_limit"
    assert ERROR_HEADER not in broker
    # Filled in from x-first-death-* and x-death: every dead letter says where it came from.
    assert broker[SOURCE_QUEUE_HEADER] == SHORT_QUEUE
    assert broker[ORIGINAL_EXCHANGE_HEADER] == COMMANDS_EXCHANGE
    assert broker[ORIGINAL_ROUTING_KEY_HEADER] == "short"
    assert broker[DEAD_AT_HEADER].endswith("Z")
    # A dead-letter queue has no limit: nothing dead-letters a dead letter.
    assert dead["m-crash"].delivery_limit is None
    assert TOPOLOGY.delivery_limit("not.declared.here") == DELIVERY_LIMIT
