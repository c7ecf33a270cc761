"""Rich tables, JSON documents and the zone plot for audits, designs and calibration."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ropescope import bounds
from ropescope.audit import RELIABLE_FALSE_ALARMS, VERDICTS, AuditReport, Design
from ropescope.calibrate import Calibration, CalibrationRates
from ropescope.fixes import Fix
from ropescope.lineage import Stage
from ropescope.predict import BreakPrediction
from ropescope.report.figures import pyplot
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


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "∞"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _mark(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"


BOUND_SHORT = {
    "aliasing": "aliasing [1]",
    "dc_stability": "DC stab. [1]",
    "depth_stability": "depth stab. [1]",
    "precision_wall": "precision [1]",
    "men2024": "B(m) ≥ 0 [2]",
    "critical_dimension": "crit. dim. [3]",
}
QUANTITY_SHORT = {"base": "b", "effective_base": "b_eff", "context": "L"}
MECHANISM_SHORT = {
    "critical_dimension": "critical dim.",
    "base_change": "base change",
    "interpolation": "interpolation",
    "dynamic_ntk": "dynamic NTK",
    "no_rope_limit": "no RoPE limit",
    "precision_wall": "precision wall",
}


def _tokens(value: int | None) -> str:
    return "∞" if value is None else f"{value:,}"


def _interval(low: int | None, high: int | None) -> str:
    return f"{_tokens(low)}–{_tokens(high)}"


def _stage(stage: Stage) -> str:
    if stage.rope is None:
        return f"{stage.context:,} tokens with the config's own RoPE"
    scaling = {k: v for k, v in stage.rope.items() if k not in ("rope_type", "rope_theta") and not isinstance(v, list)}
    extra = ", " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in scaling.items())
    return f"{stage.context:,} tokens, {stage.rope['rope_type']} base {stage.rope['rope_theta']:g}" + (
        extra if scaling else ""
    )


def render_prediction(console: Console, prediction: BreakPrediction, context: int) -> None:
    """The predicted break, its interval, mechanism, lineage and the critical pair, then the verdict at L."""
    inputs = prediction.inputs
    interval = _interval(prediction.low, prediction.high)
    console.print(
        f"Predicted break: [bold]{_tokens(prediction.context)}[/] tokens (interval {interval}) — "
        f"{prediction.description}"
    )
    lineage = prediction.lineage
    console.print(f"  training lineage ({lineage.origin}): " + " → ".join(_stage(s) for s in lineage.stages))
    if "critical_pair" in inputs:
        console.print(
            f"  critical pair {inputs['critical_pair']} of {inputs['rotary_dim'] // 2}: turned "
            f"{inputs['critical_pair_seen_angle']:.3g} rad in training (stage of "
            f"{inputs['critical_pair_stage_context']:,} tokens), period in use "
            f"{inputs['critical_pair_period_in_use']:,.0f} tokens; {inputs['under_trained_pairs']} pairs turned "
            "less than half a period"
        )
    if "first_collapsed_position" in inputs:
        console.print(
            f"  in {inputs['dtype']}, position {inputs['first_collapsed_position']:,} gets the same angle as the next"
        )
    console.print(f"  [dim]{prediction.formula}[/]")
    verdict = prediction.verdict(context)
    console.print(f"Verdict at {context:,} tokens: [{VERDICT_STYLE[verdict]}]{verdict}[/]")


def render_fix(console: Console, fix: Fix | None) -> None:
    """The fix as dicts to paste (v4 rope_scaling, v5 rope_parameters) and the break it is predicted to give."""
    if fix is None:
        console.print("Fix: none needed at this context")
        return
    tuning = (
        "needs fine-tuning at the target context"
        if fix.needs_fine_tuning
        else "usable without fine-tuning; fine-tuning at the target improves it"
    )
    console.print(f"Fix ({tuning}): {fix.summary}")
    if fix.rope_parameters is not None:
        v5 = json.dumps(dict(fix.rope_parameters), separators=(", ", ": "))
        v4 = json.dumps(fix.rope_scaling, separators=(", ", ": "))
        console.print(f'  transformers v5: "rope_parameters": {v5}', soft_wrap=True, markup=False)
        console.print(
            f'  transformers v4: "rope_theta": {json.dumps(fix.rope_parameters["rope_theta"])}, "rope_scaling": {v4}',
            soft_wrap=True,
            markup=False,
        )
        if fix.max_position_embeddings is not None:
            console.print(f'  and "max_position_embeddings": {fix.max_position_embeddings}', markup=False)
    console.print(
        f"  predicted break after the fix: {_tokens(fix.predicted.context)} tokens (interval "
        f"{_interval(fix.predicted.low, fix.predicted.high)}, angles in {fix.dtype})"
    )


def render_scheme_audit(console: Console, document: dict[str, Any]) -> None:
    """A model without RoPE: its scheme, the limit it sets and the verdict."""
    scheme, verdict = document["positional_scheme"], document["verdict"]
    console.print(f"[bold]{document['model']}[/]: {scheme['description']} ({scheme['reason']}) — no RoPE spectrum")
    limit = document["predicted_break"]["context"]
    if document["predicted_break"]["mechanism"] == "unknown":
        console.print("Predicted break: cannot say — the config does not give the size of the position table")
    elif limit is None:
        console.print("Predicted break: none from positions (the scheme has no rotary limit)")
    else:
        console.print(f"Predicted break: {limit:,} tokens — the learned position table ends there")
    style = VERDICT_STYLE.get(verdict, "bold")
    console.print(f"Verdict at {document['context']:,} tokens: [{style}]{verdict}[/]")


def render_audit(console: Console, report: AuditReport, rates: CalibrationRates | None = None) -> None:
    """Predicted break, verdict and fix, then the bounds as diagnostics with their calibrated error counts."""
    console.print(
        f"[bold]{report.model}[/]: {report.rope_type} RoPE, base {_number(report.base)}, d = {report.rotary_dim}, "
        f"N = {report.layers}, last trained at {report.trained_context:,} tokens, target {report.context:,}, "
        f"angles in {report.dtype}"
    )
    render_prediction(console, report.prediction, report.context)
    render_fix(console, report.fix)
    calibrated = f"; last column: false alarms/misses on {rates.observations} catalog observations" if rates else ""
    table = Table(
        title=f"Bounds at {report.context:,} tokens, as diagnostics (ε = {report.eps:g}, b_eff "
        f"{_number(report.effective_base)}{calibrated})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in (*BOUND_COLUMNS, *(("FA/miss",) if rates else ())):
        table.add_column(column, justify="right" if column in ("limit", "model", "FA/miss") else "left")
    for check in report.checks:
        cells = bound_cells(check.to_dict())
        cells[5] = _mark(check.satisfied)
        if rates:
            cells.append(rates.cell(check.name, check.form, report.eps))
        table.add_row(*cells)
    console.print(table)
    console.print("[dim][1] Liu 2026, arXiv 2602.10959; [2] Men et al. 2024, arXiv 2405.14591; [3] Liu et al. 2023[/]")
    zone = report.zone
    if zone is not None:
        state = "[red]empty[/]" if zone.empty else "non-empty"
        console.print(
            f"Goldilocks zone of the bounds (plain RoPE, d = {zone.rotary_dim}, exact forms): base from "
            f"{_number(zone.min_base)} to {_number(zone.max_base)} — {state}"
        )
    console.print(
        f"Bounds' own verdict: {report.bounds_verdict} ("
        + ", ".join(f"ε={e:g}: {v}" for e, v in report.sensitivity.items())
        + ")"
    )
    render_findings(console, report.findings)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")


BOUND_COLUMNS = ("bound", "form", "needs", "limit", "model", "result", "detail")


def bound_cells(check: dict[str, Any]) -> list[str]:
    """One bound of an audit's JSON (``bounds`` item) as the cells of :data:`BOUND_COLUMNS`."""
    name = check["name"]
    needs = f"{QUANTITY_SHORT[check['quantity']]} {'≥' if check['kind'] == 'lower' else '≤'}"
    if name == "precision_wall" and check["form"] == "exact":
        needs = "distinct angles"
    detail = ""
    if name == "men2024":
        detail = f"min B = {check['min_b']:.3g} at m = {check['argmin']:,}"
    elif name == "precision_wall" and "first_collapse" in check:
        collapse = check["first_collapse"]
        where = "none below L" if collapse is None else f"from m = {collapse:,} ({check['collapsed_pairs']} pairs)"
        detail = f"collapse {where}"
    elif name == "critical_dimension":
        detail = f"d_extra = {check['critical_dim']} (T {check['train_context']:,})"
    result = "pass" if check["satisfied"] else "FAIL"
    return [
        BOUND_SHORT[name],
        check["form"] or "",
        needs,
        _number(check["limit"]),
        _number(check["value"]),
        result,
        detail,
    ]


