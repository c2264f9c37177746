"""`python -m coordinator`: run one coordinator replica until SIGTERM or SIGINT.

Configured by CONVECTION_* environment variables (see `coordinator.settings`) and the HTTP
API by CONVECTION_API_* (see `coordinator.api.ApiSettings`; default 127.0.0.1:8080). The
saga definitions come from installed packages (`coordinator.definitions`,
`CONVECTION_SAGAS`). A failure to start is one line on stderr and one of these exit codes
(the same as `convection coordinator`; `convection.startup` defines them):

    0  stopped gracefully after SIGTERM or SIGINT
    2  bad settings: a variable missing or malformed, a URL that does not parse, an API
       without tokens on a non-loopback address, an API port that cannot be bound, a broken
       saga package (the message names package, saga, step and rule)
    3  the database schema is behind the code: run `convection db upgrade`
    4  the database is unavailable: unreachable, no such database, login refused
    5  the broker is unavailable: unreachable, no such vhost, login refused
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from convection import startup
from convection.run_stats import RunStats
from convection.tracing import setup_logging, setup_tracing
from coordinator.api import ApiServer, ApiSettings
from coordinator.definitions import load_registry
from coordinator.errors import SchemaBehind, StartupError
from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings
from sagas import Registry, SagaPackageError

logger = logging.getLogger("coordinator")
_S = TypeVar("_S", bound=BaseSettings)


def load_settings() -> CoordinatorSettings:
    """Read the settings from the environment, or exit 2 with what is wrong."""
    return _load(CoordinatorSettings, "coordinator", "CONVECTION_")


def load_api_settings() -> ApiSettings:
    """Read the API settings (CONVECTION_API_*), or exit 2 with what is wrong or unsafe."""
    api = _load(ApiSettings, "API", "CONVECTION_API_")
    try:
        api.check()
    except ValueError as exc:
        sys.stderr.write(f"coordinator: refusing to start: {exc}\n")
        raise SystemExit(startup.SETTINGS) from None
    return api


def _load(cls: type[_S], what: str, prefix: str) -> _S:
    try:
        return cls()
    except ValidationError as exc:
        # Never echo input values: URLs may carry passwords.
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        sys.stderr.write(f"coordinator: invalid {what} settings: {problems}\n")
        raise SystemExit(startup.SETTINGS) from None


class ApiUnavailable(Exception):
    """The HTTP API could not listen (e.g. CONVECTION_API_PORT is in use)."""


async def serve(
    settings: CoordinatorSettings, registry: Registry, api: ApiSettings | None = None
) -> None:
    """Run a coordinator (and its HTTP API) until SIGTERM/SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats = RunStats.from_environment()  # `convection bench` only
    coordinator = Coordinator(settings, registry=registry)
    try:
        with startup.quiet_connect():
            await coordinator.start()
    except SchemaBehind as exc:
        raise startup.StartupFailure(startup.SCHEMA, str(exc)) from exc
    except StartupError as exc:
        raise startup.StartupFailure(startup.SETTINGS, f"refusing to start: {exc}") from exc
    except Exception as exc:
        failure = startup.classify(exc, db_url=settings.db_url, amqp_url=settings.amqp_url)
        if failure is None:
            raise
        raise failure from exc
    transport = coordinator.transport
    try:
        server = ApiServer(coordinator, api) if api is not None and api.enabled else None
        if server is not None:
            try:
                url = await server.start()
            except OSError as exc:
                raise ApiUnavailable(f"cannot serve the HTTP API: {exc}") from exc
            logger.info("HTTP API on %s", url)
        try:
            await stop.wait()
            logger.info("signal received: stopping")
        finally:
            # Stop serving before the coordinator goes, so no request meets a closed engine.
            if server is not None:
                await server.stop()
    finally:
        await coordinator.stop()
        if stats is not None:
            polled = coordinator.metrics_registry.get_sample_value("convection_outbox_polled_total")
            stats.write(transport, outbox_polled=int(polled or 0))


def run(settings: CoordinatorSettings, registry: Registry, api: ApiSettings | None = None) -> int:
    """Run the service on `registry`'s saga types; return the process exit code."""
    setup_logging(settings.log_level)
    tracing = setup_tracing("coordinator")
    try:
        asyncio.run(serve(settings, registry, api))
    except startup.StartupFailure as exc:
        sys.stderr.write(f"coordinator: {exc}\n")
        return exc.code
    except ApiUnavailable as exc:
        sys.stderr.write(
            f"coordinator: {exc}: set CONVECTION_API_HOST/CONVECTION_API_PORT (0 picks a free "
            "port), or CONVECTION_API_ENABLED=false\n"
        )
        return startup.SETTINGS
    finally:
        # Spans still in the batch processor are lost unless the provider is shut down.
        tracing.shutdown()
    return 0


def main() -> None:
    """Entry point of `python -m coordinator`."""
    settings = load_settings()
    raise SystemExit(run(settings, load_sagas(settings), load_api_settings()))


def load_sagas(settings: CoordinatorSettings) -> Registry:
    """Load the saga packages the settings choose, or exit 2 saying which rule one breaks."""
    try:
        return load_registry(settings.sagas)
    except SagaPackageError as exc:
        sys.stderr.write(f"coordinator: cannot load the saga definitions: {exc}\n")
        raise SystemExit(startup.SETTINGS) from None


if __name__ == "__main__":
    main()
