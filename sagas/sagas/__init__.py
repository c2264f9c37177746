"""Convection saga definitions: the DSL and the OSM operations. Pure: no I/O."""

from sagas import ns, vim_account
from sagas.dsl import RawResults, Registry, Saga
from sagas.kinds import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    OUTAGE_COMPENSATION_RETRY,
    OUTAGE_RETRY,
    LockMode,
    LockPolicy,
    QueuedPolicy,
    RetryPolicy,
    SagaDefinitionError,
    Shared,
    StepKind,
    UndeclaredResultError,
)
from sagas.packages import GROUP, SagaPackageError, combine, definitions_of
from sagas.secrets import secret_paths
from sagas.steps import BuildContext, ForEach, Parallel, PlannedStep, Stage, Step

OSM_SAGAS = (
    vim_account.create_vim_account,
    vim_account.delete_vim_account,
    ns.instantiate_ns,
    ns.scale_out_ns,
    ns.terminate_ns,
)
"""Every OSM saga type."""


def osm_registry() -> Registry:
    """Return a registry of the OSM saga types."""
    return Registry(OSM_SAGAS)


__all__ = [
    "DEFAULT_COMPENSATION_RETRY",
    "DEFAULT_RETRY",
    "GROUP",
    "OSM_SAGAS",
    "OUTAGE_COMPENSATION_RETRY",
    "OUTAGE_RETRY",
    "BuildContext",
    "ForEach",
    "LockMode",
    "LockPolicy",
    "Parallel",
    "PlannedStep",
    "QueuedPolicy",
    "RawResults",
    "Registry",
    "RetryPolicy",
    "Saga",
    "SagaDefinitionError",
    "SagaPackageError",
    "Shared",
    "Stage",
    "Step",
    "StepKind",
    "UndeclaredResultError",
    "combine",
    "definitions_of",
    "ns",
    "osm_registry",
    "secret_paths",
    "vim_account",
]
