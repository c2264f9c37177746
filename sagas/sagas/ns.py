"""Network Service sagas: instantiate, scale out, terminate (modelled on OSM's LCM and RO)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts import lcm, ro, vim
from contracts.base import Identifier, JsonObject, Name
from sagas.dsl import Saga
from sagas.kinds import (
    OUTAGE_COMPENSATION_RETRY,
    OUTAGE_RETRY,
    LockPolicy,
    QueuedPolicy,
    Shared,
    StepKind,
)
from sagas.steps import BuildContext, ForEach, Step


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VnfSpec(_Input):
    """A VNF of the NS: its member index, its VDUs and its day-1 configuration."""

    member: Name
    vnfd_id: str = Field(min_length=1, max_length=200)
    vdus: list[ro.VduSpec] = Field(min_length=1)
    day1: JsonObject = Field(default_factory=dict)


class NsInstantiateInput(_Input):
    """Input of ns.instantiate."""

    ns_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    nsd_id: str = Field(min_length=1, max_length=200)
    vim_account_id: Identifier
    networks: list[ro.NetworkSpec] = Field(min_length=1)
    vnfs: list[VnfSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_members(self) -> Self:
        members = [v.member for v in self.vnfs]
        if len(set(members)) != len(members):
            raise ValueError(f"VNF member indexes must be unique: {members}")
        return self


class NsScaleOutInput(_Input):
    """Input of ns.scale-out: more VDUs for one VNF of a running NS."""

    ns_id: Identifier
    vim_account_id: Identifier
    vnf: Name
    vdus: list[ro.VduSpec] = Field(min_length=1)


class NsTerminateInput(_Input):
    """Input of ns.terminate."""

    ns_id: Identifier
    vim_account_id: Identifier


def _target(ctx: BuildContext[Any]) -> ro.VimTarget:
    account: vim.AccountDetails = ctx.result("vim-account")
    return ro.VimTarget(
        vim_account_id=account.vim_account_id,
        vim_type=account.vim_type,
        credentials=account.credentials,
    )


def _get_account(ctx: BuildContext[Any]) -> vim.GetAccount:
    return vim.GetAccount(vim_account_id=ctx.input.vim_account_id)


def _ns_resource(data: Any) -> list[str | Shared]:
    # The NS alone; its VIM account shared, so the account is not deleted under it.
    return [f"ns:{data.ns_id}", Shared(f"vim:{data.vim_account_id}")]


def _vnf_resources(data: NsScaleOutInput) -> list[str | Shared]:
    # Scale-outs of different VNFs of one NS run side by side; of one VNF, one at a time.
    return [
        Shared(f"ns:{data.ns_id}"),
        f"vnf:{data.ns_id}/{data.vnf}",
        Shared(f"vim:{data.vim_account_id}"),
    ]


def _create_record(ctx: BuildContext[NsInstantiateInput]) -> lcm.CreateNsRecord:
    data = ctx.input
    return lcm.CreateNsRecord(
        ns_id=data.ns_id,
        name=data.name,
        nsd_id=data.nsd_id,
        vim_account_id=data.vim_account_id,
        vnfs=[v.member for v in data.vnfs],
    )


def _delete_record(ctx: BuildContext[Any], _result: object) -> lcm.DeleteNsRecord:
    return lcm.DeleteNsRecord(ns_id=ctx.input.ns_id)


def _create_networks(ctx: BuildContext[NsInstantiateInput]) -> ro.CreateNetworks:
    return ro.CreateNetworks(vim=_target(ctx), ns_id=ctx.input.ns_id, networks=ctx.input.networks)


def _delete_networks(
    ctx: BuildContext[NsInstantiateInput], result: ro.NetworksCreated | None
) -> ro.DeleteNetworks:
    ids = [n.network_id for n in result.networks] if result else []
    return ro.DeleteNetworks(vim=_target(ctx), ns_id=ctx.input.ns_id, network_ids=ids)


def _deploy(ctx: BuildContext[NsInstantiateInput]) -> ro.DeployVdus:
    vnf: VnfSpec = ctx.item
    networks: ro.NetworksCreated = ctx.result("networks")
    return ro.DeployVdus(
        vim=_target(ctx),
        ns_id=ctx.input.ns_id,
        vnf=vnf.member,
        vdus=vnf.vdus,
        network_ids=[n.network_id for n in networks.networks],
    )


def _undeploy(ctx: BuildContext[Any], result: ro.VdusDeployed | None) -> ro.DeleteVdus:
    ids = [s.server_id for s in result.servers] if result else []
    return ro.DeleteVdus(vim=_target(ctx), ns_id=ctx.input.ns_id, server_ids=ids)


def _configure(ctx: BuildContext[NsInstantiateInput]) -> lcm.ConfigureVnf:
    vnf: VnfSpec = ctx.item
    deployed: ro.VdusDeployed = ctx.results("vdus")[vnf.member]
    return lcm.ConfigureVnf(
        ns_id=ctx.input.ns_id,
        vnf=vnf.member,
        server_ids=[s.server_id for s in deployed.servers],
        config=vnf.day1,
    )


def _unconfigure(ctx: BuildContext[Any], _result: object) -> lcm.RemoveVnfConfig:
    vnf: VnfSpec = ctx.item
    return lcm.RemoveVnfConfig(ns_id=ctx.input.ns_id, vnf=vnf.member)


def _mark(state: lcm.NsState, detail: str = "") -> Any:
    def build(ctx: BuildContext[Any]) -> lcm.SetNsState:
        return lcm.SetNsState(ns_id=ctx.input.ns_id, state=state, detail=detail)

    return build


_VIM_ACCOUNT = Step(
    "vim-account",
    vim.GetAccount,
    _get_account,
    kind=StepKind.QUERY,
    timeout=timedelta(seconds=30),
)

instantiate_ns: Saga[NsInstantiateInput] = Saga(
    "ns.instantiate",
    input=NsInstantiateInput,
    description="NS record, networks, the VDUs of every VNF in parallel, day-1 config, ready.",
    stages=(
        _VIM_ACCOUNT,
        Step(
            "ns-record",
            lcm.CreateNsRecord,
            _create_record,
            compensation=lcm.DeleteNsRecord,
            undo=_delete_record,
        ),
        Step(
            "networks",
            ro.CreateNetworks,
            _create_networks,
            compensation=ro.DeleteNetworks,
            undo=_delete_networks,
            uses=("vim-account",),
            retry=OUTAGE_RETRY,
            compensation_retry=OUTAGE_COMPENSATION_RETRY,
        ),
        ForEach(
            "vdus",
            items=lambda data: data.vnfs,
            key=lambda vnf: vnf.member,
            step=Step(
                "deploy",
                ro.DeployVdus,
                _deploy,
                compensation=ro.DeleteVdus,
                undo=_undeploy,
                uses=("vim-account", "networks"),
                timeout=timedelta(minutes=10),
                retry=OUTAGE_RETRY,
                compensation_retry=OUTAGE_COMPENSATION_RETRY,
            ),
        ),
        ForEach(
            "day1",
            items=lambda data: data.vnfs,
            key=lambda vnf: vnf.member,
            step=Step(
                "configure",
                lcm.ConfigureVnf,
                _configure,
                compensation=lcm.RemoveVnfConfig,
                undo=_unconfigure,
                uses=("vdus",),
            ),
        ),
        Step("mark-ready", lcm.SetNsState, _mark("ready"), kind=StepKind.PIVOT),
    ),
    resources=_ns_resource,
    lock_policy=LockPolicy.WAIT,
    timeout=timedelta(hours=1),
)
"""ns.instantiate: everything before mark-ready is undone if a later step fails for good."""


def _find_networks(ctx: BuildContext[NsScaleOutInput]) -> ro.FindNsNetworks:
    return ro.FindNsNetworks(vim=_target(ctx), ns_id=ctx.input.ns_id)


def _scale_deploy(ctx: BuildContext[NsScaleOutInput]) -> ro.DeployVdus:
    networks: ro.NetworksFound = ctx.result("networks")
    return ro.DeployVdus(
        vim=_target(ctx),
        ns_id=ctx.input.ns_id,
        vnf=ctx.input.vnf,
        vdus=ctx.input.vdus,
        network_ids=[n.network_id for n in networks.networks],
    )


def _scaled(ctx: BuildContext[NsScaleOutInput]) -> lcm.SetNsState:
    added = sum(v.count for v in ctx.input.vdus)
    return lcm.SetNsState(
        ns_id=ctx.input.ns_id, state="ready", detail=f"scaled out {ctx.input.vnf} by {added} VMs"
    )


scale_out_ns: Saga[NsScaleOutInput] = Saga(
    "ns.scale-out",
    input=NsScaleOutInput,
    description="Add VDUs to one VNF of a running NS.",
    stages=(
        _VIM_ACCOUNT,
        Step(
            "networks",
            ro.FindNsNetworks,
            _find_networks,
            kind=StepKind.QUERY,
            uses=("vim-account",),
            retry=OUTAGE_RETRY,
        ),
        Step(
            "vdus",
            ro.DeployVdus,
            _scale_deploy,
            compensation=ro.DeleteVdus,
            undo=_undeploy,
            uses=("vim-account", "networks"),
            timeout=timedelta(minutes=10),
            retry=OUTAGE_RETRY,
            compensation_retry=OUTAGE_COMPENSATION_RETRY,
        ),
        Step("record-scale", lcm.SetNsState, _scaled, kind=StepKind.PIVOT),
    ),
    resources=_vnf_resources,
    lock_policy=LockPolicy.WAIT,
    timeout=timedelta(hours=1),
)
"""ns.scale-out: new VMs are deleted again if the scale cannot be recorded."""


def _remove_config(ctx: BuildContext[NsTerminateInput]) -> lcm.RemoveNsConfig:
    return lcm.RemoveNsConfig(ns_id=ctx.input.ns_id)


def _delete_resources(ctx: BuildContext[NsTerminateInput]) -> ro.DeleteNsResources:
    return ro.DeleteNsResources(vim=_target(ctx), ns_id=ctx.input.ns_id)


def _final_delete(ctx: BuildContext[NsTerminateInput]) -> lcm.DeleteNsRecord:
    return lcm.DeleteNsRecord(ns_id=ctx.input.ns_id)


terminate_ns: Saga[NsTerminateInput] = Saga(
    "ns.terminate",
    input=NsTerminateInput,
    description="Remove config, VMs, networks and the NS record; retried until it is done.",
    stages=(
        _VIM_ACCOUNT,
        Step("mark-terminating", lcm.SetNsState, _mark("terminating"), kind=StepKind.RETRIABLE),
        Step("remove-config", lcm.RemoveNsConfig, _remove_config, kind=StepKind.RETRIABLE),
        Step(
            "delete-resources",
            ro.DeleteNsResources,
            _delete_resources,
            kind=StepKind.RETRIABLE,
            uses=("vim-account",),
            timeout=timedelta(minutes=10),
        ),
        Step("delete-record", lcm.DeleteNsRecord, _final_delete, kind=StepKind.RETRIABLE),
    ),
    resources=_ns_resource,
    lock_policy=LockPolicy.SUPERSEDE,
    supersedes=("ns.instantiate", "ns.scale-out"),
    supersede_queued=QueuedPolicy.CANCEL,
)
"""ns.terminate: cancels a running instantiate or scale-out of the same NS, and those queued
behind it, then goes first."""
