"""Resource locks, shared or exclusive, with FIFO waiters, as pure functions over lock queues.

A saga type declares the resources it holds (`ns:<id>`, `vim:<id>`) and, per resource,
whether it needs it exclusively or can share it (two scale-outs of different VNFs share
their NS; every NS saga shares its VIM account). A saga that cannot have a resource now
waits its turn in FIFO order, is rejected, or supersedes the holders, by its type's policy.
The store keeps the queues in a table and applies these functions inside the transaction of
the transition that takes or releases the locks.

Granting, per queue: an exclusive claim needs no holder and the head of the line; a shared
claim needs every holder to share and no exclusive claim ahead of it in line, so sharers
queued together are granted together and a waiting exclusive claim is never overtaken. A
saga needing several resources is granted all of them at once, or none, so two sagas never
deadlock on each other's resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from sagas import LockMode, LockPolicy, QueuedPolicy

EXCLUSIVE, SHARED = LockMode.EXCLUSIVE, LockMode.SHARED


@dataclass(frozen=True)
class Claimant:
    """A saga in a lock queue, and how it holds (or wants) the resource."""

    saga_id: str
    saga_type: str
    mode: LockMode = EXCLUSIVE


@dataclass(frozen=True)
class LockQueue:
    """One resource: who holds it (one exclusive holder, or sharers) and who waits, in order."""

    resource: str
    holders: tuple[Claimant, ...] = ()
    waiters: tuple[Claimant, ...] = ()

    @property
    def holder(self) -> Claimant | None:
        """The first holder (the only one, unless the resource is shared), or None."""
        return self.holders[0] if self.holders else None

    def holds(self, saga_id: str) -> bool:
        """Tell whether `saga_id` holds this resource."""
        return any(h.saga_id == saga_id for h in self.holders)

    def position(self, saga_id: str) -> int:
        """Return the 1-based place of `saga_id` in line, 0 if it holds or is absent."""
        for index, waiter in enumerate(self.waiters):
            if waiter.saga_id == saga_id:
                return index + 1
        return 0

    def grantable(self, saga_id: str) -> bool:
        """Tell whether the waiter `saga_id` could hold this resource now."""
        for waiter in self.waiters:
            if waiter.saga_id == saga_id:
                if waiter.mode is EXCLUSIVE:
                    return not self.holders and self.waiters[0] is waiter
                return all(h.mode is SHARED for h in self.holders)
            if waiter.mode is EXCLUSIVE:
                return False  # an exclusive claim ahead in line is never overtaken
        return False


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
    """Sagas a superseding saga asks to cancel: holders of the superseded types, and those
    queued behind it when its type cancels queued work."""


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
    *,
    shared: Iterable[str] = (),
    queued: QueuedPolicy = QueuedPolicy.KEEP,
) -> Acquired:
    """Ask for `resources` (those in `shared` shared) on behalf of `who`; idempotent."""
    wanted = sorted(set(resources))
    sharing = set(shared)
    queues = {r: table.get(r, LockQueue(r)) for r in wanted}
    out = dict(table)
    if all(q.holds(who.saga_id) for q in queues.values()):
        return Acquired(out | queues, granted=True)
    if any(q.position(who.saga_id) for q in queues.values()):
        return _standing(out | queues, who.saga_id, wanted)
    claims = {r: replace(who, mode=SHARED if r in sharing else EXCLUSIVE) for r in wanted}
    if policy is LockPolicy.REJECT:
        for r, q in queues.items():
            blocker = _blocker(replace(q, waiters=(*q.waiters, claims[r])), who.saga_id)
            if blocker is not None:
                return Acquired(out | queues, granted=False, rejected_by=blocker)
    cancel: list[Claimant] = []
    kinds = set(supersedes)
    for resource, q in queues.items():
        if q.holds(who.saga_id):
            continue
        claim = claims[resource]
        if policy is LockPolicy.SUPERSEDE:
            doomed = [h for h in q.holders if h.saga_type in kinds]
            if queued is QueuedPolicy.CANCEL:
                doomed += [w for w in q.waiters if w.saga_type in kinds]
            cancel.extend(c for c in doomed if c.saga_id not in {x.saga_id for x in cancel})
            queues[resource] = replace(q, waiters=(claim, *q.waiters))
        else:
            queues[resource] = replace(q, waiters=(*q.waiters, claim))
    out.update(queues)
    out, _ = _grant_all(out, [who.saga_id])
    result = _standing(out, who.saga_id, wanted)
    return replace(result, cancel=tuple(cancel))


def release(table: Table, saga_id: str) -> Released:
    """Drop `saga_id` from every queue (holder or waiter) and grant whoever can go now."""
    out: dict[str, LockQueue] = {}
    candidates: list[str] = []
    for resource, q in table.items():
        holders = tuple(h for h in q.holders if h.saga_id != saga_id)
        waiters = tuple(w for w in q.waiters if w.saga_id != saga_id)
        out[resource] = LockQueue(resource, holders, waiters)
        candidates.extend(w.saga_id for w in waiters if w.saga_id not in candidates)
    out, granted = _grant_all(out, candidates)
    return Released(out, tuple(granted))


def holders(table: Table) -> dict[str, str]:
    """Return resource -> the (first) holding saga id, for the resources that are held."""
    return {r: q.holders[0].saga_id for r, q in table.items() if q.holders}


def _blocker(q: LockQueue, saga_id: str) -> Claimant | None:
    if q.grantable(saga_id):
        return None
    return q.holder or next((w for w in q.waiters if w.saga_id != saga_id), None)


def _standing(table: dict[str, LockQueue], saga_id: str, wanted: list[str]) -> Acquired:
    if all(table[r].holds(saga_id) for r in wanted):
        return Acquired(table, granted=True)
    # What it waits for is what it cannot have yet; a queue it could share now does not count.
    waiting = tuple(
        r for r in wanted if not table[r].holds(saga_id) and not table[r].grantable(saga_id)
    )
    if not waiting:  # grantable everywhere, yet not granted: another claim must go first
        waiting = tuple(r for r in wanted if not table[r].holds(saga_id))
    position = max(table[r].position(saga_id) for r in waiting)
    return Acquired(table, granted=False, position=position, waiting_for=waiting)


def _grant_all(
    table: dict[str, LockQueue], candidates: list[str]
) -> tuple[dict[str, LockQueue], list[Claimant]]:
    granted: list[Claimant] = []
    progress = True
    while progress:
        progress = False
        for saga_id in list(candidates):
            mine = [r for r, q in table.items() if q.position(saga_id)]
            if not mine or not all(table[r].grantable(saga_id) for r in mine):
                continue
            claim = None
            for r in mine:
                q = table[r]
                claim = next(w for w in q.waiters if w.saga_id == saga_id)
                rest = tuple(w for w in q.waiters if w.saga_id != saga_id)
                table[r] = LockQueue(r, (*q.holders, claim), rest)
            assert claim is not None
            candidates.remove(saga_id)
            granted.append(replace(claim, mode=EXCLUSIVE))
            progress = True  # a grant changes who can go next elsewhere: look again
    return table, granted
