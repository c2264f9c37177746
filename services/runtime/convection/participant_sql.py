"""The SQL of the participant's store on PostgreSQL: its two routines and their calls.

Kept apart from `convection.participant_store`, which runs them: the claim (a function) locks
the key and reads what is stored for it, the settle (a procedure) inserts the outcome,
commits and unlocks.
"""

from __future__ import annotations

# The claim's read: the key's own outcome, the forward step a compensation undoes, and a
# forward key's tombstone ($1 service, $2 key, $3 undone key, $4 tombstone key). Each key is
# looked up by equality on the whole primary key: PL/pgSQL plans a statement once for every
# call, and with `idempotency_key IN ($2, $3)` a plan made while the table was nearly empty
# scanned all of the service's rows on every call (3,000 buffers a command after 6,000
# commands: BENCHMARKS.md). The routines' names carry a version: a new body gets a new name,
# so processes of two releases can share a database.
CLAIM_DDL = """
CREATE OR REPLACE FUNCTION convection_participant_claim_v2(
    text, text, text, text, lock_id bigint)
RETURNS TABLE (idempotency_key text, outcome text, result text, error text, tomb boolean)
LANGUAGE plpgsql VOLATILE AS $body$
#variable_conflict use_column
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    -- Only READ COMMITTED gives the read below a snapshot taken after the lock was granted.
    RAISE EXCEPTION 'the participant''s claim needs READ COMMITTED, not %',
      current_setting('transaction_isolation')
      USING HINT = 'unset default_transaction_isolation for the participant''s database role';
  END IF;
  PERFORM pg_advisory_lock(lock_id);
  RETURN QUERY
    SELECT r.idempotency_key::text, r.outcome::text, r.result::text, r.error::text, FALSE
      FROM convection_participant_replies r
     WHERE r.service = $1 AND r.idempotency_key = $2
    UNION ALL
    SELECT r.idempotency_key, r.outcome, r.result::text, r.error::text, FALSE
      FROM convection_participant_replies r
     WHERE r.service = $1 AND r.idempotency_key = $3 AND $3 <> $2
    UNION ALL
    (SELECT r.idempotency_key, r.outcome, NULL, NULL, TRUE
       FROM convection_participant_replies r
      WHERE r.service = $1 AND r.undoes_key = $4 AND r.outcome = 'succeeded' LIMIT 1);
END
$body$
"""
"""The claim function: lock the key (a session lock), then read what is stored for it."""
SETTLE_DDL = """
CREATE OR REPLACE PROCEDURE convection_participant_settle_v2(
    text, text, text, text, json, json, text, text, timestamptz, lock_id bigint)
LANGUAGE plpgsql AS $body$
BEGIN
  INSERT INTO convection_participant_replies
         (service, idempotency_key, undoes_key, outcome, result, error, saga_id, step, created)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);
  COMMIT;
  IF NOT pg_advisory_unlock(lock_id) THEN
    -- The outcome is committed; the claim ran on another server session (pooling).
    RAISE EXCEPTION 'the key''s advisory lock was not held by this database session'
      USING HINT = 'between a participant and PostgreSQL, PgBouncer must pool sessions, '
                   'not transactions';
  END IF;
END
$body$
"""
"""The settle procedure: insert the outcome, COMMIT, then unlock the key."""
ROUTINES_LOCK = 0x636F6E7670617274
"""The advisory lock that serialises the routines' creation (the text "convpart")."""
CLAIM_SQL = "SELECT * FROM convection_participant_claim_v2($1, $2, $3, $4, $5)"
"""The call of the claim function."""
SETTLE_SQL = (
    "CALL convection_participant_settle_v2($1, $2, $3, $4, $5::json, $6::json, $7, $8, $9, $10)"
)
"""The call of the settle procedure."""
UNLOCK_SQL = "SELECT pg_advisory_unlock($1) AS held"
"""Unlocks a key a claim locked when nothing is stored for it."""
ROUTINES_SQL = (
    "SELECT count(*) AS n FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
    "AND proname IN ('convection_participant_claim_v2', 'convection_participant_settle_v2')"
)
"""Counts the routines this release needs (both exist: nothing to create)."""
NOT_HELD = (
    "the key's advisory lock was not held by this database session: between a participant "
    "and PostgreSQL, PgBouncer must pool sessions, not transactions"
)
"""What an unlock that found the lock not held says (PgBouncer pooling transactions)."""
