"""Run a simulator in-process: for tests, the embedded demo and `python -m vim_sim`."""

from __future__ import annotations

from types import TracebackType

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from convection.db import make_engine
from vim_sim.app import create_app
from vim_sim.settings import VimSimSettings
from vim_sim.state import Clock, system_clock


class VimSimulator:
    """A simulator listening on `settings.host:settings.port` (port 0 picks a free one).

    Usage::

        async with VimSimulator(VimSimSettings(db_url="sqlite+aiosqlite:///sim.db", port=0)) as sim:
            client.identity_url = f"{sim.url}/identity/v3"

    Args:
        settings: The simulator's settings.
        engine: The database; when None, one is made from `settings.db_url` and disposed of
            by `stop()`.
        clock: Source of "now"; tests pass a manual one.
    """

    def __init__(
        self,
        settings: VimSimSettings,
        *,
        engine: AsyncEngine | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._owns_engine = engine is None
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Return the base URL, e.g. `http://127.0.0.1:6080`; the simulator must be started."""
        if self._url is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return self._url

    @property
    def app(self) -> web.Application:
        """Return the running application."""
        if self._runner is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return self._runner.app

    async def start(self) -> str:
        """Create the tables, start listening and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        if self._engine is None:
            self._engine = make_engine(self._settings.db_url)
        runner = web.AppRunner(
            create_app(self._settings, self._engine, clock=self._clock),
            handle_signals=False,
            # In-flight calls get this long to finish when stopping.
            shutdown_timeout=5.0,
        )
        try:
            await runner.setup()
            await web.TCPSite(runner, self._settings.host, self._settings.port).start()
        except BaseException:
            await runner.cleanup()
            await self._dispose_engine()
            raise
        self._runner = runner
        self._url = _url(runner)
        return self._url

    async def stop(self) -> None:
        """Stop listening; dispose of the engine when the simulator made it."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
        await self._dispose_engine()

    async def _dispose_engine(self) -> None:
        if self._owns_engine and self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def __aenter__(self) -> VimSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    if ":" in host:
        host = f"[{host}]"
    elif host == "0.0.0.0":  # noqa: S104 - a wildcard bind is reached through loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"
