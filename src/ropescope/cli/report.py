"""``ropescope report``: one self-contained HTML page of audit JSON and probe and lab result folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ropescope.cli import app
from ropescope.cli.arguments import parse_output_path

RESULTS_HELP = "audit JSON (`ropescope audit ... --json > f.json`), probe or lab result folders, or folders of them"


@app.command("report")
def report_command(
    results: Annotated[list[Path], typer.Argument(help=RESULTS_HELP, show_default=False)],
    out: Annotated[Path, typer.Option(help="the .html file to write")] = Path("report.html"),
) -> None:
    """Write one offline HTML page (inline CSS, plots embedded) of everything the results hold, in flow order."""
    from ropescope.report.page import write_report

    out = parse_output_path("--out", out, (".html", ".htm")) or out
    path = write_report(results, out)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
