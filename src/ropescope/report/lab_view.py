"""The lab's table (encodings × tasks), its accuracy-by-length plots and the base-sweep plot."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from ropescope.errors import RopescopeInputError
from ropescope.report.figures import pyplot


def _rows(summary: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(row label, task, run) for every algorithmic run and each of its fixes (``rope+yarn``)."""
    out = []
    for run in summary["runs"]:
        if run["task"] == "lm":
            continue
        label = run["encoding"] if run["encoding"] != "rope" else _rope_label(run, summary)
        out.append((label, run["task"], run["accuracy"]))
        for fix, accuracy in run.get("fix_accuracy", {}).items():
            out.append((f"{label}+{fix}", run["task"], accuracy))
    return out


def _rope_label(run: dict[str, Any], summary: dict[str, Any]) -> str:
    bases = {r["rope_base"] for r in summary["runs"] if r["encoding"] == "rope"}
    return "rope" if len(bases) == 1 else f"rope b={run['rope_base']:g}"


def extrapolation(accuracy: dict[str, float | None], train_length: int, within: bool = False) -> float | None:
    """Mean accuracy over the test lengths above the training length (``within``: up to it); None if none is
    applicable."""
    values = [v for n, v in accuracy.items() if (int(n) <= train_length) == within and v is not None]
    return float(np.mean(values)) if values else None


def table_cells(
    summary: dict[str, Any], within: bool = False
) -> tuple[list[str], list[str], dict[tuple[str, str], list[float]]]:
    """Row labels, tasks and, per (row, task), the extrapolation (or in-distribution) accuracy of each seed."""
    train = summary["spec"]["train_length"]
    cells: dict[tuple[str, str], list[float]] = {}
    labels: list[str] = []
    tasks: list[str] = []
    for label, task, accuracy in _rows(summary):
        labels += [label] if label not in labels else []
        tasks += [task] if task not in tasks else []
        value = extrapolation(accuracy, train, within)
        cells.setdefault((label, task), [])
        if value is not None:
            cells[(label, task)].append(value)
    return labels, tasks, cells


