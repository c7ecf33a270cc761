"""Probe results on disk: the ``results.json`` document (atomic writes) and its PNG plots.

NaN (a bin with no rows, a slope with too few bins) is written as JSON ``null``; numpy arrays become lists.
Plots use matplotlib's Agg backend: entropy by query position, attention on the first token by layer and head,
attention density by distance, loss by position and the passkey grid. In compare mode each figure shows the
model's own spectrum and the patched one side by side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ropescope.report.figures import pyplot, save_figure
from ropescope.report.files import write_json_atomically

RESULTS_FILE = "results.json"


def to_json(value: Any) -> Any:
    """Plain JSON: arrays to lists, numpy scalars to Python, NaN/inf to ``None``."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(out_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` through a temporary file and a rename, so a reader never sees half a file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_json_atomically(out_dir / RESULTS_FILE, to_json(results), indent=1)


def read_results(out_dir: Path) -> dict[str, Any] | None:
    """The results already in ``out_dir``, or ``None`` when there are none (or they are unreadable)."""
    path = out_dir / RESULTS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _array(value: Any) -> np.ndarray:
    return np.array(value, dtype=np.float64)


PROBE_DPI = 110


def plotted_metrics(results: dict[str, Any]) -> list[str]:
    """The metrics with a plot that every run of ``results`` measured, in the flow's order."""
    return [metric for metric in _DRAWERS if all(metric in run for run in results["metrics"].values())]


def metric_figure(results: dict[str, Any], metric: str) -> Any:
    """One panel per spectrum (own, patched) of ``metric``, from ``results`` alone."""
    runs = results["metrics"]
    figure, axes = pyplot().subplots(1, len(runs), figsize=(6.4 * len(runs), 4.6), squeeze=False, sharey=True)
    for axis, (name, run) in zip(axes[0], runs.items(), strict=True):
        _DRAWERS[metric](axis, run[metric], results)
        axis.set_title(f"{metric} — {name} spectrum")
    figure.tight_layout()
    return figure


def write_plots(out_dir: Path, results: dict[str, Any]) -> list[Path]:
    """One PNG per metric present in every run of ``results``; returns the paths written."""
    written = []
    for metric in plotted_metrics(results):
        path = out_dir / f"{metric}.png"
        save_figure(metric_figure(results, metric), path, PROBE_DPI)
        written.append(path)
    return written


def _layer_colours(count: int) -> list[Any]:
    import matplotlib

    return [matplotlib.colormaps["viridis"](i / max(1, count - 1)) for i in range(count)]


def _entropy(axis: Any, data: dict[str, Any], results: dict[str, Any]) -> None:
    by_bin = _array(data["layer_normalised_entropy_by_bin"])
    starts = np.maximum(_array(data["position_bins"]["start"]), 0.5)
    for layer, (values, colour) in enumerate(zip(by_bin, _layer_colours(len(by_bin)), strict=True)):
        axis.plot(starts, values, color=colour, label=f"layer {layer}" if layer % 5 == 0 else None)
    _mark_training(axis, results)
    axis.set_xscale("log")
    axis.set_xlabel("query position (bin start)")
    axis.set_ylabel("entropy / ln(visible keys), mean over heads")
    axis.legend(fontsize=7)


def _sinks(axis: Any, data: dict[str, Any], results: dict[str, Any]) -> None:
    del results
    image = axis.imshow(_array(data["first_mass"]), aspect="auto", origin="lower", vmin=0, vmax=1, cmap="magma")
    axis.figure.colorbar(image, ax=axis, label="mean attention on position 0")
    axis.set_xlabel("head")
    axis.set_ylabel("layer")


def _distance(axis: Any, data: dict[str, Any], results: dict[str, Any]) -> None:
    del results
    density = _array(data["layer_density"])
    centres = _array(data["distance_bins"]["centre"])
    slopes = _array(data["layer_mean_slope"])
    for layer, (values, colour) in enumerate(zip(density, _layer_colours(len(density)), strict=True)):
        label = f"layer {layer}: slope {slopes[layer]:.2f}" if layer % 5 == 0 else None
        axis.plot(centres[1:], values[1:], color=colour, label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("distance i − j (bin centre)")
    axis.set_ylabel("attention per key, mean over heads")
    axis.legend(fontsize=7)


def _loss(axis: Any, data: dict[str, Any], results: dict[str, Any]) -> None:
    bins = data["bins"]
    centres = (_array(bins["start"]) + _array(bins["stop"])) / 2
    axis.plot(centres, _array(bins["mean_loss"]), marker="o", markersize=3)
    _mark_training(axis, results)
    axis.set_xlabel("position")
    axis.set_ylabel("next-token loss (nats)")


def _passkey(axis: Any, data: dict[str, Any], results: dict[str, Any]) -> None:
    del results
    grid = _array(data.get("accuracy", [[None]]))
    image = axis.imshow(grid, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="RdYlGn")
    axis.figure.colorbar(image, ax=axis, label="accuracy")
    axis.set_xticks(range(len(data["depths"])), [f"{d:g}" for d in data["depths"]])
    axis.set_yticks(range(len(data["lengths"])), [str(n) for n in data["lengths"]])
    axis.set_xlabel("needle depth")
    axis.set_ylabel("prompt length (tokens)")


def _mark_training(axis: Any, results: dict[str, Any]) -> None:
    training = results["spectrum"]["own"].get("training_context")
    if training and training <= results["context"]:
        axis.axvline(training, color="grey", linestyle="--", linewidth=1, label="training context")


_DRAWERS = {"entropy": _entropy, "sinks": _sinks, "distance": _distance, "loss": _loss, "passkey": _passkey}


def _mean(value: Any) -> float | None:
    values = np.array(value, dtype=np.float64) if value is not None else np.array([])
    return float(np.nanmean(values)) if values.size and np.isfinite(values).any() else None


def probe_summary(results: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The spectra measured (own, patched) and one row per headline number, for the end-of-run table."""
    spectra = list(results.get("metrics", {}))
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, pick: Any, unit: str = "", scale: float = 1.0) -> None:
        cells = []
        for name in spectra:
            try:
                value = pick(results["metrics"][name])
            except (KeyError, TypeError):
                value = None
            cells.append("" if value is None else f"{scale * value:.3g}{unit}")
        if any(cells):
            rows.append((label, cells))

    add("mean loss", lambda m: m["loss"]["mean_loss"], " nats")
    add("loss within the training context", lambda m: m["loss"]["within_training_context"], " nats")
    add("loss beyond the training context", lambda m: m["loss"]["beyond_training_context"], " nats")
    add("normalised attention entropy (0–1)", lambda m: _mean(m["entropy"]["mean_normalised_entropy"]))
    add("heads with a first-token sink", lambda m: _mean(m["sinks"]["heads_with_first_token_sink"]), " %", 100)
    add("secondary sink positions", lambda m: float(len(m["sinks"]["secondary_positions"])))
    add("attention-by-distance slope (log-log)", lambda m: _mean(m["distance"]["layer_mean_slope"]))
    add("passkey accuracy", lambda m: _mean([c["accuracy"] for c in m["passkey"]["cells"]]), " %", 100)
    return spectra, rows


def render_probe_summary(console: Any, results: dict[str, Any]) -> None:
    """What the probe found, one column per spectrum (side by side in compare mode)."""
    from rich import box
    from rich.table import Table

    spectra, rows = probe_summary(results)
    table = Table(title=f"Probe over {results['context']:,} tokens", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("statistic")
    for name in spectra:
        table.add_column(name, justify="right")
    for label, cells in rows:
        table.add_row(label, *cells)
    console.print(table)
