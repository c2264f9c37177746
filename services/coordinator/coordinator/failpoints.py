"""The coordinator's failpoints (`CONVECTION_FAILPOINT`), for fault tests.

Each names a point on the path of a message where a crash must lose nothing:

- `relay.before_publish`: the saga's transaction committed; the relay claimed its rows and
  dies before publishing them (another relay sends them).
- `relay.after_confirm`: the broker confirmed the rows; the relay dies before marking them
  sent (they go out again: consumers dedupe).
- `processor.before_commit`: an event was decided and written; the process dies before the
  transaction commits, or on the optimistic path before the one statement that is its
  transaction (nothing happened; the message is redelivered). A message whose optimistic
  write gives way reaches it again on the locking path, so `@N` counts attempts to commit,
  not messages.
- `consumer.after_commit`: the transaction committed; the process dies before the ack (the
  redelivery is a duplicate the inbox drops).
- `processor.compensating`: a decision that starts a compensation was written; the process
  dies before it commits (the compensation is decided again).
"""

from __future__ import annotations

RELAY_BEFORE_PUBLISH = "relay.before_publish"
"""Dies after claiming outbox rows, before publishing them."""
RELAY_AFTER_CONFIRM = "relay.after_confirm"
"""Dies after the broker confirmed, before the rows are marked sent."""
BEFORE_COMMIT = "processor.before_commit"
"""Dies after an event was written, before its transaction commits."""
AFTER_COMMIT = "consumer.after_commit"
"""Dies after a message's transaction committed, before the ack."""
COMPENSATING = "processor.compensating"
"""Dies while writing a decision that sends a compensation, before it commits."""

KNOWN = (RELAY_BEFORE_PUBLISH, RELAY_AFTER_CONFIRM, BEFORE_COMMIT, AFTER_COMMIT, COMPENSATING)
"""Every failpoint of the coordinator."""