def lab_table(summary: dict[str, Any], within: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the encodings × tasks table: accuracy (%) past the training length (``within``: up to
    it), mean ± sd over seeds (one seed: its value; none applicable: n/a)."""
    labels, tasks, cells = table_cells(summary, within)
    if not tasks:
        raise RopescopeInputError("lab table", "the sweep has no algorithmic task", "run a spec with tasks")
    rows = []
    for label in labels:
        row = [label]
        for task in tasks:
            values = cells.get((label, task), [])
            if not values:
                row.append("n/a")
            elif len(values) == 1:
                row.append(f"{100 * values[0]:.0f}")
            else:
                row.append(f"{100 * np.mean(values):.0f} ± {100 * np.std(values):.0f}")
        rows.append(row)
    return ["encoding", *tasks], rows


def render_lab_table(console: Console, summary: dict[str, Any], within: bool = False) -> None:
    """Encodings × tasks: mean ± standard deviation over seeds of the accuracy past the training length
    (``within``: at lengths up to it, the in-distribution check)."""
    header, rows = lab_table(summary, within)
    train = summary["spec"]["train_length"]
    table = Table(
        title=f"Accuracy (%) {'up to' if within else 'past'} the training length {train} (mean ± sd over seeds)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column(header[0], no_wrap=True)
    for task in header[1:]:
        table.add_column(task.replace("addition_", "add. "), justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


LAB_DPI = 110


def accuracy_figure(summary: dict[str, Any]) -> Any:
    """Accuracy against input length, one panel per task, one line per encoding (mean over seeds, min–max band)."""
    plt = pyplot()
    curves: dict[tuple[str, str], list[dict[str, float | None]]] = {}
    for label, task, accuracy in _rows(summary):
        if "+" not in label:
            curves.setdefault((task, label), []).append(accuracy)
    tasks = sorted({task for task, _ in curves}, key=[t for t, _ in curves].index)
    columns = min(3, len(tasks))
    figure, axes = plt.subplots(
        math.ceil(len(tasks) / columns), columns, figsize=(4.2 * columns, 3.2 * math.ceil(len(tasks) / columns))
    )
    axes = np.atleast_1d(axes).ravel()
    train = summary["spec"]["train_length"]
    for axis, task in zip(axes, tasks, strict=False):
        for (curve_task, label), seeds in curves.items():
            if curve_task != task:
                continue
            lengths = sorted(int(n) for n in seeds[0])
            values = np.array([[np.nan if s[str(n)] is None else s[str(n)] for n in lengths] for s in seeds])
            mean = np.nanmean(values, axis=0) if np.isfinite(values).any() else values[0]
            axis.plot(lengths, 100 * mean, marker="o", markersize=3, label=label)
            if len(seeds) > 1:
                axis.fill_between(lengths, 100 * np.nanmin(values, 0), 100 * np.nanmax(values, 0), alpha=0.15)
        axis.axvline(train, color="grey", linestyle=":")
        axis.set_title(task)
        axis.set_xlabel("input length (symbols)")
        axis.set_ylabel("exact match (%)")
        axis.set_ylim(-3, 103)
    for axis in axes[len(tasks) :]:
        axis.set_visible(False)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"Length generalisation (trained on 1–{train}; dotted: training length; band: seeds min–max)")
    figure.tight_layout()
    return figure


def base_sweep(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The lm RoPE runs: base, head dimension, measured and predicted break."""
    return [
        {
            "rope_base": run["rope_base"],
            "head_dim": run["head_dim"],
            "seed": run["seed"],
            "train_length": run["train_length"],
            "longest": max(run["test_lengths"]),
            "measured": run["break_context"],
            "predicted": run["predicted_break"],
            "fixes": run.get("fix_break_context", {}),
        }
        for run in summary["runs"]
        if run["task"] == "lm" and run["encoding"] == "rope"
    ]


def base_sweep_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the base sweep: base, head dimension, seed, measured and predicted break (tokens) and
    the measured break under each fix; ``> N`` where no break shows within the longest test length N."""
    rows = base_sweep(summary)
    fixes = sorted({fix for row in rows for fix in row["fixes"]})
    cells = []
    for row in rows:
        predicted = row["predicted"]
        cells.append(
            [
                f"{row['rope_base']:g}",
                str(row["head_dim"]),
                str(row["seed"]),
                _break(row["measured"], row["longest"]),
                f"{predicted['low']:,}–{predicted['high']:,}" if predicted["low"] else "no limit",
                *(_break(row["fixes"].get(fix), row["longest"]) for fix in fixes),
            ]
        )
    return ["base", "head dim", "seed", "measured", "predicted (low–high)", *fixes], cells


def render_base_sweep(console: Console, summary: dict[str, Any]) -> None:
    header, rows = base_sweep_table(summary)
    if not rows:
        return
    table = Table(
        title="RoPE base sweep (lm): measured break beside the predicted one, in tokens",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in header:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _break(value: int | None, longest: int) -> str:
    return f"> {longest:,}" if value is None else f"{value:,}"


def bases_figure(summary: dict[str, Any]) -> Any:
    """Measured break against base (one marker per head dimension) over the predicted interval; ``None`` when the
    sweep has no lm RoPE run."""
    rows = base_sweep(summary)
    if not rows:
        return None
    figure, axis = pyplot().subplots(figsize=(7.5, 4.8))
    ceiling = 2 * max(r["longest"] for r in rows)  # predictions past the window are drawn at the top, marked
    for index, head_dim in enumerate(sorted({r["head_dim"] for r in rows})):
        chosen = sorted((r for r in rows if r["head_dim"] == head_dim), key=lambda r: r["rope_base"])
        bases = [r["rope_base"] for r in chosen]
        measured = [r["measured"] or r["longest"] for r in chosen]
        low = [min(r["predicted"]["low"] or ceiling, ceiling) for r in chosen]
        high = [min(r["predicted"]["high"] or ceiling, ceiling) for r in chosen]
        colour = f"C{index}"
        axis.fill_between(bases, low, high, color=colour, alpha=0.15, label=f"predicted, head dim {head_dim}")
        axis.plot(bases, measured, color=colour, marker="o", label=f"measured, head dim {head_dim}")
        for base, value, row in zip(bases, measured, chosen, strict=True):
            if row["measured"] is None:
                axis.annotate("↑", (base, value), ha="center", va="bottom", color=colour)
            if (row["predicted"]["low"] or ceiling) >= ceiling:
                axis.annotate("no RoPE\nlimit", (base, ceiling), ha="center", va="top", fontsize=7, color=colour)
    axis.axhline(rows[0]["train_length"], color="grey", linestyle=":")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("RoPE base")
    axis.set_ylabel("break context (tokens)")
    axis.set_title("Measured break (loss > 1.5× in-context; ↑: none in the window) vs predicted", fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
