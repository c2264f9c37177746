"""`convection adapter ro`: run the ro-adapter from the convection command line."""

from __future__ import annotations

import typer

from convection.participant_main import register_adapter


def register(app: typer.Typer) -> None:
    """Add `convection adapter ro` to the convection command line."""

    def entry() -> int:
        from ro_adapter.__main__ import entry as run_process

        return run_process()

    register_adapter(
        app, "ro", entry, "Run the ro-adapter (CONVECTION_AMQP_URL, CONVECTION_DB_URL)."
    )
