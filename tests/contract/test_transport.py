"""One contract for every transport: RabbitMQ (a fresh virtual host per test) and the memory broker.

Both backends (the `backend` fixture, conftest.py) must pass every test of the shared suite:
publishing, routing, consuming and the lifecycle here, dead letters in
`test_transport_dead_letters`. `test_transport_backends` covers what only one backend has (a
network to lose, `MemoryBroker.join`).
"""

from __future__ import annotations

import asyncio

import pytest

from contracts.topology import (
    COMMANDS_EXCHANGE,
    COORDINATOR_REPLIES_QUEUE,
    EVENTS_EXCHANGE,
    REPLIES_EXCHANGE,
    REPLY_ROUTING_KEY,
    Binding,
    Queue,
    Topology,
)
from convection.transport import (
    Delivery,
    PublishError,
    Transport,
    TransportClosed,
    TransportError,
    Unroutable,
)
from tests.contract.transport_support import (
    COMPLETIONS_QUEUE,
    FAILURES_QUEUE,
    STANDARD,
    VIM_QUEUE,
    WAIT,
    Backend,
    Inbox,
    eventually_depth,
    eventually_get,
    publish_command,
)

# The shared contract.


async def test_topology_declarations(backend: Backend, transport: Transport) -> None:
    await transport.connect()  # twice on one transport
    async with backend.open() as another_process:
        await publish_command(another_process)
    await eventually_depth(transport, VIM_QUEUE, 1)

    # Queue arguments are immutable: another delivery limit is refused, loudly.
    other_limit = Queue(VIM_QUEUE, (Binding(COMMANDS_EXCHANGE, "vim"),), delivery_limit=3)
    conflicting = backend.open(Topology(STANDARD.exchanges, (other_limit,)))
    try:
        with pytest.raises(TransportError):
            await conflicting.connect()
    finally:
        await conflicting.close()
    assert await transport.ping()


async def test_publish_consume_ack_round_trips_everything(
    backend: Backend, transport: Transport
) -> None:
    inbox = Inbox()
    consumer = await transport.consume(VIM_QUEUE, inbox.ack)
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x": "é ✓"}
    await transport.publish(
        COMMANDS_EXCHANGE,
        "vim",
        b"text",
        message_id="m-1",
        headers=headers,
        content_type="text/plain",
    )

    delivery = await inbox.next()
    await consumer.stop()

    assert (delivery.body, delivery.message_id, delivery.content_type) == (
        b"text",
        "m-1",
        "text/plain",
    )
    assert (delivery.exchange, delivery.routing_key, delivery.queue) == (
        COMMANDS_EXCHANGE,
        "vim",
        VIM_QUEUE,
    )
    assert {key: delivery.headers[key] for key in headers} == headers
    assert all(isinstance(value, str) for value in delivery.headers.values())
    assert (delivery.redelivered, delivery.delivery_count, delivery.settled) == (False, 0, True)
    # Who published it, as the broker validated it: the URL's user (guest), none in memory://.
    assert delivery.user_id == transport.user
    assert transport.user == ("guest" if backend.kind == "amqp" else None)
    assert await transport.get(VIM_QUEUE) is None  # acked: gone for good


async def test_many_concurrent_publishes_are_each_confirmed_and_delivered_once(
    transport: Transport,
) -> None:
    # Publishes share one channel: each returns once the broker confirmed it, none is lost or
    # doubled however many wait for the channel at once.
    ids = [f"burst-{i}" for i in range(300)]
    await asyncio.gather(
        *(transport.publish(COMMANDS_EXCHANGE, "vim", i.encode(), message_id=i) for i in ids)
    )
    await eventually_depth(transport, VIM_QUEUE, len(ids))
    seen = []
    while (delivery := await transport.get(VIM_QUEUE)) is not None:
        seen.append((delivery.message_id, delivery.body))
        await delivery.ack()
    assert sorted(seen) == sorted((i, i.encode()) for i in ids)


async def test_unacked_delivery_is_redelivered_when_its_consumer_stops(
    transport: Transport,
) -> None:
    inbox = Inbox()
    consumer = await transport.consume(VIM_QUEUE, inbox.keep)
    message_id = await publish_command(transport)
    first = await inbox.next()
    await consumer.stop()

    again = await eventually_get(transport, VIM_QUEUE)
    await again.ack()
    await first.ack()  # its channel is gone: logged, not raised; redelivery covered it

    assert (first.redelivered, first.delivery_count) == (False, 0)
    assert again.message_id == message_id
    assert again.redelivered
    assert again.delivery_count >= 1


async def test_the_default_exchange_routes_to_the_queue_named_by_the_key(
    transport: Transport,
) -> None:
    await transport.publish("", VIM_QUEUE, b"direct", message_id="m-default")
    delivery = await eventually_get(transport, VIM_QUEUE)
    await delivery.ack()
    assert (delivery.body, delivery.exchange, delivery.routing_key) == (b"direct", "", VIM_QUEUE)
    with pytest.raises(Unroutable):
        await transport.publish("", "no.such.queue", b"x", message_id="m-nowhere")


