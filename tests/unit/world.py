"""A pure mini-shell for engine tests: many sagas, the lock table, and model participants.

It does in memory exactly what the coordinator's store does in a transaction: apply a
decision, run lock acquire/release through `coordinator.core.locks`, feed the lock outcome back,
withdraw unsent commands on cancel. Participants apply effects keyed by idempotency key and
keep tombstones of compensated keys, as the participant runtime does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import contracts
from contracts import Command, ErrorInfo, Reply, SagaStatus
from coordinator.core import (
    CancelRequested,
    CommandsWithdrawn,
    Decision,
    Engine,
    Event,
    LockGranted,
    LockQueued,
    LockRejected,
    SagaState,
    StepReplied,
    locks,
)
from sagas import Registry, osm_registry

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OSM_SERVICES = ("vim", "ro", "lcm")
"""The participant services of the OSM sagas."""
OSM_CATALOGUE = contracts.Catalogue(
    contracts.vim.ACTIONS + contracts.ro.ACTIONS + contracts.lcm.ACTIONS
)
"""Every action of the OSM services, by name."""
OSM_TOPOLOGY = contracts.topology.coordinator_topology(OSM_SERVICES)
"""What a coordinator of the OSM sagas declares."""
EXAMPLES = Path(__file__).resolve().parents[2] / "sagas" / "examples"

_CREDS = {
    "auth_url": "http://127.0.0.1:6080/identity/v3",
    "username": "osm",
    "password": "osm",
    "project": "osm",
}


def fake_result(cmd: Command) -> dict[str, Any]:
    """A valid result for any action, shaped by its payload."""
    p = cmd.payload
    match cmd.action:
        case "vim.validate-credentials":
            return {"project_id": "p1"}
        case "vim.register-account":
            return {"vim_account_id": p["account"]["vim_account_id"], "project_id": "p1"}
        case "vim.deregister-account":
            return {"vim_account_id": p["vim_account_id"], "existed": True}
        case "vim.get-account":
            return {
                "vim_account_id": p["vim_account_id"],
                "vim_type": "openstack",
                "credentials": _CREDS,
            }
        case "ro.create-networks" | "ro.find-ns-networks":
            nets = p.get("networks") or [{"name": "mgmt"}]
            return {
                "networks": [{"name": n["name"], "network_id": f"net-{n['name']}"} for n in nets]
            }
        case "ro.deploy-vdus":
            return {
                "vnf": p["vnf"],
                "servers": [
                    {
                        "server_id": f"{cmd.saga_id}-{p['vnf']}-{v['name']}-{i}",
                        "name": v["name"],
                        "vdu": v["name"],
                        "status": "ACTIVE",
                    }
                    for v in p["vdus"]
                    for i in range(v["count"])
                ],
            }
        case "ro.delete-vdus" | "ro.delete-ns-resources":
            return {"server_ids": p.get("server_ids", [])}
        case "ro.delete-networks":
            return {"network_ids": p["network_ids"]}
        case "lcm.create-ns-record":
            return {"ns_id": p["ns_id"]}
        case "lcm.delete-ns-record":
            return {"ns_id": p["ns_id"], "existed": True}
        case "lcm.configure-vnf":
            return {"ns_id": p["ns_id"], "vnf": p["vnf"], "config_id": "c1"}
        case "lcm.remove-vnf-config":
            return {"ns_id": p["ns_id"], "vnf": p["vnf"], "existed": True}
        case "lcm.remove-ns-config":
            return {"ns_id": p["ns_id"], "vnfs": []}
        case "lcm.set-ns-state":
            return {"ns_id": p["ns_id"], "state": p["state"], "previous": None}
        # The example order package (examples/order-saga).
        case "stock.reserve":
            return {"reservation_id": p["order_id"], "sku": p["sku"], "quantity": p["quantity"]}
        case "stock.release":
            return {"released": True}
        case "billing.charge":
            return {"charge_id": p["order_id"], "amount_cents": p["amount_cents"]}
        case "billing.refund":
            return {"refunded": True}
        case "shipping.ship":
            return {"tracking": f"TRK-{cmd.idempotency_key}"}
        case "toy.poke" | "toy.unpoke":
            return {}
    raise AssertionError(f"no fake result for {cmd.action}")


def example(saga_type: str, **changes: Any) -> dict[str, Any]:
    """The checked-in example input of a saga type, with top-level fields changed."""
    data: dict[str, Any] = json.loads(
        (EXAMPLES / f"{saga_type.replace('.', '-')}.json").read_text()
    )
    data.update(changes)
    return data


@dataclass
class Participants:
    """Model participants: effects by idempotency key, tombstones of undone keys."""

    effects: dict[str, int] = field(default_factory=dict)
    """Forward key -> how many times an effect was applied (must stay <= 1)."""
    undone: dict[str, int] = field(default_factory=dict)
    """Forward key -> how many compensations removed an effect (must stay <= 1)."""
    tombstones: set[str] = field(default_factory=set)

    def execute(self, cmd: Command, outcome: str) -> Reply | None:
        """Run a command: `outcome` is succeeded, failed, retryable, lost or lost_after_effect."""
        if cmd.compensation:
            key = cmd.undoes_key or ""
            if outcome in ("succeeded", "lost_after_effect"):
                if self.effects.get(key, 0) > self.undone.get(key, 0):
                    self.undone[key] = self.undone.get(key, 0) + 1
                self.tombstones.add(key)
        else:
            key = cmd.idempotency_key
            if key in self.tombstones:
                return contracts.reply_to(
                    cmd,
                    "failed",
                    error=ErrorInfo(code="already_compensated", message="this step was undone"),
                )
            if outcome in ("succeeded", "lost_after_effect") and not self.effects.get(key):
                self.effects[key] = 1
        if outcome.startswith("lost"):
            return None
        if outcome == "succeeded":
            return contracts.reply_to(cmd, "succeeded", result=fake_result(cmd))
        return contracts.reply_to(cmd, outcome, error=ErrorInfo(code="boom", message=outcome))


@dataclass
class World:
    """Sagas, locks, in-flight commands and replies, in memory."""

    engine: Engine = field(default_factory=lambda: Engine(osm_registry()))
    now: datetime = T0
    sagas: dict[str, SagaState] = field(default_factory=dict)
    table: dict[str, locks.LockQueue] = field(default_factory=dict)
    outbox: list[Command] = field(default_factory=list)
    """Commands decided but not yet taken by a participant (the relay has not sent them)."""
    replies: list[Reply] = field(default_factory=list)
    decisions: list[tuple[str, Event | None, Decision]] = field(default_factory=list)
    participants: Participants = field(default_factory=Participants)
    sent: list[Command] = field(default_factory=list)

    @classmethod
    def with_registry(cls, registry: Registry) -> World:
        """A world running the given saga types."""
        return cls(engine=Engine(registry))

    def tick(self, seconds: float = 1.0) -> datetime:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)
        return self.now

    def start(self, saga_type: str, saga_id: str, data: dict[str, Any]) -> SagaState:
        """Start a saga, as the shell does for StartSaga."""
        decision = self.engine.start(saga_type=saga_type, saga_id=saga_id, input=data, at=self.now)
        self._apply(saga_id, None, decision)
        return self.sagas[saga_id]

    def feed(self, saga_id: str, event: Event) -> Decision:
        """Feed one event to one saga and apply what it decided."""
        decision = self.engine.decide(self.sagas[saga_id], event)
        self._apply(saga_id, event, decision)
        return decision

    def reply(self, reply: Reply) -> Decision:
        """Feed a reply to its saga."""
        return self.feed(reply.saga_id, StepReplied(at=self.tick(), reply=reply))

    def run(self, cmd: Command, outcome: str = "succeeded") -> Reply | None:
        """Take `cmd` out of the outbox and let its participant run it."""
        self.outbox.remove(cmd)
        self.sent.append(cmd)
        reply = self.participants.execute(cmd, outcome)
        if reply is not None:
            self.replies.append(reply)
        return reply

    def drain_one(self) -> None:
        """Do the next thing: run the first unsent command, else feed the first reply."""
        if self.outbox:
            self.run(self.outbox[0])
        elif self.replies:
            self.reply(self.replies.pop(0))
        else:
            raise AssertionError("nothing left to do")

    def drain(self, outcomes: dict[str, str] | None = None, limit: int = 500) -> None:
        """Run every command and feed every reply until nothing moves (steps by name)."""
        outcomes = outcomes or {}
        for _ in range(limit):
            if self.outbox:
                cmd = self.outbox[0]
                wanted = outcomes.get(cmd.step, "succeeded")
                self.run(cmd, "succeeded" if cmd.compensation else wanted)
            elif self.replies:
                self.reply(self.replies.pop(0))
            else:
                return
        raise AssertionError("the world did not settle")

    def commands_for(self, saga_id: str) -> list[Command]:
        """Unsent commands of one saga."""
        return [c for c in self.outbox if c.saga_id == saga_id]

    def _apply(self, saga_id: str, event: Event | None, decision: Decision) -> None:
        self.decisions.append((saga_id, event, decision))
        if decision.verdict == "ignored":
            return
        state = decision.state
        self.sagas[saga_id] = state
        self.outbox.extend(decision.commands)
        if decision.withdraw:
            unsent = [c for c in self.outbox if c.message_id in decision.withdraw]
            for cmd in unsent:
                self.outbox.remove(cmd)
            if unsent:
                self.feed(
                    saga_id,
                    CommandsWithdrawn(at=self.now, command_ids=tuple(c.message_id for c in unsent)),
                )
                state = self.sagas[saga_id]
        if decision.acquire:
            saga = self.engine.registry[state.saga_type]
            got = locks.acquire(
                self.table,
                locks.Claimant(saga_id, state.saga_type),
                decision.acquire,
                saga.lock_policy,
                saga.supersedes,
                shared=state.shared,
                queued=saga.supersede_queued,
            )
            self.table = got.table
            for holder in got.cancel:
                self.feed(
                    holder.saga_id,
                    CancelRequested(
                        at=self.now, reason=f"superseded by {saga_id}", requested_by=saga_id
                    ),
                )
            if got.granted:
                self.feed(saga_id, LockGranted(at=self.now))
            elif got.rejected_by is not None:
                self.feed(
                    saga_id,
                    LockRejected(
                        at=self.now, resource=decision.acquire[0], holder=got.rejected_by.saga_id
                    ),
                )
            else:
                self.feed(
                    saga_id,
                    LockQueued(at=self.now, waiting_for=got.waiting_for, position=got.position),
                )
        if decision.release:
            out = locks.release(self.table, saga_id)
            self.table = out.table
            for who in out.granted:
                self.feed(who.saga_id, LockGranted(at=self.now))

    def status(self, saga_id: str) -> SagaStatus:
        """The status of one saga."""
        return self.sagas[saga_id].status


# Helpers of the engine's table tests.


def started(
    world: World, saga_type: str = "ns.instantiate", saga_id: str = "s1", **changes: object
) -> SagaState:
    world.start(saga_type, saga_id, example(saga_type, **changes))
    return world.sagas[saga_id]


def run_until(world: World, step: str) -> None:
    """Run commands until the first command of `step` is in the outbox."""
    for _ in range(100):
        if any(c.step == step for c in world.outbox):
            return
        world.drain_one()
    raise AssertionError(f"{step} never started")
