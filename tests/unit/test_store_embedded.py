"""The embedded mode: the same coordinator on SQLite and the in-process broker."""

from __future__ import annotations

from pathlib import Path

from convection.transport import MemoryBroker, open_transport
from coordinator.service import Coordinator
from sagas import osm_registry
from tests.integration.coord_support import Participant, eventually, migrate, settings, start_saga
from tests.unit.world import OSM_TOPOLOGY, example


async def test_sagas_complete_and_compensate_on_sqlite_and_the_memory_broker(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await migrate(db_url)
    broker = MemoryBroker()
    client = open_transport("memory://", OSM_TOPOLOGY, memory_broker=broker)
    await client.connect()
    participant = Participant(open_transport("memory://", OSM_TOPOLOGY, memory_broker=broker))
    await participant.transport.connect()
    await participant.start()
    participant.outcomes["vdus:vnf-app"] = "failed"
    config = settings("memory://", db_url)
    try:
        async with Coordinator(
            config, registry=osm_registry(), memory_broker=broker
        ) as coordinator:
            await start_saga(client, "vim-account.create", "v1", example("vim-account.create"))
            await start_saga(client, "ns.instantiate", "n1", example("ns.instantiate"))

            async def ended() -> bool:
                views = [await coordinator.get_saga(s) for s in ("v1", "n1")]
                return [v.state.status if v else None for v in views] == [
                    "completed",
                    "compensated",
                ]

            await eventually(ended, within=30)
            view = await coordinator.get_saga("n1")
            undo = [r.entry.step for r in view.history if r.entry.kind == "compensation.started"]
            assert undo == ["vdus:vnf-lb", "networks", "ns-record"]
    finally:
        await participant.stop()
        await participant.transport.close()
        await client.close()


async def test_the_consumers_share_the_outage_that_readiness_reports(tmp_path: Path) -> None:
    # Found by the fault matrix: a second `Handlers(...)` without the coordinator's outage
    # replaced the first, so the consumers rode out a database outage that readiness never saw.
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await migrate(db_url)
    config = settings("memory://", db_url)
    async with Coordinator(config, registry=osm_registry(), memory_broker=MemoryBroker()) as c:
        handlers = {consumer._handler.__self__ for consumer in c._consumers}  # type: ignore[attr-defined]
        assert [h.database for h in handlers] == [c._database]
