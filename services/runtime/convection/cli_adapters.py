"""`convection adapter <name>`: the command group the adapters share.

The stock adapters are found through their `convection.adapters` entry points (name -> the
embedded runner, `package:run`) without importing them: `add_adapter` makes
`convection adapter <name>` run the package as `python -m <package>` would. A package may
instead call `register_adapter` from its own `convection.commands` entry point: the first to
do so creates the `adapter` group and the others add to it, so packages stay independent.
Only typer is imported here: the command line builds these on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint

import typer


def add_adapter(app: typer.Typer, ep: EntryPoint) -> None:
    """Add `convection adapter <ep.name>`, running the entry point's package as a module."""
    package = ep.module.split(".")[0]
    summary = ep.dist.metadata["Summary"] if ep.dist is not None else None
    help_text = (
        f"{summary or 'Run the ' + ep.name + ' adapter.'} Same as `python -m {package}` "
        "(CONVECTION_AMQP_URL, CONVECTION_DB_URL)."
    )

    def command() -> None:
        import runpy

        runpy.run_module(package, run_name="__main__", alter_sys=True)

    command.__doc__ = help_text
    adapter_group(app).command(ep.name, help=help_text)(command)


GROUP = "adapter"
"""Name of the command group the adapters share."""


def adapter_group(app: typer.Typer) -> typer.Typer:
    """Return the `adapter` group of `app`, creating it the first time."""
    for group in app.registered_groups:
        if group.name == GROUP and group.typer_instance is not None:
            return group.typer_instance
    group_app = typer.Typer(name=GROUP, help="Run an adapter service.", no_args_is_help=True)
    app.add_typer(group_app, name=GROUP)
    return group_app


def register_adapter(app: typer.Typer, name: str, entry: Callable[[], int], help_text: str) -> None:
    """Add `convection adapter <name>`, which runs `entry` and exits with its code."""

    def command() -> None:
        raise typer.Exit(entry())

    command.__doc__ = help_text
    adapter_group(app).command(name, help=help_text)(command)
