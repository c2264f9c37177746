"""The vim-adapter's handlers: validate, register, deregister and look up VIM accounts.

Registered accounts live in the adapter's own table `vim_adapter_accounts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import utc_now, vim
from convection import StepContext, StepFailed, handles
from convection.openstack import CallContext, OpenStackError
from convection.participant_store import create_tables
from convection.sealing import Vault
from vim_adapter.connector import VimConnector, step_error

METADATA = MetaData()
"""The vim-adapter's own tables."""

ACCOUNTS = Table(
    "vim_adapter_accounts",
    METADATA,
    Column("vim_account_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("vim_type", String(32), nullable=False),
    # Stored as OSM stores them, so later sagas can reach the VIM; protect the database.
    Column("credentials", JSON, nullable=False),
    Column("description", String(1000), nullable=False),
    Column("project_id", String(200), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
"""Registered VIM accounts."""


def _context(ctx: StepContext) -> CallContext:
    return CallContext(saga_id=ctx.saga_id, step=ctx.step, action=ctx.action)


class VimAccountHandlers:
    """Handlers of the vim service.

    Args:
        engine: The adapter's database (tables are created by `create_tables`).
        connectors: A connector per VIM type.
        vault: Keeps stored passwords sealed at rest (None: stored as they arrive, which
            the coordinator's sealing makes sealed too).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        connectors: Mapping[str, VimConnector],
        *,
        vault: Vault | None = None,
    ) -> None:
        self._engine = engine
        self._connectors = connectors
        self._vault = vault

    async def create_tables(self) -> None:
        """Create the adapter's tables if they are missing."""
        await create_tables(self._engine, METADATA)

    async def _validate(
        self, vim_type: str, credentials: vim.VimCredentials, ctx: StepContext
    ) -> vim.CredentialsValid:
        connector = self._connectors.get(vim_type)
        if connector is None:
            raise StepFailed(f"no connector for VIM type {vim_type!r}", code="unsupported_vim")
        try:
            found = await connector.validate(credentials, _context(ctx))
        except OpenStackError as exc:
            raise step_error(exc) from exc
        return vim.CredentialsValid(project_id=found.project_id, quota=found.quota)

    def _at_rest(self, credentials: vim.VimCredentials) -> vim.VimCredentials:
        if self._vault is None:
            return credentials
        sealed = self._vault.seal(credentials.password)
        return credentials.model_copy(update={"password": sealed})

    @handles(vim.ValidateCredentials)
    async def validate_credentials(
        self, cmd: vim.ValidateCredentials, ctx: StepContext
    ) -> vim.CredentialsValid:
        """Check credentials against the VIM; changes nothing."""
        return await self._validate(cmd.vim_type, cmd.credentials, ctx)

    @handles(vim.RegisterAccount)
    async def register_account(
        self, cmd: vim.RegisterAccount, ctx: StepContext
    ) -> vim.AccountRegistered:
        """Validate the account against its VIM, then store it (replacing one with its id)."""
        spec = cmd.account
        valid = await self._validate(spec.vim_type, spec.credentials, ctx)
        row: dict[str, Any] = {
            "vim_account_id": spec.vim_account_id,
            "name": spec.name,
            "vim_type": spec.vim_type,
            "credentials": self._at_rest(spec.credentials).model_dump(mode="json"),
            "description": spec.description,
            "project_id": valid.project_id,
            "created": utc_now(),
        }
        async with self._engine.begin() as connection:
            # Delete-then-insert is an upsert both dialects understand; one transaction.
            await connection.execute(
                delete(ACCOUNTS).where(ACCOUNTS.c.vim_account_id == spec.vim_account_id)
            )
            await connection.execute(insert(ACCOUNTS).values(**row))
        return vim.AccountRegistered(
            vim_account_id=spec.vim_account_id, project_id=valid.project_id
        )

    @handles(vim.DeregisterAccount)
    async def deregister_account(
        self, cmd: vim.DeregisterAccount, ctx: StepContext
    ) -> vim.AccountDeregistered:
        """Remove a registered account; removing an unknown one succeeds with existed=False."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(ACCOUNTS).where(ACCOUNTS.c.vim_account_id == cmd.vim_account_id)
            )
        return vim.AccountDeregistered(
            vim_account_id=cmd.vim_account_id, existed=bool(result.rowcount)
        )

    @handles(vim.GetAccount)
    async def get_account(self, cmd: vim.GetAccount, ctx: StepContext) -> vim.AccountDetails:
        """Return a registered account's credentials, or fail with `unknown_vim_account`."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(ACCOUNTS).where(ACCOUNTS.c.vim_account_id == cmd.vim_account_id)
                )
            ).first()
        if row is None:
            raise StepFailed(
                f"VIM account {cmd.vim_account_id} is not registered", code="unknown_vim_account"
            )
        return vim.AccountDetails(
            vim_account_id=row.vim_account_id,
            vim_type=row.vim_type,
            credentials=vim.VimCredentials.model_validate(row.credentials),
        )
