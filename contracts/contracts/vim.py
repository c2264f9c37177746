"""vim-adapter: VIM accounts (validate credentials, register, deregister, look up)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts.actions import Action, Result
from contracts.base import Identifier, Model, Secret

SERVICE = "vim"
"""The vim-adapter's service name (its command queue is `convection.commands.vim`)."""

VimType = Literal["openstack"]
"""The VIM kinds a connector exists for."""


class VimCredentials(Model):
    """Where a VIM is and how to log in to it, as an OSM VIM account holds them."""

    auth_url: str = Field(min_length=1, max_length=500, pattern=r"^https?://")
    username: str = Field(min_length=1, max_length=200)
    password: Secret
    """Sealed everywhere but inside the adapters that log in to the VIM."""
    project: str = Field(min_length=1, max_length=200)


class VimAccountSpec(Model):
    """A VIM account to create: its id is chosen by the caller."""

    vim_account_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    vim_type: VimType = "openstack"
    credentials: VimCredentials
    description: str = Field(default="", max_length=1000)


class Quota(Model):
    """A VIM project's limits and usage."""

    cores: int
    instances: int
    cores_used: int = 0
    instances_used: int = 0


class CredentialsValid(Result):
    """The VIM accepted the credentials."""

    project_id: str
    quota: Quota | None = None


class ValidateCredentials(Action):
    """Check the credentials against the VIM; changes nothing."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "vim.validate-credentials"
    RESULT: ClassVar[type[Result]] = CredentialsValid
    vim_type: VimType = "openstack"
    credentials: VimCredentials


class AccountRegistered(Result):
    """The account is registered and usable by later sagas."""

    vim_account_id: Identifier
    project_id: str


class RegisterAccount(Action):
    """Register a VIM account (validating it against the VIM first)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "vim.register-account"
    RESULT: ClassVar[type[Result]] = AccountRegistered
    account: VimAccountSpec


class AccountDeregistered(Result):
    """The account is gone; `existed` tells whether there was one to remove."""

    vim_account_id: Identifier
    existed: bool


class DeregisterAccount(Action):
    """Remove a registered VIM account (the compensation of RegisterAccount)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "vim.deregister-account"
    RESULT: ClassVar[type[Result]] = AccountDeregistered
    vim_account_id: Identifier


class AccountDetails(Result):
    """A registered account, as later sagas need it to reach the VIM."""

    vim_account_id: Identifier
    vim_type: VimType
    credentials: VimCredentials


class GetAccount(Action):
    """Look a registered account up; changes nothing."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "vim.get-account"
    RESULT: ClassVar[type[Result]] = AccountDetails
    vim_account_id: Identifier


ACTIONS: tuple[type[Action], ...] = (
    ValidateCredentials,
    RegisterAccount,
    DeregisterAccount,
    GetAccount,
)
"""Every action of the vim service."""
