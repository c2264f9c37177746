"""VIM account sagas: create (validate, then register) and delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts import vim
from contracts.base import Identifier
from sagas.dsl import Saga
from sagas.kinds import OUTAGE_RETRY, LockPolicy, StepKind
from sagas.steps import BuildContext, Step


class VimAccountDeleteInput(BaseModel):
    """Input of vim-account.delete."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    vim_account_id: Identifier


def _validate(ctx: BuildContext[vim.VimAccountSpec]) -> vim.ValidateCredentials:
    return vim.ValidateCredentials(vim_type=ctx.input.vim_type, credentials=ctx.input.credentials)


def _register(ctx: BuildContext[vim.VimAccountSpec]) -> vim.RegisterAccount:
    return vim.RegisterAccount(account=ctx.input)


def _deregister(ctx: BuildContext[VimAccountDeleteInput]) -> vim.DeregisterAccount:
    return vim.DeregisterAccount(vim_account_id=ctx.input.vim_account_id)


def _account(data: Any) -> list[str]:
    return [f"vim:{data.vim_account_id}"]


create_vim_account: Saga[vim.VimAccountSpec] = Saga(
    "vim-account.create",
    input=vim.VimAccountSpec,
    description="Validate a VIM account's credentials against the VIM, then register it.",
    stages=(
        Step(
            "validate",
            vim.ValidateCredentials,
            _validate,
            kind=StepKind.QUERY,
            timeout=timedelta(seconds=30),
            # A VIM that does not answer may be down for a while (an outage of minutes must
            # not fail the saga), and under a backlog the command waits its turn in the queue
            # past its deadline: both are ridden out in time, not attempts. A typo in the auth
            # URL costs the same wait, a failure that nothing needs undoing.
            retry=OUTAGE_RETRY,
        ),
        Step(
            "register",
            vim.RegisterAccount,
            _register,
            kind=StepKind.PIVOT,
            timeout=timedelta(seconds=30),
            # It checks the credentials against the VIM again: the auth URL is known good by
            # now, so a VIM that does not answer is down, and worth the outage budget.
            retry=OUTAGE_RETRY,
        ),
    ),
    resources=_account,
    lock_policy=LockPolicy.REJECT,
)
"""vim-account.create: a second create of the same account while one runs is rejected."""

delete_vim_account: Saga[VimAccountDeleteInput] = Saga(
    "vim-account.delete",
    input=VimAccountDeleteInput,
    description="Deregister a VIM account.",
    stages=(Step("deregister", vim.DeregisterAccount, _deregister, kind=StepKind.RETRIABLE),),
    resources=_account,
)
"""vim-account.delete: waits its turn behind other sagas on the same account."""
