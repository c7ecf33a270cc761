"""``ropescope probe``: attention entropy, sinks, distance profile, per-position loss and passkey on a real model.

torch and transformers are imported only when the command runs.
"""

from __future__ import annotations

from importlib import resources
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
from ropescope.cli.progress import progress_bars
from ropescope.errors import RopescopeInputError
from ropescope.report import terminal

METRICS_HELP = "comma-separated: entropy,sinks,distance,loss,passkey"


def read_text(path: Path | None) -> tuple[str, str]:
    """(text, where it came from): the given file or the bundled default."""
    if path is None:
        return resources.files("ropescope").joinpath("data/probe_text.txt").read_text(encoding="utf-8"), "bundled"
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as error:
        raise RopescopeInputError("--text", f"cannot read {path} ({error})", "give a UTF-8 text file") from error


def _parse_lengths(text: str | None) -> tuple[int, ...]:
    if text is None:
        return ()
    return tuple(parse_positive_int("--passkey-lengths", part) or 0 for part in text.split(","))


@app.command("probe")
def probe_command(
    model: Annotated[str, typer.Argument(help="a local transformers model folder or a .gguf file")],
    context: Annotated[str, typer.Option(help="tokens in the probed window, e.g. 4096 or 8K")],
    metrics: Annotated[str, typer.Option(help=METRICS_HELP)] = "entropy,sinks,distance,loss,passkey",
    text: Annotated[Path | None, typer.Option(help="UTF-8 text to probe (default: bundled prose)")] = None,
    patch: Annotated[
        str | None, typer.Option(help="compare with another spectrum: TYPE:FACTOR (yarn:4) or a config file")
    ] = None,
    out: Annotated[Path, typer.Option(help="folder for results.json and the plots")] = Path("probe-results"),
    tokenizer: Annotated[
        Path | None, typer.Option(help="folder with the tokenizer files, when the model's own has none")
    ] = None,
    passkey_lengths: Annotated[str | None, typer.Option(help="prompt lengths (default: context/8 … context)")] = None,
    passkey_depths: Annotated[str, typer.Option(help="needle depths, fractions")] = "0,0.25,0.5,0.75,1",
    passkey_trials: Annotated[int, typer.Option(min=1, help="keys per (length, depth) cell")] = 2,
    seed: Annotated[int, typer.Option(help="seed of the passkeys")] = 0,
) -> None:
    """Measure what the model's attention and loss actually do at a context length (streamed, O(L) memory)."""

    from ropescope.probes.checkpoint import CHECKPOINT_FILE
    from ropescope.probes.models import load_model
    from ropescope.probes.run import METRICS, ProbeRun, ProbeSettings
    from ropescope.report.probe_view import read_results, render_probe_summary, write_plots, write_results

    settings = ProbeSettings(
        context=parse_positive_int("--context", context) or 0,
        metrics=parse_names("--metrics", metrics, METRICS, "metric"),
        passkey_lengths=_parse_lengths(passkey_lengths),
        passkey_depths=parse_fractions("--passkey-depths", passkey_depths),
        passkey_trials=passkey_trials,
        seed=seed,
        patch=patch,
    )
    body, origin = read_text(text)
    check_out_folder(out)
    console = terminal()
    with console.status("loading the model"):
        loaded = load_model(model, tokenizer)
    token_ids = list(loaded.tokenizer(body, add_special_tokens=True)["input_ids"])
    with progress_bars(console) as report:

        def save(results: dict[str, Any]) -> None:
            results["text"] = {"source": origin, "tokens": len(token_ids)}
            write_results(out, results)

        with previous_results_named(out):
            runner = ProbeRun(loaded, token_ids, settings, save, read_results(out), report, out / CHECKPOINT_FILE)
        results = runner.run()
    render_probe_summary(console, results)
    for path in [out / "results.json", *write_plots(out, results)]:
        console.print(f"wrote {path}")
