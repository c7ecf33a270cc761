"""``ropescope bias``: position bias on multi-document retrieval, plain and under PINE and ACT.

torch and transformers are imported only when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ropescope.cli import app
from ropescope.cli.arguments import check_out_folder, parse_names, parse_positive_int, previous_results_named
from ropescope.cli.progress import progress_bars
from ropescope.errors import RopescopeInputError
from ropescope.report import terminal


def _parse_documents(text: str) -> tuple[int, ...]:
    counts = tuple(parse_positive_int("--documents", part, maximum=1000) or 0 for part in text.split(","))
    if any(k < 2 for k in counts):
        raise RopescopeInputError("--documents", f"{text!r} has K < 2", "give K ≥ 2 documents, e.g. 5,10,20")
    return counts


@app.command("bias")
def bias_command(
    model: Annotated[str, typer.Argument(help="a local transformers model folder or a .gguf file")],
    documents: Annotated[str, typer.Option(help="documents per prompt, K (comma-separated for several)")] = "10",
    trials: Annotated[int, typer.Option(min=1, help="document sets per K, each shown in K orders")] = 10,
    intervention: Annotated[
        str, typer.Option(help="comma-separated: none,pine,act (ablations: pine-causal, pine-unmoved)")
    ] = "none,pine,act",
    out: Annotated[Path, typer.Option(help="folder for results.json and the plot")] = Path("bias-results"),
    json_output: Annotated[bool, typer.Option("--json", help="print results.json to stdout")] = False,
    seed: Annotated[int, typer.Option(help="seed of the trials")] = 0,
    search_trials: Annotated[int, typer.Option(min=1, help="held-out trials for ACT's head search")] = 4,
    tokenizer: Annotated[
        Path | None, typer.Option(help="folder with the tokenizer files, when the model's own has none")
    ] = None,
) -> None:
    """Measure accuracy by gold-document position and order sensitivity, with and without PINE and ACT."""
    from rich.console import Console

    from ropescope.interventions.run import INTERVENTIONS, BiasSettings, run_bias
    from ropescope.probes.models import load_model
    from ropescope.report.bias_view import render_bias_summary, write_plot
    from ropescope.report.probe_view import read_results, write_results

    names = parse_names("--intervention", intervention, INTERVENTIONS, "intervention")
    settings = BiasSettings(_parse_documents(documents), trials, names, seed, search_trials)
    check_out_folder(out)
    console = Console(stderr=True) if json_output else terminal()  # --json keeps stdout for the JSON
    with console.status("loading the model"):
        loaded = load_model(model, tokenizer)
    with progress_bars(console) as report:

        def save(results: dict[str, Any]) -> None:
            write_results(out, results)
            write_plot(out, results)

        with previous_results_named(out):
            results = run_bias(loaded, settings, save, report, read_results(out))
    if json_output:
        typer.echo(json.dumps(json.loads((out / "results.json").read_text(encoding="utf-8")), indent=1))
        return
    render_bias_summary(console, results)
    for path in (out / "results.json", out / "accuracy_by_position.png"):
        console.print(f"wrote {path}")
