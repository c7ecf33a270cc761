"""Rich tables, JSON documents and the zone plot for audits, designs and calibration."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ropescope import bounds
from ropescope.audit import AuditReport
from ropescope.calibrate import Calibration
from ropescope.report.spectrum_view import render_findings

VERDICT_STYLE = {"ok": "bold green", "at_risk": "bold yellow", "fail": "bold red"}
BOUND_LABELS = {
    "aliasing": "aliasing (Liu 2026)",
    "dc_stability": "DC stability (Liu 2026)",
    "depth_stability": "depth stability (Liu 2026)",
    "precision_wall": "precision wall (Liu 2026)",
    "men2024": "B(m) ≥ 0 (Men 2024)",
    "critical_dimension": "critical dim. (Liu 2023)",
}
_TABLE_BOUNDS = ("aliasing", "dc_stability", "depth_stability", "precision_wall", "men2024", "critical_dimension")


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "∞"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _mark(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"


def render_audit(console: Console, report: AuditReport) -> None:
    """The bounds table, zone, verdict with its ε sensitivity, findings and recommendation of one audit."""
    title = (
        f"{report.model}: {report.rope_type} RoPE, base {_number(report.base)}, effective base "
        f"{_number(report.effective_base)}, d = {report.rotary_dim}, N = {report.layers}, context "
        f"{report.context:,}, angles in {report.dtype}, ε = {report.eps:g}"
    )
    table = Table(title=title, title_justify="left")
    for column in ("bound", "form", "needs", "limit", "model", "result", "detail"):
        table.add_column(column, justify="right" if column in ("limit", "model") else "left")
    for check in report.checks:
        needs = f"{check.quantity} {'≥' if check.kind == 'lower' else '≤'}"
        if check.name == "precision_wall" and check.form == "exact":
            needs = "distinct kernel angles"
        table.add_row(
            BOUND_LABELS[check.name],
            check.form or "",
            needs,
            _number(check.limit),
            _number(check.value),
            _mark(check.satisfied),
            _detail(check.name, check.detail),
        )
    console.print(table)
    zone = report.zone
    if zone is not None:
        state = "[red]empty[/]" if zone.empty else "non-empty"
        console.print(
            f"Goldilocks zone (plain RoPE, d = {zone.rotary_dim}, exact forms): base from "
            f"{_number(zone.min_base)} to {_number(zone.max_base)} — {state}"
        )
    console.print(f"Verdict: [{VERDICT_STYLE[report.verdict]}]{report.verdict}[/]")
    console.print("Sensitivity to ε: " + ", ".join(f"ε={e:g}: {v}" for e, v in report.sensitivity.items()))
    render_findings(console, report.findings)
    recommendation = report.recommendation
    console.print(f"Recommendation: {recommendation.action}")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")


def _detail(name: str, detail: Any) -> str:
    if name == "men2024":
        return f"min B = {detail['min_b']:.3g} at m = {detail['argmin']:,}"
    if name == "precision_wall" and detail:
        collapse = detail["first_collapse"]
        where = "none below L" if collapse is None else f"from m = {collapse:,} ({detail['collapsed_pairs']} pairs)"
        below = "below" if detail["effective_base_below_limit"] else "above"
        return (
            f"kernel collapse {where}; exact integers to {detail['largest_exact_position']:,}; b_eff {below} the limit"
        )
    if name == "critical_dimension":
        return f"d_extra = {detail['critical_dim']} (T_train {detail['train_context']:,})"
    return ""


def render_audit_catalog(console: Console, rows: Sequence[tuple[str, AuditReport]], dtype: str, eps: float) -> None:
    """One row per catalog model at its advertised context: each bound's exact-form result and the verdict."""
    table = Table(
        title=f"Catalog audit at advertised contexts (angles in {dtype}, ε = {eps:g}; exact forms, paper form in "
        "brackets where it differs)",
        title_justify="left",
    )
    for column in ("model", "base", "eff. base", "context", *(_short(n) for n in _TABLE_BOUNDS), "verdict"):
        table.add_column(
            column,
            justify="right" if column in ("base", "eff. base", "context") else "left",
            overflow="fold" if column == "model" else "ellipsis",
        )
    for model, report in rows:
        cells = [_catalog_cell(report, name) for name in _TABLE_BOUNDS]
        table.add_row(
            model,
            _number(report.base),
            _number(report.effective_base),
            f"{report.context:,}",
            *cells,
            f"[{VERDICT_STYLE[report.verdict]}]{report.verdict}[/]",
        )
    console.print(table)


