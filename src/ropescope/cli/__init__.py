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
    """Entry point of the ``ropescope`` script: usage errors are Typer's (exit 2), input errors are ours."""
    _register()
    try:
        app()
    except RopescopeInputError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
