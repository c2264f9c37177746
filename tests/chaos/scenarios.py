"""Chains of sagas the chaos run drives, each with the outcome every saga must reach.

Every chain gets a VIM project of its own (added through the simulator's admin API) and a VIM
account for it, so quotas, networks and locks of one chain never meet another's: whether a
saga is over quota depends on its own chain only, and the expected outcome is certain.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

COMPLETED = frozenset({"completed"})
COMPENSATED = frozenset({"compensated"})
FAILED = frozenset({"failed"})
# A terminate supersedes the instantiate it meets: cancelled if it was still running,
# completed if it had finished first.
SUPERSEDED = frozenset({"completed", "cancelled"})
# A step that fails for good undoes its own half-made work before it answers: with no earlier
# effect to undo, the saga ends failed. Only if that clean-up itself failed (the VIM was down)
# does the coordinator compensate the step instead.
NOTHING_LEFT = frozenset({"failed", "compensated"})


class Driver(Protocol):
    """What a chain needs from the run: VIM projects, and sagas started and awaited."""

    sim: str

    async def project(self, name: str, *, instances: int, cores: int) -> None:
        """Add a VIM project whose user and password are its name."""

    async def begin(self, saga_type: str, saga_id: str, data: dict[str, Any]) -> None:
        """Start a saga (confirmed by the broker) without waiting for it."""

    async def seen(self, saga_id: str) -> None:
        """Wait until the saga exists."""

    async def end(self, saga_id: str, expect: frozenset[str]) -> bool:
        """Wait until the saga ends; record it against `expect`; tell whether it matched."""


def _account(d: Driver, account: str, project: str, password: str | None = None) -> dict[str, Any]:
    return {
        "vim_account_id": account,
        "name": f"chaos {account}",
        "vim_type": "openstack",
        "description": "a VIM account of the chaos run",
        "credentials": {
            "auth_url": f"{d.sim}/identity/v3",
            "username": project,
            "password": password or project,
            "project": project,
        },
    }


def _vdu(name: str, count: int) -> dict[str, Any]:
    return {"name": name, "image": "cirros-0.6", "flavor": "m1.tiny", "count": count}


def _ns(ns_id: str, account: str, counts: Sequence[int]) -> dict[str, Any]:
    return {
        "ns_id": ns_id,
        "name": f"chaos {ns_id}",
        "nsd_id": "chaos_nsd",
        "vim_account_id": account,
        "networks": [{"name": "mgmt", "cidr": "10.40.0.0/24"}],
        "vnfs": [
            {
                "member": f"vnf-{i}",
                "vnfd_id": "chaos_vnfd",
                "vdus": [_vdu(f"vdu{i}", count)],
                "day1": {"index": i},
            }
            for i, count in enumerate(counts)
        ],
    }


def _scale(ns_id: str, account: str, count: int) -> dict[str, Any]:
    return {
        "ns_id": ns_id,
        "vim_account_id": account,
        "vnf": "vnf-0",
        "vdus": [_vdu("more", count)],
    }


async def _with_account(d: Driver, key: str, *, instances: int) -> str | None:
    """Add the chain's project and register its account; the account id, None if that failed."""
    await d.project(key, instances=instances, cores=instances)
    account = f"vim-{key}"
    await d.begin("vim-account.create", f"{key}/account", _account(d, account, key))
    return account if await d.end(f"{key}/account", COMPLETED) else None


async def account_lifecycle(d: Driver, key: str) -> None:
    """Create a VIM account, then delete it: both complete."""
    if (account := await _with_account(d, key, instances=2)) is not None:
        await d.begin("vim-account.delete", f"{key}/delete", {"vim_account_id": account})
        await d.end(f"{key}/delete", COMPLETED)


async def bad_credentials(d: Driver, key: str) -> None:
    """Create a VIM account with a wrong password: the VIM refuses it, the saga fails."""
    await d.project(key, instances=1, cores=1)
    data = _account(d, f"vim-{key}", key, password="wrong")
    await d.begin("vim-account.create", f"{key}/account", data)
    await d.end(f"{key}/account", FAILED)


