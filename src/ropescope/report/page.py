"""``ropescope report``: one self-contained HTML page of every result given, rendered with Jinja2.

Each :class:`ropescope.report.sources.Source` becomes one section (``templates/<kind>.html.j2``) in the order
of the flow. Numbers are the inputs' own, formatted by the same cell functions as the terminal tables; plots are
redrawn from the JSON by the project's plotting functions and embedded as PNG data URIs. The page loads nothing
(no script, font or stylesheet from anywhere), and it carries no rendering time, so the same inputs give the same
bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ropescope
from ropescope import bounds
from ropescope.errors import RopescopeInputError
from ropescope.report.audit_view import (
    BOUND_COLUMNS,
    CATALOG_COLUMNS,
    MECHANISM_SHORT,
    ZONE_DPI,
    bound_cells,
    catalog_cells,
    zone_figure,
)
from ropescope.report.bias_view import BIAS_DPI, COLUMNS, bias_figure, bias_rows
from ropescope.report.compress_view import COMPRESS_DPI, COMPRESS_HEADERS, compress_figure, compress_rows
from ropescope.report.figures import png_data_uri
from ropescope.report.files import write_text_atomically
from ropescope.report.lab_view import LAB_DPI, accuracy_figure, base_sweep_table, bases_figure, lab_table
from ropescope.report.probe_view import PROBE_DPI, metric_figure, plotted_metrics
from ropescope.report.sources import Source, load_sources

CATALOG_DIM, CATALOG_LAYERS = 128, 32  # the catalog's zone plot is drawn for d = 128, N = 32, as `audit --plot`


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise RopescopeInputError(
            "ropescope report", "needs Jinja2, which is not installed", "pip install 'ropescope[report]'"
        ) from None

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ropescope.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["tokens"] = lambda value: "∞" if value is None else f"{value:,}"
    environment.filters["number"] = _number
    environment.filters["percent"] = lambda value: "n/a" if value is None else f"{100 * value:.0f} %"
    return environment


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


def audit_zone_figure(document: dict[str, Any]) -> Any:
    """The zone plot of one model's audit JSON: the bounds redrawn from its d, N, ε and dtype, the model's point,
    and Men et al.'s minimum base at the target, the one context the audit searched (``zone.lower.men2024``)."""
    d = document["rotary_dim"]
    point = (
        document["model"].split("/")[-1],
        document["context"],
        bounds.plain_base_for_effective(document["effective_base"], d),
    )
    men = (document.get("zone") or {}).get("lower", {}).get("men2024")
    return zone_figure(
        d,
        document["layers"],
        document["dtype"],
        document["eps"],
        [point],
        [] if men is None else [(document["context"], men)],
        document["context"],
    )


def _audit_section(source: Source) -> dict[str, Any]:
    document = source.document
    if isinstance(document, list):
        points = [
            (
                row["model"].split("/")[-1],
                row["context"],
                bounds.plain_base_for_effective(row["effective_base"], CATALOG_DIM),
            )
            for row in document
            if "effective_base" in row
        ]
        rows = [catalog_cells(row) for row in document]
        eps, dtype = document[0].get("eps", 0.5), document[0].get("dtype", "fp32")
        zone = png_data_uri(zone_figure(CATALOG_DIM, CATALOG_LAYERS, dtype, eps, points, []), ZONE_DPI)
        counts = {verdict: sum(row["verdict"] == verdict for row in document) for verdict in ("ok", "at_risk", "fail")}
        return {
            "template": "audit_catalog.html.j2",
            "header": CATALOG_COLUMNS,
            "rows": rows,
            "counts": counts,
            "zone": zone,
            "dtype": dtype,
            "eps": eps,
            "dim": CATALOG_DIM,
            "layers": CATALOG_LAYERS,
        }
    if "positional_scheme" in document:
        return {"template": "audit_scheme.html.j2", "audit": document}
    figure = audit_zone_figure(document)
    return {
        "template": "audit.html.j2",
        "audit": document,
        "mechanism": MECHANISM_SHORT[document["predicted_break"]["mechanism"]],
        "header": BOUND_COLUMNS,
        "rows": [bound_cells(check) for check in document["bounds"]],
        "units": ["tokens" if check["quantity"] == "context" else "" for check in document["bounds"]],
        "zone": png_data_uri(figure, ZONE_DPI),
    }


