"""The ``ropescope`` command line: one Typer app, one module of commands per layer of the flow.

``theory`` holds spectrum and catalog, ``audit`` holds audit, bounds and calibrate (numpy only); ``probe`` holds
probe (torch and transformers, imported only when the command runs); ``lab`` the lab's sweeps; ``bias`` position
bias under PINE and ACT; ``report`` the HTML page of every result. Bad input exits with code 2 and one line.
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
    from ropescope.cli import audit, bias, compress, lab, probe, report, theory  # noqa: F401  (each module registers its commands on `app`)


def main() -> None:
    """Entry point of the ``ropescope`` script: input errors and usage errors (Typer's) are one line and exit 2."""
    try:  # Typer ≥ 0.25 carries its own copy of click
        from typer._click.exceptions import NoArgsIsHelpError, UsageError
    except ImportError:
        from click.exceptions import NoArgsIsHelpError, UsageError

    _register()
    try:
        code = app(standalone_mode=False)
    except RopescopeInputError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except NoArgsIsHelpError:  # the help is already printed
        sys.exit(2)
    except UsageError as error:
        command = error.ctx.command_path if error.ctx else "ropescope"
        typer.secho(f"error: {command}: {error.format_message()} — see `{command} --help`", fg="red", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.secho("interrupted", fg="yellow", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
