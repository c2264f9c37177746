"""How the vim-adapter reaches a VIM: the `VimConnector` interface and its OpenStack connector.

Connector errors are `convection.openstack.OpenStackError`s; `step_error` turns one into the
step outcome it means (a business failure, or a retryable one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

from contracts import vim
from convection import StepFailed, StepRetryable
from convection.openstack import CallContext, OpenStackClient, OpenStackError
from convection.sealing import Vault, is_sealed


def open_secret(vault: Vault | None, value: str) -> str:
    """Return the plaintext of a (sealed) secret, or fail saying which key is missing."""
    if vault is None and is_sealed(value):
        raise StepFailed(
            "the credentials are sealed and this adapter has no CONVECTION_VAULT_KEY",
            code="vault_key_missing",
        )
    return vault.open(value) if vault is not None else value


@dataclass(frozen=True)
class Validation:
    """What a VIM said about a set of credentials it accepted."""

    project_id: str
    quota: vim.Quota | None = None


class VimConnector(Protocol):
    """One kind of VIM, as the vim-adapter uses it."""

    async def validate(self, credentials: vim.VimCredentials, context: CallContext) -> Validation:
        """Log in with `credentials`; raise `OpenStackError` when the VIM refuses or fails."""
        ...


class OpenStackConnector:
    """A `VimConnector` for OpenStack (Keystone v3 password authentication)."""

    def __init__(
        self, http: aiohttp.ClientSession, *, timeout: float = 15.0, vault: Vault | None = None
    ) -> None:
        self._http = http
        self._timeout = timeout
        self._vault = vault

    async def validate(self, credentials: vim.VimCredentials, context: CallContext) -> Validation:
        """Authenticate against the account's auth URL and return the project id."""
        client = OpenStackClient(
            self._http,
            auth_url=credentials.auth_url,
            username=credentials.username,
            password=open_secret(self._vault, credentials.password),
            project=credentials.project,
            context=context,
            timeout=self._timeout,
        )
        return Validation(project_id=await client.authenticate())


def step_error(exc: OpenStackError) -> StepFailed | StepRetryable:
    """Return the step exception an OpenStack error means, keeping the VIM's message."""
    if exc.retryable:
        return StepRetryable(exc.message, code=exc.code)
    return StepFailed(exc.message, code=exc.code)
