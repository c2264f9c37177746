"""vim_sim: a dummy VIM with an OpenStack-flavoured REST API, to run adapters against.

Keystone-like identity, Nova-like servers and flavors, Neutron-like networks and subnets,
Glance-like images; per-project quota, idempotent creates, a ledger of every effect and
fault injection. State lives in `vimsim_*` tables on PostgreSQL or SQLite.

Embedded use::

    from vim_sim import VimSimSettings, VimSimulator

    async with VimSimulator(VimSimSettings(db_url="sqlite+aiosqlite:///sim.db", port=0)) as sim:
        ...  # talk to sim.url

The names here are imported on first use, so `convection --help` (which imports
`vim_sim.cli`) does not load the web and database stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vim_sim.app import create_app
    from vim_sim.errors import ApiError, SettingsError, VimSimError
    from vim_sim.faults import OPERATIONS, FaultConfig
    from vim_sim.runner import VimSimulator
    from vim_sim.settings import ProjectSpec, Quota, VimSimSettings, load_settings
    from vim_sim.state import (
        ACTION_HEADER,
        IDEMPOTENCY_HEADER,
        SAGA_ID_HEADER,
        STEP_HEADER,
        Clock,
    )

_WHERE = {
    "create_app": "vim_sim.app",
    "ApiError": "vim_sim.errors",
    "SettingsError": "vim_sim.errors",
    "VimSimError": "vim_sim.errors",
    "OPERATIONS": "vim_sim.faults",
    "FaultConfig": "vim_sim.faults",
    "VimSimulator": "vim_sim.runner",
    "ProjectSpec": "vim_sim.settings",
    "Quota": "vim_sim.settings",
    "VimSimSettings": "vim_sim.settings",
    "load_settings": "vim_sim.settings",
    "ACTION_HEADER": "vim_sim.state",
    "IDEMPOTENCY_HEADER": "vim_sim.state",
    "SAGA_ID_HEADER": "vim_sim.state",
    "STEP_HEADER": "vim_sim.state",
    "Clock": "vim_sim.state",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vim_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTION_HEADER",
    "IDEMPOTENCY_HEADER",
    "OPERATIONS",
    "SAGA_ID_HEADER",
    "STEP_HEADER",
    "ApiError",
    "Clock",
    "FaultConfig",
    "ProjectSpec",
    "Quota",
    "SettingsError",
    "VimSimError",
    "VimSimSettings",
    "VimSimulator",
    "create_app",
    "load_settings",
]