CATALOG_COLUMNS = ("model", "trained", "target", "predicted break", "verdict", "mechanism")


def catalog_cells(document: dict[str, Any]) -> list[str]:
    """One audit's JSON as the cells of :data:`CATALOG_COLUMNS` (contexts in tokens)."""
    predicted = document["predicted_break"]
    return [
        document["model"],
        f"{document['trained_context']:,}",
        f"{document['context']:,}",
        _interval(predicted["low"], predicted["high"]),
        document["verdict"],
        MECHANISM_SHORT[predicted["mechanism"]],
    ]


def short_id(model: str, width: int = 26) -> str:
    """A catalog id without its organisation, cut to ``width`` characters with an ellipsis."""
    name = model.split("/")[-1]
    return name if len(name) <= width else name[: width - 1] + "…"


def render_audit_catalog(console: Console, rows: Sequence[tuple[str, AuditReport]], dtype: str, eps: float) -> None:
    """One row per catalog model: trained and target context, predicted break, verdict and mechanism."""
    table = Table(
        title=f"Catalog: predicted break of every model (angles in {dtype}); verdict at the advertised context",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    dropped = {"mechanism"} if console.width < 100 else set()  # narrow terminals: fewer columns, never split
    dropped |= {"trained"} if console.width < 90 else set()
    shown = [i for i, column in enumerate(CATALOG_COLUMNS) if column not in dropped]
    for i in shown:
        column = CATALOG_COLUMNS[i]
        justify = "left" if column in ("model", "verdict", "mechanism") else "right"
        table.add_column(column, justify=justify, no_wrap=True)
    for _, report in rows:
        cells = catalog_cells(report.to_dict())
        cells[0] = short_id(cells[0])
        cells[4] = f"[{VERDICT_STYLE[report.verdict]}]{report.verdict}[/]"
        table.add_row(*(cells[i] for i in shown))
    console.print(table)
    counts = {v: sum(r.verdict == v for _, r in rows) for v in VERDICTS}
    console.print(
        f"{counts['ok']} ok, {counts['at_risk']} at risk, {counts['fail']} fail. Predicted break: the largest context "
        "at which no under-trained rotary pair leaves the angles it saw in training (low–high). `ropescope audit "
        "MODEL --context L` explains one model; `ropescope calibrate` scores the prediction against observations."
    )


def design_document(zones: dict[float, bounds.Zone], eps: float, design: Design) -> dict[str, Any]:
    """JSON of ``ropescope bounds``: the predictor's design answer, the zone at ``eps``, its lower bounds in both
    forms, and the ε sweep."""
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
        "design": design.to_dict(),
        "bounds": [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in b.items()} for b in limits],
        "zone": {"min_base": zone.min_base, "max_base": zone.max_base, "empty": zone.empty},
        "largest_exact_position": bounds.largest_exact_integer(zone.dtype),
        "sensitivity": {str(e): {"min_base": z.min_base, "empty": z.empty} for e, z in zones.items()},
    }


