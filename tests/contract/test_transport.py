"""One contract for every transport: RabbitMQ (a fresh virtual host per test) and the memory broker.

Both backends must pass every test of the shared suite; the few tests at the end
cover what only one backend has (a network to lose, `MemoryBroker.join`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from contracts.topology import (
    COMMANDS_EXCHANGE,
    COORDINATOR_REPLIES_QUEUE,
    DEAD_AT_HEADER,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    ERROR_HEADER,
    EVENTS_EXCHANGE,
    HANDLER_CRASHED,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    REPLIES_EXCHANGE,
    REPLY_ROUTING_KEY,
    SOURCE_QUEUE_HEADER,
    Binding,
    Queue,
    Topology,
    command_queue,
    dead_letter_queue,
)
from convection.transport import (
    Delivery,
    MemoryBroker,
    PublishError,
    TopologyMissing,
    Transport,
    TransportClosed,
    TransportError,
    Unroutable,
    open_transport,
)
from tests.unit.world import OSM_TOPOLOGY

STANDARD = OSM_TOPOLOGY
FAILURES_QUEUE = "test.events.failures"
COMPLETIONS_QUEUE = "test.events.completions"
SHORT_QUEUE = "test.short-limit"
SHORT_LIMIT = 2
TOPOLOGY = Topology(
    exchanges=STANDARD.exchanges,
    queues=(
        *STANDARD.queues,
        Queue(FAILURES_QUEUE, (Binding(EVENTS_EXCHANGE, "saga.#.failed"),)),
        Queue(COMPLETIONS_QUEUE, (Binding(EVENTS_EXCHANGE, "saga.*.completed"),)),
        Queue(SHORT_QUEUE, (Binding(COMMANDS_EXCHANGE, "short"),), delivery_limit=SHORT_LIMIT),
    ),
)
VIM_QUEUE = command_queue("vim")
VIM_DEAD = dead_letter_queue(VIM_QUEUE)
WAIT = 10.0  # generous: a bound on hangs, never a timing assertion


@dataclass(frozen=True)
class Backend:
    kind: str
    url: str
    broker: MemoryBroker | None

    def open(self, topology: Topology = TOPOLOGY, *, publish_timeout: float = 2.0) -> Transport:
        return open_transport(
            self.url, topology, memory_broker=self.broker, publish_timeout=publish_timeout
        )


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.amqp)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "amqp":
        return Backend("amqp", request.getfixturevalue("fresh_amqp_url"), None)
    return Backend("memory", "memory://", MemoryBroker())


@pytest.fixture
async def transport(backend: Backend) -> AsyncIterator[Transport]:
    async with backend.open() as opened:
        yield opened


class Inbox:
    """Collects the deliveries a handler saw."""

    def __init__(self) -> None:
        self.seen: asyncio.Queue[Delivery] = asyncio.Queue()

    async def ack(self, delivery: Delivery) -> None:
        await delivery.ack()
        await self.seen.put(delivery)

    async def keep(self, delivery: Delivery) -> None:
        await self.seen.put(delivery)  # and leave it unacked

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.seen.get(), WAIT)


async def publish_command(
    transport: Transport, body: bytes = b"{}", *, headers: dict[str, str] | None = None
) -> str:
    message_id = uuid.uuid4().hex
    await transport.publish(COMMANDS_EXCHANGE, "vim", body, message_id=message_id, headers=headers)
    return message_id


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    # Polling: the broker offers no event for "a message arrived in a queue".
    async with asyncio.timeout(WAIT):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def eventually_get(transport: Transport, queue: str) -> Delivery:
    taken: list[Delivery] = []

    async def got_one() -> bool:
        delivery = await transport.get(queue)
        if delivery is not None:
            taken.append(delivery)
        return bool(taken)

    await eventually(got_one)
    return taken[0]


async def eventually_depth(transport: Transport, queue: str, depth: int) -> None:
    async def reached() -> bool:
        return await transport.queue_depth(queue) == depth

    await eventually(reached)


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


# Only the AMQP transport has a network to lose.


class FlakyProxy:
    """A TCP proxy to RabbitMQ that can cut every connection and refuse new ones."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self.up = True

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if not self.up:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._port
            )
            self._writers |= {writer, upstream_writer}
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        finally:
            writer.close()
            self._handlers.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def cut(self) -> None:
        self.up = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=WAIT)


