"""The views of ``ropescope compress``: the press × ratio table and the accuracy / loss plot (its results.json is
written by the probes' writer, :func:`ropescope.report.probe_view.write_results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ropescope.report.figures import pyplot, save_figure

COMPRESS_DPI = 110


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def compress_rows(results: dict[str, Any]) -> list[list[str]]:
    """The table's cells: press, ratio, passkey accuracy, loss delta, KV MiB and the share kept, decode ms per
    token, the press's ms per prompt."""
    return [
        [
            row["press"],
            f"{row['ratio']:g}",
            _cell(row["passkey_accuracy"], ".0%"),
            _cell(row["loss_delta"], "+.3f"),
            "–" if row["kv_bytes"] is None else f"{row['kv_bytes'] / 2**20:,.1f}",
            _cell(row["kv_fraction"], ".0%"),
            _cell(row["decode_ms_per_token"], ".1f"),
            _cell(row["compress_ms"], ".0f"),
        ]
        for row in results["results"]
    ]


COMPRESS_HEADERS = ("press", "ratio", "passkey", "Δ loss", "KV MiB", "kept", "ms/tok", "press ms")


def render_compress_table(console: Any, results: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    trials = results["results"][0]["passkey_trials"] if results["results"] else 0
    table = Table(
        title=f"KV compression at {results['context']:,} tokens, {trials} passkey prompts per row (Δ loss: nats "
        "against no compression; ms/tok: one decoding step; press ms: per prompt)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for index, header in enumerate(COMPRESS_HEADERS):
        table.add_column(header, justify="left" if index == 0 else "right", no_wrap=True)
    for cells in compress_rows(results):
        table.add_row(*cells)
    console.print(table)


def _by_press(results: dict[str, Any], field: str) -> dict[str, tuple[list[float], list[float]]]:
    """press → (ratios, values of ``field``), the uncompressed row as every press's ratio 0."""
    rows = results["results"]
    baseline = next((row for row in rows if row["press"] == "none"), None)
    lines: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        if row["press"] == "none" or row[field] is None:
            continue
        ratios, values = lines.setdefault(row["press"], ([], []))
        if not ratios and baseline is not None and baseline[field] is not None:
            ratios.append(0.0)
            values.append(baseline[field])
        ratios.append(row["ratio"])
        values.append(row[field])
    return lines


def compress_figure(results: dict[str, Any]) -> Any:
    """Passkey accuracy and loss delta against the ratio removed, one line per press."""
    figure, (accuracy, loss) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for press, (ratios, values) in _by_press(results, "passkey_accuracy").items():
        accuracy.plot(ratios, np.array(values) * 100, marker="o", label=press)
    accuracy.set_xlabel("ratio of the KV cache removed")
    accuracy.set_ylabel("passkey accuracy (%)")
    accuracy.set_ylim(-5, 105)
    accuracy.legend(fontsize=8)
    accuracy.set_title(f"passkey retrieval at {results['context']:,} tokens")
    for press, (ratios, values) in _by_press(results, "loss_delta").items():
        loss.plot(ratios, values, marker="o", label=press)
    loss.axhline(0, color="grey", linewidth=0.8)
    loss.set_xlabel("ratio of the KV cache removed")
    loss.set_ylabel("loss − uncompressed loss (nats)")
    loss.set_title("next-token loss after the compressed context")
    figure.tight_layout()
    return figure


def write_plots(out_dir: Path, results: dict[str, Any]) -> list[Path]:
    path = out_dir / "accuracy.png"
    save_figure(compress_figure(results), path, COMPRESS_DPI)
    return [path]
