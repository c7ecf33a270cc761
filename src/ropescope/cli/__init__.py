"""The ``ropescope`` command line: one Typer app, one module of commands per layer of the flow.

``theory`` holds spectrum, catalog, audit, bounds and calibrate (numpy only); ``measure`` holds probe
(torch and transformers, imported only when the command runs). Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import sys

import typer

from ropescope.errors import RopescopeInputError

app = typer.Typer(
    name="ropescope",
    help="Will this model's positional encoding hold at the context length you want, and what fixes it?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from ropescope.cli import theory  # noqa: F401  (registers its commands on `app`)


def main() -> None:
    """Entry point of the ``ropescope`` script."""
    _register()
    try:
        app(standalone_mode=False)
    except RopescopeInputError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # click's usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(2)
        raise
