"""The lcm-adapter's handlers: NS records, their state, and the day-1 configuration of VNFs.

Every effect and its ledger row are written in one transaction, so the ledger is exact.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import lcm, utc_now
from convection import StepContext, StepFailed, handles
from convection.participant_store import create_tables
from lcm_adapter.faults import FaultInjector, crashing
from lcm_adapter.tables import LEDGER, METADATA, NS_RECORDS, VNF_CONFIGS


async def _record(connection: AsyncConnection, ctx: StepContext, effect: str) -> None:
    await connection.execute(
        insert(LEDGER).values(
            saga_id=ctx.saga_id, step=ctx.step, action=ctx.action, effect=effect[:200], at=utc_now()
        )
    )


_ENDING = ("terminating", "terminated")


def _unknown_ns(ns_id: str) -> StepFailed:
    return StepFailed(f"NS {ns_id} has no record", code="unknown_ns")


class LcmHandlers:
    """Handlers of the lcm service.

    Args:
        engine: The adapter's database.
        faults: Injected failures (tests).
    """

    def __init__(self, engine: AsyncEngine, faults: FaultInjector | None = None) -> None:
        self._engine = engine
        self._faults = faults or FaultInjector()

    @property
    def faults(self) -> FaultInjector:
        """The injected failures (tests)."""
        return self._faults

    async def create_tables(self) -> None:
        """Create the adapter's tables if they are missing."""
        await create_tables(self._engine, METADATA)

    @handles(lcm.CreateNsRecord)
    @crashing
    async def create_ns_record(
        self, cmd: lcm.CreateNsRecord, ctx: StepContext
    ) -> lcm.NsRecordCreated:
        """Create the NS record in state `building` (an existing one is kept)."""
        self._faults.check(ctx.action)
        async with self._engine.begin() as connection:
            exists = await connection.execute(
                select(NS_RECORDS.c.ns_id).where(NS_RECORDS.c.ns_id == cmd.ns_id)
            )
            if exists.first() is None:
                now = utc_now()
                await connection.execute(
                    insert(NS_RECORDS).values(
                        ns_id=cmd.ns_id,
                        name=cmd.name,
                        nsd_id=cmd.nsd_id,
                        vim_account_id=cmd.vim_account_id,
                        vnfs=list(cmd.vnfs),
                        state="building",
                        detail="",
                        created=now,
                        updated=now,
                    )
                )
                await _record(connection, ctx, f"created ns {cmd.ns_id}")
        return lcm.NsRecordCreated(ns_id=cmd.ns_id)

    @handles(lcm.DeleteNsRecord)
    @crashing
    async def delete_ns_record(
        self, cmd: lcm.DeleteNsRecord, ctx: StepContext
    ) -> lcm.NsRecordDeleted:
        """Delete the NS record and its VNF configurations."""
        self._faults.check(ctx.action)
        async with self._engine.begin() as connection:
            await connection.execute(delete(VNF_CONFIGS).where(VNF_CONFIGS.c.ns_id == cmd.ns_id))
            result = await connection.execute(
                delete(NS_RECORDS).where(NS_RECORDS.c.ns_id == cmd.ns_id)
            )
            existed = bool(result.rowcount)
            if existed:
                await _record(connection, ctx, f"deleted ns {cmd.ns_id}")
        return lcm.NsRecordDeleted(ns_id=cmd.ns_id, existed=existed)

    @handles(lcm.ConfigureVnf)
    @crashing
    async def configure_vnf(self, cmd: lcm.ConfigureVnf, ctx: StepContext) -> lcm.VnfConfigured:
        """Apply (record) the day-1 configuration of one VNF, replacing an earlier one."""
        self._faults.check(ctx.action)
        config_id = "cfg-" + hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:24]
        async with self._engine.begin() as connection:
            await self._require_ns(connection, cmd.ns_id)
            where = (VNF_CONFIGS.c.ns_id == cmd.ns_id) & (VNF_CONFIGS.c.vnf == cmd.vnf)
            await connection.execute(delete(VNF_CONFIGS).where(where))
            await connection.execute(
                insert(VNF_CONFIGS).values(
                    ns_id=cmd.ns_id,
                    vnf=cmd.vnf,
                    config_id=config_id,
                    config=cmd.config,
                    server_ids=list(cmd.server_ids),
                    created=utc_now(),
                )
            )
            await _record(connection, ctx, f"configured vnf {cmd.vnf}")
        return lcm.VnfConfigured(ns_id=cmd.ns_id, vnf=cmd.vnf, config_id=config_id)

    @handles(lcm.RemoveVnfConfig)
    @crashing
    async def remove_vnf_config(
        self, cmd: lcm.RemoveVnfConfig, ctx: StepContext
    ) -> lcm.VnfConfigRemoved:
        """Remove one VNF's configuration; an absent one is reported with existed=False."""
        self._faults.check(ctx.action)
        async with self._engine.begin() as connection:
            where = (VNF_CONFIGS.c.ns_id == cmd.ns_id) & (VNF_CONFIGS.c.vnf == cmd.vnf)
            existed = bool((await connection.execute(delete(VNF_CONFIGS).where(where))).rowcount)
            if existed:
                await _record(connection, ctx, f"removed config of vnf {cmd.vnf}")
        return lcm.VnfConfigRemoved(ns_id=cmd.ns_id, vnf=cmd.vnf, existed=existed)

    @handles(lcm.RemoveNsConfig)
    @crashing
    async def remove_ns_config(
        self, cmd: lcm.RemoveNsConfig, ctx: StepContext
    ) -> lcm.NsConfigRemoved:
        """Remove the configuration of every VNF of the NS."""
        self._faults.check(ctx.action)
        async with self._engine.begin() as connection:
            rows = await connection.execute(
                select(VNF_CONFIGS.c.vnf).where(VNF_CONFIGS.c.ns_id == cmd.ns_id)
            )
            vnfs = sorted(rows.scalars())
            await connection.execute(delete(VNF_CONFIGS).where(VNF_CONFIGS.c.ns_id == cmd.ns_id))
            for vnf in vnfs:
                await _record(connection, ctx, f"removed config of vnf {vnf}")
        return lcm.NsConfigRemoved(ns_id=cmd.ns_id, vnfs=vnfs)

    @handles(lcm.SetNsState)
    @crashing
    async def set_ns_state(self, cmd: lcm.SetNsState, ctx: StepContext) -> lcm.NsStateSet:
        """Set the NS record's operational state; report the previous one.

        Ending an NS whose record is already gone (a superseded instantiate was undone) is
        done, not a failure: the result says the record did not exist.
        """
        self._faults.check(ctx.action)
        async with self._engine.begin() as connection:
            if cmd.state in _ENDING and not await self._exists(connection, cmd.ns_id):
                return lcm.NsStateSet(
                    ns_id=cmd.ns_id, state=cmd.state, previous=None, existed=False
                )
            previous = await self._require_ns(connection, cmd.ns_id)
            await connection.execute(
                update(NS_RECORDS)
                .where(NS_RECORDS.c.ns_id == cmd.ns_id)
                .values(state=cmd.state, detail=cmd.detail, updated=utc_now())
            )
            await _record(connection, ctx, f"state {previous} -> {cmd.state}")
        return lcm.NsStateSet(ns_id=cmd.ns_id, state=cmd.state, previous=previous)

    async def _exists(self, connection: AsyncConnection, ns_id: str) -> bool:
        row = await connection.execute(
            select(NS_RECORDS.c.ns_id).where(NS_RECORDS.c.ns_id == ns_id)
        )
        return row.first() is not None

    async def _require_ns(self, connection: AsyncConnection, ns_id: str) -> lcm.NsState:
        row = (
            await connection.execute(select(NS_RECORDS.c.state).where(NS_RECORDS.c.ns_id == ns_id))
        ).first()
        if row is None:
            raise _unknown_ns(ns_id)
        state: lcm.NsState = row.state
        return state
