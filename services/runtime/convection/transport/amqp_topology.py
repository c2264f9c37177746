"""How a `Topology` becomes RabbitMQ exchanges, quorum queues and bindings.

Queue arguments are immutable in RabbitMQ: redeclaring a queue with other
`x-*` arguments fails with PRECONDITION_FAILED. These arguments are therefore
part of the protocol, versioned like a schema; change them only with a plan to
migrate the queues.
"""

from __future__ import annotations

from aio_pika.abc import AbstractRobustChannel
from aiormq.exceptions import ChannelNotFoundEntity

from contracts.topology import DEAD_LETTER_EXCHANGE, Queue, Topology
from convection.transport.base import TransportError


class TopologyMissing(TransportError):
    """An exchange or a queue a process checks for (and may not declare) does not exist."""


QUORUM: dict[str, str | int] = {"x-queue-type": "quorum"}
"""Arguments of a dead-letter queue: replicated, no delivery limit (tooling reads it)."""


def source_queue_arguments(queue: Queue) -> dict[str, str | int]:
    """Return the arguments of a consumed queue: quorum, delivery limit, dead-lettering.

    RabbitMQ 3.10's quorum queues have no default delivery limit, so a poison
    message would loop forever without one. Dead-lettering is at-most-once by
    default; `at-least-once` (which needs `reject-publish` overflow) keeps a
    dead letter in the source queue until the dead-letter queue has it.
    """
    return {
        **QUORUM,
        "x-delivery-limit": queue.delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": queue.name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_topology(channel: AbstractRobustChannel, topology: Topology) -> None:
    """Declare every exchange, queue, dead-letter queue and binding of `topology`.

    Declarations are idempotent; the robust channel records them and declares
    them again after a reconnect.
    """
    exchange_types = {exchange.name: exchange.type for exchange in topology.exchanges}
    # Dead-lettering needs its exchange even when a topology forgets to list it.
    exchange_types.setdefault(DEAD_LETTER_EXCHANGE, "direct")
    for name, kind in exchange_types.items():
        await channel.declare_exchange(name, kind, durable=True)
    for queue in topology.queues:
        declared = await channel.declare_queue(
            queue.name, durable=True, arguments=source_queue_arguments(queue)
        )
        for binding in queue.bindings:
            await declared.bind(binding.exchange, binding.routing_key)
        dead = await channel.declare_queue(queue.dead_letter, durable=True, arguments=dict(QUORUM))
        await dead.bind(DEAD_LETTER_EXCHANGE, queue.name)


async def check_topology(channel: AbstractRobustChannel, topology: Topology) -> None:
    """Check that every exchange and queue of `topology` exists, declaring nothing.

    For a process whose broker user may not configure anything (a participant under least
    privilege): passive declarations need no permission. The coordinator, or the broker's
    setup, declares them. Bindings cannot be checked this way; the coordinator makes them.

    Raises:
        TopologyMissing: Naming the first exchange or queue that is missing.
    """
    # The underlying channel: the robust one answers passive declarations from its cache.
    underlay = await channel.get_underlay_channel()
    for exchange in topology.exchanges:
        try:
            await underlay.exchange_declare(exchange.name, passive=True)
        except ChannelNotFoundEntity as exc:
            raise TopologyMissing(
                f"exchange {exchange.name!r} does not exist and this process declares "
                "nothing (CONVECTION_DECLARE_TOPOLOGY=false): start a coordinator first, "
                "which declares the exchanges and the queues of its sagas' services"
            ) from exc
    for queue in topology.queues:
        for name in (queue.name, queue.dead_letter):
            try:
                await underlay.queue_declare(name, passive=True)
            except ChannelNotFoundEntity as exc:
                raise TopologyMissing(
                    f"queue {name!r} does not exist and this process declares nothing "
                    "(CONVECTION_DECLARE_TOPOLOGY=false): start a coordinator whose sagas use "
                    "this service first, or declare it with the broker's setup"
                ) from exc
