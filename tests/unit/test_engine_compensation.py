"""Table tests of the pure engine's compensation: undo order, failed undos, skip, retry."""

from __future__ import annotations

from contracts import ErrorInfo, SagaStatus
from coordinator.core import CompStatus, RetryDue, RetryRequested, SkipRequested, StepTimedOut
from tests.unit.world import World, run_until, started

S = SagaStatus


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