def _probe_section(source: Source) -> dict[str, Any]:
    results = source.document
    runs = results["metrics"]
    labels = {"entropy": "entropy / ln n", "sinks": "heads with a first-token sink", "distance": "distance slope"}
    measured = [metric for metric in labels if all(metric in run for run in runs.values())]
    header = ["layer"] + [labels[m] + (f" ({name})" if len(runs) > 1 else "") for name in runs for m in measured]
    per_layer = []
    for layer in range(results["model"]["num_layers"] if measured else 0):
        row = [str(layer)]
        for run in runs.values():
            for metric in measured:
                if metric == "entropy":
                    row.append(_number(run["entropy"]["layer_mean_normalised_entropy"][layer], 3))
                elif metric == "sinks":
                    row.append(f"{100 * run['sinks']['heads_with_first_token_sink'][layer]:.0f} %")
                else:
                    row.append(_number(run["distance"]["layer_mean_slope"][layer], 3))
        per_layer.append(row)
    return {
        "template": "probe.html.j2",
        "results": results,
        "runs": runs,
        "header": header,
        "per_layer": per_layer,
        "plots": {
            metric: png_data_uri(metric_figure(results, metric), PROBE_DPI) for metric in plotted_metrics(results)
        },
    }


def _lab_section(source: Source) -> dict[str, Any]:
    summary = source.document
    algorithmic = any(run["task"] != "lm" for run in summary["runs"])
    bases = bases_figure(summary)
    return {
        "template": "lab.html.j2",
        "summary": summary,
        "table": lab_table(summary) if algorithmic else None,
        "accuracy": png_data_uri(accuracy_figure(summary), LAB_DPI) if algorithmic else None,
        "sweep": base_sweep_table(summary),
        "bases": None if bases is None else png_data_uri(bases, LAB_DPI),
    }


def _best_press(results: dict[str, Any]) -> dict[str, Any] | None:
    """The row of highest passkey accuracy at the ratio nearest 0.5 (ties: the smaller loss change)."""
    rows = [row for row in results["results"] if row["press"] != "none" and row["passkey_accuracy"] is not None]
    if not rows:
        return None
    ratio = min({row["ratio"] for row in rows}, key=lambda r: abs(r - 0.5))
    at = [row for row in rows if row["ratio"] == ratio]
    return max(at, key=lambda row: (row["passkey_accuracy"], -(row["loss_delta"] or 0)))


def _compress_section(source: Source) -> dict[str, Any]:
    results = source.document
    return {
        "template": "compress.html.j2",
        "results": results,
        "header": COMPRESS_HEADERS,
        "rows": compress_rows(results),
        "best": _best_press(results),
        "plot": png_data_uri(compress_figure(results), COMPRESS_DPI) if results["results"] else None,
    }


def _bias_section(source: Source) -> dict[str, Any]:
    results = source.document
    return {
        "template": "bias.html.j2",
        "results": results,
        "header": COLUMNS,
        "rows": bias_rows(results),
        "plot": png_data_uri(bias_figure(results), BIAS_DPI) if results["rows"] else None,
    }


SECTIONS = {
    "audit": _audit_section,
    "probe": _probe_section,
    "lab": _lab_section,
    "compress": _compress_section,
    "bias": _bias_section,
}
TITLES = {"audit": "Spectrum and audit", "probe": "Probes", "lab": "Lab", "compress": "Compression", "bias": "Bias"}


def render_report(paths: list[Path]) -> str:
    """The HTML page of the results at ``paths`` (audit JSON files and result folders)."""
    sources = load_sources(paths)
    sections = []
    for index, source in enumerate(sources):
        section = SECTIONS[source.kind](source)
        section.update(source=source, anchor=f"s{index}", title=TITLES[source.kind])
        sections.append(section)
    return (
        _environment()
        .get_template("report.html.j2")
        .render(version=ropescope.__version__, sources=sources, sections=sections)
    )


def write_report(paths: list[Path], out: Path) -> Path:
    """Render the report, then write it atomically: a bad input leaves nothing at ``out``."""
    return write_text_atomically(out, render_report(paths))
