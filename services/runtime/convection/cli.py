"""The `convection` command line: the entry point that later commands are added to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="convection",
    help="Convection: a saga coordinator for microservices.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed version of Convection."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("convection"))


def main() -> None:
    """Run the `convection` command."""
    app()
