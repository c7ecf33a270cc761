"""Commands ``audit``, ``bounds`` and ``calibrate``: argument parsing only, the work is in ropescope.audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ropescope import bounds
from ropescope.audit import SENSITIVITY_EPS, audit, audit_catalog, design, scheme_audit
from ropescope.calibrate import calibrate, shipped_rates
from ropescope.cli import app
from ropescope.cli.arguments import (
    parse_output_path,
    parse_plot_path,
    parse_positive_int,
    parse_pretrained,
)
from ropescope.config import load_config, load_spec
from ropescope.errors import NotRopeError, RopescopeInputError
from ropescope.fixes import patched_config
from ropescope.predict import user_lineage
from ropescope.report import terminal
from ropescope.report.audit_view import (
    ZONE_DPI,
    design_document,
    men_curve,
    model_points,
    render_audit,
    render_audit_catalog,
    render_calibration,
    render_design,
    render_scheme_audit,
    zone_figure,
)
from ropescope.report.figures import save_figure
from ropescope.report.files import write_json_atomically

MODEL_HELP = "a config.json path, a model folder or a catalog id; leave out to audit the whole catalog"
CONTEXT_HELP = "target context in tokens: 8192, 128K (=131072) or 1M (=1048576)"
DTYPE_HELP = "dtype the angles position × inv_freq are computed in: fp64, fp32 (transformers), fp16, bf16"
EPS_HELP = "coherence threshold ε of the stability bounds, strictly between 0 and 1"
TRAINED_HELP = "sequence length of the model's last training stage (default: catalog, else max_position_embeddings)"
PRETRAINED_HELP = "BASE@N: pretraining base and context when the base was changed afterwards, e.g. 10000@4096"
EMIT_HELP = "write the config with the recommended fix (and its lineage) to this .json file"
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
    trained_context: Annotated[str | None, typer.Option(help=TRAINED_HELP)] = None,
    pretrained: Annotated[str | None, typer.Option(help=PRETRAINED_HELP)] = None,
    emit_config: Annotated[Path | None, typer.Option(help=EMIT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the base/context zone here")] = None,
) -> None:
    """Predict where a model's RoPE breaks and check it at a context; with no model, the whole catalog."""
    target, dtype_name, threshold = parse_positive_int("--context", context), parse_dtype(dtype), parse_eps(eps)
    trained, base_at = parse_positive_int("--trained-context", trained_context), parse_pretrained(pretrained)
    plot = parse_plot_path("--plot", plot)
    emit_config = parse_output_path("--emit-config", emit_config, (".json",))
    console = terminal()
    if model is None:
        for option, value in (
            ("--trained-context", trained),
            ("--pretrained", base_at),
            ("--emit-config", emit_config),
        ):
            if value is not None:
                raise RopescopeInputError(option, "applies to one model", "name a model, e.g. audit Llama-2-7b-hf")
        rows = audit_catalog(dtype_name, threshold, context=target)
        if as_json:
            typer.echo(json.dumps([report.to_dict() for _, report in rows], indent=2))
        else:
            render_audit_catalog(console, rows, dtype_name, threshold)
        if plot is not None:
            men = men_curve(console, _PLOT_DIM, _men_contexts(max(r.context for _, r in rows)))
            points = model_points(rows, _PLOT_DIM)
            save_figure(zone_figure(_PLOT_DIM, _PLOT_LAYERS, dtype_name, threshold, points, men), plot, ZONE_DPI)
        return
    if target is None:
        raise RopescopeInputError("--context", "is required when a model is given", "e.g. --context 32K")
    config, name, _ = load_config(model)
    try:
        spec = load_spec(model)
    except NotRopeError as error:
        if emit_config is not None or trained is not None or base_at is not None:
            raise RopescopeInputError(model, f"is {error.scheme.describe()}", "drop the RoPE-only options") from None
        document = scheme_audit(name, error.scheme, target)
        if as_json:
            typer.echo(json.dumps(document, indent=2))
        else:
            render_scheme_audit(console, document)
        return
    lineage = user_lineage(spec, trained, base_at)
    with console.status(f"auditing {spec.source} at {target:,} tokens (Men minimum-base search)") as status:

        def searching(base: float, checks: int) -> None:
            status.update(
                f"Men minimum-base search at {target:,} tokens: no base below {base:.4g} works ({checks} checks)"
            )

        report = audit(spec, target, dtype_name, threshold, lineage=lineage, progress=searching)
    if emit_config is not None:
        if report.fix is None or report.fix.rope_parameters is None:
            why = (
                "no change is needed at this context"
                if report.fix is None
                else f"the fix is not a config change: {report.fix.summary}"
            )
            raise RopescopeInputError("--emit-config", why, "drop --emit-config")
        write_json_atomically(emit_config, patched_config(config, report.fix))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_audit(console, report, shipped_rates())
        if emit_config is not None:
            console.print(f"wrote {emit_config}: audit it with `ropescope audit {emit_config} --context {target}`")
    if plot is not None:
        men = men_curve(console, report.rotary_dim, _men_contexts(target))
        points = model_points([(spec.source, report)], report.rotary_dim)
        figure = zone_figure(report.rotary_dim, report.layers, dtype_name, threshold, points, men, target)
        save_figure(figure, plot, ZONE_DPI)


@app.command("bounds")
def bounds_command(
    rotary_dim: Annotated[str, typer.Option(help="rotary dimension d (even)")],
    layers: Annotated[str, typer.Option(help="number of layers N")],
    context: Annotated[str, typer.Option(help=CONTEXT_HELP)],
    trained_context: Annotated[
        str | None, typer.Option(help="context it will be trained at (default: --context)")
    ] = None,
    dtype: Annotated[str, typer.Option(help=DTYPE_HELP)] = "fp32",
    eps: Annotated[str, typer.Option(help=EPS_HELP)] = "0.5",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the base/context zone here")] = None,
) -> None:
    """A design not yet built (plain RoPE, d, N): the base to choose, its predicted break, and the bounds' zone."""
    d = parse_positive_int("--rotary-dim", rotary_dim)
    n = parse_positive_int("--layers", layers)
    target = parse_positive_int("--context", context)
    trained = parse_positive_int("--trained-context", trained_context) or target
    dtype_name, threshold = parse_dtype(dtype), parse_eps(eps)
    plot = parse_plot_path("--plot", plot)
    assert d is not None and n is not None and target is not None and trained is not None  # required options
    if d % 2 or d < 4:
        raise RopescopeInputError("--rotary-dim", f"must be even and at least 4, got {d}", "e.g. --rotary-dim 128")
    console = terminal()
    with console.status(f"Men minimum-base search for d = {d} at {target:,} tokens"):
        zones = {e: bounds.goldilocks_zone(d, n, target, dtype_name, e) for e in sorted({threshold, *SENSITIVITY_EPS})}
    rates = shipped_rates()
    document = design_document(zones, threshold, design(zones[threshold], trained, rates))
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        render_design(console, document, rates)
    if plot is not None:
        men = men_curve(console, d, _men_contexts(target))
        save_figure(zone_figure(d, n, dtype_name, threshold, [], men, target), plot, ZONE_DPI)


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
