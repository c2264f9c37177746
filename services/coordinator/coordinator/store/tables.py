"""The coordinator's tables, as SQLAlchemy Core: the same definitions on PostgreSQL and SQLite.

The alembic migrations in `coordinator/store/migrations/` create exactly these tables; a test
compares the migrated schema with this metadata so the two never drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
"""Every table of the coordinator."""

JsonType = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""

# SQLite has no 64-bit autoincrement other than INTEGER PRIMARY KEY.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both backends (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; SQLite gets it naive, since it cannot keep an offset."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every time in the store is UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the backend handed back."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


sagas = Table(
    "sagas",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("input", JsonType, nullable=False),
    Column("resources", JsonType, nullable=False),
    Column("shared_resources", JsonType),
    Column("error", JsonType),
    Column("cancel_reason", Text),
    Column("cancelled_by", String(200)),
    Column("trace_id", String(32)),
    Column("deadline", UtcDateTime),
    # Set once the timers fed SagaTimedOut: a committed saga past its deadline must finish,
    # and the timer must not feed the same deadline again on every tick.
    Column("deadline_fired", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    # Set while events wait for a coordinator that has the saga's definition version
    # (`definition_missing: <type>@<version>`); the saga itself is untouched meanwhile.
    Column("parked", String(300)),
    Index("ix_sagas_status_deadline", "status", "deadline"),
    Index("ix_sagas_parked", "parked"),
    Index("ix_sagas_type_status", "type", "status"),
)
"""One row per saga: its current state, without the steps."""

saga_steps = Table(
    "saga_steps",
    metadata,
    Column("saga_id", String(128), ForeignKey("sagas.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("ordinal", Integer, nullable=False),
    Column("stage", Integer, nullable=False),
    Column("group_name", String(200)),
    Column("item_key", String(200)),
    Column("service", String(64), nullable=False),
    Column("action", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("compensation_action", String(100)),
    # The forward leg's columns, then the compensation leg's (prefix comp_): flat, so the
    # timers and the operators' queries filter on them directly.
    Column("status", String(32), nullable=False),
    Column("run", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False),
    Column("command_id", String(128)),
    Column("deadline", UtcDateTime),
    Column("due_at", UtcDateTime),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("error", JsonType),
    Column("comp_status", String(32), nullable=False),
    Column("comp_run", Integer, nullable=False, default=0),
    Column("comp_attempt", Integer, nullable=False),
    Column("comp_command_id", String(128)),
    Column("comp_deadline", UtcDateTime),
    Column("comp_due_at", UtcDateTime),
    Column("comp_started_at", UtcDateTime),
    Column("comp_finished_at", UtcDateTime),
    Column("comp_error", JsonType),
    Column("result", JsonType),
    Column("uncertain", Boolean, nullable=False),
    Column("completed_seq", Integer),
    Column("progress", Text),
    Column("note", Text),
    Index("ix_saga_steps_status_deadline", "status", "comp_status", "deadline"),
    Index("ix_saga_steps_due_at", "due_at"),
    Index("ix_saga_steps_comp_timers", "comp_deadline", "comp_due_at"),
)
"""One row per step of a saga, with every field of its StepState and both its legs."""

saga_history = Table(
    "saga_history",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("saga_id", String(128), ForeignKey("sagas.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("step", String(200)),
    Column("attempt", Integer),
    Column("from_status", String(32)),
    Column("to_status", String(32)),
    Column("cause", String(64), nullable=False),
    Column("detail", JsonType, nullable=False),
    Column("actor", String(200)),
    Index("ix_saga_history_saga", "saga_id", "id"),
)
"""The audit log: append-only, one row per transition."""

outbox = Table(
    "outbox",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("saga_id", String(128)),
    Column("exchange", String(200), nullable=False),
    Column("routing_key", String(300), nullable=False),
    Column("message_id", String(128), nullable=False, unique=True),
    Column("body", LargeBinary, nullable=False),
    Column("headers", JsonType, nullable=False),
    Column("mandatory", Boolean, nullable=False),
    # How the relay traces the publish (span name, attributes, parent, links), decided when
    # the row was written: the relay never reads a message's body or a saga's history.
    Column("span", JsonType),
    Column("created_at", UtcDateTime, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime),
    Column("dead_at", UtcDateTime),
    Index("ix_outbox_pending", "available_at", "id"),
    Index("ix_outbox_sent_at", "sent_at"),
)
"""Messages decided in a transaction, sent by the relay after it commits."""

parked_events = Table(
    "parked_events",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("saga_id", String(128), ForeignKey("sagas.id"), nullable=False),
    Column("message_id", String(128)),
    Column("event", Text, nullable=False),
    Column("parked_at", UtcDateTime, nullable=False),
    Index("ix_parked_events_saga", "saga_id", "id"),
)
"""Events of sagas whose definition version this coordinator lacked, kept in arrival order
until a coordinator that has it feeds them."""

inbox = Table(
    "inbox",
    metadata,
    Column("message_id", String(128), primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
)
"""Ids of the messages already processed: a redelivery changes nothing."""

resource_locks = Table(
    "resource_locks",
    metadata,
    Column("resource", String(300), primary_key=True),
    Column("saga_id", String(128), primary_key=True),
    Column("saga_type", String(64), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("mode", String(16), nullable=False, default="exclusive"),
    Column("position", Integer, nullable=False),
    Index("ix_resource_locks_saga", "saga_id"),
)
"""The lock queues: per resource, its holder (granted) and its waiters by position."""

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    # One row per dead letter however often it is collected (a redelivery of the `.dead`
    # message, two replicas, a copy parked twice by a crash before its ack): a hash of the
    # source queue, the message id (or the body, for a message without one) and the reason.
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("queue", String(300), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("error", Text),
    Column("message_id", String(300)),
    Column("message_type", String(100)),
    Column("saga_id", String(128)),
    Column("content_type", String(200)),
    Column("headers", JsonType, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("dead_at", UtcDateTime, nullable=False),
    Column("collected_at", UtcDateTime, nullable=False),
    Column("replayed_at", UtcDateTime),
    Column("replay_message_id", String(128)),
    Column("replayed_by", String(200)),
    Column("replay_reason", Text),
    Index("ix_dead_letters_dead_at", "dead_at", "id"),
    Index("ix_dead_letters_queue_reason", "queue", "reason"),
    Index("ix_dead_letters_saga", "saga_id"),
)
"""Messages collected from the dead-letter queues, with why they died; replayable."""
