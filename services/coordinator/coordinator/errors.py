"""Every exception the coordinator raises, in one tree. Pure: the core imports it too.

::

    CoordinatorError
     ├── StartRejected            a StartSaga cannot be accepted; `code` is stable
     │    ├── UnknownSagaType     the saga type is not loaded in this coordinator
     │    └── InvalidInput        the input does not validate against the saga's input model
     ├── DefinitionMissing        an instance's saga type and version are not loaded here:
     │                            the shell parks the event for a coordinator that has them
     ├── IllegalTransition        a status change the state tables forbid: an engine bug
     ├── StoreError               the database, as the coordinator sees it
     │    ├── StoreUnavailable    unreachable, restarting, a lost connection: retry later
     │    ├── Conflict            serialization failure or deadlock: retry the whole transaction
     │    │    └── ConcurrentUpdate   a saga row moved under us (its version changed)
     │    └── SchemaBehind        the schema is older than the code: run `convection db upgrade`
     └── StartupError             the service cannot start as configured (exit code 2)

Driver errors (SQLAlchemy, asyncpg, aiosqlite) never travel past the store: it maps them
into `StoreUnavailable` or `Conflict` at the edge, so the processor and the consumers decide
on our own types. Messages the coordinator cannot accept are not exceptions: the processor
returns an `Outcome` of kind `rejected` with a reason, and the consumer dead-letters them.
"""

from __future__ import annotations

from typing import Any


class CoordinatorError(Exception):
    """Base of every error the coordinator raises."""


class StartRejected(CoordinatorError, ValueError):
    """A saga cannot be started; `code` is stable, the message says what to fix."""

    code = "start_rejected"


class UnknownSagaType(StartRejected):
    """The saga type is not in the registry."""

    code = "unknown_saga_type"


class InvalidInput(StartRejected):
    """The input does not validate against the saga's input model."""

    code = "invalid_input"

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class DefinitionMissing(CoordinatorError, LookupError):
    """This coordinator has not loaded the saga type and version an instance is pinned to."""

    def __init__(self, saga_type: str, version: int) -> None:
        super().__init__(f"definition_missing: {saga_type}@{version}")
        self.saga_type = saga_type
        self.version = version

    @property
    def reason(self) -> str:
        """The parked reason shown to operators: `definition_missing: <type>@<version>`."""
        return str(self)


class IllegalTransition(CoordinatorError, RuntimeError):
    """A status change that the transition tables do not allow: a bug in the engine."""


class StoreError(CoordinatorError):
    """The coordinator's database failed to do what was asked."""


class StoreUnavailable(StoreError):
    """The database is unreachable or lost the connection: nothing was committed."""


class Conflict(StoreError):
    """The transaction collided with another (serialization, deadlock, a moved row)."""


class ConcurrentUpdate(Conflict):
    """A saga row changed under us (its version moved): retry the transaction."""


class SchemaBehind(StoreError):
    """The database's schema revision is not the code's head revision."""


class StartupError(CoordinatorError):
    """The service cannot start as configured; the message names what to change."""