async def ns_lifecycle(d: Driver, key: str) -> None:
    """Instantiate an NS, scale it out, terminate it, delete the account: all complete."""
    if (account := await _with_account(d, key, instances=6)) is None:
        return
    ns = f"ns-{key}"
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("ns.instantiate", "instantiate", _ns(ns, account, [1, 1])),
        ("ns.scale-out", "scale", _scale(ns, account, 1)),
        ("ns.terminate", "terminate", {"ns_id": ns, "vim_account_id": account}),
        ("vim-account.delete", "delete", {"vim_account_id": account}),
    ]
    for saga_type, name, data in steps:
        await d.begin(saga_type, f"{key}/{name}", data)
        if not await d.end(f"{key}/{name}", COMPLETED):
            return


async def over_quota(d: Driver, key: str) -> None:
    """An NS needing 3 servers in a project allowed 2: some are created, all are undone."""
    if (account := await _with_account(d, key, instances=2)) is not None:
        await d.begin("ns.instantiate", f"{key}/instantiate", _ns(f"ns-{key}", account, [1, 2]))
        await d.end(f"{key}/instantiate", COMPENSATED)


async def scale_over_quota(d: Driver, key: str) -> None:
    """An NS that fits, a scale-out that does not (nothing of it is left), then a terminate."""
    if (account := await _with_account(d, key, instances=2)) is None:
        return
    ns = f"ns-{key}"
    await d.begin("ns.instantiate", f"{key}/instantiate", _ns(ns, account, [1]))
    if not await d.end(f"{key}/instantiate", COMPLETED):
        return
    await d.begin("ns.scale-out", f"{key}/scale", _scale(ns, account, 2))
    await d.end(f"{key}/scale", NOTHING_LEFT)
    await d.begin("ns.terminate", f"{key}/terminate", {"ns_id": ns, "vim_account_id": account})
    await d.end(f"{key}/terminate", COMPLETED)


async def superseded(d: Driver, key: str) -> None:
    """A terminate started while its NS is being instantiated supersedes the instantiate."""
    if (account := await _with_account(d, key, instances=4)) is None:
        return
    ns = f"ns-{key}"
    await d.begin("ns.instantiate", f"{key}/instantiate", _ns(ns, account, [2]))
    # Only once the instantiate holds its lock: a terminate that overtook it would go first
    # and the instantiate would then run after it, which is another scenario.
    await d.seen(f"{key}/instantiate")
    await d.begin("ns.terminate", f"{key}/terminate", {"ns_id": ns, "vim_account_id": account})
    await d.end(f"{key}/instantiate", SUPERSEDED)
    await d.end(f"{key}/terminate", COMPLETED)


@dataclass(frozen=True)
class Scenario:
    """A kind of chain: how many sagas it starts, how often it is drawn, how it runs."""

    name: str
    sagas: int
    weight: int
    run: Callable[[Driver, str], Awaitable[None]]


SCENARIOS = (
    Scenario("account", 2, 2, account_lifecycle),
    Scenario("bad-credentials", 1, 1, bad_credentials),
    Scenario("ns-lifecycle", 5, 3, ns_lifecycle),
    Scenario("over-quota", 2, 2, over_quota),
    Scenario("scale-over-quota", 4, 1, scale_over_quota),
    Scenario("superseded", 3, 1, superseded),
)
"""Every scenario of the run; `plan` draws chains from them by weight."""


def plan(sagas: int, rng: random.Random) -> list[Scenario]:
    """Draw chains by weight until they start exactly `sagas` sagas (single ones fill the end)."""
    chains: list[Scenario] = []
    left = sagas
    weights = [s.weight for s in SCENARIOS]
    while left > 0:
        choice = rng.choices(SCENARIOS, weights)[0]
        if choice.sagas > left:
            choice = next(s for s in SCENARIOS if s.sagas == 1)
        chains.append(choice)
        left -= choice.sagas
    return chains
