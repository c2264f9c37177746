"""The Convection coordinator: the pure saga engine and its durable shell.

The shell's public names are here; the engine's live in `coordinator.engine`,
`coordinator.model`, `coordinator.states` and `coordinator.locks`.
"""

from coordinator.metrics import Metrics
from coordinator.operations import Operations, SagaView
from coordinator.processor import Outcome, Processor
from coordinator.schema import SchemaBehind, check_schema, upgrade, upgrade_engine
from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings
from coordinator.store import HistoryRow, OutboxMessage, OutboxRow, Store

__all__ = [
    "Coordinator",
    "CoordinatorSettings",
    "HistoryRow",
    "Metrics",
    "Operations",
    "OutboxMessage",
    "OutboxRow",
    "Outcome",
    "Processor",
    "SagaView",
    "SchemaBehind",
    "Store",
    "check_schema",
    "upgrade",
    "upgrade_engine",
]
