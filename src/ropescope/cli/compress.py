"""``ropescope compress``: passkey accuracy, loss, KV bytes and decode time of every press and ratio on a real
model (:mod:`ropescope.presses.evaluate`). torch and transformers are imported only when the command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ropescope.cli import app
from ropescope.cli.arguments import (
    check_out_folder,
    parse_fractions,
    parse_names,
    parse_positive_int,
    previous_results_named,
)
from ropescope.cli.probe import read_text
from ropescope.cli.progress import progress_bars
from ropescope.report import terminal

PRESS_NAMES = "none,streaming,streaming-unrotated,snapkv,expected,triattention,dapq"
DEFAULT_PRESSES = "none,streaming,snapkv,expected,triattention,dapq"


@app.command("compress")
def compress_command(
    model: Annotated[str, typer.Argument(help="a local transformers model folder or a .gguf file")],
    context: Annotated[str, typer.Option(help="tokens of context compressed, e.g. 2048 or 4K")],
    presses: Annotated[str, typer.Option(help=f"comma-separated: {PRESS_NAMES}")] = DEFAULT_PRESSES,
    ratios: Annotated[str, typer.Option(help="fractions of the KV cache removed")] = "0.25,0.5,0.75,0.9",
    out: Annotated[Path, typer.Option(help="folder for results.json and the plot")] = Path("compress-results"),
    json_output: Annotated[bool, typer.Option("--json", help="print results.json instead of the table")] = False,
    text: Annotated[Path | None, typer.Option(help="UTF-8 text for the loss (default: bundled prose)")] = None,
    tokenizer: Annotated[
        Path | None, typer.Option(help="folder with the tokenizer files, when the model's own has none")
    ] = None,
    depths: Annotated[str, typer.Option(help="passkey needle depths, fractions")] = "0,0.25,0.5,0.75,1",
    trials: Annotated[int, typer.Option(min=1, help="passkeys per depth")] = 2,
    loss_tokens: Annotated[int, typer.Option(min=8, help="tokens scored after the compressed context")] = 256,
    seed: Annotated[int, typer.Option(help="seed of the passkeys")] = 0,
    question_in_prefill: Annotated[
        bool, typer.Option(help="compress with the question at the end of the prompt (SnapKV's setting)")
    ] = False,
) -> None:
    """Compress the KV cache with each press and measure what it costs: passkey, loss, memory, decode time."""
    from rich.console import Console

    from ropescope.presses.evaluate import CompressRun, CompressSettings
    from ropescope.probes.models import load_model
    from ropescope.report.compress_view import render_compress_table, write_plots
    from ropescope.report.probe_view import read_results, write_results

    names = parse_names("--presses", presses, PRESS_NAMES.split(","), "press")
    settings = CompressSettings(
        context=parse_positive_int("--context", context) or 0,
        presses=tuple(n for n in names if n != "none"),
        ratios=parse_fractions("--ratios", ratios, upper_open=True, example="0.5,0.75"),
        depths=parse_fractions("--depths", depths),
        trials=trials,
        loss_tokens=loss_tokens,
        seed=seed,
        question_in_prefill=question_in_prefill,
    )
    body, origin = read_text(text)
    check_out_folder(out)
    console = Console(stderr=True) if json_output else terminal()
    with console.status("loading the model"):
        loaded = load_model(model, tokenizer)
    token_ids = list(loaded.tokenizer(body, add_special_tokens=True)["input_ids"]) if loaded.tokenizer else []
    with progress_bars(console) as report:

        def save(results: dict[str, Any]) -> None:
            results["text"] = {"source": origin, "tokens": len(token_ids)}
            write_results(out, results)

        with previous_results_named(out):
            runner = CompressRun(loaded, token_ids, settings, save, read_results(out), report)
        results = runner.run()
    plots = write_plots(out, results)
    if json_output:
        typer.echo(json.dumps(json.loads((out / "results.json").read_text(encoding="utf-8")), indent=1))
        return
    render_compress_table(console, results)
    for path in [out / "results.json", *plots]:
        console.print(f"wrote {path}")