def _short(name: str) -> str:
    return {
        "dc_stability": "DC",
        "depth_stability": "depth",
        "precision_wall": "precision",
        "men2024": "Men",
        "critical_dimension": "crit. dim",
    }.get(name, name.replace("_", " "))


def _catalog_cell(report: AuditReport, name: str) -> str:
    checks = [c for c in report.checks if c.name == name]
    if not checks:
        return "[dim]n/a[/]"
    exact = next(c for c in checks if c.form in ("exact", None))
    paper = next((c for c in checks if c.form == "paper"), exact)
    cell = _mark(exact.satisfied)
    return cell if paper.satisfied == exact.satisfied else f"{cell} [dim]({'pass' if paper.satisfied else 'fail'})[/]"


def design_document(zones: dict[float, bounds.Zone], eps: float) -> dict[str, Any]:
    """JSON of ``ropescope bounds``: the zone at ``eps``, its lower bounds in both forms, and the ε sweep."""
    zone = zones[eps]
    d = zone.rotary_dim
    paper = {
        "aliasing": bounds.aliasing_min_base(zone.context),
        "dc_stability": bounds.dc_stability_min_base(zone.context, eps),
        "depth_stability": bounds.depth_stability_min_base(zone.context, eps, zone.layers),
    }
    limits = [
        {"name": name, "form": form, "kind": "lower", "limit": value}
        for name, value in paper.items()
        for form, value in (("paper", value), ("exact", bounds.plain_base_for_effective(value, d)))
    ]
    limits.append({"name": "men2024", "form": None, "kind": "lower", "limit": zone.lower["men2024"]})
    wall = bounds.precision_wall_max_base(zone.dtype)
    limits += [
        {"name": "precision_wall", "form": "paper", "kind": "upper", "limit": wall},
        {"name": "precision_wall", "form": "exact", "kind": "upper", "limit": zone.max_base},
    ]
    return {
        "rotary_dim": d,
        "layers": zone.layers,
        "context": zone.context,
        "dtype": zone.dtype,
        "eps": eps,
        "bounds": [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in b.items()} for b in limits],
        "zone": {"min_base": zone.min_base, "max_base": zone.max_base, "empty": zone.empty},
        "largest_exact_position": bounds.largest_exact_integer(zone.dtype),
        "sensitivity": {str(e): {"min_base": z.min_base, "empty": z.empty} for e, z in zones.items()},
    }


def render_design(console: Console, document: dict[str, Any]) -> None:
    """The table of ``ropescope bounds``: each bound's base limit, the zone and how it moves with ε."""
    table = Table(
        title=f"Bases for a plain RoPE with d = {document['rotary_dim']}, N = {document['layers']}, context "
        f"{document['context']:,}, angles in {document['dtype']}, ε = {document['eps']:g}",
        title_justify="left",
    )
    for column in ("bound", "form", "base must be", "limit"):
        table.add_column(column, justify="right" if column == "limit" else "left")
    for bound in document["bounds"]:
        table.add_row(
            BOUND_LABELS[bound["name"]],
            bound["form"] or "",
            "≥" if bound["kind"] == "lower" else "<",
            _number(bound["limit"]),
        )
    console.print(table)
    zone = document["zone"]
    state = "[red]empty[/]" if zone["empty"] else "[green]non-empty[/]"
    console.print(f"Goldilocks zone: {_number(zone['min_base'])} ≤ base < {_number(zone['max_base'])} — {state}")
    sweep = ", ".join(
        f"ε={e}: min {_number(z['min_base'])}{' (empty)' if z['empty'] else ''}"
        for e, z in document["sensitivity"].items()
    )
    console.print(f"Sensitivity to ε: {sweep}")


def render_calibration(console: Console, calibration: Calibration) -> None:
    """Per bound and form, false alarms / misses at each ε of the grid."""
    successes = next((s.successes for s in calibration.scores), 0)
    failures = calibration.scored - successes
    table = Table(
        title=f"Calibration on {calibration.scored} observations ({successes} work, {failures} fail; angles in "
        f"{calibration.dtype}). Cells: successes wrongly flagged / failures missed",
        title_justify="left",
    )
    table.add_column("bound")
    table.add_column("form")
    for eps in calibration.eps_grid:
        table.add_column(f"ε={eps:g}", justify="right")
    rows: dict[tuple[str, str | None], dict[float, str]] = {}
    for score in calibration.scores:
        rows.setdefault((score.bound, score.form), {})[score.eps] = f"{score.false_alarms}/{score.misses}"
    for (name, form), cells in rows.items():
        label = BOUND_LABELS.get(name, "audit verdict")
        table.add_row(label, form or "", *(cells[eps] for eps in calibration.eps_grid))
    console.print(table)
    if calibration.skipped:
        console.print(f"[dim]{len(calibration.skipped)} observations of modified settings were not scored[/]")


