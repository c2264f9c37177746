"""What the events of a step do: a reply, a passed deadline, a due retry, withdrawn commands.

Each works on the leg the event names (forward or compensation) through `legs`, then moves
the saga on. A reply or deadline that matches no attempt in flight is ignored: at-least-once
delivery makes duplicates, and a late reply of an earlier attempt is normal.
"""

from __future__ import annotations

from typing import Any

from coordinator.core import compensation, flow, forward, legs
from coordinator.core.draft import Draft
from coordinator.core.events import CommandsWithdrawn, RetryDue, StepReplied, StepTimedOut
from coordinator.core.legs import FORWARD
from coordinator.core.states import StepStatus


def on_step_replied(draft: Draft, event: StepReplied) -> None:
    """A participant answered a command (or sent a heartbeat)."""
    reply = event.reply
    step = draft.steps.get(reply.step)
    if step is None:
        draft.ignore(f"no step {reply.step!r} in this saga")
        return
    path: legs.Path[Any] = compensation.PATH if reply.compensation else forward.PATH
    if not legs.on_reply(draft, step, path, reply):
        which = "compensation reply" if reply.compensation else "reply"
        draft.ignore(f"duplicate or stale {which}")
        return
    flow.advance(draft)


def on_step_timed_out(draft: Draft, event: StepTimedOut) -> None:
    """An attempt's deadline passed without a reply or heartbeat."""
    step = draft.steps.get(event.step)
    if step is None:
        draft.ignore(f"no step {event.step!r}")
        return
    path: legs.Path[Any] = compensation.PATH if event.compensation else forward.PATH
    if not legs.on_timeout(draft, step, path, event.attempt):
        which = "compensation deadline" if event.compensation else "step deadline"
        draft.ignore(f"stale {which}")
        return
    flow.advance(draft)


def on_retry_due(draft: Draft, event: RetryDue) -> None:
    """A leg waiting to retry is due."""
    step = draft.steps.get(event.step)
    if step is None:
        draft.ignore(f"no step {event.step!r}")
        return
    path: legs.Path[Any] = compensation.PATH if event.compensation else forward.PATH
    why_not = legs.on_retry_due(draft, step, path)
    if why_not is not None:
        draft.ignore(why_not)
        return
    flow.advance(draft)


def on_commands_withdrawn(draft: Draft, event: CommandsWithdrawn) -> None:
    """The shell deleted unsent commands: their steps never ran, so they are abandoned."""
    changed = False
    for step in list(draft.steps.values()):
        if step.forward.command_id in event.command_ids and step.status is StepStatus.RUNNING:
            leg = step.forward.model_copy(update={"status": StepStatus.ABANDONED, "deadline": None})
            legs.move(
                draft,
                step,
                FORWARD,
                leg,
                log="withdrawn",
                detail={"reason": "its command was never sent"},
            )
            changed = True
    if not changed:
        draft.ignore("nothing to withdraw")
        return
    flow.advance(draft)
