"""Group commit: what arrives together shares a transaction; a failed group replays each alone."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import pytest

from coordinator.group_commit import GroupCommit

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


class Recorder:
    """Fake transactions: records the groups and the lone runs, fails where told."""

    def __init__(self, *, fail_group: bool = False, fail_alone: frozenset[str] = frozenset()):
        self.groups: list[list[tuple[str, str]]] = []
        self.alone: list[str] = []
        self.fail_group = fail_group
        self.fail_alone = fail_alone

    async def many(self, works: Sequence[tuple[str, contextvars.Context]]) -> list[str]:
        await asyncio.sleep(0)
        self.groups.append([(work, ctx.run(CALLER.get)) for work, ctx in works])
        if self.fail_group:
            raise RuntimeError("the group's transaction failed")
        return [f"done {work}" for work, _ in works]

    async def one(self, work: str) -> str:
        await asyncio.sleep(0)
        self.alone.append(f"{work} as {CALLER.get()}")
        if work in self.fail_alone:
            raise ValueError(f"{work} fails alone")
        return f"alone {work}"


async def _submit(group: GroupCommit[str, str], key: str, work: str) -> str:
    CALLER.set(work)
    return await group.submit(key, work)


async def test_a_lone_message_runs_alone_at_once() -> None:
    rec = Recorder()
    group = GroupCommit(rec.many, rec.one, lanes=2, most=8)
    assert await _submit(group, "s1", "a") == "alone a"
    assert rec.groups == [] and rec.alone == ["a as a"]


async def test_a_lone_message_runs_in_its_caller_s_own_task() -> None:
    rec = Recorder()
    tasks: list[asyncio.Task[object] | None] = []

    async def one(work: str) -> str:
        tasks.append(asyncio.current_task())
        return await rec.one(work)

    group = GroupCommit(rec.many, one, lanes=2, most=8)
    caller = asyncio.current_task()
    assert await _submit(group, "s1", "a") == "alone a"
    assert tasks == [caller]


async def test_messages_that_arrive_together_share_one_transaction_sorted_by_saga() -> None:
    rec = Recorder()
    group = GroupCommit(rec.many, rec.one, lanes=1, most=8)
    # The first runs at once, alone; what arrives while it runs shares the next transaction.
    keys = [("s0", "x"), ("s3", "c"), ("s1", "a1"), ("s2", "b"), ("s1", "a2")]
    results = await asyncio.gather(*(_submit(group, k, w) for k, w in keys))
    assert results == ["alone x", "done c", "done a1", "done b", "done a2"]
    assert rec.alone == ["x as x"]
    # One saga's messages keep their order; each work sees its own caller's context.
    assert rec.groups == [[("a1", "a1"), ("a2", "a2"), ("b", "b"), ("c", "c")]]
    assert group.groups == 1 and group.replayed == 0


async def test_groups_hold_at_most_most_works_and_lanes_bound_the_transactions() -> None:
    rec = Recorder()
    group = GroupCommit(rec.many, rec.one, lanes=2, most=3)
    works = [f"w{i:02}" for i in range(10)]
    results = await asyncio.gather(*(_submit(group, w, w) for w in works))
    assert results[0].endswith("w00") and len(results) == 10
    sizes = [len(g) for g in rec.groups]
    assert all(size <= 3 for size in sizes)
    assert sum(sizes) + len(rec.alone) == 10


async def test_a_failed_group_runs_each_alone_and_only_the_bad_one_fails() -> None:
    rec = Recorder(fail_group=True, fail_alone=frozenset({"b"}))
    group = GroupCommit(rec.many, rec.one, lanes=1, most=8)
    results = await asyncio.gather(
        *(_submit(group, w, w) for w in ("a", "b", "c")), return_exceptions=True
    )
    assert results[0] == "alone a" and results[2] == "alone c"
    assert isinstance(results[1], ValueError)
    assert sorted(rec.alone) == ["a as a", "b as b", "c as c"]
    assert group.replayed == 1 and group.groups == 0


async def test_a_cancelled_caller_leaves_the_others_answered() -> None:
    rec = Recorder()
    group = GroupCommit(rec.many, rec.one, lanes=1, most=8)
    first = asyncio.create_task(_submit(group, "s1", "a"))
    second = asyncio.create_task(_submit(group, "s2", "b"))
    await asyncio.sleep(0)
    first.cancel()
    # The first ran alone in its caller's task, so it stopped with it; the second goes next.
    assert await second == "alone b"
    with pytest.raises(asyncio.CancelledError):
        await first


def test_it_needs_a_lane_and_room_for_a_work() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="at least one lane"):
        GroupCommit(rec.many, rec.one, lanes=0, most=8)


class Blocking(Recorder):
    """The first lone work holds its transaction until released; the rest run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def one(self, work: str) -> str:
        if work == "slow":
            await self.release.wait()
        return await super().one(work)


async def test_works_queued_behind_a_busy_lane_share_its_next_transaction() -> None:
    rec = Blocking()
    group = GroupCommit(rec.many, rec.one, lanes=3, most=8, patience=60)
    slow = asyncio.create_task(_submit(group, "s0", "slow"))
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(_submit(group, f"s{i}", f"w{i}")) for i in (1, 2, 3)]
    await asyncio.sleep(0.01)
    # No second lane for three works: they wait for the busy one, then go in one transaction.
    assert rec.groups == [] and not any(t.done() for t in queued)
    rec.release.set()
    assert await asyncio.gather(*queued) == ["done w1", "done w2", "done w3"]
    assert await slow == "alone slow"
    assert [[w for w, _ in g] for g in rec.groups] == [["w1", "w2", "w3"]]


async def test_a_lane_slower_than_the_patience_gets_company() -> None:
    rec = Blocking()
    group = GroupCommit(rec.many, rec.one, lanes=3, most=8, patience=0.05)
    slow = asyncio.create_task(_submit(group, "s0", "slow"))
    await asyncio.sleep(0.01)
    # The slow transaction holds its lane; the next work runs in another after the patience.
    assert await asyncio.wait_for(_submit(group, "s1", "quick"), 5) == "alone quick"
    assert not slow.done()
    rec.release.set()
    assert await slow == "alone slow"


async def test_a_full_group_starts_another_lane_at_once() -> None:
    rec = Blocking()
    group = GroupCommit(rec.many, rec.one, lanes=2, most=3, patience=60)
    slow = asyncio.create_task(_submit(group, "s0", "slow"))
    await asyncio.sleep(0.01)
    done = await asyncio.wait_for(
        asyncio.gather(*(_submit(group, f"s{i}", f"w{i}") for i in (1, 2, 3))), 5
    )
    assert done == ["done w1", "done w2", "done w3"] and not slow.done()
    rec.release.set()
    await slow
