"""Table tests of the pure engine's cancel, saga deadline and lock queue (reject, supersede)."""

from __future__ import annotations

from datetime import timedelta

from contracts import SagaStatus
from coordinator.core import CancelRequested, SagaTimedOut, StepStatus, StepTimedOut
from tests.unit.world import World, run_until, started

S = SagaStatus


def test_cancel_while_running_withdraws_unsent_commands_and_compensates() -> None:
    world = World()
    started(world)
    run_until(world, "vdus:vnf-lb")
    assert len(world.outbox) == 2
    world.feed("s1", CancelRequested(at=world.tick(), reason="operator", requested_by="alice"))
    state = world.sagas["s1"]
    # Both deploys were still unsent: withdrawn, never reached a participant, nothing to undo.
    assert state.step("vdus:vnf-lb").status is StepStatus.ABANDONED
    world.drain()
    state = world.sagas["s1"]
    assert state.status is S.CANCELLED
    assert state.cancel_reason == "operator" and state.cancelled_by == "alice"
    assert [c.step for c in world.sent if c.compensation] == ["networks", "ns-record"]


def test_cancel_with_a_step_in_flight_awaits_it() -> None:
    world = World()
    started(world)
    run_until(world, "networks")
    cmd = world.outbox[0]
    reply = world.run(cmd)
    world.feed("s1", CancelRequested(at=world.tick(), reason="r"))
    assert world.status("s1") is S.COMPENSATING
    assert not world.outbox
    world.reply(reply)
    world.drain()
    assert world.status("s1") is S.CANCELLED
    assert [c.step for c in world.sent if c.compensation] == ["networks", "ns-record"]


def test_cancel_after_the_pivot_is_refused_and_the_saga_finishes() -> None:
    world = World()
    started(world)
    run_until(world, "mark-ready")
    refused = world.feed("s1", CancelRequested(at=world.tick(), reason="too late"))
    assert refused.verdict == "refused"
    assert refused.history[0].kind == "request.refused"
    world.drain()
    assert world.status("s1") is S.COMPLETED


def test_cancel_of_a_finished_saga_is_refused() -> None:
    world = World()
    started(world)
    world.drain()
    decision = world.feed("s1", CancelRequested(at=world.tick(), reason="r"))
    assert decision.verdict == "refused"
    assert world.status("s1") is S.COMPLETED


def test_saga_deadline_cancels_before_the_pivot() -> None:
    world = World()
    started(world)
    run_until(world, "networks")
    deadline = world.sagas["s1"].deadline
    assert world.feed("s1", SagaTimedOut(at=deadline - timedelta(seconds=1))).verdict == "ignored"
    world.run(world.outbox[0], "lost")
    world.feed("s1", SagaTimedOut(at=deadline))
    assert world.status("s1") is S.COMPENSATING
    world.feed("s1", StepTimedOut(at=deadline + timedelta(minutes=10), step="networks", attempt=1))
    world.drain()
    state = world.sagas["s1"]
    assert state.status is S.COMPENSATED
    assert state.error.code == "saga_timeout"


def test_second_saga_on_the_same_ns_waits_in_fifo_order() -> None:
    world = World()
    started(world, saga_id="a")
    started(world, saga_id="b")
    started(world, "ns.scale-out", saga_id="c")
    assert world.status("a") is S.RUNNING
    assert world.status("b") is S.PENDING and world.status("c") is S.PENDING
    queue = world.table["ns:ns-web-1"]
    assert queue.position("b") == 1 and queue.position("c") == 2
    waiting = [
        h for d in world.decisions if d[0] == "c" for h in d[2].history if h.kind == "lock.waiting"
    ]
    assert waiting[0].detail == {"waiting_for": ["ns:ns-web-1"], "position": 2}
    world.drain()
    assert [world.status(x) for x in "abc"] == [S.COMPLETED] * 3
    first_b = min(c.sent_at for c in world.sent if c.saga_id == "b")
    last_a = max(h.at for d in world.decisions if d[0] == "a" for h in d[2].history)
    assert first_b >= last_a


def test_cancel_while_waiting_for_a_lock_leaves_the_queue() -> None:
    world = World()
    started(world, saga_id="a")
    started(world, saga_id="b")
    world.feed("b", CancelRequested(at=world.tick(), reason="not needed"))
    assert world.status("b") is S.CANCELLED
    assert world.table["ns:ns-web-1"].waiters == ()


def test_reject_policy_fails_at_once() -> None:
    world = World()
    started(world, "vim-account.create", saga_id="a")
    started(world, "vim-account.create", saga_id="b")
    state = world.sagas["b"]
    assert state.status is S.FAILED
    assert state.error.code == "resource_busy"


def test_terminate_supersedes_a_running_instantiate() -> None:
    world = World()
    started(world, saga_id="inst")
    started(world, "ns.scale-out", saga_id="scale")
    run_until(world, "networks")
    started(world, "ns.terminate", saga_id="term")
    assert world.status("inst") is S.COMPENSATING
    assert world.table["ns:ns-web-1"].position("term") == 1  # ahead of the scale-out
    world.drain()
    assert world.status("inst") is S.CANCELLED
    assert world.sagas["inst"].cancelled_by == "term"
    assert world.status("term") is S.COMPLETED
    # ns.terminate cancels the work of its NS queued behind it too (issue 11).
    assert world.status("scale") is S.CANCELLED
    assert world.sagas["scale"].cancel_reason == "superseded by term"