@pytest.mark.amqp
async def test_amqp_outage_bounds_publish_and_consumers_survive(fresh_amqp_url: str) -> None:
    parts = urlsplit(fresh_amqp_url)
    proxy = FlakyProxy(parts.port or 5672)
    port = await proxy.start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, "reconnect_interval=0.2", ""))
    transport = open_transport(url, TOPOLOGY, publish_timeout=0.5)
    try:
        await transport.connect()
        inbox = Inbox()
        consumer = await transport.consume(VIM_QUEUE, inbox.ack)
        await publish_command(transport)
        await inbox.next()

        proxy.cut()
        with pytest.raises(PublishError):  # PublishTimeout, or the last attempt's failure
            await publish_command(transport)
        assert not await transport.ping()

        proxy.up = True
        await eventually(transport.ping)
        after = await publish_command(transport)
        # The restored consumer gets it (maybe after a redelivery of the first message,
        # whose ack may have been lost with the connection).
        while (await inbox.next()).message_id != after:
            pass
        await consumer.stop()
    finally:
        await transport.close()
        await proxy.close()


async def test_amqp_unreachable_broker_fails_to_connect() -> None:
    transport = open_transport("amqp://guest:guest@127.0.0.1:1/", TOPOLOGY, publish_timeout=0.5)
    with pytest.raises(TransportError):
        await transport.connect()
    await transport.close()


# Only the memory broker has join().


async def test_memory_join_waits_until_the_queue_is_drained() -> None:
    broker = MemoryBroker()
    async with open_transport("memory://", TOPOLOGY, memory_broker=broker) as transport:
        inbox = Inbox()
        consumer = await transport.consume(VIM_QUEUE, inbox.ack)
        for _ in range(3):
            await publish_command(transport)
        await broker.join(VIM_QUEUE, timeout=WAIT)
        assert inbox.seen.qsize() == 3
        await consumer.stop()

        async def broken(delivery: Delivery) -> None:
            raise ValueError("handler bug")

        consumer = await transport.consume(VIM_QUEUE, broken)
        await publish_command(transport)
        with pytest.raises(ValueError, match="handler bug"):
            await broker.join(VIM_QUEUE, timeout=WAIT, fail_fast=True)
        await consumer.stop()

        await publish_command(transport)  # nobody consumes: join gives up
        with pytest.raises(TimeoutError):
            await broker.join(VIM_QUEUE, timeout=0.05)


def test_open_transport_chooses_by_scheme() -> None:
    with pytest.raises(ValueError, match="memory_broker"):
        open_transport("memory://", TOPOLOGY)
    with pytest.raises(ValueError, match="scheme"):
        open_transport("kafka://localhost", TOPOLOGY)


@pytest.mark.amqp
async def test_a_transport_that_may_not_declare_checks_the_topology_exists(
    fresh_amqp_url: str,
) -> None:
    with pytest.raises(TopologyMissing, match=r"exchange 'convection\.\w+' does not exist"):
        async with open_transport(fresh_amqp_url, TOPOLOGY, declare=False):
            pass
    async with open_transport(fresh_amqp_url, TOPOLOGY):
        pass  # declared by someone who may
    missing = Topology(exchanges=TOPOLOGY.exchanges, queues=(Queue("test.nobody-declared"),))
    with pytest.raises(TopologyMissing, match=r"queue 'test\.nobody-declared' does not exist"):
        async with open_transport(fresh_amqp_url, missing, declare=False):
            pass
    async with open_transport(fresh_amqp_url, TOPOLOGY, declare=False) as checked:
        assert await checked.queue_depth(VIM_QUEUE) == 0


def test_a_memory_url_names_the_user_its_messages_carry() -> None:
    named = open_transport("memory://convection-vim@", TOPOLOGY, memory_broker=MemoryBroker())
    assert named.user == "convection-vim"
