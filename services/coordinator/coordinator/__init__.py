"""The Convection coordinator: the pure saga engine (`coordinator.core`) and its durable shell.

The shell's public names are here; the core's are in `coordinator.core`, the store's in
`coordinator.store`, the errors in `coordinator.errors`. They are imported on first use, so
`convection --help` (which imports `coordinator.cli`) stays clear of the database stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "Conflict": "coordinator.errors",
    "CoordinatorError": "coordinator.errors",
    "InvalidInput": "coordinator.errors",
    "SchemaBehind": "coordinator.errors",
    "StartRejected": "coordinator.errors",
    "StoreError": "coordinator.errors",
    "StoreUnavailable": "coordinator.errors",
    "UnknownSagaType": "coordinator.errors",
    "Metrics": "coordinator.metrics",
    "Operations": "coordinator.operations",
    "SagaView": "coordinator.operations",
    "Started": "coordinator.operations",
    "Outcome": "coordinator.outcome",
    "Processor": "coordinator.processor",
    "Coordinator": "coordinator.service",
    "CoordinatorSettings": "coordinator.settings",
    "HistoryRow": "coordinator.store",
    "Store": "coordinator.store",
    "check_schema": "coordinator.store",
    "upgrade": "coordinator.store",
    "upgrade_engine": "coordinator.store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'coordinator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
