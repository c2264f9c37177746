"""What every request handler shares: the simulator's state, its clock and the caller's context.

Nothing here is global: one `SimState` lives on each application (under `STATE_KEY`), so several
simulators can run in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vim_sim.errors import ApiError
from vim_sim.faults import FaultInjector
from vim_sim.settings import VimSimSettings

Clock = Callable[[], datetime]
"""A source of UTC-aware "now"; tests pass a manual one instead of sleeping."""

SAGA_ID_HEADER = "X-Convection-Saga-Id"
STEP_HEADER = "X-Convection-Step"
ACTION_HEADER = "X-Convection-Action"
IDEMPOTENCY_HEADER = "X-Idempotency-Key"
_MAX_HEADER = 255


def system_clock() -> datetime:
    """Return the current UTC time."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SimState:
    """The dependencies of one simulator, handed to every API class.

    Attributes:
        settings: The settings the simulator was created with.
        sessions: Session factory of the simulator's database.
        clock: Source of the current time.
        faults: The live fault injector.
    """

    settings: VimSimSettings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    faults: FaultInjector


@dataclass(frozen=True)
class Caller:
    """Who is calling: the project (VIM account) the caller's token is scoped to."""

    project_id: str
    project_name: str
    user_name: str


@dataclass(frozen=True)
class CallContext:
    """The saga step behind a call and its idempotency key, from the request headers."""

    saga_id: str | None = None
    step: str | None = None
    action: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def from_request(cls, request: web.Request) -> CallContext:
        """Read the context headers; absent or empty headers become None."""

        def header(name: str) -> str | None:
            value = request.headers.get(name, "").strip()
            if len(value) > _MAX_HEADER:
                message = f"{name} is longer than {_MAX_HEADER} characters"
                raise ApiError.plain(400, message)
            return value or None

        return cls(
            saga_id=header(SAGA_ID_HEADER),
            step=header(STEP_HEADER),
            action=header(ACTION_HEADER),
            idempotency_key=header(IDEMPOTENCY_HEADER),
        )


STATE_KEY = web.AppKey("vim_sim.state", SimState)
"""Where an application keeps its `SimState`."""

CALLER_KEY = web.RequestKey("vim_sim.caller", Caller)
"""Where the authentication middleware puts the `Caller` of an authenticated request."""