def men_curve(console: Console, rotary_dim: int, contexts: Sequence[int]) -> list[tuple[int, float]]:
    """The Men minimum base at each context, with a progress bar; interrupting keeps the finished points."""
    points: list[tuple[int, float]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"Men minimum base, d = {rotary_dim}", total=len(contexts))
        try:
            for context in contexts:
                points.append((context, bounds.men_min_base(rotary_dim, context).base))
                progress.advance(task)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted: plotting {len(points)} Men points[/]")
    return points


def model_points(rows: Sequence[tuple[str, AuditReport]], rotary_dim: int) -> list[tuple[str, int, float]]:
    """(short name, context, b_eff^(d/(d−2))) per report: where each model sits on a plot drawn for d."""
    return [
        (model.split("/")[-1], report.context, bounds.plain_base_for_effective(report.effective_base, rotary_dim))
        for model, report in rows
    ]


def plot_zone(
    path: Path,
    rotary_dim: int,
    layers: int,
    dtype: str,
    eps: float,
    models: Sequence[tuple[str, int, float]],
    men_points: Sequence[tuple[int, float]],
    target: int | None = None,
) -> Path:
    """PNG of base against context (log-log): one labelled line per bound (exact forms, as plain-RoPE bases for
    d), the Men minima, and each model at its context and equivalent plain base b_eff^(d/(d−2))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max([context for _, context, _ in models] + [c for c, _ in men_points] + [2**17])
    contexts = np.geomspace(512, 2 * top, 64)
    d = rotary_dim
    lines = {
        "aliasing": [bounds.aliasing_min_base(int(c)) for c in contexts],
        "DC stability": [bounds.dc_stability_min_base(int(c), eps) for c in contexts],
        f"depth stability (N={layers})": [bounds.depth_stability_min_base(int(c), eps, layers) for c in contexts],
    }
    figure, axis = plt.subplots(figsize=(9, 6))
    for (label, values), colour in zip(lines.items(), ("tab:blue", "tab:orange", "tab:red"), strict=True):
        base_values = [bounds.plain_base_for_effective(v, d) for v in values]
        axis.plot(contexts, base_values, color=colour)
        axis.annotate(label, (contexts[-1], base_values[-1]), color=colour, ha="right", va="bottom", fontsize=9)
    wall = bounds.plain_base_for_effective(bounds.precision_wall_max_base(dtype), d)
    axis.axhline(wall, color="black", linestyle="--")
    axis.annotate(f"precision wall ({dtype})", (contexts[0], wall), va="bottom", fontsize=9)
    if men_points:
        xs, ys = zip(*men_points, strict=True)
        axis.plot(xs, ys, color="tab:green", marker="o", markersize=3)
        middle = len(xs) // 2
        axis.annotate(
            "Men 2024 minimum",
            (xs[middle], ys[middle]),
            color="tab:green",
            ha="right",
            va="bottom",
            fontsize=9,
            xytext=(-6, 6),
            textcoords="offset points",
        )
    groups: dict[tuple[int, float], list[str]] = {}
    for label, context, base in models:  # models sharing a point get one label, not a pile of overlapping ones
        groups.setdefault((context, float(f"{base:.3g}")), []).append(label)
    for index, ((context, base), labels) in enumerate(sorted(groups.items())):
        text = labels[0] + (f" +{len(labels) - 1}" if len(labels) > 1 else "")
        axis.scatter([context], [base], color="purple", zorder=3, s=16)
        offset = (4, 4) if index % 2 == 0 else (4, -10)
        axis.annotate(text, (context, base), fontsize=7, xytext=offset, textcoords="offset points")
    if target is not None:
        axis.axvline(target, color="grey", linestyle=":")
        axis.annotate(f"target {target:,}", (target, wall), rotation=90, ha="right", va="top", fontsize=8)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("context L (tokens)")
    axis.set_ylabel(f"base (plain RoPE, d = {d})")
    axis.set_title(f"Base bounds against context: d = {d}, N = {layers}, ε = {eps:g}, angles in {dtype}")
    axis.grid(True, which="major", alpha=0.3)
    if models:
        figure.text(
            0.01,
            0.01,
            f"points: each model at its context and at b_eff^({d}/{d - 2}), the plain base with its slowest frequency",
            fontsize=7,
            color="purple",
        )
    figure.tight_layout(rect=(0, 0.02, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
