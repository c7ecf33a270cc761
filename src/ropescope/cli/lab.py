"""``ropescope lab run`` and ``ropescope lab table``: the sweep on an engine, and its encodings × tasks table.

torch (and Ray for ``--engine ray``) are imported only when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ropescope.cli import app
from ropescope.errors import RopescopeInputError
from ropescope.report import terminal

lab_app = typer.Typer(help="Train small models with every encoding and measure length generalisation.")
app.add_typer(lab_app, name="lab")


def _summary(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RopescopeInputError(
            str(out_dir), "holds no lab summary.json", "run `ropescope lab run SPEC --out DIR`"
        ) from None
    if summary.get("schema_version") != 1:
        raise RopescopeInputError(str(path), f"has schema version {summary.get('schema_version')!r}", "rerun the sweep")
    return summary


@lab_app.command("run")
def run_command(
    spec: Annotated[str, typer.Argument(help="a TOML spec file or a preset: smoke, kazemnejad, bases")],
    out: Annotated[Path, typer.Option(help="folder for runs/, results.jsonl, summary.json and the plots")],
    engine: Annotated[str, typer.Option(help="local (this process) or ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
) -> None:
    """Run a sweep; a rerun into the same folder skips the finished runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ropescope.lab.spec import load_lab_spec
    from ropescope.lab.sweep import check_engine, check_output, run_sweep
    from ropescope.report.figures import save_figure
    from ropescope.report.lab_view import LAB_DPI, accuracy_figure, bases_figure, render_base_sweep, render_lab_table

    lab_spec = load_lab_spec(spec)
    check_engine(engine, address)
    check_output(out)
    console = terminal()
    runs = lab_spec.runs()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        sweep = progress.add_task(f"{lab_spec.name}: runs", total=len(runs))
        current = progress.add_task("current run", total=1, visible=engine == "local")

        def on_start(settings) -> None:  # type: ignore[no-untyped-def]
            progress.reset(current, total=settings.steps, description=f"{settings.task} / {settings.encoding}")

        def on_step(step: int, total: int) -> None:
            progress.update(current, completed=step)

        def on_run(record: dict[str, Any], finished: int, total: int) -> None:
            progress.update(sweep, completed=finished)

        try:
            records = run_sweep(lab_spec, out, engine, address, on_run=on_run, on_step=on_step, on_start=on_start)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted: finished runs are kept in {out}; rerun to continue[/]")
            raise typer.Exit(130) from None
    summary = _summary(out)
    console.print(f"{len(records)} of {len(runs)} runs in {out} (results.jsonl, summary.json)")
    if any(run["task"] != "lm" for run in summary["runs"]):
        render_lab_table(console, summary)
        save_figure(accuracy_figure(summary), out / "accuracy.png", LAB_DPI)
        console.print(f"wrote {out / 'accuracy.png'}")
    render_base_sweep(console, summary)
    bases = bases_figure(summary)
    if bases is not None:
        save_figure(bases, out / "bases.png", LAB_DPI)
        console.print(f"wrote {out / 'bases.png'}")


@lab_app.command("table")
def table_command(
    out: Annotated[Path, typer.Argument(help="a folder written by `ropescope lab run`")],
    within: Annotated[bool, typer.Option("--within", help="accuracy up to the training length instead")] = False,
) -> None:
    """The encodings × tasks table of extrapolation accuracy (and the base sweep) of a finished sweep."""
    from ropescope.report.lab_view import render_base_sweep, render_lab_table

    summary = _summary(out)
    console = terminal()
    if any(run["task"] != "lm" for run in summary["runs"]):
        render_lab_table(console, summary, within)
    render_base_sweep(console, summary)
