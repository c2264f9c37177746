"""The `convection` command line.

The runtime does not import the services (dependencies point one way), so each installed
service adds its commands through the `convection.commands` entry-point group: the entry
point is a function that takes the root typer app and registers commands on it. Such a
module imports nothing heavy at module level (the commands import what they need when they
run), so `convection --help` and `convection version` answer without the I/O stack.

Adapters are found through their `convection.adapters` entry points (name -> the embedded
runner, `package:run`) without importing them: `convection adapter <name>` runs the
package as `python -m <package>` would.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from importlib.metadata import version as dist_version
from typing import Annotated

import typer

from convection import operator_cli
from convection.cli_adapters import add_adapter

COMMANDS_GROUP = "convection.commands"
"""Entry-point group through which services add subcommands."""
ADAPTERS_GROUP = "convection.adapters"
"""Entry-point group of the adapters: `convection adapter <name>` for each."""

_log = logging.getLogger(__name__)


def build_app() -> typer.Typer:
    """Return the root app with every installed service's commands registered."""
    app = typer.Typer(
        name="convection",
        help="Convection: a saga coordinator for microservices.",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.callback()
    def _root() -> None:
        """Convection: a saga coordinator for microservices."""

    @app.command()
    def version() -> None:
        """Print the installed version of Convection."""
        typer.echo(dist_version("convection"))

    @app.command()
    def health(
        file: str = typer.Option(..., help="The heartbeat file the service touches."),
        max_age: float = typer.Option(30.0, help="Seconds after which the file is stale."),
    ) -> None:
        """Exit 0 if a service's heartbeat file is fresh, 1 if not (for container health)."""
        from convection.health import check

        ok, why = check(file, max_age)
        typer.echo(why)
        raise typer.Exit(0 if ok else 1)

    operator_cli.register(app)

    vault = typer.Typer(help="The vault that keeps secrets sealed.", no_args_is_help=True)

    @vault.command("keygen")
    def keygen() -> None:
        """Print a new vault key pair as shell exports (public: coordinator; private: adapters)."""
        from convection.sealing import generate_keypair

        private, public = generate_keypair()
        typer.echo(f"export CONVECTION_VAULT_PUBLIC_KEY={public}")
        typer.echo(f"export CONVECTION_VAULT_KEY={private}")

    app.add_typer(vault, name="vault")

    @app.command()
    def participant(
        references: Annotated[
            list[str],
            typer.Argument(help="MODULE:ATTR of each convection.Participant, e.g. shop.app:stock"),
        ],
    ) -> None:
        """Run participants declared in any installed module (CONVECTION_* settings)."""
        from convection.participant_run import run_participants

        raise typer.Exit(run_participants(references))

    @app.command()
    def demo(
        amqp_url: str | None = typer.Option(None, help="Run against this RabbitMQ instead."),
        db_url: str | None = typer.Option(None, help="Run against this PostgreSQL instead."),
        timeout: float = typer.Option(60.0, help="Seconds each saga may take."),
    ) -> None:
        """Play the OSM story: embedded in this process, or against real servers."""
        import asyncio

        from convection.demo import run_demo

        raise typer.Exit(asyncio.run(run_demo(amqp_url, db_url, per_saga=timeout)))

    for ep in sorted(entry_points(group=ADAPTERS_GROUP), key=lambda e: e.name):
        add_adapter(app, ep)
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as exc:  # a broken service must not take the whole CLI down
            _log.warning("commands of %s are unavailable: %s", ep.name, exc)
            continue
        register(app)
    return app


def main() -> None:
    """Run the `convection` command."""
    build_app()()
