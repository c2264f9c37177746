"""Table tests of the pure engine: one test (or table row) per rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

import contracts
from contracts import ErrorInfo, SagaStatus
from coordinator.core import (
    CancelRequested,
    CompStatus,
    Engine,
    RetryDue,
    RetryRequested,
    SagaState,
    SagaTimedOut,
    SkipRequested,
    StepReplied,
    StepStatus,
    StepTimedOut,
)
from coordinator.errors import InvalidInput, UnknownSagaType
from sagas import osm_registry
from tests.unit.world import T0, World, example

S = SagaStatus


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


def test_happy_path_completes_and_runs_vnfs_in_parallel() -> None:
    world = World()
    started(world)
    run_until(world, "vdus:vnf-lb")
    assert {c.step for c in world.outbox} == {"vdus:vnf-lb", "vdus:vnf-app"}
    world.drain()
    state = world.sagas["s1"]
    assert state.status is S.COMPLETED
    assert all(s.status is StepStatus.SUCCEEDED for s in state.steps)
    assert [s.completed_seq for s in state.steps if s.stage <= 2] == [1, 2, 3]
    assert world.table["ns:ns-web-1"].holder is None


def test_business_failure_compensates_in_reverse_with_groups_in_parallel() -> None:
    world = World()
    started(world)
    world.drain({"day1:vnf-app": "failed"})
    state = world.sagas["s1"]
    assert state.status is S.COMPENSATED
    assert state.error == ErrorInfo(code="boom", message="failed")
    undo = [c for c in world.sent if c.compensation]
    order = [c.step for c in undo]
    assert order[0] == "day1:vnf-lb"
    assert set(order[1:3]) == {"vdus:vnf-lb", "vdus:vnf-app"}
    assert order[3:] == ["networks", "ns-record"]
    assert state.step("day1:vnf-app").comp_status is CompStatus.NONE  # no effect, no undo
    assert state.step("vim-account").comp_status is CompStatus.NONE  # a query has no undo
    for c in undo:
        assert c.undoes_key == f"s1/{c.step}"
        assert c.idempotency_key == f"s1/{c.step}/undo"


def test_first_step_failing_ends_failed_with_nothing_to_undo() -> None:
    world = World()
    started(world)
    world.drain({"vim-account": "failed"})
    assert world.status("s1") is S.FAILED
    assert not [c for c in world.sent if c.compensation]


def test_retryable_is_retried_with_backoff_then_fails_for_good() -> None:
    world = World()
    started(world)
    run_until(world, "ns-record")
    cmd = world.outbox[0]
    world.run(cmd, "retryable")
    world.reply(world.replies.pop())
    step = world.sagas["s1"].step("ns-record")
    assert step.status is StepStatus.RETRY_WAIT
    assert step.due_at is not None and step.due_at > world.now
    assert not world.outbox
    # not yet due: nothing happens
    early = world.feed("s1", RetryDue(at=step.due_at - timedelta(milliseconds=1), step="ns-record"))
    assert early.verdict == "ignored"
    delays = []
    for attempt in range(2, 6):
        due = world.sagas["s1"].step("ns-record").due_at
        delays.append(due)
        world.now = due
        world.feed("s1", RetryDue(at=due, step="ns-record"))
        (cmd,) = world.outbox
        assert cmd.attempt == attempt
        assert cmd.idempotency_key == "s1/ns-record"  # the same key for every attempt
        world.run(cmd, "retryable")
        world.reply(world.replies.pop())
    state = world.sagas["s1"]
    assert state.step("ns-record").status is StepStatus.FAILED
    assert state.error.code == "retries_exhausted"
    assert state.status is S.FAILED  # vim-account is a query: nothing to compensate


def test_retry_delays_grow_and_are_capped() -> None:
    policy = osm_registry()["ns.instantiate"].retry
    delays = [policy.delay(n, "k").total_seconds() for n in range(1, 12)]
    assert delays[0] < delays[2] < delays[4]
    assert max(delays) <= policy.maximum_interval.total_seconds() * (1 + policy.jitter)
    assert policy.delay(3, "k") == policy.delay(3, "k")  # pure: the same on every replica


def test_progress_extends_the_deadline_and_timeout_retries_as_uncertain() -> None:
    world = World()
    started(world)
    run_until(world, "ns-record")
    cmd = world.outbox.pop(0)
    first_deadline = world.sagas["s1"].step("ns-record").deadline
    world.tick(60)
    world.reply(contracts.reply_to(cmd, "progress", progress=contracts.Progress(message="half")))
    step = world.sagas["s1"].step("ns-record")
    assert step.deadline > first_deadline
    assert step.progress == "half"
    stale = world.feed("s1", StepTimedOut(at=world.now, step="ns-record", attempt=7))
    assert stale.verdict == "ignored"
    world.feed("s1", StepTimedOut(at=step.deadline, step="ns-record", attempt=1))
    step = world.sagas["s1"].step("ns-record")
    assert step.status is StepStatus.RETRY_WAIT
    assert step.uncertain


def test_uncertain_step_is_compensated_when_the_saga_fails_later() -> None:
    world = World()
    started(world)
    run_until(world, "ns-record")
    cmd = world.outbox[0]
    world.run(cmd, "lost_after_effect")
    world.feed("s1", StepTimedOut(at=world.tick(400), step="ns-record", attempt=1))
    due = world.sagas["s1"].step("ns-record").due_at
    world.feed("s1", RetryDue(at=due, step="ns-record"))
    world.drain({"ns-record": "failed"})
    state = world.sagas["s1"]
    assert state.status is S.COMPENSATED
    assert [c.step for c in world.sent if c.compensation] == ["ns-record"]
    assert world.participants.undone == {"s1/ns-record": 1}


def test_duplicate_and_late_replies_change_nothing() -> None:
    world = World()
    started(world)
    run_until(world, "ns-record")
    cmd = world.outbox[0]
    reply = world.run(cmd)
    first = world.reply(reply)
    assert first.verdict == "applied"
    before = world.sagas["s1"]
    again = world.reply(reply)
    assert again.verdict == "ignored"
    assert world.sagas["s1"] == before
    unknown = contracts.Reply(
        command_id="x", saga_id="s1", step="no-such-step", attempt=1, outcome="succeeded", result={}
    )
    assert world.reply(unknown).verdict == "ignored"


def test_late_success_of_an_earlier_attempt_is_accepted() -> None:
    world = World()
    started(world)
    run_until(world, "ns-record")
    first = world.outbox[0]
    world.run(first, "lost")
    world.feed("s1", StepTimedOut(at=world.tick(400), step="ns-record", attempt=1))
    late = contracts.reply_to(first, "succeeded", result={"ns_id": "ns-web-1"})
    assert world.reply(late).verdict == "applied"
    assert world.sagas["s1"].step("ns-record").status is StepStatus.SUCCEEDED
    assert any(c.step == "networks" for c in world.outbox)


def test_out_of_order_replies_of_a_parallel_group() -> None:
    world = World()
    started(world)
    run_until(world, "vdus:vnf-lb")
    app, lb = sorted(world.outbox, key=lambda c: c.step)
    r_app = world.run(app)
    r_lb = world.run(lb)
    world.reply(r_lb)
    world.reply(r_app)
    assert world.sagas["s1"].step("vdus:vnf-lb").completed_seq == 4
    assert world.sagas["s1"].step("vdus:vnf-app").completed_seq == 5
    world.drain()
    assert world.status("s1") is S.COMPLETED


def test_parallel_sibling_is_awaited_then_compensated() -> None:
    world = World()
    started(world)
    run_until(world, "vdus:vnf-lb")
    app, lb = sorted(world.outbox, key=lambda c: c.step)
    ok = world.run(lb)
    world.reply(world.run(app, "failed"))
    assert world.status("s1") is S.COMPENSATING
    assert not world.outbox  # awaiting vnf-lb before undoing anything
    world.reply(ok)
    world.drain()
    assert world.status("s1") is S.COMPENSATED
    undone = [c.step for c in world.sent if c.compensation]
    assert undone == ["vdus:vnf-lb", "networks", "ns-record"]


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


def test_retriable_steps_retry_forever_and_a_failure_after_commit_is_failed() -> None:
    world = World()
    started(world, "ns.terminate")
    run_until(world, "delete-resources")
    for _ in range(12):
        (cmd,) = world.outbox
        world.reply(world.run(cmd, "retryable"))
        due = world.sagas["s1"].step("delete-resources").due_at
        world.feed("s1", RetryDue(at=due, step="delete-resources"))
    assert world.sagas["s1"].step("delete-resources").attempt == 13
    world.drain({"delete-resources": "failed"})
    state = world.sagas["s1"]
    assert state.status is S.FAILED
    assert not [c for c in world.sent if c.compensation]


def test_compensation_retries_then_compensation_failed_then_operator_retry() -> None:
    world = World()
    started(world)
    world.drain({"networks": "failed"})  # leaves ns-record to undo
    assert world.status("s1") is S.COMPENSATED
    world2 = World()
    started(world2)
    run_until(world2, "networks")
    world2.reply(world2.run(world2.outbox[0], "failed"))
    for attempt in range(1, 9):
        (undo,) = world2.outbox
        assert undo.compensation and undo.attempt == attempt
        world2.reply(world2.run(undo, "retryable"))
        if attempt < 8:
            due = world2.sagas["s1"].step("ns-record").due_at
            world2.feed("s1", RetryDue(at=due, step="ns-record", compensation=True))
    state = world2.sagas["s1"]
    assert state.status is S.COMPENSATION_FAILED
    assert state.error.code == "retries_exhausted"
    assert world2.table["ns:ns-web-1"].holder is None  # released: an operator must act
    world2.feed("s1", RetryRequested(at=world2.tick(), reason="VIM is back", requested_by="bob"))
    world2.drain()
    assert world2.status("s1") is S.COMPENSATED


def test_skip_marks_a_failed_compensation_done_by_hand() -> None:
    world = World()
    started(world)
    run_until(world, "vdus:vnf-lb")
    for cmd in list(world.outbox):
        world.reply(world.run(cmd, "failed" if cmd.step == "vdus:vnf-app" else "succeeded"))
    (undo,) = world.outbox
    assert undo.step == "vdus:vnf-lb"
    world.reply(world.run(undo, "failed"))
    assert world.status("s1") is S.COMPENSATION_FAILED
    refused = world.feed(
        "s1", SkipRequested(at=world.tick(), step="networks", reason="x", requested_by="bob")
    )
    assert refused.verdict == "refused"
    world.feed(
        "s1",
        SkipRequested(
            at=world.tick(),
            step="vdus:vnf-lb",
            reason="deleted the VMs by hand",
            requested_by="bob",
        ),
    )
    world.drain()
    state = world.sagas["s1"]
    assert state.status is S.COMPENSATED
    assert state.step("vdus:vnf-lb").comp_status is CompStatus.SKIPPED
    skip = [h for d in world.decisions for h in d[2].history if h.kind == "operator.skip"]
    assert skip[0].actor == "bob" and skip[0].detail["reason"] == "deleted the VMs by hand"


def test_operator_retry_of_a_failed_saga_reuses_completed_results() -> None:
    world = World()
    started(world, "ns.terminate")
    world.drain({"delete-record": "failed"})
    assert world.status("s1") is S.FAILED
    sent_before = len(world.sent)
    world.feed("s1", RetryRequested(at=world.tick(), reason="fixed", requested_by="ops"))
    world.drain()
    assert world.status("s1") is S.COMPLETED
    again = [c.step for c in world.sent[sent_before:]]
    assert again == ["delete-record"]
    refused = world.feed("s1", RetryRequested(at=world.tick(), reason="x", requested_by="ops"))
    assert refused.verdict == "refused"


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


def test_every_transition_is_in_the_history() -> None:
    world = World()
    started(world)
    world.drain({"vdus:vnf-app": "failed"})
    kinds = [h.kind for d in world.decisions if d[0] == "s1" for h in d[2].history]
    assert kinds[0] == "saga.created"
    assert kinds.count("step.started") == 5
    assert kinds.count("step.succeeded") == 4
    assert kinds.count("step.failed") == 1
    assert kinds.count("compensation.started") == kinds.count("compensation.succeeded") == 3
    statuses = [
        (h.from_status, h.to_status)
        for d in world.decisions
        for h in d[2].history
        if h.kind == "saga.status"
    ]
    assert statuses == [
        ("pending", "running"),
        ("running", "compensating"),
        ("compensating", "compensated"),
    ]
    events = [e.status for d in world.decisions for e in d[2].events]
    assert events == [S.PENDING, S.RUNNING, S.COMPENSATING, S.COMPENSATED]


def test_commands_are_deterministic_and_carry_deadlines() -> None:
    a, b = World(), World()
    started(a)
    started(b)
    assert a.outbox == b.outbox
    (cmd,) = a.outbox
    assert cmd.deadline == T0 + timedelta(seconds=30)
    assert cmd.service == "vim" and cmd.action == "vim.get-account"


def test_bad_start_requests_are_refused_with_a_clear_error() -> None:
    engine = Engine(osm_registry())
    with pytest.raises(UnknownSagaType, match=r"known: ns\.instantiate"):
        engine.start(saga_type="ns.explode", saga_id="x", input={}, at=T0)
    with pytest.raises(InvalidInput) as err:
        engine.start(saga_type="ns.instantiate", saga_id="x", input={"ns_id": "a"}, at=T0)
    assert any(e["loc"] == ("vnfs",) for e in err.value.errors)


def test_invalid_result_from_a_participant_fails_the_step() -> None:
    world = World()
    started(world)
    run_until(world, "ns-record")
    cmd = world.outbox.pop(0)
    world.reply(contracts.reply_to(cmd, "succeeded", result={"unexpected": 1}))
    step = world.sagas["s1"].step("ns-record")
    assert step.status is StepStatus.FAILED
    assert step.error.code == "invalid_result"


def test_reply_to_an_ended_saga_is_ignored() -> None:
    world = World()
    started(world)
    world.drain()
    cmd = world.sent[0]
    decision = world.feed(
        "s1",
        StepReplied(
            at=world.tick(),
            reply=contracts.reply_to(cmd, "failed", error=ErrorInfo(code="x", message="y")),
        ),
    )
    assert decision.verdict == "ignored"
