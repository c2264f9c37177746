"""How a `Topology` becomes RabbitMQ exchanges, quorum queues and bindings.

Queue arguments are immutable in RabbitMQ: redeclaring a queue with other
`x-*` arguments fails with PRECONDITION_FAILED. These arguments are therefore
part of the protocol, versioned like a schema; change them only with a plan to
migrate the queues.
"""

from __future__ import annotations

from aio_pika.abc import AbstractRobustChannel

from contracts.topology import DEAD_LETTER_EXCHANGE, Queue, Topology

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
