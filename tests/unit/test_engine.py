"""Table tests of the pure engine: one test (or table row) per rule; steps, retries, replies."""

from __future__ import annotations

from datetime import timedelta

import pytest

import contracts
from contracts import ErrorInfo, SagaStatus
from coordinator.core import Engine, RetryDue, StepReplied, StepStatus, StepTimedOut
from coordinator.errors import InvalidInput, UnknownSagaType
from sagas import osm_registry
from tests.unit.world import T0, World, run_until, started

S = SagaStatus


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
