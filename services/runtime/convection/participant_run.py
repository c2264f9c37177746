"""`convection participant MODULE:ATTR [MODULE:ATTR ...]`: run any team's participants.

Each reference names a `convection.Participant` declared in an installed (or importable)
module. Settings come from the same environment variables as the stock adapters (see
`convection.participant_main`); the process declares the command queue of each participant's
service, runs them until SIGTERM or SIGINT and exits 0. A reference that does not name a
Participant, or settings that do not validate, exit 2 with what to fix; a database or broker
that is not there exits 4 or 5 (the codes of `convection.participant_main`), in one line.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from convection import startup
from convection.participant import Participant
from convection.participant_main import (
    ParticipantSettings,
    SettingsError,
    load_settings,
    serve,
)
from convection.participant_metrics import ParticipantMetrics
from convection.tracing import setup_logging, setup_tracing
from convection.transport import Transport

logger = logging.getLogger(__name__)


class BadReference(ValueError):
    """A MODULE:ATTR reference does not name a Participant."""


def resolve(reference: str) -> Participant:
    """Import `MODULE:ATTR` and return the Participant it names, or raise BadReference."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise BadReference(f"{reference!r} is not MODULE:ATTR (e.g. shop.participants:stock)")
    try:
        value: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadReference(f"cannot import {module_name!r}: {exc}; is it installed?") from exc
    except Exception as exc:
        # Its own code failed at import: say where, without a traceback for a bad module.
        raise BadReference(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise BadReference(f"{module_name!r} has no {attr!r}") from None
    if not isinstance(value, Participant):
        raise BadReference(f"{reference} is a {type(value).__name__}, not a convection.Participant")
    return value


def run_participants(references: Sequence[str]) -> int:
    """Run the participants named by `references`; return the process exit code."""
    setup_logging("INFO")
    try:
        participants = [resolve(r) for r in references]
        settings = load_settings(ParticipantSettings)
    except (BadReference, SettingsError) as exc:
        logger.error("participant: %s", exc)  # noqa: TRY400 - no traceback for bad input
        return startup.SETTINGS
    services = sorted({p.service for p in participants})
    if len(services) != len(participants):
        logger.error("participant: two participants serve one service: %s", references)
        return startup.SETTINGS
    logging.getLogger().setLevel(settings.log_level.upper())
    tracing = setup_tracing("-".join(services))

    async def runner(
        s: ParticipantSettings,
        transport: Transport,
        engine: AsyncEngine,
        stop: asyncio.Event,
        metrics: ParticipantMetrics,
    ) -> None:
        await asyncio.gather(
            *(
                p.serve(
                    transport=transport,
                    db_engine=engine,
                    stop=stop,
                    prefetch=s.prefetch,
                    failpoint=s.failpoint,
                    coordinator_user=s.coordinator_user,
                    metrics=metrics,
                )
                for p in participants
            )
        )

    try:
        asyncio.run(serve(settings, runner, services))
    except startup.StartupFailure as exc:
        logger.error("participant: %s", exc)  # noqa: TRY400 - one line, no traceback
        return exc.code
    finally:
        tracing.shutdown()
    logger.info("participant %s: exited cleanly", ", ".join(services))
    return 0
