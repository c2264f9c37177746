"""lcm-adapter: NS records, their operational state, and the day-1 configuration of VNFs."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts.actions import Action, Result
from contracts.base import Identifier, JsonObject

SERVICE = "lcm"
"""The lcm-adapter's service name (its command queue is `convection.commands.lcm`)."""

NsState = Literal["building", "ready", "scaling", "failed", "terminating", "terminated"]
"""The operational state of an NS record."""


class NsRecordCreated(Result):
    """The NS record exists, in state `building`."""

    ns_id: Identifier


class CreateNsRecord(Action):
    """Create the NS record."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "lcm.create-ns-record"
    RESULT: ClassVar[type[Result]] = NsRecordCreated
    ns_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    nsd_id: str = Field(min_length=1, max_length=200)
    vim_account_id: Identifier
    vnfs: list[str] = Field(default_factory=list)


class NsRecordDeleted(Result):
    """The NS record is gone; `existed` tells whether there was one."""

    ns_id: Identifier
    existed: bool


class DeleteNsRecord(Action):
    """Delete the NS record (the compensation of CreateNsRecord, and the end of terminate)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "lcm.delete-ns-record"
    RESULT: ClassVar[type[Result]] = NsRecordDeleted
    ns_id: Identifier


class VnfConfigured(Result):
    """The day-1 configuration of a VNF is applied."""

    ns_id: Identifier
    vnf: str
    config_id: str


class ConfigureVnf(Action):
    """Apply the day-1 configuration of one VNF to its VMs."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "lcm.configure-vnf"
    RESULT: ClassVar[type[Result]] = VnfConfigured
    ns_id: Identifier
    vnf: str = Field(min_length=1, max_length=100)
    server_ids: list[str] = Field(default_factory=list)
    config: JsonObject = Field(default_factory=dict)


class VnfConfigRemoved(Result):
    """The day-1 configuration of a VNF is removed."""

    ns_id: Identifier
    vnf: str
    existed: bool


class RemoveVnfConfig(Action):
    """Remove the day-1 configuration of one VNF (the compensation of ConfigureVnf)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "lcm.remove-vnf-config"
    RESULT: ClassVar[type[Result]] = VnfConfigRemoved
    ns_id: Identifier
    vnf: str


class NsConfigRemoved(Result):
    """Every VNF configuration of the NS is removed."""

    ns_id: Identifier
    vnfs: list[str]


class RemoveNsConfig(Action):
    """Remove the day-1 configuration of every VNF of the NS (terminate)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "lcm.remove-ns-config"
    RESULT: ClassVar[type[Result]] = NsConfigRemoved
    ns_id: Identifier


class NsStateSet(Result):
    """The NS record's operational state changed (or, ending an NS, its record was gone)."""

    ns_id: Identifier
    state: NsState
    previous: NsState | None
    existed: bool = True
    """False when the record was already gone: terminating what no longer exists is done."""


class SetNsState(Action):
    """Mark the NS ready, failed, scaling, terminating or terminated."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "lcm.set-ns-state"
    RESULT: ClassVar[type[Result]] = NsStateSet
    ns_id: Identifier
    state: NsState
    detail: str = Field(default="", max_length=1000)


ACTIONS: tuple[type[Action], ...] = (
    CreateNsRecord,
    DeleteNsRecord,
    ConfigureVnf,
    RemoveVnfConfig,
    RemoveNsConfig,
    SetNsState,
)
"""Every action of the lcm service."""
