"""Operator verbs and resource policies in the pure engine: retry runs, abandon, shared locks."""

from __future__ import annotations

from contracts import SagaStatus
from coordinator.core import AbandonRequested, RetryRequested, StepReplied
from coordinator.core.locks import Claimant, LockQueue, acquire, release
from sagas import LockMode, LockPolicy, QueuedPolicy
from tests.unit.world import World, example

S = SagaStatus


def test_a_retried_step_runs_again_under_a_new_key_stable_across_redeliveries() -> None:
    world = World()
    world.start("ns.instantiate", "s1", example("ns.instantiate"))
    world.drain({"vim-account": "failed"})
    assert world.status("s1") is S.FAILED
    first = [c for c in world.sent if c.step == "vim-account"]
    assert [c.idempotency_key for c in first] == ["s1/vim-account"]
    world.tick(60)
    world.feed("s1", RetryRequested(at=world.now, reason="account registered", requested_by="ops"))
    # Its locks taken again, the step starts over: a new run, attempt 1, timed from now.
    step = world.sagas["s1"].step("vim-account")
    assert (step.forward.run, step.attempt, step.forward.started_at) == (1, 1, world.now)
    retried = [c for c in world.outbox if c.step == "vim-account"]
    assert [c.idempotency_key for c in retried] == ["s1/vim-account/r1"]
    world.drain()
    assert world.status("s1") is S.COMPLETED
    # The history says who asked, why, and which steps run again.
    retry = next(h for _, _, d in world.decisions for h in d.history if h.kind == "operator.retry")
    assert retry.actor == "ops"
    assert retry.detail == {"reason": "account registered", "steps": ["vim-account"]}


def test_a_retried_compensation_runs_again_under_a_new_key() -> None:
    world = World()
    world.start("ns.instantiate", "s2", example("ns.instantiate"))
    for _ in range(200):
        if world.status("s2").terminal:
            break
        if world.outbox:
            cmd = world.outbox[0]
            if cmd.compensation and cmd.step == "ns-record":
                world.run(cmd, "failed")
            else:
                world.run(cmd, "failed" if cmd.step == "vdus:vnf-app" else "succeeded")
        elif world.replies:
            world.reply(world.replies.pop(0))
    assert world.status("s2") is S.COMPENSATION_FAILED
    world.feed("s2", RetryRequested(at=world.tick(), reason="lcm fixed", requested_by="ops"))
    undo = [c for c in world.outbox if c.step == "ns-record" and c.compensation]
    assert [c.idempotency_key for c in undo] == ["s2/ns-record/undo/r1"]
    assert undo[0].undoes_key == "s2/ns-record"
    world.drain()
    assert world.status("s2") is S.COMPENSATED


def test_abandon_stops_driving_without_compensating_and_releases_the_locks() -> None:
    world = World()
    world.start("ns.instantiate", "s3", example("ns.instantiate"))
    for _ in range(3):
        world.drain_one()
    in_flight = list(world.outbox)
    decision = world.feed(
        "s3", AbandonRequested(at=world.tick(), reason="fixing by hand", requested_by="ops")
    )
    assert world.status("s3") is S.ABANDONED
    assert not any(c.compensation for c in decision.commands)
    assert not [c for c in world.outbox if c in in_flight]  # unsent commands withdrawn
    assert world.table["ns:ns-web-1"].holder is None
    assert decision.history[0].kind == "operator.abandon"
    # A reply still in flight changes nothing now; a second abandon is refused.
    for reply in list(world.replies):
        assert world.feed("s3", StepReplied(at=world.tick(), reply=reply)).verdict == "ignored"
    again = world.feed("s3", AbandonRequested(at=world.tick(), reason="x", requested_by="ops"))
    assert again.verdict == "refused"


def test_scale_outs_of_two_vnfs_share_their_ns_and_a_terminate_waits_for_both() -> None:
    world = World()
    lb = example("ns.scale-out")
    app = {**lb, "vnf": "vnf-app"}
    world.start("ns.scale-out", "lb", {**lb, "vnf": "vnf-lb"})
    world.start("ns.scale-out", "app", app)
    assert world.status("lb") is world.status("app") is S.RUNNING
    assert {h.saga_id for h in world.table["ns:ns-web-1"].holders} == {"lb", "app"}
    world.start("ns.scale-out", "app-2", app)
    assert world.status("app-2") is S.PENDING  # the same VNF: one at a time
    world.start("ns.instantiate", "other", example("ns.instantiate", ns_id="ns-2"))
    assert world.status("other") is S.RUNNING  # the VIM account is shared too


def test_an_exclusive_claim_waits_for_every_sharer_and_is_never_overtaken() -> None:
    a, b, c, d = (Claimant(x, "t") for x in "abcd")
    table = acquire({}, a, ["r"], LockPolicy.WAIT, shared=["r"]).table
    table = acquire(table, b, ["r"], LockPolicy.WAIT, shared=["r"]).table
    got_c = acquire(table, c, ["r"], LockPolicy.WAIT)
    assert not got_c.granted and got_c.waiting_for == ("r",)
    got_d = acquire(got_c.table, d, ["r"], LockPolicy.WAIT, shared=["r"])
    assert not got_d.granted  # a sharer does not jump the exclusive claim ahead of it
    out = release(got_d.table, "a")
    assert out.granted == ()
    out = release(out.table, "b")
    assert out.granted == (c,)
    out = release(out.table, "c")
    assert out.granted == (d,)
    assert out.table["r"].holders[0].mode is LockMode.SHARED


def test_a_superseding_saga_cancels_the_queued_work_of_the_superseded_types() -> None:
    inst, scale, other = (
        Claimant("i", "ns.instantiate"),
        Claimant("s", "ns.scale-out"),
        Claimant("o", "x"),
    )
    table = {"ns:1": LockQueue("ns:1", (inst,), (scale, other))}
    kinds = ("ns.instantiate", "ns.scale-out")
    term = Claimant("t", "ns.terminate")
    kept = acquire(table, term, ["ns:1"], LockPolicy.SUPERSEDE, kinds)
    assert kept.cancel == (inst,)
    got = acquire(table, term, ["ns:1"], LockPolicy.SUPERSEDE, kinds, queued=QueuedPolicy.CANCEL)
    assert got.cancel == (inst, scale)
    assert got.table["ns:1"].position("t") == 1


def test_vim_account_delete_waits_for_a_running_instantiate_on_the_account() -> None:
    world = World()
    world.start("ns.instantiate", "inst", example("ns.instantiate"))
    world.start("vim-account.delete", "del", example("vim-account.delete"))
    assert world.status("del") is S.PENDING
    world.drain()
    assert world.status("inst") is S.COMPLETED
    assert world.status("del") is S.COMPLETED
    started = [c.step for c in world.sent if c.saga_id == "del"]
    inst_done = max(i for i, c in enumerate(world.sent) if c.saga_id == "inst")
    first_del = min(i for i, c in enumerate(world.sent) if c.saga_id == "del")
    assert started and first_del > inst_done
