"""The ledger of effects and the idempotency of creates, both written in the effect's transaction.

A create with `X-Idempotency-Key` stores its reply; the same key in the same project gets that
reply again and nothing else happens. Only successful creates are remembered, so a create that
failed (quota, bad image) can be retried with the same key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vim_sim.errors import ApiError
from vim_sim.models import IdempotentReply, LedgerEntry
from vim_sim.state import CallContext, Caller


async def replay(
    session: AsyncSession,
    caller: Caller,
    call: CallContext,
    operation: str,
    conflict: Callable[[str], ApiError],
) -> web.Response | None:
    """Return the stored reply when this create was already done under its idempotency key."""
    if call.idempotency_key is None:
        return None
    stored = await session.get(IdempotentReply, (caller.project_id, call.idempotency_key))
    if stored is None:
        return None
    if stored.operation != operation:
        raise conflict(
            f"Idempotency key {call.idempotency_key} was used for {stored.operation}, "
            f"not {operation}."
        )
    return web.json_response(stored.body, status=stored.status)


def record_effect(
    session: AsyncSession,
    caller: Caller,
    call: CallContext,
    *,
    operation: str,
    resource_type: str,
    resource_id: str,
    at: datetime,
) -> None:
    """Write one ledger row for an effect, in the caller's transaction."""
    session.add(
        LedgerEntry(
            at=at,
            saga_id=call.saga_id,
            step=call.step,
            action=call.action,
            project_id=caller.project_id,
            operation=operation,
            resource_type=resource_type,
            resource_id=resource_id,
            idempotency_key=call.idempotency_key,
        )
    )


def record_create(
    session: AsyncSession,
    caller: Caller,
    call: CallContext,
    *,
    operation: str,
    resource_type: str,
    resource_id: str,
    at: datetime,
    status: int,
    body: dict[str, Any],
) -> web.Response:
    """Record a create in the ledger, remember its reply for its idempotency key, return it."""
    record_effect(
        session,
        caller,
        call,
        operation=operation,
        resource_type=resource_type,
        resource_id=resource_id,
        at=at,
    )
    if call.idempotency_key is not None:
        session.add(
            IdempotentReply(
                project_id=caller.project_id,
                key=call.idempotency_key,
                operation=operation,
                resource_id=resource_id,
                status=status,
                body=body,
                created_at=at,
            )
        )
    return web.json_response(body, status=status)


async def ledger_rows(
    session: AsyncSession, *, saga_id: str | None = None, project_id: str | None = None
) -> list[dict[str, Any]]:
    """Return the ledger in the order the effects happened, optionally for one saga or project."""
    query = select(LedgerEntry).order_by(LedgerEntry.seq)
    if saga_id is not None:
        query = query.where(LedgerEntry.saga_id == saga_id)
    if project_id is not None:
        query = query.where(LedgerEntry.project_id == project_id)
    result = await session.execute(query)
    return [entry_view(entry) for entry in result.scalars()]


def entry_view(entry: LedgerEntry) -> dict[str, Any]:
    """Render a ledger row as JSON."""
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "saga_id": entry.saga_id,
        "step": entry.step,
        "action": entry.action,
        "project_id": entry.project_id,
        "operation": entry.operation,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "idempotency_key": entry.idempotency_key,
    }
