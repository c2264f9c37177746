"""The coordinator's persistence: tables, migrations, the store and its dialect quirks.

Modules: `tables` (SQLAlchemy Core), `rows` (models to rows and back), `dialect`
(PostgreSQL vs SQLite: clock, locks, upserts, wake-ups, error mapping), `store` (the
per-transaction reads and writes), `outbox`, `locks` and `dead_letters` (its outbox,
lock-queue and dead-letter halves),
`queries` (read-only: lists, statistics, timers), `schema` and `migrations` (alembic).
"""

from coordinator.store.dead_letters import DeadLetter, DeadLetterFilter, PurgeSelector
from coordinator.store.dialect import Dialect
from coordinator.store.outbox import OutboxMessage, OutboxRow, SpanSpec
from coordinator.store.queries import SagaFilter, StepDue
from coordinator.store.schema import check_schema, head_revision, upgrade, upgrade_engine
from coordinator.store.store import HistoryRow, Store

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "Dialect",
    "HistoryRow",
    "OutboxMessage",
    "OutboxRow",
    "PurgeSelector",
    "SagaFilter",
    "SpanSpec",
    "StepDue",
    "Store",
    "check_schema",
    "head_revision",
    "upgrade",
    "upgrade_engine",
]
