"""Write ``src/ropescope/data/lab_observations.json`` from a finished ``ropescope lab run bases`` sweep.

Each RoPE language model of the sweep becomes an entry in the catalog's schema: its positional config (head
dimension, base, training context = the training window, layers), its lineage (one stage at that window), and
two observations from the measured break B (the first bin of train_length/4 positions whose mean loss exceeds
1.5× the in-context mean): works at B (the positions before it stay under the threshold), fails at B + the bin
width; with no break in the window, works at the window. Each names the preset, seed and run id that
reproduce it. Run: ``python tools/build_lab_observations.py RUNS_DIR/summary.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src" / "ropescope" / "data" / "lab_observations.json"


def entry(run: dict, preset: str) -> dict:
    train, longest, found = run["train_length"], max(run["test_lengths"]), run["break_context"]
    width = max(1, train // 4)
    source = f"this project: ropescope lab run {preset} (seed {run['seed']}, run {run['run_id']})"
    note = (
        f"byte-level LM on the bundled text, {run['d_model']}-wide, {run['n_layers']} layers, head dim "
        f"{run['head_dim']}, trained {run['steps']} steps on {train}-byte windows; loss by position to {longest}"
    )
    observations = [
        {
            "context": found or longest,
            "works": True,
            "setting": "as released",
            "measure": "lab",
            "note": note,
            "source": source,
        }
    ]
    if found is not None:
        observations.append(
            {
                "context": found + width,
                "works": False,
                "setting": "as released, no scaling",
                "measure": "lab",
                "note": note + f"; mean loss above 1.5x from position {found}",
                "source": source,
            }
        )
    model_id = f"lab/rope-base{run['rope_base']:g}-d{run['head_dim']}-seed{run['seed']}"
    return {
        "id": model_id,
        "config": {
            "model_type": "llama",
            "head_dim": run["head_dim"],
            "rope_theta": run["rope_base"],
            "max_position_embeddings": train,
            "num_hidden_layers": run["n_layers"],
        },
        "advertised_context": train,
        "lineage": {
            "trained_context": train,
            "pretrained": None,
            "confidence": "seen",
            "sources": [source],
            "note": "one training stage",
        },
        "observations": observations,
    }


def main(argv: list[str]) -> None:
    summary = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    preset = summary["spec"]["name"]
    runs = [r for r in summary["runs"] if r["task"] == "lm" and r["encoding"] == "rope"]
    document = {"schema_version": 1, "models": [entry(run, preset) for run in runs]}
    TARGET.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(runs)} lab models to {TARGET}")


if __name__ == "__main__":
    main(sys.argv)
