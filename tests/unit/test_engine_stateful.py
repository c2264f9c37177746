"""Random interleavings against the OSM sagas, with the engine's invariants checked after
every step: replies delivered late, twice or out of order, lost, timeouts, retries, cancels,
operator verbs, and several sagas competing for the same NS.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from contracts import SagaStatus
from coordinator.core import (
    AbandonRequested,
    CancelRequested,
    CompStatus,
    RetryDue,
    RetryRequested,
    SagaTimedOut,
    SkipRequested,
    StepStatus,
    StepTimedOut,
)
from coordinator.core.commands import idempotency_key
from sagas import StepKind
from tests.unit.world import World, example

S = SagaStatus
OUTCOMES = ["succeeded"] * 6 + ["failed", "retryable", "lost", "lost_after_effect"]
SAGA_TYPES = [
    "ns.instantiate",
    "ns.instantiate",
    "ns.scale-out",
    "ns.terminate",
    "vim-account.create",
    "vim-account.delete",
]


class SagaMachine(RuleBasedStateMachine):
    """Drive a World at random and check the invariants after every rule."""

    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.count = 0
        self.terminal_seen: dict[str, object] = {}
        self.comp_started: dict[tuple[str, str], int] = {}
        self.comp_done: dict[tuple[str, str], int] = {}
        self.seen_decisions = 0
        self.clock = 0

    # -- rules ----------------------------------------------------------------------------

    @rule(kind=st.sampled_from(SAGA_TYPES), ns=st.sampled_from(["ns-a", "ns-b"]))
    def start(self, kind: str, ns: str) -> None:
        self.count += 1
        changes = {"ns_id": ns} if kind.startswith("ns.") else {}
        self.world.start(kind, f"s{self.count}", example(kind, **changes))

    @precondition(lambda self: self.world.outbox)
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def deliver_command(self, data: st.DataObject, outcome: str) -> None:
        cmd = data.draw(st.sampled_from(self.world.outbox))
        self.world.run(cmd, outcome)

    @precondition(lambda self: self.world.outbox or self.world.replies)
    @rule(
        n=st.integers(1, 12),
        fail=st.sampled_from([None, "vdus", "day1", "mark-ready", "networks", "vdus:vnf-app"]),
    )
    def pump(self, n: int, fail: str | None) -> None:
        """Let work flow for a while, so random runs reach deep stages and compensations."""
        for _ in range(n):
            if self.world.outbox:
                cmd = self.world.outbox[0]
                failing = fail is not None and not cmd.compensation and cmd.step.startswith(fail)
                self.world.run(cmd, "failed" if failing else "succeeded")
            elif self.world.replies:
                self.world.reply(self.world.replies.pop(0))

    @precondition(lambda self: self.world.replies)
    @rule(data=st.data(), keep=st.booleans())
    def deliver_reply(self, data: st.DataObject, keep: bool) -> None:
        index = data.draw(st.integers(0, len(self.world.replies) - 1))
        reply = self.world.replies[index] if keep else self.world.replies.pop(index)
        self.world.reply(reply)  # keep=True: it comes again later (a duplicate)

    @precondition(lambda self: self._running_steps())
    @rule(data=st.data())
    def step_deadline_passes(self, data: st.DataObject) -> None:
        saga_id, step = data.draw(st.sampled_from(self._running_steps()))
        s = self.world.sagas[saga_id].step(step)
        comp = s.comp_status is CompStatus.RUNNING
        attempt = s.comp_attempt if comp else s.attempt
        self.world.feed(
            saga_id,
            StepTimedOut(at=self._at(s.deadline), step=step, attempt=attempt, compensation=comp),
        )

    @precondition(lambda self: self._waiting_steps())
    @rule(data=st.data())
    def retry_comes_due(self, data: st.DataObject) -> None:
        saga_id, step = data.draw(st.sampled_from(self._waiting_steps()))
        s = self.world.sagas[saga_id].step(step)
        comp = s.comp_status is CompStatus.RETRY_WAIT
        self.world.feed(saga_id, RetryDue(at=self._at(s.due_at), step=step, compensation=comp))

    @precondition(lambda self: self.world.sagas)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        saga_id = data.draw(st.sampled_from(sorted(self.world.sagas)))
        self.world.feed(saga_id, CancelRequested(at=self.world.tick(), reason="random"))

    @precondition(lambda self: self.world.sagas)
    @rule(data=st.data())
    def saga_deadline_passes(self, data: st.DataObject) -> None:
        saga_id = data.draw(st.sampled_from(sorted(self.world.sagas)))
        deadline = self.world.sagas[saga_id].deadline
        if deadline is not None:
            self.world.feed(saga_id, SagaTimedOut(at=self._at(deadline)))

    @precondition(
        lambda self: any(
            s.status in (S.FAILED, S.COMPENSATION_FAILED) for s in self.world.sagas.values()
        )
    )
    @rule(data=st.data())
    def operator_retry(self, data: st.DataObject) -> None:
        ids = sorted(
            i for i, s in self.world.sagas.items() if s.status in (S.FAILED, S.COMPENSATION_FAILED)
        )
        saga_id = data.draw(st.sampled_from(ids))
        self.terminal_seen.pop(saga_id, None)
        self.world.feed(
            saga_id, RetryRequested(at=self.world.tick(), reason="r", requested_by="op")
        )

    @precondition(
        lambda self: any(s.status is S.COMPENSATION_FAILED for s in self.world.sagas.values())
    )
    @rule(data=st.data())
    def operator_skip(self, data: st.DataObject) -> None:
        ids = sorted(i for i, s in self.world.sagas.items() if s.status is S.COMPENSATION_FAILED)
        saga_id = data.draw(st.sampled_from(ids))
        failed = [
            s.name for s in self.world.sagas[saga_id].steps if s.comp_status is CompStatus.FAILED
        ]
        self.terminal_seen.pop(saga_id, None)
        self.world.feed(
            saga_id,
            SkipRequested(at=self.world.tick(), step=failed[0], reason="r", requested_by="op"),
        )

    @precondition(lambda self: self.world.sagas)
    @rule(data=st.data())
    def operator_abandon(self, data: st.DataObject) -> None:
        saga_id = data.draw(st.sampled_from(sorted(self.world.sagas)))
        if self.world.status(saga_id) in (S.FAILED, S.COMPENSATION_FAILED):
            self.terminal_seen.pop(saga_id, None)  # an operator verb may move an ended saga
        decision = self.world.feed(
            saga_id, AbandonRequested(at=self.world.tick(), reason="r", requested_by="op")
        )
        if decision.verdict == "applied":
            assert self.world.status(saga_id) is S.ABANDONED
            assert not any(c.compensation for c in decision.commands)

    # -- helpers ----------------------------------------------------------------------------

    def _at(self, when: datetime | None) -> datetime:
        # Timers fire at or after their due time, and the clock never goes back.
        assert when is not None
        self.world.now = max(self.world.now, when) + timedelta(milliseconds=1)
        return self.world.now

    def _running_steps(self) -> list[tuple[str, str]]:
        return [
            (i, s.name)
            for i, g in sorted(self.world.sagas.items())
            for s in g.steps
            if (s.status is StepStatus.RUNNING or s.comp_status is CompStatus.RUNNING)
            and not g.status.terminal
        ]

    def _waiting_steps(self) -> list[tuple[str, str]]:
        return [
            (i, s.name)
            for i, g in sorted(self.world.sagas.items())
            for s in g.steps
            if (s.status is StepStatus.RETRY_WAIT or s.comp_status is CompStatus.RETRY_WAIT)
            and not g.status.terminal
        ]

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def check_new_decisions(self) -> None:
        """Walk the decisions made since the last check, in order."""
        decisions = self.world.decisions[self.seen_decisions :]
        self.seen_decisions = len(self.world.decisions)
        for saga_id, event, decision in decisions:
            if event is not None and saga_id in self.terminal_seen:
                # A terminal saga never changes again (operator verbs reset terminal_seen).
                assert decision.state == self.terminal_seen[saga_id], (
                    f"{saga_id} changed after it ended, on {event.kind}"
                )
            state = decision.state
            # Judged on the state after the decision: undoing anything in the decision that
            # records the pivot's success is as wrong as undoing it later.
            pivot_done = any(
                s.kind is StepKind.PIVOT and s.status is StepStatus.SUCCEEDED for s in state.steps
            )
            for cmd in decision.commands:
                if not cmd.compensation:
                    continue
                step = state.step(cmd.step)
                assert step is not None
                key = (saga_id, cmd.step)
                # Never compensate a step that had no effect (unless its outcome is unknown).
                had_effect = self.world.participants.effects.get(cmd.undoes_key or "", 0) > 0
                assert had_effect or step.uncertain, f"{key} undone but it had no effect"
                # After the pivot, no compensation ever runs.
                assert not pivot_done, f"{key} compensated after the pivot succeeded"
                self.comp_started.setdefault(key, self.clock)
                # Reverse order of completion: everything completed later is already undone.
                for later in state.steps:
                    if (
                        later.completed_seq
                        and step.completed_seq
                        and later.completed_seq > step.completed_seq
                        and later.stage > step.stage
                        and later.kind is StepKind.COMPENSATABLE
                    ):
                        assert later.comp_status in (CompStatus.DONE, CompStatus.SKIPPED), (
                            f"{key} undone before {later.name}, which completed after it"
                        )
            self.clock += 1
            if state.status.terminal and decision.verdict == "applied":
                self.terminal_seen[saga_id] = state

    @invariant()
    def effects_at_most_once(self) -> None:
        parts = self.world.participants
        assert all(n <= 1 for n in parts.effects.values())
        assert all(parts.undone.get(k, 0) <= parts.effects.get(k, 0) for k in parts.undone)
        # Across operator retries too: a retry runs a step again (a new key) only if the run
        # before left no effect.
        per_step: dict[str, int] = {}
        for key, n in parts.effects.items():
            step = re.sub(r"/r[0-9]+$", "", key)
            per_step[step] = per_step.get(step, 0) + n
        assert all(n <= 1 for n in per_step.values()), per_step

    @invariant()
    def compensated_sagas_undid_every_effect_exactly_once(self) -> None:
        parts = self.world.participants
        for saga_id, state in self.world.sagas.items():
            if state.status not in (S.COMPENSATED, S.CANCELLED):
                continue
            for step in state.steps:
                key = idempotency_key(saga_id, step.name, step.forward.run)
                if step.kind is StepKind.COMPENSATABLE and step.status is StepStatus.SUCCEEDED:
                    assert step.comp_status in (CompStatus.DONE, CompStatus.SKIPPED), key
                if step.comp_status is CompStatus.DONE:
                    assert parts.undone.get(key, 0) == parts.effects.get(key, 0), key
                if parts.effects.get(key) and step.comp_status is not CompStatus.SKIPPED:
                    assert step.kind is not StepKind.COMPENSATABLE or parts.undone.get(key) == 1, (
                        f"{key} had an effect that was never undone"
                    )

    @invariant()
    def no_two_sagas_hold_a_resource(self) -> None:
        # Unless both share it (issue 11: shared locks): an exclusive holder is always alone.
        holders: dict[str, list[tuple[str, bool]]] = {}
        for saga_id, state in self.world.sagas.items():
            if state.status in (S.RUNNING, S.COMPENSATING):
                for resource in state.resources:
                    shared = resource in state.shared
                    others = holders.setdefault(resource, [])
                    assert all(shared and theirs for _, theirs in others), (
                        f"{resource} held by {others} and {saga_id}"
                    )
                    others.append((saga_id, shared))
                    assert self.world.table[resource].holds(saga_id)

    @invariant()
    def statuses_are_consistent(self) -> None:
        for state in self.world.sagas.values():
            if state.status is S.COMPLETED:
                assert all(s.status is StepStatus.SUCCEEDED for s in state.steps)
            if state.status.terminal:
                assert not any(
                    s.status is StepStatus.RUNNING
                    for s in state.steps
                    if state.status is not S.FAILED
                )


SagaMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Thorough, so slow on a loaded machine: its own time limit instead of the suite's default.
test_engine_state_machine = pytest.mark.timeout(900)(SagaMachine.TestCase)
