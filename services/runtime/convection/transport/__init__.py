"""The message transport of every Convection service: RabbitMQ, or an in-process broker.

Pick one by URL with `open_transport`; both pass the same contract suite
(tests/contract/test_transport*.py).
"""

from convection.transport.amqp import AmqpTransport
from convection.transport.amqp_topology import TopologyMissing
from convection.transport.base import (
    Consumer,
    Delivery,
    Handler,
    PublishError,
    PublishNacked,
    PublishTimeout,
    Transport,
    TransportClosed,
    TransportError,
    Unroutable,
)
from convection.transport.factory import open_transport
from convection.transport.memory import MemoryBroker, MemoryTransport

__all__ = [
    "AmqpTransport",
    "Consumer",
    "Delivery",
    "Handler",
    "MemoryBroker",
    "MemoryTransport",
    "PublishError",
    "PublishNacked",
    "PublishTimeout",
    "TopologyMissing",
    "Transport",
    "TransportClosed",
    "TransportError",
    "Unroutable",
    "open_transport",
]
