"""One transaction per event (or per group of them, `group_commit`), and applying a Decision.

    BEGIN; insert inbox(message_id) or stop (a duplicate); SELECT saga FOR UPDATE;
    decide(); write saga, steps, history, outbox (and lock rows); COMMIT.
    Or, alone on PostgreSQL (`fast`): read without lock; decide(); one statement that commits.

The caller acks the message only after `Processor` returns. A conflict (serialization
failure, deadlock, a saga row that moved) or a lost connection retries the whole
transaction, bounded, with jittered backoff. Applying a decision does in SQL exactly what
tests/unit/world.py does in memory: lock outcomes and withdrawn commands are fed back to
`decide` in the same transaction; cancelling superseded holders and waking granted waiters
go through the outbox as messages to the coordinator itself.

A message that cannot be accepted is not an exception: the processor returns an `Outcome`
of kind `rejected` with a stable reason, and the consumer dead-letters the message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import ErrorInfo, Reply, StartSaga
from convection.failpoints import NONE as NO_FAILPOINTS
from convection.failpoints import Failpoints
from coordinator import lock_table, outgoing
from coordinator.core import (
    CommandsWithdrawn,
    Decision,
    Engine,
    Event,
    HistoryEntry,
    SagaState,
    StepReplied,
    dump_event,
    load_event,
    message_id,
)
from coordinator.errors import (
    DefinitionMissing,
    InvalidInput,
    StartRejected,
)
from coordinator.failpoints import BEFORE_COMMIT, COMPENSATING
from coordinator.metrics import Metrics
from coordinator.outcome import Outcome, rejected
from coordinator.senders import Senders
from coordinator.start_input import same_start, sealed_input
from coordinator.store import OutboxMessage, OutboxRow, Store
from coordinator.store.hot import HANDOFF_LEASE
from coordinator.trace import new_trace_id
from coordinator.transactions import Transactions, Unit

logger = logging.getLogger(__name__)

Check = Callable[[SagaState], Outcome | None]
"""Looks at the saga before the event is fed; an Outcome (rejected) stops there."""
AfterHook = Callable[[AsyncConnection, SagaState], Awaitable[None]]
"""Runs in the same transaction once the decision is written."""


class Processor(Transactions):
    """Runs events through `decide()` inside transactions and writes what it decided."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        metrics: Metrics,
        on_commit: Callable[[], None] = lambda: None,
        hand_off: Callable[[Sequence[OutboxRow]], Awaitable[None]] | None = None,
        max_attempts: int = 6,
        failpoints: Failpoints = NO_FAILPOINTS,
        seal: Callable[[str], str] | None = None,
        senders: Senders | None = None,
        group: tuple[int, int] | None = None,
    ) -> None:
        """`group=(lanes, most)` turns on group commit for starts and replies (group_commit)."""
        super().__init__(
            store=store,
            metrics=metrics,
            on_commit=on_commit,
            hand_off=hand_off,
            max_attempts=max_attempts,
            failpoints=failpoints,
            group=group,
        )
        self.senders = senders
        self.engine = engine
        self._seal = seal

    async def start_saga(
        self, msg: StartSaga, *, trace_id: str | None = None, requested_by: str = "amqp"
    ) -> Outcome:
        """Create the saga a StartSaga asks for; a saga id that exists is a duplicate."""
        # No saga id: derive one from the message id, so a redelivery finds the same saga.
        saga_id = msg.saga_id or message_id("saga", msg.message_id)

        def started(at: datetime) -> Decision:
            return self.engine.start(
                saga_type=msg.saga_type,
                saga_id=saga_id,
                input=sealed_input(self.engine.registry, msg.saga_type, msg.input, self._seal),
                at=at,
                trace_id=trace_id or new_trace_id(),
                requested_by=requested_by,
            )

        async def body(u: Unit) -> Outcome:
            claimed = await self.store.claim_start(u.conn, msg.message_id, saga_id)
            u.at = claimed.at
            if not claimed.fresh:
                return Outcome("duplicate", saga_id)
            existing = await self.store.load(u.conn, saga_id) if claimed.known else None
            if existing is not None:
                return await self._existing_start(u, msg, existing, trace_id)
            try:
                decision = started(u.at)
            except StartRejected as exc:
                # The sender hears back through a lifecycle event, besides the dead letter.
                error = ErrorInfo(code=exc.code, message=str(exc)[:4000])
                answer = outgoing.rejected_message(msg, saga_id, error, u.at, trace_id)
                await self._enqueue(u, [answer])
                errors = exc.errors if isinstance(exc, InvalidInput) else []
                return rejected(exc.code, str(exc), errors)
            state = await self._written(u, None, decision)
            if state is None:
                return Outcome("duplicate", saga_id, note="the saga exists")
            return Outcome("applied", saga_id, state.status)

        async def fast(u: Unit) -> Outcome | None:
            assert self.store.hot is not None, "optimistic bodies run on PostgreSQL only"
            seen = await self.store.hot.peek_start(u.conn, msg.message_id, saga_id)
            u.at = seen.at
            if not seen.fresh:
                return Outcome("duplicate", saga_id)
            if seen.known:
                return None
            try:
                decision = started(u.at)
            except StartRejected:
                return None
            state = await self._written_alone(u, None, decision, msg.message_id)
            return None if state is None else Outcome("applied", saga_id, state.status)

        return await self._run(body, timed=False, group=saga_id, fast=fast)

    async def feed(
        self,
        saga_id: str,
        make_event: Callable[[datetime], Event],
        *,
        message_id: str | None = None,
        skip_locked: bool = False,
        check: Check | None = None,
        after: AfterHook | None = None,
        grouped: bool = False,
    ) -> Outcome:
        """Feed one event (built at the database time) to one saga, in one transaction.

        Args:
            saga_id: The saga.
            make_event: Builds the event from the database clock's time.
            message_id: The id of the message that carried it, for the inbox.
            skip_locked: Skip the saga if another transaction holds it (timers).
            check: Looks at the saga first; returning an Outcome stops there.
            after: Runs in the same transaction once the decision is written.
            grouped: May share a transaction with other messages (group commit).
        """

        async def body(u: Unit) -> Outcome:
            loaded = await self.store.claim_and_lock(
                u.conn, message_id, saga_id, skip_locked=skip_locked
            )
            u.at = loaded.at
            if not loaded.fresh:
                return Outcome("duplicate", saga_id)
            found = loaded.found
            if found is None:
                if skip_locked:
                    return Outcome("skipped", saga_id)
                return rejected("unknown_saga", f"no saga {saga_id!r}")
            state, parked = found
            if check is not None and (stop := check(state)) is not None:
                return stop
            if not self.engine.knows(state):
                if skip_locked:
                    # A timer's event is derived again by a coordinator that has the version.
                    return Outcome("skipped", saga_id, note="definition missing")
                return await self._park(u, state, make_event(u.at), message_id, first=not parked)
            if parked is not None:
                state = await self._feed_parked(u, state)
            decision = self.engine.decide(state, make_event(u.at))
            new = await self._apply(u, state, decision)
            if after is not None:
                await after(u.conn, new)
            return Outcome(decision.verdict, saga_id, new.status, note=decision.note)

        async def fast(u: Unit) -> Outcome | None:
            assert self.store.hot is not None
            assert message_id is not None
            seen = await self.store.hot.peek(u.conn, message_id, saga_id)
            u.at = seen.at
            if not seen.fresh:
                return Outcome("duplicate", saga_id)
            if seen.found is None or seen.found[1] is not None:
                return None
            state = seen.found[0]
            if (check is not None and check(state) is not None) or not self.engine.knows(state):
                return None
            decision = self.engine.decide(state, make_event(u.at))
            if decision.verdict in ("ignored", "refused"):
                return None
            new = await self._written_alone(u, state, decision, message_id)
            if new is None:
                return None
            return Outcome(decision.verdict, saga_id, new.status, note=decision.note)

        # Only grouped feeds (replies) have an optimistic body: one event, one message id.
        optimistic = fast if grouped and message_id is not None and after is None else None
        return await self._run(
            body, timed=False, group=saga_id if grouped else None, fast=optimistic
        )

    async def _existing_start(
        self, u: Unit, msg: StartSaga, existing: SagaState, trace_id: str | None
    ) -> Outcome:
        """A StartSaga for a saga id that exists: the same start again, or a conflict."""
        if same_start(self.engine.registry, existing, msg):
            return Outcome("duplicate", existing.saga_id, existing.status, note="the saga exists")
        # Another start under a taken id: refused with a reason, and the sender hears back.
        note = (
            f"saga {existing.saga_id} exists as a {existing.saga_type} with another input; "
            "choose another saga_id"
        )
        error = ErrorInfo(code="conflict", message=note)
        answer = outgoing.rejected_message(msg, existing.saga_id, error, u.at, trace_id)
        await self._enqueue(u, [answer])
        return rejected("conflict", note)

    async def feed_parked(self, saga_id: str) -> Outcome:
        """Feed a parked saga's kept events, if this coordinator has its version now."""

        async def body(u: Unit) -> Outcome:
            found = await self.store.load_parked(u.conn, saga_id, lock=True, skip_locked=True)
            if found is None or found[1] is None or not self.engine.knows(found[0]):
                return Outcome("skipped", saga_id)
            state = await self._feed_parked(u, found[0])
            return Outcome("applied", saga_id, state.status)

        return await self._run(body)

    async def reply(self, reply: Reply, *, sender: str | None = None) -> Outcome:
        """Feed a participant's reply to its saga; an unknown saga or step is rejected.

        `sender` is the broker user that published it: with `senders` set, a reply from any
        other user than its step's service's is rejected as `forged`.
        """

        def check(state: SagaState) -> Outcome | None:
            step = state.step(reply.step)
            if step is None:
                return rejected("unknown_step", f"saga {reply.saga_id} has no step {reply.step!r}")
            if self.senders is not None:
                return self.senders.check(step.service, sender, reply)
            return None

        return await self.feed(
            reply.saga_id,
            lambda at: StepReplied(at=at, reply=reply),
            message_id=reply.message_id,
            check=check,
            grouped=True,
        )

    # -- parking ----------------------------------------------------------------------------

    async def _park(
        self, u: Unit, state: SagaState, event: Event, message_id: str | None, *, first: bool
    ) -> Outcome:
        # Never guess at a definition: keep the event, untouched, for a coordinator that has it.
        reason = DefinitionMissing(state.saga_type, state.definition_version).reason
        await self.store.park(u.conn, state.saga_id, reason, dump_event(event), message_id, u.at)
        if first:
            entry = HistoryEntry(
                at=u.at, kind="saga.parked", cause=event.kind, detail={"reason": reason}
            )
            await self.store.append_history(u.conn, state.saga_id, [entry])
            logger.warning("saga %s parked: %s", state.saga_id, reason)
        u.parked += 1
        return Outcome("parked", state.saga_id, state.status, note=reason)

    async def _feed_parked(self, u: Unit, state: SagaState) -> SagaState:
        # What was kept happened before whatever arrives now: feed it first, in order.
        kept = await self.store.parked_events(u.conn, state.saga_id)
        for row in kept:
            state = await self._feed(u, state, load_event(row.event))
        await self.store.unpark(u.conn, state.saga_id)
        entry = HistoryEntry(
            at=u.at,
            kind="saga.unparked",
            cause="definition_loaded",
            detail={"events": len(kept), "version": state.definition_version},
        )
        await self.store.append_history(u.conn, state.saga_id, [entry])
        return state

    # -- applying a decision ----------------------------------------------------------------

    async def _apply(self, u: Unit, previous: SagaState, decision: Decision) -> SagaState:
        state = decision.state
        if decision.verdict == "ignored":
            return state
        if decision.verdict == "refused":
            # Who asked for what stays in the audit log, though the saga does not change.
            await self.store.append_history(u.conn, state.saga_id, decision.history)
            return state
        written = await self._written(u, previous, decision)
        assert written is not None, "only a new saga's row can be found taken"
        return written

    async def _written_alone(
        self, u: Unit, previous: SagaState | None, decision: Decision, message_id: str
    ) -> SagaState | None:
        """Write a decision and claim its message id in one statement; None: nothing written.

        Only a decision that one statement holds: no locks to take or release, no commands to
        withdraw (each a statement more, which must share a transaction).
        """
        if decision.withdraw or decision.acquire or (decision.release and decision.state.resources):
            return None
        return await self._written(u, previous, decision, claim=message_id)

    async def _written(
        self, u: Unit, previous: SagaState | None, decision: Decision, claim: str | None = None
    ) -> SagaState | None:
        """Write the saga row (new, or over `previous`) and what goes with it; None: id taken.

        `claim`: the message id, claimed by the same statement, which then is the transaction.
        """
        state = decision.state
        if any(cmd.compensation for cmd in decision.commands):
            self.failpoints.hit(COMPENSATING)
        messages = self._messages(state, decision)
        lease = HANDOFF_LEASE if self._hand_off is not None else timedelta(0)
        if claim is not None:
            # This statement commits: a crash here must find nothing written, as before COMMIT.
            self.failpoints.hit(BEFORE_COMMIT)
        written = await self.store.write_decision(
            u.conn,
            previous,
            state,
            decision.history,
            messages,
            at=u.at,
            available_at=u.at + lease,
            claim=claim,
        )
        if written is None:
            return None
        # Handed to this process's relay at once, or left for the polling relay.
        u.queued += written.queued + (0 if self._hand_off else len(written.outbox))
        u.handed.extend(written.rows(u.at) if self._hand_off is not None else ())
        u.changes.append((previous, state))
        if decision.withdraw:
            deleted = await self.store.withdraw(u.conn, decision.withdraw, u.at)
            if deleted:
                state = await self._feed(u, state, CommandsWithdrawn(at=u.at, command_ids=deleted))
        if decision.acquire:
            state = await self._acquire(u, state, decision.acquire)
        if decision.release:
            await self._release(u, state)
        return state

    async def _feed(self, u: Unit, state: SagaState, event: Event) -> SagaState:
        return await self._apply(u, state, self.engine.decide(state, event))

    async def _enqueue(self, u: Unit, messages: Iterable[OutboxMessage]) -> None:
        u.queued += await self.store.add_outbox(u.conn, messages, u.at)

    @staticmethod
    def _messages(state: SagaState, decision: Decision) -> list[OutboxMessage]:
        out = [outgoing.command_message(state, cmd) for cmd in decision.commands]
        out.extend(outgoing.event_message(state, ev) for ev in decision.events)
        return out

    async def _acquire(self, u: Unit, state: SagaState, resources: tuple[str, ...]) -> SagaState:
        saga = self.engine.registry.get(state.saga_type, state.definition_version)
        assert saga is not None, "decide() ran, so the definition is loaded"
        event, cancels = await lock_table.acquire(self.store, u.conn, saga, state, resources, u.at)
        await self._enqueue(u, cancels)
        return await self._feed(u, state, event)

    async def _release(self, u: Unit, state: SagaState) -> None:
        await self._enqueue(u, await lock_table.release(self.store, u.conn, state))