def render_design(console: Console, document: dict[str, Any], rates: CalibrationRates) -> None:
    """``ropescope bounds``: the recommended base and its predicted break, then each bound's base limit with its
    calibrated false alarms / misses, the zone and how it moves with ε."""
    design, context = document["design"], document["context"]
    reliable = [n for n, f in design["floors"].items() if f["reliable"]]
    console.print(
        f"Design: plain RoPE, d = {document['rotary_dim']}, N = {document['layers']}, trained at "
        f"{design['trained_context']:,} tokens, target {context:,}"
    )
    console.print(
        f"Recommended base: [bold]{design['recommended_base']:,.0f}[/] (the largest floor, "
        f"{design['floor']:,.0f}, rounded up, of the bounds that flag at most "
        f"{RELIABLE_FALSE_ALARMS:.0%} of working catalog models: {', '.join(BOUND_SHORT[n] for n in reliable)})"
    )
    predicted = design["predicted_break"]
    console.print(
        f"Predicted break of that design: {_tokens(predicted['context'])} tokens (interval "
        f"{_interval(predicted['low'], predicted['high'])}, {MECHANISM_SHORT[predicted['mechanism']]}); "
        f"verdict at {context:,}: [{VERDICT_STYLE[design['verdict']]}]{design['verdict']}[/]"
    )
    if design["fix"] is not None:
        console.print(f"To reach {context:,}: {design['fix']['summary']}")
    console.print(
        f"[dim]Bases up to {design['small_base_regime_max']:,.0f} turn every pair half a period within training "
        "(no RoPE limit predicted, Liu 2023's small-base regime), but fail the aliasing bound once L ≥ 2× the "
        "training context.[/]"
    )
    table = Table(
        title=f"Bases for a plain RoPE with d = {document['rotary_dim']}, N = {document['layers']}, context "
        f"{document['context']:,}, angles in {document['dtype']}, ε = {document['eps']:g}",
        title_justify="left",
    )
    for column in ("bound", "form", "base must be", "limit", "FA/miss"):
        table.add_column(column, justify="right" if column in ("limit", "FA/miss") else "left")
    for bound in document["bounds"]:
        table.add_row(
            BOUND_LABELS[bound["name"]],
            bound["form"] or "",
            "≥" if bound["kind"] == "lower" else "<",
            _number(bound["limit"]),
            rates.cell(bound["name"], bound["form"], document["eps"]),
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


RULE_LABELS = {
    "predictor": "predicted break",
    "baseline": "baseline: L ≤ trained",
    "bounds_verdict": "bounds' verdict",
}


def _cell(score: Any) -> str:
    return f"{score.false_alarms}/{score.misses}"


def render_calibration(console: Console, calibration: Calibration) -> None:
    """The predictor against the baseline and the bounds, the bracket errors and the constants' sensitivity."""
    subsets = tuple(
        s
        for s in ("positional", "task", "lab", "all")
        if calibration.score("predictor", s).successes + calibration.score("predictor", s).failures
    )
    totals = {subset: calibration.score("predictor", subset) for subset in subsets}
    table = Table(
        title=f"Calibration on {calibration.scored} observations of released RoPE settings (catalog and lab; angles in "
        f"{calibration.dtype}). Cells: false alarms / misses (works but flagged / fails but passed)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("rule")
    for subset in subsets:
        score = totals[subset]
        table.add_column(f"{subset}\n{score.successes} ok, {score.failures} fail", justify="right")
    table.add_row(RULE_LABELS["predictor"], *(_cell(totals[s]) for s in subsets))
    table.add_row(RULE_LABELS["baseline"], *(_cell(calibration.score("baseline", s)) for s in subsets))
    for eps in (0.5,) if 0.5 in calibration.eps_grid else calibration.eps_grid[:1]:
        table.add_row(
            f"{RULE_LABELS['bounds_verdict']}, ε={eps:g}",
            *(_cell(calibration.score("bounds_verdict", s, eps=eps)) for s in subsets),
        )
    console.print(table)
    loo = next((s for s in calibration.sensitivity if s.trained_angle is None), None)
    if loo is not None:
        console.print(
            "The predictor fits no constant, so its leave-one-model-out score is the one above. Fitting its two "
            f"constants leave-one-model-out instead gives {loo.false_alarms}/{loo.misses} (positional)."
        )
    bounds_table = Table(
        title="Each bound and form on the positional observations: false alarms / misses at each ε",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    bounds_table.add_column("bound")
    bounds_table.add_column("form")
    for eps in calibration.eps_grid:
        bounds_table.add_column(f"ε={eps:g}", justify="right")
    rows: dict[tuple[str, str | None], dict[float, str]] = {}
    for score in calibration.scores:
        if score.subset == "positional" and score.eps is not None:
            rows.setdefault((score.rule, score.form), {})[score.eps] = _cell(score)
    for (name, form), cells in rows.items():
        label = BOUND_SHORT.get(name, "bounds' verdict")
        bounds_table.add_row(label, form or "", *(cells[eps] for eps in calibration.eps_grid))
    console.print(bounds_table)
    console.print("[dim][1] Liu 2026, arXiv 2602.10959; [2] Men et al. 2024, arXiv 2405.14591; [3] Liu et al. 2023[/]")
    brackets = Table(
        title="Models with a measured bracket (last working and first failing context, positional measures)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("model", "works", "fails", "predicted", "|log2 error|", "inside"):
        brackets.add_column(column, justify="left" if column == "model" else "right", no_wrap=column == "model")
    for bracket in calibration.brackets:
        brackets.add_row(
            short_id(bracket.model),
            f"{bracket.works:,}",
            f"{bracket.fails:,}",
            _tokens(bracket.predicted),
            "" if bracket.error_log2 is None else f"{bracket.error_log2:.2f}",
            "yes" if bracket.inside else "no",
        )
    console.print(brackets)
    for lab, where in ((False, "catalog"), (True, "lab")):
        chosen = [b for b in calibration.brackets if b.lab == lab]
        median = calibration.median_error_log2(lab)
        if median is not None:
            console.print(
                f"{where}: median |log2(predicted / √(works·fails))| = {median:.2f} over {len(chosen)} models; "
                f"{sum(b.inside for b in chosen)} predictions inside their bracket."
            )
    grid = [s for s in calibration.sensitivity if s.trained_angle is not None]
    if grid:
        tolerances = sorted({s.tolerance for s in grid})
        sensitivity = Table(
            title="Sensitivity (positional): trained-angle threshold (turns) × tolerance; ropescope uses 0.5 and 0",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        sensitivity.add_column("turns")
        for tolerance in tolerances:
            sensitivity.add_column(f"tol. {tolerance:g}", justify="right")
        for angle in sorted({s.trained_angle for s in grid}):
            cells = {s.tolerance: _cell(s) for s in grid if s.trained_angle == angle}
            sensitivity.add_row(f"{angle / (2 * math.pi):.1f}", *(cells[t] for t in tolerances))
        console.print(sensitivity)
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


ZONE_DPI = 120


def zone_figure(
    rotary_dim: int,
    layers: int,
    dtype: str,
    eps: float,
    models: Sequence[tuple[str, int, float]],
    men_points: Sequence[tuple[int, float]],
    target: int | None = None,
) -> Any:
    """Base against context (log-log): one labelled line per bound (exact forms, as plain-RoPE bases for
    d), the Men minima, and each model at its context and equivalent plain base b_eff^(d/(d−2))."""
    plt = pyplot()
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
    return figure
