"""Rich tables and JSON for spectra and the catalog."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ropescope.catalog import CatalogEntry
from ropescope.config import Finding, RopeSpec
from ropescope.spectrum import Spectrum

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def spectrum_document(spectrum: Spectrum, context: int | None) -> dict[str, Any]:
    """The JSON document of ``ropescope spectrum --json`` (keys are stable)."""
    document = spectrum.to_dict(context=context)
    # JSON has no infinity: a pair that does not rotate (ω = 0) has wavelength null
    document["wavelengths"] = [float(w) if np.isfinite(w) else None for w in spectrum.wavelengths]
    train = spectrum.spec.training_context
    if train is not None:
        document["rotations_in_training_context"] = spectrum.rotations(train).tolist()
    document["bands"] = spectrum.bands()
    document["layer_types"] = {name: s.to_dict() for name, s in spectrum.spec.layer_specs.items()}
    return document


def render_spectrum(console: Console, spectrum: Spectrum, context: int | None) -> None:
    spec = spectrum.spec
    train = spec.training_context
    title = (
        f"{spec.source}: {spec.rope_type} RoPE, base {spec.base:,.6g}, rotary dim {spec.rotary_dim}"
        f" of head {spec.head_dim}, attention factor {spectrum.attention_factor:.6g}"
        + (f", seq_len {spectrum.seq_len:,}" if spectrum.seq_len else "")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("pair", justify="right")
    table.add_column("ω (rad/token)", justify="right")
    table.add_column("wavelength", justify="right")
    if train:
        table.add_column(f"turns in {train:,}", justify="right")
    if context:
        table.add_column(f"turns in {context:,}", justify="right")
    bands = spectrum.bands()
    if bands:
        table.add_column("band")
    wavelengths = spectrum.wavelengths
    train_turns = spectrum.rotations(train) if train else None
    context_turns = spectrum.rotations(context) if context else None
    for i, omega in enumerate(spectrum.inv_freq):
        row = [str(i), f"{omega:.6e}", "∞" if not np.isfinite(wavelengths[i]) else f"{wavelengths[i]:,.1f}"]
        if train_turns is not None:
            row.append(_turns(train_turns[i]))
        if context_turns is not None:
            row.append(_turns(context_turns[i]))
        if bands:
            row.append(bands[i])
        table.add_row(*row)
    console.print(table)
    console.print(f"effective base 1/ω_min = {spectrum.effective_base:,.6g}")
    for name, layer in spec.layer_specs.items():
        if name != spec.layer_type:
            console.print(f"layer type {name}: {layer.rope_type}, base {layer.base:,.6g} (use --layer-type {name})")
    render_findings(console, spec.findings)


def _turns(turns: float) -> str:
    style = "red" if turns < 1 else ""
    text = f"{turns:,.3f}" if turns < 100 else f"{turns:,.0f}"
    return f"[{style}]{text}[/]" if style else text


def render_findings(console: Console, findings: tuple[Finding, ...]) -> None:
    for finding in findings:
        style = SEVERITY_STYLE.get(finding.severity, "")
        fix = f" Fix: {finding.fix}" if finding.fix else ""
        console.print(f"[{style}]{finding.severity}[/] [{finding.code}] {finding.message}.{fix}")


def render_catalog(console: Console, rows: list[tuple[CatalogEntry, RopeSpec]]) -> None:
    table = Table(title=f"Embedded catalog: {len(rows)} models", title_justify="left")
    for column, justify in (
        ("model", "left"),
        ("rope", "left"),
        ("base", "right"),
        ("rotary/head", "right"),
        ("layers", "right"),
        ("max pos", "right"),
        ("advertised", "right"),
        ("observations", "right"),
        ("findings", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for entry, spec in rows:
        table.add_row(
            entry.id,
            spec.rope_type,
            f"{spec.base:,.6g}",
            f"{spec.rotary_dim}/{spec.head_dim}",
            str(spec.num_layers or "?"),
            f"{spec.max_position_embeddings or '?':,}" if spec.max_position_embeddings else "?",
            f"{entry.advertised_context:,}",
            str(len(entry.observations)),
            str(len(spec.findings)),
        )
    console.print(table)
