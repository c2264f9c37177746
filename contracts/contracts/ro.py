"""ro-adapter: networks and VDUs (VMs) of a Network Service on a VIM account."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts.actions import Action, Result
from contracts.base import Identifier, Model
from contracts.vim import VimCredentials, VimType

SERVICE = "ro"
"""The ro-adapter's service name (its command queue is `convection.commands.ro`)."""


class VimTarget(Model):
    """The VIM account a resource orchestration action works on."""

    vim_account_id: Identifier
    vim_type: VimType = "openstack"
    credentials: VimCredentials


class NetworkSpec(Model):
    """A virtual link of the NS: one network with one IPv4 subnet."""

    name: str = Field(min_length=1, max_length=100)
    cidr: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")


class VduSpec(Model):
    """A VDU of a VNF: `count` VMs of one image and flavor."""

    name: str = Field(min_length=1, max_length=100)
    image: str = Field(min_length=1, max_length=200)
    flavor: str = Field(min_length=1, max_length=100)
    count: int = Field(default=1, ge=1, le=100)


class CreatedNetwork(Model):
    """A network the VIM created for the NS."""

    name: str
    network_id: str


class NetworksCreated(Result):
    """Every network of the NS exists."""

    networks: list[CreatedNetwork]


class CreateNetworks(Action):
    """Create the NS's networks on the VIM."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "ro.create-networks"
    RESULT: ClassVar[type[Result]] = NetworksCreated
    vim: VimTarget
    ns_id: Identifier
    networks: list[NetworkSpec] = Field(min_length=1)


class NetworksDeleted(Result):
    """The networks are gone (ids that were already gone are listed too)."""

    network_ids: list[str]


class DeleteNetworks(Action):
    """Delete networks by id (the compensation of CreateNetworks)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "ro.delete-networks"
    RESULT: ClassVar[type[Result]] = NetworksDeleted
    vim: VimTarget
    ns_id: Identifier
    network_ids: list[str]


class NetworksFound(Result):
    """The NS's networks on the VIM."""

    networks: list[CreatedNetwork]


class FindNsNetworks(Action):
    """List the networks of an NS; changes nothing."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "ro.find-ns-networks"
    RESULT: ClassVar[type[Result]] = NetworksFound
    vim: VimTarget
    ns_id: Identifier


class Server(Model):
    """A VM the VIM runs for a VDU."""

    server_id: str
    name: str
    vdu: str
    status: str


class VdusDeployed(Result):
    """Every VM of the VNF's VDUs is ACTIVE."""

    vnf: str
    servers: list[Server]


class DeployVdus(Action):
    """Create the VMs of one VNF's VDUs and wait until they are ACTIVE."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "ro.deploy-vdus"
    RESULT: ClassVar[type[Result]] = VdusDeployed
    vim: VimTarget
    ns_id: Identifier
    vnf: str = Field(min_length=1, max_length=100)
    vdus: list[VduSpec] = Field(min_length=1)
    network_ids: list[str] = Field(default_factory=list)


class VdusDeleted(Result):
    """The VMs are gone (ids that were already gone are listed too)."""

    server_ids: list[str]


class DeleteVdus(Action):
    """Delete VMs by id (the compensation of DeployVdus)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "ro.delete-vdus"
    RESULT: ClassVar[type[Result]] = VdusDeleted
    vim: VimTarget
    ns_id: Identifier
    server_ids: list[str]


class DeleteNsResources(Action):
    """Delete every VM and then every network the NS has on the VIM (terminate)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "ro.delete-ns-resources"
    RESULT: ClassVar[type[Result]] = VdusDeleted
    vim: VimTarget
    ns_id: Identifier


ACTIONS: tuple[type[Action], ...] = (
    CreateNetworks,
    DeleteNetworks,
    FindNsNetworks,
    DeployVdus,
    DeleteVdus,
    DeleteNsResources,
)
"""Every action of the ro service."""
