"""Resource locks with FIFO waiters, as pure functions over lock queues.

A saga type declares the resources it holds (`ns:<id>`, `vim:<id>`). A saga that needs a
resource another saga holds waits its turn in FIFO order, is rejected, or supersedes the
holder, by its type's policy. The store keeps the queues in a table and applies these
functions inside the transaction of the transition that takes or releases the locks.

A saga needing several resources is granted all of them at once, when it is first in line
for each and none is held, so two sagas never hold the same resource and never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from sagas import LockPolicy


@dataclass(frozen=True)
class Claimant:
    """A saga in a lock queue."""

    saga_id: str
    saga_type: str


@dataclass(frozen=True)
class LockQueue:
    """One resource: who holds it and who waits, first in line first."""

    resource: str
    holder: Claimant | None = None
    waiters: tuple[Claimant, ...] = ()

    def position(self, saga_id: str) -> int:
        """Return the 1-based place of `saga_id` in line, 0 if it holds or is absent."""
        for index, waiter in enumerate(self.waiters):
            if waiter.saga_id == saga_id:
                return index + 1
        return 0


Table = Mapping[str, LockQueue]
"""Lock queues by resource; must include every queue of every saga the call may grant."""


@dataclass(frozen=True)
class Acquired:
    """The outcome of an acquire."""

    table: dict[str, LockQueue]
    granted: bool
    position: int = 0
    """How far back in line the saga stands (the worst of its resources); 0 when granted."""
    waiting_for: tuple[str, ...] = ()
    rejected_by: Claimant | None = None
    cancel: tuple[Claimant, ...] = ()
    """Holders that a superseding saga asks to cancel."""


@dataclass(frozen=True)
class Released:
    """The outcome of a release: the sagas now granted everything they waited for."""

    table: dict[str, LockQueue]
    granted: tuple[Claimant, ...] = field(default=())


def acquire(
    table: Table,
    who: Claimant,
    resources: Iterable[str],
    policy: LockPolicy,
    supersedes: Iterable[str] = (),
) -> Acquired:
    """Ask for `resources` on behalf of `who`; idempotent for a saga already in line."""
    wanted = sorted(set(resources))
    queues = {r: table.get(r, LockQueue(r)) for r in wanted}
    out = dict(table)
    if all(q.holder == who for q in queues.values()):
        return Acquired(out | queues, granted=True)
    if any(q.position(who.saga_id) for q in queues.values()):
        return _standing(out | queues, who, wanted)
    if policy is LockPolicy.REJECT:
        for q in queues.values():
            blocker = q.holder or (q.waiters[0] if q.waiters else None)
            if blocker is not None and blocker != who:
                return Acquired(out | queues, granted=False, rejected_by=blocker)
    cancel: list[Claimant] = []
    kinds = set(supersedes)
    for resource, q in queues.items():
        if q.holder == who:
            continue
        if policy is LockPolicy.SUPERSEDE:
            if q.holder is not None and q.holder.saga_type in kinds and q.holder not in cancel:
                cancel.append(q.holder)
            queues[resource] = replace(q, waiters=(who, *q.waiters))
        else:
            queues[resource] = replace(q, waiters=(*q.waiters, who))
    out.update(queues)
    out, _ = _grant_all(out, [who])
    result = _standing(out, who, wanted)
    return replace(result, cancel=tuple(cancel))


def release(table: Table, saga_id: str) -> Released:
    """Drop `saga_id` from every queue (holder or waiter) and grant whoever is now first."""
    out: dict[str, LockQueue] = {}
    candidates: list[Claimant] = []
    for resource, q in table.items():
        holder = None if q.holder and q.holder.saga_id == saga_id else q.holder
        waiters = tuple(w for w in q.waiters if w.saga_id != saga_id)
        out[resource] = LockQueue(resource, holder, waiters)
        if waiters and waiters[0] not in candidates:
            candidates.append(waiters[0])
    out, granted = _grant_all(out, candidates)
    return Released(out, tuple(granted))


def holders(table: Table) -> dict[str, str]:
    """Return resource -> holding saga id, for the resources that are held."""
    return {r: q.holder.saga_id for r, q in table.items() if q.holder is not None}


def _standing(table: dict[str, LockQueue], who: Claimant, wanted: list[str]) -> Acquired:
    if all(table[r].holder == who for r in wanted):
        return Acquired(table, granted=True)
    waiting = tuple(r for r in wanted if table[r].holder != who)
    position = max(table[r].position(who.saga_id) for r in waiting)
    return Acquired(table, granted=False, position=position, waiting_for=waiting)


def _grant_all(
    table: dict[str, LockQueue], candidates: list[Claimant]
) -> tuple[dict[str, LockQueue], list[Claimant]]:
    granted: list[Claimant] = []
    progress = True
    while progress:
        progress = False
        for who in list(candidates):
            mine = [r for r, q in table.items() if q.position(who.saga_id) or q.holder == who]
            if not mine or not all(
                table[r].holder == who
                or (table[r].holder is None and table[r].position(who.saga_id) == 1)
                for r in mine
            ):
                continue
            for r in mine:
                q = table[r]
                table[r] = LockQueue(r, who, tuple(w for w in q.waiters if w != who))
            candidates.remove(who)
            granted.append(who)
            # A grant changes who is first elsewhere only by removing `who`; look again.
            for q in table.values():
                if q.holder is None and q.waiters and q.waiters[0] not in candidates:
                    candidates.append(q.waiters[0])
            progress = True
    return table, granted
