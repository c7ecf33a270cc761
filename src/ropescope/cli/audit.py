"""Commands ``audit``, ``bounds`` and ``calibrate``: argument parsing only, the work is in ropescope.audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ropescope import bounds
from ropescope.audit import SENSITIVITY_EPS, audit, audit_catalog
from ropescope.calibrate import calibrate
from ropescope.cli import app
from ropescope.cli.arguments import parse_plot_path, parse_positive_int
from ropescope.config import load_spec
from ropescope.errors import RopescopeInputError
from ropescope.report import terminal
from ropescope.report.audit_view import (
    design_document,
    men_curve,
    model_points,
    plot_zone,
    render_audit,
    render_audit_catalog,
    render_calibration,
    render_design,
)

MODEL_HELP = "a config.json path, a model folder or a catalog id; leave out to audit the whole catalog"
CONTEXT_HELP = "target context in tokens: 8192, 128K (=131072) or 1M (=1048576)"
DTYPE_HELP = "dtype the angles position × inv_freq are computed in: fp64, fp32 (transformers), fp16, bf16"
EPS_HELP = "coherence threshold ε of the stability bounds, strictly between 0 and 1"
_PLOT_LAYERS = 32
_PLOT_DIM = 128


def parse_eps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RopescopeInputError("--eps", f"must be a number, got {text!r}", "e.g. --eps 0.5") from None
    try:
        return bounds.check_eps(value)
    except RopescopeInputError as error:
        raise RopescopeInputError("--eps", error.problem, error.fix) from None


def parse_dtype(text: str) -> str:
    try:
        return bounds.check_dtype(text.lower())
    except RopescopeInputError as error:
        raise RopescopeInputError("--dtype", error.problem, error.fix) from None


def _men_contexts(largest: int) -> list[int]:
    return [2**k for k in range(10, 18) if 2**k <= max(2 * largest, 2**12)]


@app.command("audit")
def audit_command(
    model: Annotated[str | None, typer.Argument(help=MODEL_HELP)] = None,
    context: Annotated[str | None, typer.Option(help=CONTEXT_HELP + " (catalog: overrides advertised)")] = None,
    dtype: Annotated[str, typer.Option(help=DTYPE_HELP)] = "fp32",
    eps: Annotated[str, typer.Option(help=EPS_HELP)] = "0.5",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the base/context zone here")] = None,
) -> None:
    """Check a model's RoPE against every base bound at a context; with no model, the whole catalog."""
    target, dtype_name, threshold = parse_positive_int("--context", context), parse_dtype(dtype), parse_eps(eps)
    plot = parse_plot_path("--plot", plot)
    console = terminal()
    if model is None:
        rows = audit_catalog(dtype_name, threshold, context=target)
        if as_json:
            typer.echo(json.dumps([report.to_dict() for _, report in rows], indent=2))
        else:
            render_audit_catalog(console, rows, dtype_name, threshold)
        if plot is not None:
            men = men_curve(console, _PLOT_DIM, _men_contexts(max(r.context for _, r in rows)))
            plot_zone(plot, _PLOT_DIM, _PLOT_LAYERS, dtype_name, threshold, model_points(rows, _PLOT_DIM), men)
        return
    if target is None:
        raise RopescopeInputError("--context", "is required when a model is given", "e.g. --context 32K")
    spec = load_spec(model)
    with console.status(f"auditing {spec.source} at {target:,} tokens (Men minimum-base search)"):
        report = audit(spec, target, dtype_name, threshold)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_audit(console, report)
    if plot is not None:
        men = men_curve(console, report.rotary_dim, _men_contexts(target))
        points = model_points([(spec.source, report)], report.rotary_dim)
        plot_zone(plot, report.rotary_dim, report.layers, dtype_name, threshold, points, men, target)


@app.command("bounds")
def bounds_command(
    rotary_dim: Annotated[str, typer.Option(help="rotary dimension d (even)")],
    layers: Annotated[str, typer.Option(help="number of layers N")],
    context: Annotated[str, typer.Option(help=CONTEXT_HELP)],
    dtype: Annotated[str, typer.Option(help=DTYPE_HELP)] = "fp32",
    eps: Annotated[str, typer.Option(help=EPS_HELP)] = "0.5",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the base/context zone here")] = None,
) -> None:
    """The Goldilocks zone of bases for a design not yet built (plain RoPE of dimension d, N layers)."""
    d = parse_positive_int("--rotary-dim", rotary_dim)
    n = parse_positive_int("--layers", layers)
    target = parse_positive_int("--context", context)
    dtype_name, threshold = parse_dtype(dtype), parse_eps(eps)
    plot = parse_plot_path("--plot", plot)
    assert d is not None and n is not None and target is not None  # required options
    if d % 2 or d < 4:
        raise RopescopeInputError("--rotary-dim", f"must be even and at least 4, got {d}", "e.g. --rotary-dim 128")
    zones = {e: bounds.goldilocks_zone(d, n, target, dtype_name, e) for e in sorted({threshold, *SENSITIVITY_EPS})}
    document = design_document(zones, threshold)
    console = terminal()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        render_design(console, document)
    if plot is not None:
        plot_zone(plot, d, n, dtype_name, threshold, [], men_curve(console, d, _men_contexts(target)), target)


@app.command("calibrate")
def calibrate_command(
    dtype: Annotated[str, typer.Option(help=DTYPE_HELP)] = "fp32",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """How often each bound, over a grid of ε, flags a model known to work or misses one known to fail."""
    result = calibrate(dtype=parse_dtype(dtype))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        render_calibration(terminal(), result)
