"""The Convection coordinator: the pure saga engine (`coordinator.core`) and its durable shell.

The shell's public names are here; the core's are in `coordinator.core`, the store's in
`coordinator.store`, the errors in `coordinator.errors`.
"""

from coordinator.errors import (
    Conflict,
    CoordinatorError,
    InvalidInput,
    SchemaBehind,
    StartRejected,
    StoreError,
    StoreUnavailable,
    UnknownSagaType,
)
from coordinator.metrics import Metrics
from coordinator.operations import Operations, SagaView, Started
from coordinator.outcome import Outcome
from coordinator.processor import Processor
from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings
from coordinator.store import HistoryRow, Store, check_schema, upgrade, upgrade_engine

__all__ = [
    "Conflict",
    "Coordinator",
    "CoordinatorError",
    "CoordinatorSettings",
    "HistoryRow",
    "InvalidInput",
    "Metrics",
    "Operations",
    "Outcome",
    "Processor",
    "SagaView",
    "SchemaBehind",
    "StartRejected",
    "Started",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownSagaType",
    "check_schema",
    "upgrade",
    "upgrade_engine",
]
