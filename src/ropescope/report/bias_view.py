"""Position-bias results: the accuracy-by-gold-position plot (one panel per K, one line per intervention) and the
end-of-run table, both drawn from ``results.json`` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ropescope.interventions.retrieval import paired_gain
from ropescope.report.figures import pyplot, save_figure

BIAS_DPI = 110
PLOT_FILE = "accuracy_by_position.png"
COLUMNS = ["K", "intervention", "accuracy", "vs none", "first", "middle", "last", "order sens."]


def bias_figure(results: dict[str, Any]) -> Any:
    """Accuracy (%) against the gold document's slot, one panel per K, one line per intervention."""
    counts = sorted({row["documents"] for row in results["rows"]})
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, len(counts), figsize=(4.6 * len(counts), 3.6), squeeze=False, sharey=True)
    for axis, documents in zip(axes[0], counts, strict=True):
        for row in results["rows"]:
            if row["documents"] == documents:
                values = [100 * v for v in row["accuracy_by_position"]]
                axis.plot(range(documents), values, marker="o", markersize=3, label=row["intervention"])
        axis.set_title(f"K = {documents} documents")
        axis.set_xlabel("gold document slot (0 = first)")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # slots are whole numbers
        axis.set_ylim(-3, 103)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("exact match (%)")
    figure.tight_layout()
    return figure


def write_plot(out_dir: Path, results: dict[str, Any]) -> Path:
    path = out_dir / PLOT_FILE
    save_figure(bias_figure(results), path, BIAS_DPI)
    return path


def bias_rows(results: dict[str, Any]) -> list[list[str]]:
    """The summary table's rows: accuracies in %, the gain over ``none`` at the same K in points ± its paired
    standard error over the trials (— without a ``none`` row or per-trial accuracies), sensitivity as a fraction."""
    plain = {row["documents"]: row for row in results["rows"] if row["intervention"] == "none"}

    def percent(value: float) -> str:
        return f"{100 * value:.0f}"

    table = []
    for row in results["rows"]:
        by_position, baseline = row["accuracy_by_position"], plain.get(row["documents"])
        gain = None
        if baseline is not None and row is not baseline:
            gain = paired_gain(row.get("accuracy_by_trial", []), baseline.get("accuracy_by_trial", []))
        table.append([
            str(row["documents"]),
            row["intervention"],
            percent(row["accuracy"]),
            "—" if gain is None else f"{100 * gain[0]:+.0f} ± {100 * gain[1]:.0f}",
            percent(by_position[0]),
            percent(by_position[len(by_position) // 2]),
            percent(by_position[-1]),
            f"{row['order_sensitivity']:.2f}",
        ])  # fmt: skip
    return table


def render_bias_summary(console: Any, results: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    title = "Position bias (exact match %; first, middle, last: by gold slot)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for index, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if index == 1 else "right", no_wrap=index == 1)
    for cells in bias_rows(results):
        table.add_row(*cells)
    console.print(table)