async def test_publish_failures(transport: Transport) -> None:
    with pytest.raises(Unroutable) as caught:
        await transport.publish(COMMANDS_EXCHANGE, "nobody", b"{}", message_id="m-lost")
    assert isinstance(caught.value, PublishError)
    assert (caught.value.routing_key, caught.value.message_id) == ("nobody", "m-lost")

    # Without `mandatory` the broker drops it silently, as events to nobody should be.
    await transport.publish(COMMANDS_EXCHANGE, "nobody", b"{}", message_id="m-2", mandatory=False)

    with pytest.raises(PublishError):
        await transport.publish("convection.nowhere", "vim", b"{}", message_id="m-nowhere")

    await publish_command(transport)  # the transport is still fine
    await eventually_depth(transport, VIM_QUEUE, 1)


async def test_topic_routing_on_events(transport: Transport) -> None:
    keys = [
        "saga.vim-account.create.failed",
        "saga.failed",
        "saga.ns.completed",
        "saga.ns.instantiate.completed",
        "saga.ns.running",
    ]
    for key in keys:
        await transport.publish(EVENTS_EXCHANGE, key, b"{}", message_id=key, mandatory=False)

    await eventually_depth(transport, FAILURES_QUEUE, 2)
    await eventually_depth(transport, COMPLETIONS_QUEUE, 1)
    failures = [await eventually_get(transport, FAILURES_QUEUE) for _ in range(2)]
    completion = await eventually_get(transport, COMPLETIONS_QUEUE)

    assert sorted(d.routing_key for d in failures) == [
        "saga.failed",
        "saga.vim-account.create.failed",
    ]
    assert completion.routing_key == "saga.ns.completed"
    for delivery in [*failures, completion]:
        await delivery.ack()


async def test_prefetch_limits_in_flight_and_stop_waits_for_them(transport: Transport) -> None:
    release = asyncio.Event()
    started = Inbox()
    in_flight = peak = 0
    finished: list[str | None] = []

    async def slow(delivery: Delivery) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await started.keep(delivery)
        await release.wait()
        in_flight -= 1
        await delivery.ack()
        finished.append(delivery.message_id)

    consumer = await transport.consume(VIM_QUEUE, slow, prefetch=2)
    for _ in range(5):
        await publish_command(transport)
    first, second = await started.next(), await started.next()
    await asyncio.sleep(0.2)  # room for a third delivery, were the limit leaking
    assert (in_flight, started.seen.qsize()) == (2, 0)
    assert await transport.queue_depth(VIM_QUEUE) == 3

    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # graceful: the two handlers are still running
    release.set()
    await asyncio.wait_for(stopping, WAIT)

    assert sorted(finished, key=str) == sorted([first.message_id, second.message_id], key=str)
    assert started.seen.qsize() == 0  # a stopped consumer takes nothing new
    assert await transport.queue_depth(VIM_QUEUE) == 3
    assert peak == 2


async def test_lifecycle_depth_ping_and_graceful_close(backend: Backend) -> None:
    transport = backend.open()
    assert not await transport.ping()
    with pytest.raises(TransportClosed):
        await publish_command(transport)
    try:
        await transport.connect()
        assert await transport.ping()
        assert await transport.queue_depth(VIM_QUEUE) == 0
        for _ in range(3):
            await publish_command(transport)
        await eventually_depth(transport, VIM_QUEUE, 3)
        taken = await transport.get(VIM_QUEUE)
        assert taken is not None
        assert await transport.queue_depth(VIM_QUEUE) == 2  # an unacked message is not ready
        await taken.ack()
        with pytest.raises(TransportError):
            await transport.queue_depth("no.such.queue")
        with pytest.raises(TransportError):
            await transport.consume("no.such.queue", Inbox().ack)
        assert await transport.queue_depth(VIM_QUEUE) == 2
        assert await transport.queue_consumers(VIM_QUEUE) == 0

        # close() waits for the handler in flight, which may still publish its reply.
        started, release = asyncio.Event(), asyncio.Event()

        async def reply_then_ack(delivery: Delivery) -> None:
            started.set()
            await release.wait()
            await transport.publish(
                REPLIES_EXCHANGE, REPLY_ROUTING_KEY, b"{}", message_id=f"re-{delivery.message_id}"
            )
            await delivery.ack()

        await transport.consume(VIM_QUEUE, reply_then_ack, prefetch=1)
        await asyncio.wait_for(started.wait(), WAIT)
        assert await transport.queue_consumers(VIM_QUEUE) == 1
        closing = asyncio.create_task(transport.close())
        await asyncio.sleep(0.1)
        assert not closing.done()
        release.set()
        await asyncio.wait_for(closing, WAIT)
    finally:
        await transport.close()

    assert not await transport.ping()
    with pytest.raises(TransportClosed):
        await transport.consume(VIM_QUEUE, Inbox().ack)
    await transport.close()  # closing twice is harmless
    async with backend.open() as observer:
        await eventually_depth(observer, COORDINATOR_REPLIES_QUEUE, 1)
        assert await observer.queue_depth(VIM_QUEUE) == 1  # a closing transport takes no more
