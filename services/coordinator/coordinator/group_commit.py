"""Group commit: the messages that arrive while a transaction is in flight share the next one.

Under load the cost of a transaction (BEGIN, COMMIT and its WAL flush, a pool checkout, the
driver's bookkeeping) is paid once for a group of messages instead of once per message:

    submit(key, work)   run at once, alone, in the caller's task when nothing is running or
                        queued; else queued: a lane starts if none is running, another one (at
                        most `lanes` transactions at once) once a full group is waiting or the
                        running ones took longer than `PATIENCE`
    a lane              takes up to `most` queued works, sorted by key (the saga id), runs them
                        one after another in ONE transaction, commits, then answers each caller
    a group that fails  (a conflict, the database, one work's own error) is rolled back whole
                        and each of its works is run again alone, with the single-message path's
                        retries; only the work that fails alone fails its caller

Alone (one message at a time, the latency case) a work starts at once in a transaction of its
own, in its caller's task: nothing waits for a group to fill. Callers ack their messages only
after `submit` returned, so after the commit. Sorting by saga id makes concurrent groups (this
process's lanes and other replicas') lock saga rows in one order, so they queue behind each
other instead of deadlocking; a stable sort keeps one saga's messages in arrival order. Each
work runs in the context its caller submitted it from (its trace span), as it would alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

PATIENCE = 0.02
"""Seconds queued works wait for a busy lane before another lane starts for them (a group's
transaction takes a few milliseconds; longer means a lock wait or a slow database)."""

W = TypeVar("W")
R = TypeVar("R")

RunMany = Callable[[Sequence[tuple[W, contextvars.Context]]], Awaitable[list[R]]]
"""Runs works in one transaction, each in its context; raises if any of them failed."""
RunOne = Callable[[W], Coroutine[Any, Any, R]]
"""Runs one work alone, with its own retries."""


@dataclass
class _Waiting(Generic[W, R]):
    key: str
    work: W
    context: contextvars.Context
    answer: asyncio.Future[R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit(Generic[W, R]):
    """Runs submitted works in shared transactions, at most `lanes` at once, `most` per group."""

    def __init__(
        self,
        run_many: RunMany[W, R],
        run_one: RunOne[W, R],
        *,
        lanes: int,
        most: int,
        patience: float = PATIENCE,
    ) -> None:
        if lanes < 1 or most < 1:
            raise ValueError("group commit needs at least one lane and one work per group")
        self._run_many = run_many
        self._run_one = run_one
        self._lanes = lanes
        self._most = most
        self._queue: deque[_Waiting[W, R]] = deque()
        self._busy = 0
        self._patience = patience
        self._impatient: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.groups = 0
        """Transactions that committed more than one work (what the tests look at)."""
        self.replayed = 0
        """Groups rolled back and run again one work at a time."""

    async def submit(self, key: str, work: W) -> R:
        """Run `work` in the next group transaction; return its result once that committed."""
        if not self._busy and not self._queue:
            return await self._run_here(work)
        waiting = _Waiting[W, R](key, work, contextvars.copy_context())
        self._queue.append(waiting)
        # Another lane only for a full group: a busy lane takes what queued meanwhile when its
        # transaction ends, and fewer, fuller transactions cost less CPU per message (with two
        # replicas sharing the load, three eager lanes halved the groups and made two
        # coordinators slower than one, BENCHMARKS.md). A lane slower than `patience` (a lock
        # wait, a slow database) gets company, so it holds up nobody for long.
        if not self._busy or (self._busy < self._lanes and len(self._queue) >= self._most):
            self._start_lane()
        elif self._busy < self._lanes and self._impatient is None:
            self._impatient = asyncio.get_running_loop().call_later(
                self._patience, self._lose_patience
            )
        return await waiting.answer

    async def _run_here(self, work: W) -> R:
        # Alone: in the caller's own task, as a lane that takes this one work. No lane task,
        # no gathering, no task per work: one message at a time waits for nothing but itself.
        # A caller cancelled meanwhile (its consumer stopping) cancels the work with it: before
        # the commit nothing happened and the message is redelivered; after it, rows not yet
        # handed to the relay go out once their hand-off lease runs out, as after a crash.
        self._busy += 1
        try:
            return await self._run_one(work)
        finally:
            self._busy -= 1
            if self._queue and self._busy < self._lanes:
                # What arrived meanwhile goes next, as a busy lane would have taken it.
                self._start_lane()

    def _start_lane(self) -> None:
        self._busy += 1
        task = asyncio.create_task(self._lane())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lose_patience(self) -> None:
        self._impatient = None
        if self._queue and self._busy < self._lanes:
            self._start_lane()

    async def _lane(self) -> None:
        try:
            while self._queue:
                take = min(self._most, len(self._queue))
                group = [self._queue.popleft() for _ in range(take)]
                await self._run(group)
        finally:
            self._busy -= 1

    async def _run(self, group: list[_Waiting[W, R]]) -> None:
        if len(group) > 1:
            group.sort(key=lambda w: w.key)
            try:
                results = await self._run_many([(w.work, w.context) for w in group])
            except Exception as exc:
                # Whatever failed, nothing of the group committed: each runs again alone.
                self.replayed += 1
                logger.info("a group of %d rolled back (%r); running each alone", len(group), exc)
            else:
                self.groups += 1
                for waiting, result in zip(group, results, strict=True):
                    _answer(waiting, result)
                return
        await asyncio.gather(*(self._alone(waiting) for waiting in group))

    async def _alone(self, waiting: _Waiting[W, R]) -> None:
        # Concurrently, as the messages would run without group commit: one saga's outage
        # retries do not hold up the others.
        try:
            result: R = await asyncio.create_task(
                self._run_one(waiting.work), context=waiting.context
            )
        except Exception as exc:
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)
        else:
            _answer(waiting, result)


def _answer(waiting: _Waiting[W, R], result: R) -> None:
    # A caller cancelled meanwhile (its consumer stopping) leaves its message unacked: it is
    # redelivered and found in the inbox.
    if not waiting.answer.done():
        waiting.answer.set_result(result)
