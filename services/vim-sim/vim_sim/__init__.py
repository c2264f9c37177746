"""vim_sim: a dummy VIM with an OpenStack-flavoured REST API, to run adapters against.

Keystone-like identity, Nova-like servers and flavors, Neutron-like networks and subnets,
Glance-like images; per-project quota, idempotent creates, a ledger of every effect and
fault injection. State lives in `vimsim_*` tables on PostgreSQL or SQLite.

Embedded use::

    from vim_sim import VimSimSettings, VimSimulator

    async with VimSimulator(VimSimSettings(db_url="sqlite+aiosqlite:///sim.db", port=0)) as sim:
        ...  # talk to sim.url
"""

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
