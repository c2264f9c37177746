"""The coordinator in the embedded mode (`convection demo`): one process, in-process broker.

Found by the runtime through the `convection.embedded` entry point, so the runtime never
imports the coordinator. The same Coordinator, store and API as in production; only the
transport and the database URL differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from coordinator.api import ApiServer, ApiSettings
from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings
from coordinator.store import upgrade_engine
from sagas import osm_registry


@contextlib.asynccontextmanager
async def embedded(env: Any) -> AsyncIterator[str]:
    """Migrate the database, run a coordinator and its API on a free port; yield the API URL."""
    await upgrade_engine(env.db_engine)
    transport = env.open_transport()
    await transport.connect()
    settings = CoordinatorSettings(
        amqp_url="memory://embedded",
        db_url=env.db_url,
        timer_interval=0.2,
        outbox_poll_interval=0.2,
        vault_public_key=env.options.get("vault_public_key"),
    )
    coordinator = Coordinator(
        settings, registry=osm_registry(), transport=transport, db_engine=env.db_engine
    )
    api = ApiServer(coordinator, ApiSettings(host="127.0.0.1", port=0, tokens={}))
    try:
        await coordinator.start()
        yield await api.start()
    finally:
        await api.stop()
        await coordinator.stop()
        await transport.close()
