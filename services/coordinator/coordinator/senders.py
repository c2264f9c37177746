"""Who may answer a step: a reply is accepted only from its step's service's broker user.

RabbitMQ validates the `user_id` a message carries against the publishing connection's user,
so the user is a proof of the sender, unlike anything in the body. The ids a reply needs are
not secret enough on their own (they pass through logs, traces and the participants).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts import Reply
from contracts.topology import FORGED
from coordinator.outcome import Outcome, rejected


@dataclass(frozen=True)
class Senders:
    """Who may answer a step: the broker user of each service, and the coordinator's own."""

    users: Mapping[str, str]
    """The broker user of each participant service."""
    own: str | None = None
    """This coordinator's broker user: a reply an operator replays is republished by it."""

    def check(self, service: str, sender: str | None, reply: Reply) -> Outcome | None:
        """Return a `forged` rejection unless `sender` may answer a step of `service`."""
        expected = self.users.get(service)
        if sender is not None and sender in (expected, self.own):
            return None
        return rejected(
            FORGED,
            f"reply {reply.message_id} to step {reply.step!r} of saga {reply.saga_id} came "
            f"from broker user {sender!r}; only {expected!r} (service {service}) may answer it"
            + ("" if expected else f": add {service}=USER to CONVECTION_SERVICE_USERS"),
        )
