"""Commands that need only numpy: ``spectrum`` and ``catalog``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ropescope.catalog import entries
from ropescope.cli import app
from ropescope.cli.arguments import parse_positive_int
from ropescope.config import load_spec
from ropescope.errors import RopescopeInputError
from ropescope.report import terminal
from ropescope.report.spectrum_view import render_catalog, render_spectrum, spectrum_document
from ropescope.spectrum import spectrum

MODEL_HELP = "a config.json path, a model folder, or an embedded catalog id (see `ropescope catalog`)"


@app.command("spectrum")
def spectrum_command(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    seq_len: Annotated[
        str | None, typer.Option(help="sequence length the spectrum is computed at (dynamic NTK, LongRoPE)")
    ] = None,
    context: Annotated[str | None, typer.Option(help="target context: adds turns completed within it")] = None,
    layer_type: Annotated[str | None, typer.Option(help="layer type of a per-layer-type config")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The exact RoPE frequency of every rotary pair, its wavelength and turns within the contexts."""
    length, target = parse_positive_int("--seq-len", seq_len), parse_positive_int("--context", context)
    spec = load_spec(model)
    if layer_type is not None:
        if layer_type not in spec.layer_specs:
            known = ", ".join(sorted(spec.layer_specs)) or "none (the config has one layer type)"
            raise RopescopeInputError("--layer-type", f"unknown layer type {layer_type!r}", f"known: {known}")
        spec = spec.layer_specs[layer_type]
    computed = spectrum(spec, seq_len=length)
    if as_json:
        typer.echo(json.dumps(spectrum_document(computed, target), indent=2, allow_nan=False))
    else:
        render_spectrum(terminal(), computed, target)


@app.command("catalog")
def catalog_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The embedded catalog of real models' positional settings."""
    rows = [(entry, load_spec(entry.id)) for entry in entries()]
    if as_json:
        document = [
            {
                "id": e.id,
                "advertised_context": e.advertised_context,
                "spec": s.to_dict(),
                "observations": [o.__dict__ for o in e.observations],
                "sources": list(e.sources),
            }
            for e, s in rows
        ]
        typer.echo(json.dumps(document, indent=2))
    else:
        render_catalog(terminal(), rows)
